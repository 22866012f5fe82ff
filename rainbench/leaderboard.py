"""Leaderboards from run results: means with bootstrap CIs, ranks by direction, paired tests.

For every (dataset, subset, metric, method) the table holds the mean over the images the method
scored, a seeded percentile-bootstrap confidence interval of that mean, the number of images
scored and failed, the rank (1 = best, in the metric's own direction), and the p-value of a
two-sided Wilcoxon signed-rank test against the best method on the images both scored. Rows are
identified by method name; a method that appears with two configurations is labelled
``name@hash``.
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

from rainbench.results import read_results, run_dir_problem

log = logging.getLogger(__name__)
ALL = "all"
UP, DOWN = "↑", "↓"
TABLE_COLUMNS = ["dataset", "subset", "metric", "arrow", "lower_better", "rank", "method", "mean", "ci_low", "ci_high",
                 "n", "failures", "p_vs_best", "best"]


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
    test: str = "Wilcoxon signed-rank, two-sided, vs the best method on images both scored"

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


def bootstrap_ci(values: np.ndarray, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (seeded, so reproducible)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // len(values))  # bound memory for large sets
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        means[start:stop] = values[rng.integers(0, len(values), size=(stop - start, len(values)))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_test(a: pd.Series, b: pd.Series) -> float:
    """Two-sided Wilcoxon signed-rank p-value on the images both series score (NaN when < 2 pairs)."""
    from scipy.stats import wilcoxon

    joined = pd.concat([a, b], axis=1, join="inner").dropna()
    if len(joined) < 2:
        return float("nan")
    diff = joined.iloc[:, 0].to_numpy() - joined.iloc[:, 1].to_numpy()
    if np.allclose(diff, 0.0):
        return 1.0
    return float(wilcoxon(joined.iloc[:, 0], joined.iloc[:, 1], zero_method="wilcox").pvalue)


def _seed(seed: int, *parts: str) -> list[int]:
    return [seed, zlib.crc32("\x1f".join(parts).encode())]


def _rank_group(rows: pd.DataFrame, lower_better: bool) -> pd.Series:
    keyed = rows["mean"] if lower_better else -rows["mean"]
    return keyed.rank(method="min", na_option="keep")


def _subsets(frame: pd.DataFrame, by: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    out = [(ALL, frame)]
    for column in by:
        if column not in frame.columns:
            raise ValueError(f"--by {column}: results have no such column (available: source, rain_kind)")
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
                    values = series.get(method, pd.Series(dtype=float)).to_numpy()
                    low, high = bootstrap_ci(values, confidence, n_boot, _seed(seed, dataset, subset, metric, method))
                    block.append({"dataset": dataset, "subset": subset, "metric": metric, "arrow": DOWN if lower else UP,
                                  "lower_better": lower, "method": method,
                                  "mean": float(values.mean()) if len(values) else float("nan"),
                                  "ci_low": low, "ci_high": high, "n": len(values),
                                  "failures": int((~per_method["ok"]).sum())})
                block = pd.DataFrame(block)
                block["rank"] = _rank_group(block, lower)
                ordered = block.sort_values(["rank", "method"], na_position="last")
                best = ordered["method"].iloc[0] if ordered["rank"].notna().any() else None
                block["best"] = block["method"] == best
                block["p_vs_best"] = [float("nan") if best is None or m == best or m not in series
                                      else paired_test(series[m], series[best]) for m in block["method"]]
                rows.append(block.sort_values(["rank", "method"], na_position="last"))
    table = pd.concat(rows, ignore_index=True)[TABLE_COLUMNS]
    scores = frame[frame["ok"]][["dataset", "method", "metric", "image_id", "value", "source", "rain_kind"]]
    return Leaderboard(table=table, scores=scores.reset_index(drop=True), specs=specs, confidence=confidence)


def _fmt(value: float) -> str:
    """Scores at the precision papers report: 25.93 dB, 0.7229 SSIM, 50.51 PIQE."""
    if value is None or np.isnan(value):
        return "–"
    if not np.isfinite(value):
        return "inf" if value > 0 else "-inf"
    size = abs(value)
    if size == 0 or size >= 100:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}" if size >= 1e-3 else f"{value:.3g}"


def _p(value: float) -> str:
    if value is None or not np.isfinite(value):
        return ""
    return "<1e-4" if value < 1e-4 else f"{value:.4f}"


def wide_table(lb: Leaderboard, subset: str = ALL) -> pd.DataFrame:
    """Methods x metrics: ``mean [low, high]`` cells, the compact form printed by the CLI."""
    part = lb.table[lb.table["subset"] == subset]
    cells = part.assign(cell=[f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]" + (f" ({f} failed)" if f else "")
                              for m, lo, hi, f in zip(part["mean"], part["ci_low"], part["ci_high"], part["failures"])],
                        column=part["metric"] + " " + part["arrow"])
    wide = cells.pivot_table(index=["dataset", "method"], columns="column", values="cell", aggfunc="first")
    return wide.reset_index().rename_axis(columns=None)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _detail_rows(part: pd.DataFrame) -> list[list[str]]:
    return [[str(int(r["rank"])) if np.isfinite(r["rank"]) else "–", ("**" + r["method"] + "**") if r["best"] else r["method"],
             _fmt(r["mean"]), f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]", str(r["n"]), str(r["failures"]), _p(r["p_vs_best"])]
            for _, r in part.iterrows()]


DETAIL_HEADER = ["rank", "method", "mean", "95% CI", "n", "failures", "p vs best"]


def to_markdown(lb: Leaderboard) -> str:
    """The whole leaderboard as Markdown: main tables, per-subset tables, the metric spec footer."""
    out = ["# Leaderboard", ""]
    ci = f"{lb.confidence:.0%}"
    out.append(f"Mean over images; {ci} percentile-bootstrap CI of the mean; ↑ higher is better, ↓ lower is better; "
               f"p vs best: {lb.test}.")
    for (dataset, subset), part in lb.table.groupby(["dataset", "subset"], sort=False):
        out += ["", f"## {dataset}" + ("" if subset == ALL else f" — {subset}"), ""]
        for metric, rows in part.groupby("metric", sort=True):
            header = [c.replace("95%", ci) for c in DETAIL_HEADER]
            out += [f"### {metric} {rows['arrow'].iloc[0]}", "", _markdown_table(header, _detail_rows(rows)), ""]
    out += ["", "## Metric specs", ""]
    for name, spec in sorted(lb.specs.items()):
        out += [f"- `{name}`: `{json.dumps(spec, sort_keys=True)}`"]
    return "\n".join(out) + "\n"


def to_html_tables(lb: Leaderboard) -> str:
    """The tables as an HTML fragment (no external resources), used by the report."""
    import html

    parts = []
    for (dataset, subset), part in lb.table.groupby(["dataset", "subset"], sort=False):
        title = html.escape(dataset + ("" if subset == ALL else f" — {subset}"))
        parts.append(f"<h2>{title}</h2>")
        for metric, rows in part.groupby("metric", sort=True):
            parts.append(f"<h3>{html.escape(metric)} {rows['arrow'].iloc[0]}</h3><table><tr>"
                         + "".join(f"<th>{html.escape(h)}</th>" for h in DETAIL_HEADER) + "</tr>")
            for row in _detail_rows(rows):
                cells = [html.escape(c).replace("**", "") for c in row]
                bold = row[1].startswith("**")
                parts.append("<tr" + (' class="best"' if bold else "") + ">" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            parts.append("</table>")
    specs = html.escape(json.dumps(lb.specs, indent=2, sort_keys=True))
    parts.append(f"<h2>Metric specs</h2><pre>{specs}</pre>")
    return "\n".join(parts)


def to_nested(lb: Leaderboard) -> dict:
    """``{subset: {method: {metric: {mean, ci_low, ci_high, n, failures, rank}}}}`` with numeric
    leaves only (non-finite values become null): the shape DVC's metrics commands read."""
    import math

    def number(value):
        return float(value) if value == value and math.isfinite(float(value)) else None

    nested: dict = {}
    for row in lb.table.itertuples(index=False):
        cell = nested.setdefault(str(row.subset), {}).setdefault(str(row.method), {})
        cell[str(row.metric)] = {"mean": number(row.mean), "ci_low": number(row.ci_low), "ci_high": number(row.ci_high),
                                 "n": int(row.n), "failures": int(row.failures), "rank": number(row.rank)}
    return nested


def write_leaderboard(lb: Leaderboard, out_dir: str | Path, formats: Sequence[str] = ("md", "csv"),
                      run_dirs: Sequence[str | Path] = ()) -> dict[str, Path]:
    """Write ``leaderboard.md|csv``, ``report.html`` (with plots) and the ``metric_specs.json`` sidecar."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    unknown = set(formats) - {"md", "csv", "html", "json"}
    if unknown:
        raise ValueError(f"--format: unknown format(s) {', '.join(sorted(unknown))} (use md, csv, html, json)")
    if "md" in formats:
        written["md"] = out_dir / "leaderboard.md"
        written["md"].write_text(to_markdown(lb), encoding="utf-8")
    if "csv" in formats:
        written["csv"] = out_dir / "leaderboard.csv"
        lb.table.to_csv(written["csv"], index=False)
    if "json" in formats:
        written["json"] = out_dir / "leaderboard.json"
        written["json"].write_text(json.dumps(to_nested(lb), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if "html" in formats:
        from rainbench.report import write_report

        written["html"] = write_report(lb, out_dir, run_dirs)
    written["specs"] = out_dir / "metric_specs.json"
    written["specs"].write_text(json.dumps(lb.specs, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return written
