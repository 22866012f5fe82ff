"""Rendering a leaderboard: Markdown, CSV, JSON (DVC metrics), HTML tables, plots and the HTML report.

:mod:`rainbench.leaderboard` computes the table; this module only presents it.

Plots are drawn on matplotlib ``Figure`` objects (Agg canvas, no pyplot global state, no display):
bars with confidence intervals per metric, per-image score distributions, and a visual comparison
grid that shows the same crop of a few images across the rainy input (the ``identity`` outputs),
every method and the clean image, read from the PNGs a run saved with ``--save-outputs``. The HTML
report embeds every image as base64, so it is one file that can be mailed or attached.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from collection.markdown import markdown_table
from rainbench.leaderboard import ALL, CI_METHOD, CORRECTION, Leaderboard

logger = logging.getLogger(__name__)

CLEAN_DIR = "_clean"
RAINY_METHOD = "identity"


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


def _detail_rows(part: pd.DataFrame) -> list[list[str]]:
    return [[str(int(r["rank"])) if np.isfinite(r["rank"]) else "–", ("**" + r["method"] + "**") if r["best"] else r["method"],
             _fmt(r["mean"]), f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]", str(r["n"]), str(r["n_inf"]),
             str(r["failures"]), _p(r["p_vs_best"])]
            for _, r in part.iterrows()]


DETAIL_HEADER = ["rank", "method", "mean", "95% CI", "n", "infinite", "failures", f"p vs best ({CORRECTION})"]


def _legend(lb: Leaderboard) -> str:
    """The sentence under every leaderboard title: what the numbers are."""
    return (f"Mean over the images with a finite score; {lb.confidence:.0%} {CI_METHOD} CI of the mean; "
            f"infinite: images scored +/-inf (e.g. PSNR of an output identical to its reference), counted, "
            f"not averaged; ↑ higher is better, ↓ lower is better; p vs best: {lb.test}.")


def to_markdown(lb: Leaderboard) -> str:
    """The whole leaderboard as Markdown: main tables, per-subset tables, the metric spec footer."""
    out = ["# Leaderboard", ""]
    ci = f"{lb.confidence:.0%}"
    out.append(_legend(lb))
    for (dataset, subset), part in lb.table.groupby(["dataset", "subset"], sort=False):
        out += ["", f"## {dataset}" + ("" if subset == ALL else f" — {subset}"), ""]
        for metric, rows in part.groupby("metric", sort=True):
            header = [c.replace("95%", ci) for c in DETAIL_HEADER]
            out += [f"### {metric} {rows['arrow'].iloc[0]}", "", *markdown_table(header, _detail_rows(rows))]
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
        return float(value) if math.isfinite(float(value)) else None

    nested: dict = {}
    for row in lb.table.itertuples(index=False):
        cell = nested.setdefault(str(row.subset), {}).setdefault(str(row.method), {})
        cell[str(row.metric)] = {"mean": number(row.mean), "ci_low": number(row.ci_low), "ci_high": number(row.ci_high),
                                 "n": int(row.n), "n_inf": int(row.n_inf), "failures": int(row.failures),
                                 "rank": number(row.rank)}
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
        written["html"] = write_report(lb, out_dir, run_dirs)
    written["specs"] = out_dir / "metric_specs.json"
    written["specs"].write_text(json.dumps(lb.specs, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return written


def _figure(n_panels: int, width: float = 4.2, height: float = 3.2):
    from matplotlib.figure import Figure

    cols = min(3, max(1, n_panels))
    rows = int(np.ceil(n_panels / cols))
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def plot_bars(lb: Leaderboard, path: str | Path) -> Path:
    """One bar chart per metric: mean per method with its bootstrap CI as an error bar."""
    main = lb.main()
    metrics = sorted(main["metric"].unique())
    fig, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        rows = main[main["metric"] == metric].sort_values("method")
        means = rows["mean"].to_numpy(dtype=float)
        err = np.vstack([means - rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float) - means])
        colours = ["0.6" if m == RAINY_METHOD else ("C1" if b else "C0") for m, b in zip(rows["method"], rows["best"])]
        ax.bar(range(len(rows)), np.nan_to_num(means), yerr=np.nan_to_num(np.abs(err)), color=colours, capsize=3)
        ax.set_xticks(range(len(rows)), rows["method"], rotation=30, ha="right")
        ax.set_title(f"{metric} {rows['arrow'].iloc[0]}")
        if np.isfinite(means).any():
            finite = np.concatenate([means, rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float)])
            finite = finite[np.isfinite(finite)]
            span = finite.max() - finite.min()
            ax.set_ylim(finite.min() - 0.5 * span - 1e-9 if finite.min() > 0 else finite.min() * 1.1, finite.max() + 0.25 * span + 1e-9)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def plot_distributions(lb: Leaderboard, path: str | Path) -> Path:
    """Per-image score distributions (box plots) per method, one panel per metric (finite scores)."""
    scores = lb.scores
    metrics = sorted(scores["metric"].unique())
    fig, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        part = scores[scores["metric"] == metric]
        methods = sorted(part["method"].unique())
        values = [part[part["method"] == m]["value"].to_numpy(dtype=float) for m in methods]
        ax.boxplot([v[np.isfinite(v)] for v in values], showmeans=True)  # infinite scores are counted in the tables
        ax.set_xticks(range(1, len(methods) + 1), methods, rotation=30, ha="right")
        arrow = lb.table[lb.table["metric"] == metric]["arrow"].iloc[0]
        ax.set_title(f"{metric} {arrow} (per image)")
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def _load(path: Path) -> np.ndarray:
    from collection.images import load_image

    return load_image(path)


def plot_grid(run_dirs: Sequence[str | Path], methods: Sequence[str], path: str | Path, *, n_images: int = 3,
              crop: int = 128) -> Path | None:
    """Same crops across rainy input, methods and clean image, from saved outputs (None if none saved)."""
    outputs = [Path(d) / "outputs" for d in run_dirs]
    found: dict[str, Path] = {}  # "method/id" -> file, first run dir that has it wins
    for root in outputs:
        for file in sorted(root.glob("*/*.png")) if root.is_dir() else []:
            found.setdefault(f"{file.parent.name}/{file.stem}", file)
    columns = ([RAINY_METHOD] if RAINY_METHOD in methods else []) + [m for m in methods if m != RAINY_METHOD]
    ids = sorted({key.split("/", 1)[1] for key in found if key.startswith(f"{RAINY_METHOD}/")})
    ids = [i for i in ids if all(f"{m}/{i}" in found for m in columns)][:n_images]
    if not ids or not columns:
        return None
    has_clean = any(f"{CLEAN_DIR}/{i}" in found for i in ids)
    titles = ["rainy" if c == RAINY_METHOD else c for c in columns] + (["clean"] if has_clean else [])
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.2 * len(titles), 2.3 * len(ids)), layout="constrained")
    axes = fig.subplots(len(ids), len(titles), squeeze=False)
    for r, image_id in enumerate(ids):
        files = [found[f"{c}/{image_id}"] for c in columns] + ([found.get(f"{CLEAN_DIR}/{image_id}")] if has_clean else [])
        first = _load(files[0])
        h, w = first.shape[:2]
        size = min(crop, h, w)
        y0, x0 = (h - size) // 2, (w - size) // 2  # one crop position for the whole row
        for c, file in enumerate(files):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if file is not None:
                img = _load(file)
                ax.imshow(img[y0:y0 + size, x0:x0 + size], interpolation="nearest")
            else:
                ax.text(0.5, 0.5, "no clean image", ha="center", va="center", fontsize=8, color="0.4")
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
        axes[r][0].set_ylabel(image_id, fontsize=7)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def _embed(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:nth-child(2) { text-align: left; }
tr.best td { font-weight: bold; background: #fff6e0; }
img { max-width: 100%; } pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.8em; }
"""


def write_report(lb: Leaderboard, out_dir: str | Path, run_dirs: Sequence[str | Path] = ()) -> Path:
    """Write the plots as PNG and ``report.html`` (self-contained: every image embedded); returns the HTML path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = [("Scores with confidence intervals", plot_bars(lb, out_dir / "bars.png")),
               ("Per-image distributions", plot_distributions(lb, out_dir / "distributions.png"))]
    methods = sorted(lb.main()["method"].unique())
    grid = plot_grid(run_dirs, methods, out_dir / "grid.png") if run_dirs else None
    if grid is not None:
        figures.append(("Visual comparison (same crop; run with --save-outputs)", grid))
    body = ["<h1>rainbench leaderboard</h1>",
            f"<p>{html.escape(_legend(lb))}</p>"]
    for title, file in figures:
        body.append(f"<h2>{html.escape(title)}</h2>{_embed(file)}")
    body.append(to_html_tables(lb))
    page = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>rainbench leaderboard</title>"
            f"<style>{_STYLE}</style></head><body>" + "\n".join(body) + "</body></html>\n")
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
