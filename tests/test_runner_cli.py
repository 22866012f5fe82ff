"""`rainbench run` and `rainbench leaderboard` end to end, with the real identity method and metrics."""

from __future__ import annotations

import pytest

from rainbench.cli import main
from rainbench.results import read_results


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    from test_runner import make_dataset

    return make_dataset(tmp_path_factory.mktemp("cli"))


def test_identity_scores_equal_the_metric_called_directly(paired, tmp_path, capsys):
    from collection.images import to_tensor
    from rainbench.metrics import create_metric

    data, rows = paired
    code = main(["run", "--dataset", str(data), "--metrics", "psnr,ssim", "--batch-size", "2", "--out",
                 str(tmp_path / "run"), "-q", "--workers", "0", "--device", "cpu"])
    assert code == 0
    assert "identity" in capsys.readouterr().out
    frame = read_results(tmp_path / "run")
    assert set(frame["method"]) == {"identity"} and frame["error"].isna().all()
    by_id = {r["id"]: r for r in rows}
    metrics = {name: create_metric(name) for name in ("psnr", "ssim")}
    assert len(frame) == 2 * 4  # 4 paired rows; the rainy-only row has no reference
    for _, r in frame.iterrows():
        row = by_id[r["image_id"]]
        metric = metrics[r["metric"]]
        direct = float(metric(to_tensor(row["_rainy"]), to_tensor(row["_clean"]))[0])
        assert r["value"] == pytest.approx(direct, abs=1e-6)
        assert r["metric_spec"] == metric.spec.to_json()
        assert bool(r["lower_better"]) == metric.spec.lower_better

    board = tmp_path / "board"
    code = main(["leaderboard", str(tmp_path / "run"), "--format", "md,csv", "--by", "rain_kind", "--out", str(board),
                 "--bootstrap", "200", "-q"])
    out = capsys.readouterr().out
    assert code == 0
    assert "identity" in out and "psnr ↑" in out
    assert "rain_kind=heavy" in (board / "leaderboard.md").read_text()
    assert (board / "metric_specs.json").exists() and (board / "leaderboard.csv").exists()


def test_missing_metric_weights_fail_before_any_work(paired, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("RAINBENCH_WEIGHTS_DIR", raising=False)
    code = main(["run", "--dataset", str(paired[0]), "--metric", "psnr,musiq", "--metric-weights", str(tmp_path / "w"),
                 "--out", str(tmp_path / "run"), "-q", "--workers", "0", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert "musiq" in err and "rainbench metric-weights fetch" in err
    assert not (tmp_path / "run" / "results").exists()


def test_option_errors_name_the_option(paired, tmp_path, capsys):
    code = main(["run", "--dataset", str(paired[0]), "--weights", "nlcl=x.pt", "--out", str(tmp_path / "r"), "-q"])
    assert code == 2 and "--weights" in capsys.readouterr().err
    code = main(["run", "--dataset", str(tmp_path / "nope"), "--metrics", "psnr", "--out", str(tmp_path / "r"), "-q",
                 "--device", "cpu"])
    assert code == 1 and "nope" in capsys.readouterr().err


def test_unknown_method_fails_up_front(paired, tmp_path, capsys):
    code = main(["run", "--dataset", str(paired[0]), "--method", "no-such-method", "--metrics", "psnr",
                 "--out", str(tmp_path / "r"), "-q", "--device", "cpu", "--workers", "0"])
    assert code == 1 and "no-such-method" in capsys.readouterr().err
    assert not (tmp_path / "r" / "results").exists()


def test_trainable_method_without_weights_fails_up_front(paired, tmp_path, capsys):
    import baselines

    trainable = [n for n in baselines.available() if baselines.info(n).needs_weights]
    if not trainable:
        pytest.skip("no registered method needs weights")
    code = main(["run", "--dataset", str(paired[0]), "--method", trainable[0], "--metrics", "psnr",
                 "--out", str(tmp_path / "r"), "-q", "--device", "cpu", "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 1 and "needs weights" in err and "--weights" in err
    assert not (tmp_path / "r" / "results").exists()
