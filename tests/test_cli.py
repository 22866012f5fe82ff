"""The command group: every verb listed, common options, one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from rainbench import __version__
from rainbench.cli import VERBS, cli, main
from rainbench.cli.common import NotImplementedYet, common_options

ISSUE_VERBS = {"ingest", "synth", "publish", "methods", "train", "derain", "run", "leaderboard", "weights", "demo"}


def test_help_lists_every_verb(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert ISSUE_VERBS <= set(VERBS)
    for verb in ISSUE_VERBS:
        assert f"  {verb} " in text, verb


def _leaf_commands(verb: str) -> list[list[str]]:
    command = cli.get_command(click.Context(cli), verb)
    if isinstance(command, click.Group):  # e.g. `rainbench weights list|fetch|...`
        return [[verb, sub] for sub in command.list_commands(click.Context(command))]
    return [[verb]]


@pytest.mark.parametrize("verb", sorted(ISSUE_VERBS))
def test_every_verb_teaches_its_options(verb, capsys):
    for args in _leaf_commands(verb):
        assert main([*args, "--help"]) == 0
        text = capsys.readouterr().out
        for option in ("--device", "--workers", "--seed", "--quiet", "--verbose", "--debug"):
            assert option in text, (args, option)


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_bad_device_is_a_usage_error(capsys):
    assert main(["synth", ".", "--out", "x", "--device", "tpu"]) == 2
    assert "--device" in capsys.readouterr().err


def test_library_errors_are_one_line_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code = main(["synth", str(bad), "--out", str(tmp_path / "o"), "-q", "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.png" in err and "Traceback" not in err
    assert err.strip().splitlines()[0].startswith("error: ")


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"garbage")
    proc = subprocess.run([sys.executable, "-m", "rainbench", "--debug", "synth", str(bad), "--out", str(tmp_path / "o"),
                           "-q", "--workers", "0"], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ImageLoadError" in proc.stderr


def test_unfinished_verbs_say_so_and_fail(capsys):
    @click.command("later")
    @common_options
    def later(common):
        raise NotImplementedYet("later", 99)

    cli.add_command(later)
    try:
        assert main(["later"]) == 3
        assert "not implemented yet" in capsys.readouterr().err
    finally:
        cli.commands.pop("later")


def test_quiet_and_verbose_conflict(capsys):
    assert main(["synth", ".", "--out", "x", "-q", "-v"]) == 2
