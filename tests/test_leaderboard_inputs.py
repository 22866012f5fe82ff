"""`rainbench leaderboard` names every folder it cannot use instead of silently leaving it out."""

from __future__ import annotations

import logging

import pytest

from rainbench.cli import main


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory):
    from test_runner import FakeBrightness, make_dataset

    from rainbench.runner import run_benchmark

    root = tmp_path_factory.mktemp("lb")
    data, _ = make_dataset(root)
    run_benchmark(data, [], [FakeBrightness()], root / "run")
    return root / "run", data


def test_folders_that_are_not_runs_are_named_and_the_rest_is_ranked(run_and_data, tmp_path, capsys):
    run_dir, data = run_and_data
    empty = tmp_path / "empty"
    empty.mkdir()
    started = tmp_path / "started"  # a run that stopped before its first flush
    started.mkdir()
    (started / "run.json").write_text("{}")
    code = main(["leaderboard", str(run_dir), str(data), str(empty), str(started), "--format", "csv",
                 "--out", str(tmp_path / "board"), "--bootstrap", "100", "-q"])
    captured = capsys.readouterr()
    assert code == 0
    ignored = [line for line in captured.err.splitlines() if "ignored" in line]
    assert len(ignored) == 3
    assert any(str(data) in line and "not a run directory" in line for line in ignored)
    assert any(str(empty) in line and "not a run directory" in line for line in ignored)
    assert any(str(started) in line and "without results" in line for line in ignored)
    assert str(run_dir) not in captured.err
    assert "fake_bright" in (tmp_path / "board" / "leaderboard.csv").read_text()


def test_no_run_directory_at_all_is_an_error_naming_them(run_and_data, tmp_path, capsys):
    _, data = run_and_data
    code = main(["leaderboard", str(data), str(tmp_path), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and str(data) in err and str(tmp_path) in err
    assert not (data / "leaderboard").exists()


def test_load_runs_warns_for_each_folder_it_skips(run_and_data, tmp_path, caplog):
    from rainbench.leaderboard import load_runs

    run_dir, data = run_and_data
    with caplog.at_level(logging.WARNING, logger="rainbench"):
        frame = load_runs([run_dir, data])
    assert set(frame["method"]) == {"identity"}
    assert [r.getMessage() for r in caplog.records if str(data) in r.getMessage()]
    with pytest.raises(ValueError, match="none is a run directory"):
        load_runs([data])
