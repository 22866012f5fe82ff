"""The curation report of an ingest run: ``report.md``, ``report.json`` and PNG plots.

Everything in it is derived from the manifest frame, with no timestamps, so the same manifest
always gives the same report (a re-run does not rewrite it). Plots use matplotlib's Agg backend
(no display needed): status counts, resolution scatter, ISO and exposure-time histograms, and
the quality figures per split.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collection.curate import split_drift
from collection.leakage import leakage_markdown, summarise_leakage, write_thumbnails
from collection.markdown import markdown_table

MAX_LISTED = 200
"""Quarantined files and clusters listed in full in the JSON (the manifest has them all)."""

CLUSTER_EXAMPLES = 10
"""Largest clusters shown with their member paths in the Markdown."""


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.dropna().value_counts().sort_index().items()}


def summarise(frame: pd.DataFrame, *, fingerprint: str, split: str | None = None) -> dict[str, Any]:
    """The report's content as a JSON-serialisable dict."""
    rows = frame[frame["primary"].fillna(False).astype(bool)] if "primary" in frame else frame
    ok = rows[rows["status"] == "ok"]
    dups = frame[frame["status"] == "duplicate"]
    quarantined = frame[frame["status"] == "quarantined"].sort_values("key")
    clusters = []
    for group, members in dups.groupby("duplicate_of", sort=True):
        rep = frame[(frame["id"] == group) & (frame["status"] == "ok")]
        clusters.append({
            "representative": rep["key"].iloc[0] if len(rep) else group,
            "size": int(len(members) + 1),
            "duplicates": [{"key": k, "reason": r} for k, r in zip(members["key"], members["reason"])],
        })
    clusters.sort(key=lambda c: (-c["size"], c["representative"]))
    cameras = (ok["camera_make"].astype(object).fillna("?") + " " + ok["camera_model"].astype(object).fillna("?")).where(
        ok["camera_make"].notna() | ok["camera_model"].notna())
    megapixels = (ok["width"].astype(float) * ok["height"].astype(float) / 1e6) if len(ok) else pd.Series(dtype=float)
    return {
        "fingerprint": fingerprint,
        "files": len(frame),
        "status": _counts(frame["status"]),
        "quarantine_reasons": _counts(quarantined["reason"]),
        "duplicate_reasons": _counts(dups["reason"]),
        "flagged_duplicates": _counts(ok["reason"].where(ok["duplicate_of"].notna())),
        "leakage": summarise_leakage(frame),
        "split_drift": split_drift(frame, split),
        "rows_by_split": _counts(ok["split"]),
        "rows_by_split_and_role": {f"{s}/{r}": int(n) for (s, r), n in ok.groupby(["split", "role"]).size().items()},
        "rows_by_source": _counts(ok["source"]),
        "rows_by_rain_kind": _counts(ok["rain_kind"]),
        "clusters": {"count": len(clusters), "largest": clusters[:MAX_LISTED]},
        "scenes": int(ok["scene"].nunique()),
        "cameras": _counts(cameras),
        "megapixels": {q: float(np.round(megapixels.quantile(v), 3)) for q, v in
                       (("min", 0.0), ("median", 0.5), ("max", 1.0))} if len(ok) else {},
        "quarantined": [{"key": k, "reason": r, "detail": d} for k, r, d in
                        zip(quarantined["key"][:MAX_LISTED], quarantined["reason"], quarantined["detail"])],
        "warnings": int(frame["warnings"].notna().sum()) if "warnings" in frame else 0,
    }


def _table(header: tuple[str, str], counts: dict[str, int]) -> list[str]:
    return markdown_table(header, counts.items(), align="lr", empty=("(none)", 0))


def _markdown(summary: dict[str, Any], plots: list[str]) -> str:
    lines = ["# Curation report", "", f"Dataset fingerprint: `{summary['fingerprint']}`", "",
             f"Files seen: {summary['files']}; dataset rows: {sum(summary['rows_by_split'].values())}; "
             f"scenes: {summary['scenes']}; duplicate clusters: {summary['clusters']['count']}.", "",
             "## Files by status", ""]
    lines += _table(("status", "files"), summary["status"])
    lines += ["## Quarantine reasons", ""] + _table(("reason", "files"), summary["quarantine_reasons"])
    lines += ["## Duplicates", "", "Removed (`status=duplicate`; `leak`: a training-side copy of a scene fixed to "
              "another split):", ""] + _table(("kind", "files"), summary["duplicate_reasons"])
    lines += ["Kept and flagged (`duplicate_of` set; rows of fixed splits, or `--duplicates flag`):", ""]
    lines += _table(("kind", "rows"), summary["flagged_duplicates"])
    if summary["clusters"]["largest"]:
        lines += ["Largest clusters (representative kept, duplicates listed):", ""]
        for c in summary["clusters"]["largest"][:CLUSTER_EXAMPLES]:
            shown = ", ".join(f"`{d['key']}` ({d['reason']})" for d in c["duplicates"][:5])
            more = f" and {len(c['duplicates']) - 5} more" if len(c["duplicates"]) > 5 else ""
            lines.append(f"- `{c['representative']}` ({c['size']} files): {shown}{more}")
        lines.append("")
    lines += ["## Splits", ""] + _table(("split", "rows"), summary["rows_by_split"])
    lines += _table(("split/role", "rows"), summary["rows_by_split_and_role"])
    drift = summary.get("split_drift") or {}
    if drift:
        lines += [f"Rows keeping their split from the previous ingest: {drift['kept']}; moved: {drift['moved']}; "
                  f"new: {drift['new']}. Drawn (not fixed) rows against the ratios:", ""]
        lines += markdown_table(("split", "target", "rows", "share"),
                                [(name, f"{r['target']:g}", r["rows"], r["share"] if r["share"] is not None else "-")
                                 for name, r in drift["ratios"].items()], align="lrrr")
    lines += leakage_markdown(summary["leakage"])
    if summary["rows_by_rain_kind"]:
        lines += ["## Rain kinds", ""] + _table(("rain_kind", "rows"), summary["rows_by_rain_kind"])
    lines += ["## Sources", ""] + _table(("source", "rows"), summary["rows_by_source"])
    lines += ["## Cameras", ""] + _table(("camera", "rows"), summary["cameras"])
    if summary["megapixels"]:
        mp = summary["megapixels"]
        lines += ["## Resolution", "", f"Megapixels: min {mp['min']}, median {mp['median']}, max {mp['max']}.", ""]
    if summary["quarantined"]:
        lines += ["## Quarantined files", ""]
        lines += markdown_table(("file", "reason", "detail"),
                                [(f"`{q['key']}`", q["reason"], q["detail"]) for q in summary["quarantined"]])
    if plots:
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def _plots(frame: pd.DataFrame, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = frame[frame["primary"].fillna(False).astype(bool)] if "primary" in frame else frame
    ok = rows[rows["status"] == "ok"]
    made = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=90, metadata={"Software": None})  # no version stamp: stable bytes
        plt.close(fig)
        made.append(name)

    fig, ax = plt.subplots(figsize=(6, 3))
    counts = frame["status"].value_counts().sort_index()
    ax.bar(counts.index.astype(str), counts.to_numpy(), color=["#4c72b0", "#dd8452", "#c44e52"][:len(counts)])
    ax.set_ylabel("files")
    ax.set_title("files by status")
    save(fig, "status.png")

    fig, ax = plt.subplots(figsize=(5, 4))
    if len(ok):
        ax.scatter(ok["width"].astype(float), ok["height"].astype(float), s=8, alpha=0.6)
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title("resolution of dataset rows")
    save(fig, "resolution.png")

    for column, label, log in (("iso", "ISO", True), ("exposure_time", "exposure time (s)", True)):
        values = pd.to_numeric(ok[column], errors="coerce").dropna().to_numpy(dtype=float) if column in ok else []
        fig, ax = plt.subplots(figsize=(5, 3))
        values = np.asarray(values)[np.asarray(values) > 0]
        if len(values):
            bins = np.logspace(np.log10(values.min()), np.log10(values.max()) + 1e-9, 20) if log else 20
            ax.hist(values, bins=bins)
            if log:
                ax.set_xscale("log")
        else:
            ax.text(0.5, 0.5, "no EXIF values", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel("rows")
        save(fig, f"{column}.png")

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, column in zip(axes, ("sharpness", "contrast")):
        for split, part in ok.groupby("split", sort=True):
            ax.hist(part[column].astype(float).dropna(), bins=20, alpha=0.5, label=str(split))
        ax.set_xlabel(column)
        if ok["split"].notna().any():
            ax.legend()
    save(fig, "quality.png")
    return made


def write_report(frame: pd.DataFrame, out: str | os.PathLike, *, fingerprint: str, split: str | None = None) -> Path:
    """Write ``report.md``, ``report.json``, the plots and leakage thumbnails into ``out``; the Markdown path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(frame, fingerprint=fingerprint, split=split)
    write_thumbnails(summary["leakage"], frame, out)
    plots = _plots(frame, out)
    (out / "report.json").write_text(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n")
    md = out / "report.md"
    md.write_text(_markdown(summary, plots) + "\n")
    return md
