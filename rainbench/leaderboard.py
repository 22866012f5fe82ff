"""Leaderboards from run results: means with bootstrap CIs, ranks by direction, paired tests.

For every (dataset, subset, metric, method) the table holds the mean over the images the method
scored with a finite value, a seeded BCa bootstrap confidence interval of that mean
(``scipy.stats.bootstrap``), the number of such images (``n``), of infinite scores (``n_inf``:
an output identical to its reference has PSNR +inf; it is counted, never averaged, so one
identical image cannot make a mean infinite) and of failures, the rank (1 = best, in the metric's
own direction, by the finite mean), and the p-value of a two-sided Wilcoxon signed-rank test
against the best method on the images both scored (infinite scores included: the test uses
ranks), Holm-adjusted over the comparisons of one table. Rows are identified by method name; a
method that appears with two configurations is labelled ``name@hash``.

This module computes; :mod:`rainbench.report` renders (Markdown, CSV, JSON, HTML, plots).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rainbench.data import SUBSET_COLUMNS
from rainbench.results import read_results, run_dir_problem

log = logging.getLogger(__name__)
ALL = "all"
UP, DOWN = "↑", "↓"
TABLE_COLUMNS = ["dataset", "subset", "metric", "arrow", "lower_better", "rank", "method", "mean", "ci_low", "ci_high",
                 "n", "n_inf", "failures", "p_vs_best", "best"]
CI_METHOD = "BCa bootstrap"
CORRECTION = "Holm"
"""The multiple-comparison correction applied to ``p_vs_best`` (over the methods of one table)."""


@dataclass
class Leaderboard:
    """Leaderboard rows plus what is needed to plot and document them."""

    table: pd.DataFrame
    """One row per (dataset, subset, metric, method); columns :data:`TABLE_COLUMNS`."""
    scores: pd.DataFrame
    """Per-image successful scores: dataset, method, metric, image_id, value, and subset columns."""
    specs: dict[str, dict] = field(default_factory=dict)
    """Metric name -> its full spec (as stored with every score)."""
    confidence: float = 0.95
    test: str = (f"Wilcoxon signed-rank, two-sided, vs the best method on images both scored; "
                 f"{CORRECTION}-adjusted over the methods of each table")

    def main(self) -> pd.DataFrame:
        """The rows over all images (no subset)."""
        return self.table[self.table["subset"] == ALL]


def load_runs(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """The result rows of several runs, one table (later runs win on the same image, method, metric).

    A folder without results (not a run directory, or a run that stored nothing yet) is skipped
    with a warning naming it; none with results is a ValueError naming them all.
    """
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise ValueError("no run directories given")
    frames = []
    for d in run_dirs:
        problem = run_dir_problem(d)
        if problem is None:
            frames.append(read_results(d))
        else:
            log.warning("%s: %s; ignored", d, problem)
    if not frames:
        raise ValueError(f"no results in {', '.join(map(str, run_dirs))}: none is a run directory with results")
    frame = pd.concat(frames, ignore_index=True)
    labels = frame.groupby("method")["method_config_hash"].nunique()
    multi = set(labels[labels > 1].index)
    frame["method"] = [f"{m}@{h[:8]}" if m in multi else m for m, h in zip(frame["method"], frame["method_config_hash"])]
    frame = frame.drop_duplicates(["dataset_fingerprint", "split", "image_id", "method", "metric"], keep="last")
    return frame.reset_index(drop=True)


def bootstrap_ci(values: np.ndarray, confidence: float = 0.95, n_boot: int = 2000, seed: int | Sequence[int] = 0) -> tuple[float, float]:
    """BCa bootstrap interval of the mean of ``values`` (``scipy.stats.bootstrap``, seeded, so reproducible).

    One value, or values all equal, give the degenerate interval (v, v).
    """
    from scipy.stats import bootstrap

    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1 or np.ptp(values) == 0:
        return float(values[0]), float(values[0])
    batch = max(1, 2_000_000 // len(values))  # bounds memory for large sets (resamples and the jackknife)
    result = bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=n_boot, method="BCa",
                       batch=batch, random_state=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return float(low), float(high)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (NaN entries are left out of the family)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(len(p), np.nan)
    index = np.flatnonzero(~np.isnan(p))
    order = index[np.argsort(p[index], kind="stable")]
    m, running = len(order), 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out.tolist()


def paired_test(a: pd.Series, b: pd.Series) -> float:
    """Two-sided Wilcoxon signed-rank p-value on the images both series score (NaN when < 2 pairs).

    Infinite scores take part (the test ranks the differences); equal scores, infinite ones
    included, are a zero difference.
    """
    from scipy.stats import wilcoxon

    joined = pd.concat([a, b], axis=1, join="inner").dropna()
    if len(joined) < 2:
        return float("nan")
    x, y = joined.iloc[:, 0].to_numpy(), joined.iloc[:, 1].to_numpy()
    with np.errstate(invalid="ignore"):
        diff = np.where(x == y, 0.0, x - y)
    if np.allclose(diff, 0.0):
        return 1.0
    return float(wilcoxon(diff, zero_method="wilcox").pvalue)


def _seed(seed: int, *parts: str) -> list[int]:
    return [seed, zlib.crc32("\x1f".join(parts).encode())]


def _rank_group(rows: pd.DataFrame, lower_better: bool) -> pd.Series:
    keyed = rows["mean"] if lower_better else -rows["mean"]
    return keyed.rank(method="min", na_option="keep")


def _subsets(frame: pd.DataFrame, by: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    out = [(ALL, frame)]
    for column in by:
        if column not in frame.columns:
            raise ValueError(f"--by {column}: results have no such column (available: {', '.join(SUBSET_COLUMNS)})")
        for value in sorted(frame[column].dropna().unique(), key=str):
            out.append((f"{column}={value}", frame[frame[column] == value]))
    return out


def build_leaderboard(frame: pd.DataFrame, by: Sequence[str] = (), *, confidence: float = 0.95,
                      n_boot: int = 2000, seed: int = 0) -> Leaderboard:
    """Aggregate result rows (as :func:`load_runs` returns them) into a :class:`Leaderboard`."""
    if frame.empty:
        raise ValueError("no results to rank (did the run score any image?)")
    frame = frame.copy()
    frame["dataset"] = frame["dataset"].astype(str) + ":" + frame["split"].astype(str)
    ok = (frame["error"].isna() | (frame["error"] == "")) & frame["value"].notna()
    frame["ok"] = ok
    specs = {m: json.loads(s) for m, s in frame.drop_duplicates("metric", keep="last")[["metric", "metric_spec"]].itertuples(index=False)}
    rows = []
    for dataset, per_dataset in frame.groupby("dataset", sort=True):
        for subset, part in _subsets(per_dataset, by):
            for metric, per_metric in part.groupby("metric", sort=True):
                lower = bool(per_metric["lower_better"].iloc[0])
                good = per_metric[per_metric["ok"]]
                series = {m: g.set_index("image_id")["value"].astype(float) for m, g in good.groupby("method")}
                block = []
                for method, per_method in per_metric.groupby("method", sort=True):
                    scored = series.get(method, pd.Series(dtype=float)).to_numpy()
                    values = scored[np.isfinite(scored)]
                    low, high = bootstrap_ci(values, confidence, n_boot, _seed(seed, dataset, subset, metric, method))
                    block.append({"dataset": dataset, "subset": subset, "metric": metric, "arrow": DOWN if lower else UP,
                                  "lower_better": lower, "method": method,
                                  "mean": float(values.mean()) if len(values) else float("nan"),
                                  "ci_low": low, "ci_high": high, "n": len(values),
                                  "n_inf": int(len(scored) - len(values)),
                                  "failures": int((~per_method["ok"]).sum())})
                block = pd.DataFrame(block)
                block["rank"] = _rank_group(block, lower)
                ordered = block.sort_values(["rank", "method"], na_position="last")
                best = ordered["method"].iloc[0] if ordered["rank"].notna().any() else None
                block["best"] = block["method"] == best
                block["p_vs_best"] = holm([float("nan") if best is None or m == best or m not in series
                                           else paired_test(series[m], series[best]) for m in block["method"]])
                rows.append(block.sort_values(["rank", "method"], na_position="last"))
    table = pd.concat(rows, ignore_index=True)[TABLE_COLUMNS]
    scores = frame[frame["ok"]][["dataset", "method", "metric", "image_id", "value", *SUBSET_COLUMNS]]
    return Leaderboard(table=table, scores=scores.reset_index(drop=True), specs=specs, confidence=confidence)
