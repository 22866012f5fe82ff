"""Leaderboard aggregation, ranks, CIs, paired tests, subsets, and the self-contained report."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rainbench.leaderboard import (
    ALL,
    bootstrap_ci,
    build_leaderboard,
    holm,
    load_runs,
)
from rainbench.report import write_leaderboard
from rainbench.results import ResultsWriter

SPECS = {"psnr": {"name": "psnr", "lower_better": False}, "piqe": {"name": "piqe", "lower_better": True}}


def _write_run(run_dir: Path, values: dict[str, dict[str, np.ndarray]], errors: dict[tuple[str, str], set[int]] | None = None) -> None:
    """A run directory with result rows for ``values[method][metric][image]``; ``errors`` marks failed images."""
    writer = ResultsWriter(run_dir)
    for method, per_metric in values.items():
        for metric, vals in per_metric.items():
            for i, v in enumerate(vals):
                failed = i in (errors or {}).get((method, metric), set())
                writer.add([{"run_id": "r", "dataset": "tiny", "dataset_fingerprint": "f", "split": "test",
                             "image_id": f"img{i:02d}", "method": method, "method_config_hash": method + "-h",
                             "metric": metric, "metric_spec": json.dumps(SPECS[metric]), "value": np.nan if failed else float(v),
                             "lower_better": SPECS[metric]["lower_better"], "seconds": 0.1, "device": "cpu",
                             "error": "RuntimeError: boom" if failed else None,
                             "source": "alpha" if i % 2 else "beta", "rain_kind": "heavy" if i < 8 else "light"}])
    writer.close()


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    base_psnr = rng.uniform(20, 30, 20)
    base_piqe = rng.uniform(30, 60, 20)
    return {
        "identity": {"psnr": base_psnr, "piqe": base_piqe},
        "good_psnr": {"psnr": base_psnr + 3 + rng.normal(0, 0.5, 20), "piqe": base_piqe + 5},
        "good_piqe": {"psnr": base_psnr + 1, "piqe": base_piqe - 10 + rng.normal(0, 1, 20)},
    }


def test_ranks_respect_each_metrics_direction(tmp_path, scores):
    _write_run(tmp_path / "run", scores)
    table = build_leaderboard(load_runs([tmp_path / "run"]), n_boot=500).main()
    psnr = table[table["metric"] == "psnr"].set_index("method")
    piqe = table[table["metric"] == "piqe"].set_index("method")
    assert psnr["rank"].idxmin() == "good_psnr" and psnr.loc["good_psnr", "arrow"] == "↑"
    assert piqe["rank"].idxmin() == "good_piqe" and piqe.loc["good_piqe", "arrow"] == "↓"
    for part, better in ((psnr, np.greater), (piqe, np.less)):
        ordered = part.sort_values("rank")
        assert all(better(a, b) for a, b in zip(ordered["mean"][:-1], ordered["mean"][1:]))
        assert part.loc[ordered.index[0], "best"] and part["best"].sum() == 1
    assert psnr.loc["identity", "mean"] == pytest.approx(scores["identity"]["psnr"].mean())


def test_ci_contains_the_mean_and_is_seeded(tmp_path, scores):
    _write_run(tmp_path / "run", scores)
    frame = load_runs([tmp_path / "run"])
    first = build_leaderboard(frame, n_boot=500, seed=3).table
    again = build_leaderboard(frame, n_boot=500, seed=3).table
    pd.testing.assert_frame_equal(first, again)
    assert ((first["ci_low"] <= first["mean"]) & (first["mean"] <= first["ci_high"])).all()
    assert (first["ci_high"] > first["ci_low"]).all()
    low, high = bootstrap_ci(np.array([5.0]))
    assert low == high == 5.0


def test_paired_test_against_the_best(tmp_path, scores):
    scores["copy_of_best"] = {"psnr": scores["good_psnr"]["psnr"], "piqe": scores["good_piqe"]["piqe"] + 20}
    _write_run(tmp_path / "run", scores)
    psnr = build_leaderboard(load_runs([tmp_path / "run"]), n_boot=200).main()
    psnr = psnr[psnr["metric"] == "psnr"].set_index("method")
    best = psnr.index[psnr["best"]][0]
    assert np.isnan(psnr.loc[best, "p_vs_best"])
    # 20 images, every one worse by ~3 dB: the signed-rank test must call it significant
    assert psnr.loc["identity", "p_vs_best"] < 0.001
    # the same scores as the best on every image: no evidence of a difference
    assert psnr.loc["copy_of_best" if best == "good_psnr" else "good_psnr", "p_vs_best"] == 1.0


def test_failures_are_counted_and_excluded_from_the_mean(tmp_path, scores):
    _write_run(tmp_path / "run", scores, errors={("good_psnr", "psnr"): {0, 5}})
    table = build_leaderboard(load_runs([tmp_path / "run"]), n_boot=200).main().set_index(["metric", "method"])
    row = table.loc[("psnr", "good_psnr")]
    assert row["failures"] == 2 and row["n"] == 18
    kept = np.delete(scores["good_psnr"]["psnr"], [0, 5])
    assert row["mean"] == pytest.approx(kept.mean())
    assert table.loc[("piqe", "good_psnr"), "failures"] == 0


def test_per_subset_tables(tmp_path, scores):
    _write_run(tmp_path / "run", scores)
    lb = build_leaderboard(load_runs([tmp_path / "run"]), by=["rain_kind", "source"], n_boot=200)
    assert set(lb.table["subset"]) == {ALL, "rain_kind=heavy", "rain_kind=light", "source=alpha", "source=beta"}
    heavy = lb.table[(lb.table["subset"] == "rain_kind=heavy") & (lb.table["metric"] == "psnr")].set_index("method")
    assert heavy.loc["identity", "n"] == 8
    assert heavy.loc["identity", "mean"] == pytest.approx(scores["identity"]["psnr"][:8].mean())
    with pytest.raises(ValueError, match="no such column"):
        build_leaderboard(load_runs([tmp_path / "run"]), by=["weather"])


def test_markdown_csv_and_spec_sidecar(tmp_path, scores):
    _write_run(tmp_path / "run", scores)
    lb = build_leaderboard(load_runs([tmp_path / "run"]), by=["rain_kind"], n_boot=200)
    paths = write_leaderboard(lb, tmp_path / "lb", formats=["md", "csv"])
    text = paths["md"].read_text()
    assert "### psnr ↑" in text and "### piqe ↓" in text and "rain_kind=heavy" in text
    assert "p vs best" in text and json.dumps(SPECS["piqe"], sort_keys=True) in text
    csv = pd.read_csv(paths["csv"])
    assert len(csv) == len(lb.table)
    assert json.loads(paths["specs"].read_text()) == SPECS


def test_same_method_with_two_configs_is_labelled_apart(tmp_path, scores):
    _write_run(tmp_path / "one", {"identity": scores["identity"], "m": scores["good_psnr"]})
    frame = load_runs([tmp_path / "one"])
    writer = ResultsWriter(tmp_path / "two")
    writer.add(frame[frame["method"] == "m"].assign(method_config_hash="other-config-hash").to_dict("records"))
    writer.close()
    both = load_runs([tmp_path / "one", tmp_path / "two"])
    assert set(both["method"]) == {"identity", "m@m-h", "m@other-co"}
    assert len(both) == len(frame) + 40


class _Resources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.external: list[str] = []
        self.images = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images += 1
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is not None and not value.startswith("data:") and not value.startswith("#"):
                self.external.append(f"{tag} {name}={value[:60]}")
        if tag in ("link", "script") and ("src" in attrs or "href" in attrs):
            self.external.append(tag)


def test_html_report_is_self_contained_with_a_comparison_grid(tmp_path):
    from test_runner import FakeBrightness, FakeMethod, FakePSNR, make_dataset

    from rainbench.runner import run_benchmark

    data, _ = make_dataset(tmp_path)
    run_benchmark(data, [FakeMethod("shift")], [FakePSNR(), FakeBrightness()], tmp_path / "run", save_outputs=True)
    lb = build_leaderboard(load_runs([tmp_path / "run"]), n_boot=200)
    paths = write_leaderboard(lb, tmp_path / "lb", formats=["html"], run_dirs=[tmp_path / "run"])
    for png in ("bars.png", "distributions.png", "grid.png"):
        assert (tmp_path / "lb" / png).stat().st_size > 1000
    parser = _Resources()
    parser.feed(paths["html"].read_text())
    assert parser.external == []
    assert parser.images == 3
    assert "fake_psnr" in paths["html"].read_text()


def test_json_outputs_for_dvc_metrics_hold_numbers_only(tmp_path, scores):
    from rainbench.results import read_results, write_summary

    scores["good_psnr"]["psnr"] = scores["good_psnr"]["psnr"].copy()
    scores["good_psnr"]["psnr"][3] = np.inf  # identical images give PSNR inf: not valid JSON, must become null
    _write_run(tmp_path / "run", scores)
    summary = json.loads(write_summary(tmp_path / "run", read_results(tmp_path / "run")).read_text())
    assert summary["good_psnr"]["psnr"] is None and summary["good_psnr"]["psnr_n"] == 20
    assert summary["identity"]["psnr"] == pytest.approx(float(np.mean(scores["identity"]["psnr"])))
    assert summary["good_piqe"]["piqe"] == pytest.approx(float(np.mean(scores["good_piqe"]["piqe"])))
    lb = build_leaderboard(load_runs([tmp_path / "run"]), n_boot=200)
    written = write_leaderboard(lb, tmp_path / "lb", formats=("json",))
    nested = json.loads(written["json"].read_text())
    finite = np.delete(scores["good_psnr"]["psnr"], 3)
    cell = nested[ALL]["good_psnr"]["psnr"]
    assert cell["mean"] == pytest.approx(finite.mean()) and cell["n"] == 19 and cell["n_inf"] == 1
    cell = nested[ALL]["good_piqe"]["piqe"]
    assert cell["ci_low"] <= cell["mean"] <= cell["ci_high"] and cell["rank"] == 1.0 and cell["n"] == 20
    assert "Infinity" not in written["json"].read_text()


def test_an_identical_image_is_counted_not_averaged(tmp_path, scores):
    """One PSNR of +inf (an output identical to its reference) must not make a method's mean infinite or rank it first."""
    scores["lucky"] = {"psnr": scores["identity"]["psnr"].copy(), "piqe": scores["identity"]["piqe"]}
    scores["lucky"]["psnr"][0] = np.inf
    _write_run(tmp_path / "run", scores)
    lb = build_leaderboard(load_runs([tmp_path / "run"]), n_boot=200)
    psnr = lb.main()[lb.main()["metric"] == "psnr"].set_index("method")
    assert np.isfinite(psnr.loc["lucky", "mean"])
    assert psnr.loc["lucky", "mean"] == pytest.approx(scores["identity"]["psnr"][1:].mean())
    assert psnr.loc["lucky", "n"] == 19 and psnr.loc["lucky", "n_inf"] == 1
    assert psnr.loc["identity", "n_inf"] == 0
    assert psnr.loc["lucky", "rank"] > psnr.loc["good_psnr", "rank"]  # ranked by its finite mean
    markdown = write_leaderboard(lb, tmp_path / "lb", formats=["md"])["md"].read_text()
    assert "| infinite |" in markdown and "inf [" not in markdown


def test_p_values_are_holm_adjusted_and_the_leaderboard_says_so(tmp_path, scores):
    # Holm on a textbook family: sorted 0.005, 0.01, 0.03, 0.04 -> 4x, 3x, 2x (monotone), 1x
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert np.isnan(holm([float("nan"), 0.2])[0]) and holm([float("nan"), 0.2])[1] == pytest.approx(0.2)
    scores["worse"] = {"psnr": scores["identity"]["psnr"] - 0.01, "piqe": scores["identity"]["piqe"]}
    _write_run(tmp_path / "run", scores)
    frame = load_runs([tmp_path / "run"])
    lb = build_leaderboard(frame, n_boot=200)
    psnr = lb.main()[lb.main()["metric"] == "psnr"].set_index("method")
    best = psnr.index[psnr["best"]][0]
    from rainbench.leaderboard import paired_test

    series = {m: g.set_index("image_id")["value"] for m, g in frame[frame["metric"] == "psnr"].groupby("method")}
    raw = [paired_test(series[m], series[best]) for m in psnr.index if m != best]
    adjusted = [psnr.loc[m, "p_vs_best"] for m in psnr.index if m != best]
    assert adjusted == pytest.approx(holm(raw))
    assert any(a > r for a, r in zip(adjusted, raw))  # the correction changed something
    markdown = write_leaderboard(lb, tmp_path / "lb", formats=["md"])["md"].read_text()
    assert "Holm" in markdown


def test_bca_interval_follows_the_skew_of_the_data():
    values = np.random.default_rng(1).exponential(1.0, size=60)  # right-skewed
    low, high = bootstrap_ci(values, n_boot=2000, seed=0)
    assert low < values.mean() < high
    assert high - values.mean() > values.mean() - low  # the longer arm on the skewed side
    assert bootstrap_ci(values, n_boot=2000, seed=0) == (low, high)
    assert bootstrap_ci(np.full(5, 2.5)) == (2.5, 2.5)
