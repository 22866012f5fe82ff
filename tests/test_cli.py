"""The command group: every verb listed, the options each verb honours, one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from rainbench import __version__
from rainbench.cli import VERBS, cli, main

ISSUE_VERBS = {"ingest", "synth", "publish", "methods", "train", "derain", "run", "leaderboard", "metric-weights", "demo"}


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


# The shared options each verb honours (each one's effect is tested in test_cli_grammar.py); the
# others are not offered, so passing one is an error rather than an option that does nothing.
HONOURED = {
    "demo": {"--device", "--seed"}, "synth": {"--workers", "--seed"}, "ingest": {"--workers", "--seed"},
    "publish": set(), "methods": set(), "train": {"--device", "--seed"}, "derain": {"--device", "--seed"},
    "run": {"--device", "--workers", "--seed"}, "leaderboard": {"--seed"}, "metric-weights": set(),
    "analyze-id": {"--device", "--seed"},
}


@pytest.mark.parametrize("verb", sorted(ISSUE_VERBS))
def test_every_verb_offers_exactly_the_shared_options_it_honours(verb, capsys):
    for args in _leaf_commands(verb):
        assert main([*args, "--help"]) == 0
        text = capsys.readouterr().out
        for option in ("--quiet", "--verbose", "--debug"):
            assert option in text, (args, option)
        for option in ("--device", "--workers", "--seed"):
            assert (option in text) == (option in HONOURED[verb]), (args, option)


def test_an_option_a_verb_does_not_honour_is_an_error(capsys):
    assert main(["methods", "--device", "cpu"]) == 2
    assert "--device" in capsys.readouterr().err
    assert main(["ingest", ".", "--out", "x", "--device", "cpu"]) == 2


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_bad_device_is_a_usage_error(capsys):
    assert main(["derain", ".", "--method", "identity", "--out", "x", "--device", "tpu"]) == 2
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
                           "-q", "--workers", "0"], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "ImageLoadError" in proc.stderr


def test_quiet_and_verbose_conflict(capsys):
    assert main(["synth", ".", "--out", "x", "-q", "-v"]) == 2
