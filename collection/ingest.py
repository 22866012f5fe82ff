"""The ingest pipeline: sources -> probe (cached) -> curation -> manifest, DatasetDict, report.

:func:`ingest` is the library entry point behind ``rainbench ingest``; it never prints and reports
progress through an optional ``progress(stage, done, total)`` callback. Curation rules:

- **quarantine, never drop**: every file seen gets a manifest row; bad files are ``quarantined``
  with a reason code (:data:`collection.probe.REASONS`);
- **duplicates, leakage, scenes and splits** (:mod:`collection.curate`): rows are clustered by
  their identity image (a pair's clean image), flagged or dropped under ``duplicates``; rows of one
  scene fixed to several splits lose their training-side copies; rows sharing a scene, a clean
  image or a cluster are split together, stratified by ``rain_kind`` when tagged, honouring splits
  fixed by the layout or a split file and the splits of the previous run in ``out``.

The run is incremental: probe records are cached (:class:`collection.manifest.ProbeCache`); the
dataset is rebuilt only when its content fingerprint changed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collection import curate
from collection.build import (
    ChangedDuringIngest,
    build_dataset,
    columns,
    dataset_fingerprint,
)
from collection.curate import DEFAULT_SPLIT  # noqa: F401 - re-exported: part of the ingest API
from collection.files import atomic_write
from collection.images import DEFAULT_MAX_PIXELS
from collection.layouts.tree import text_name
from collection.lock import output_lock
from collection.manifest import (
    CACHE_DIR,
    ProbeCache,
    cache_key,
    file_version,
    manifest_table,
    stored_digest,
    table_digest,
    write_if_changed,
)
from collection.probe import ProbeOptions, ProbeTask, probe_all
from collection.quality import failed_filter, parse_filter
from collection.scenes import DEFAULT_SESSION_GAP_S
from collection.sources import Progress, SourceSpec, discover  # noqa: F401 - SourceSpec: part of the ingest API
from collection.storage import Location, is_folder, is_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOptions:
    """Curation and performance options of :func:`ingest`."""

    min_side: int = 1024
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    radius: int = 8
    duplicates: str = "auto"
    split: str | None = None
    split_file: Path | None = None
    seed: int = 0
    keep_gps: bool = False
    fps: float = 1.0
    filters: tuple[str, ...] = ()
    workers: int = 0
    session_gap_s: float = DEFAULT_SESSION_GAP_S
    cache_batch: int = 32


@dataclass
class IngestSummary:
    """What a run did and what the dataset holds."""

    out: Path | str
    files: int
    probed: int
    cached: int
    status: dict[str, int]
    reasons: dict[str, int]
    splits: dict[str, int]
    fingerprint: str
    rebuilt: bool
    manifest: Path | str
    report: Path | str


def _probe(entries: dict, out: Path, options: IngestOptions, progress: Progress, engine: Any) -> tuple[dict, int, int]:
    """Probe record per entry key, from the cache or freshly probed (and cached)."""
    popts = ProbeOptions(max_pixels=options.max_pixels, keep_gps=options.keep_gps)
    cache = ProbeCache(out, popts.signature(), batch_size=options.cache_batch)
    records, todo = {}, []
    for key in sorted(entries):
        entry = entries[key]
        try:
            ckey = cache_key(entry["file"], file_version(entry["file"]), entry["region"], entry["frame_time"])
        except OSError as exc:
            records[key] = dict(status="quarantined", reason="unreadable",
                                detail=f"{entry['file']}: {exc.strerror or exc}")
            continue
        hit = cache.get(ckey)
        if hit is not None:
            records[key] = hit
        else:
            todo.append(ProbeTask(key=ckey, file=entry["file"], region=entry["region"], frame_time=entry["frame_time"]))
    by_ckey: dict[tuple, list[str]] = {}  # one probe serves every entry reading the same file side
    for key in sorted(entries):
        entry = entries[key]
        by_ckey.setdefault(
            (entry["file"], tuple(entry["region"]) if entry["region"] else None, entry["frame_time"]), []).append(key)
    cached = len(records)
    progress("probe", 0, len(todo))
    try:
        for done, (task, record) in enumerate(probe_all(todo, popts, workers=options.workers, engine=engine), 1):
            for key in by_ckey[(task.file, tuple(task.region) if task.region else None, task.frame_time)]:
                records[key] = record
            if record.get("reason") != "unreadable":  # permissions may be fixed without touching mtime
                cache.put(task.key, record)
            progress("probe", done, len(todo))
    finally:  # Ctrl-C or a crashed worker: keep every finished probe for the next run
        cache.flush()
    return records, len(todo), cached


def _files_frame(rows: list, entries: dict, records: dict, skipped: list, options: IngestOptions) -> pd.DataFrame:
    """One row per file seen, probe record merged with what the layout said."""
    primary = {}
    for row in rows:
        primary.setdefault(row["rainy_key"] or row["clean_key"], row)
    clean_of = {row["rainy_key"]: row["clean_key"] for row in rows if row["rainy_key"] and row["clean_key"]}
    out = []
    for key, entry in entries.items():
        item, rec = entry["item"], records[key]
        row = primary.get(key)
        tags = dict(item.tags)
        out.append({
            **rec, "key": key, "source": item.source, "layout": item.layout, "role": item.role,
            "side": entry["side"], "path": entry["path"], "file": text_name(entry["file"]),
            "clean_path": text_name(item.clean_path) if entry["side"] == "rainy" and item.clean_path else None,
            "region": entry["region"], "frame_time": entry["frame_time"], "primary": row is not None,
            "clean_key": clean_of.get(key), "layout_scene": item.scene, "layout_split": item.split,
            "rain_kind": tags.get("rain_kind"), "tags": json.dumps(tags, sort_keys=True) if tags else None,
        })
    frame = pd.DataFrame(out + [dict(s, primary=False, side=None) for s in skipped])
    for name in ("sha256", "pixel_hash", "phash", "width", "height", "sharpness", "duplicate_of", "dup_group",
                 "scene", "split", "id", "reason", "detail", "clean_key", "warnings", "region", "frame_time",
                 "layout_scene", "layout_split", "rain_kind", "camera_make", "camera_model", "datetime_original"):
        if name not in frame:
            frame[name] = None
    frame["id"] = frame["sha256"].map(lambda s: s[:16] if isinstance(s, str) else None)
    frame["detail"] = frame["detail"].map(lambda d: text_name(d) if isinstance(d, str) else d)
    sha_of = dict(zip(frame["key"], frame["sha256"]))
    frame["clean_sha256"] = frame["clean_key"].map(lambda k: sha_of.get(k) if isinstance(k, str) else None)
    frame = frame.sort_values("key", kind="stable").reset_index(drop=True)
    # Text columns hold escaped names (Arrow-backed strings refuse lone surrogates); this maps them
    # back to the names the file system knows, for the build.
    escaped = {text_name(e["file"]): e["file"] for e in entries.values()}
    frame.attrs["raw_files"] = {text: raw for text, raw in escaped.items() if text != raw}
    return frame


def _quarantine_changed(frame: pd.DataFrame, exc: ChangedDuringIngest) -> None:
    """Quarantine every entry reading a file that changed after its probe, and the rows using it."""
    log.warning("%s", text_name(str(exc)))
    hit = frame["file"] == text_name(exc.file)
    hit |= frame["primary"] & frame["clean_key"].isin(frame.loc[hit, "key"].tolist())
    _quarantine(frame, hit & (frame["status"] != "quarantined"), "changed_during_ingest", text_name(str(exc)))


def _quarantine(frame: pd.DataFrame, mask: pd.Series, reason: str, detail: pd.Series | str) -> None:
    frame.loc[mask, "status"] = "quarantined"
    frame.loc[mask, "reason"] = reason
    frame.loc[mask, "detail"] = detail[mask] if isinstance(detail, pd.Series) else detail


def _curate_quarantine(frame: pd.DataFrame, options: IngestOptions) -> None:
    ok = frame["status"] == "ok"
    short = ok & (np.minimum(frame["width"].fillna(0), frame["height"].fillna(0)) < options.min_side)
    sizes = frame["width"].fillna(0).astype(int).astype(str) + "x" + frame["height"].fillna(0).astype(int).astype(str)
    _quarantine(frame, short, "too_small", frame["file"] + ": " + sizes + f" is below --min-side {options.min_side}")
    status = dict(zip(frame["key"], frame["status"]))
    reason = dict(zip(frame["key"], frame["reason"]))
    bad_clean = frame["primary"] & (frame["status"] == "ok") & frame["clean_key"].map(
        lambda k: isinstance(k, str) and status.get(k) != "ok")
    detail = frame["clean_key"].map(lambda k: f"clean image {k} is quarantined ({reason.get(k)})")
    _quarantine(frame, bad_clean, "clean_quarantined", detail)
    filters = [parse_filter(text) for text in options.filters]
    if filters:
        ok = frame["primary"] & (frame["status"] == "ok")
        failed = frame.apply(lambda r: failed_filter(r.to_dict(), filters) if ok[r.name] else None, axis=1)
        _quarantine(frame, failed.notna(), "quality_filter", failed)


def _dataset_rows(frame: pd.DataFrame, keep_gps: bool) -> dict[str, list[dict[str, Any]]]:
    """Split -> row dicts for :func:`collection.build.build_dataset`."""
    by_key = frame.set_index("key")
    names = [c for c in columns(keep_gps) if c not in ("rainy", "clean")]
    out: dict[str, list[dict[str, Any]]] = {}
    for _, r in frame[frame["primary"] & (frame["status"] == "ok")].iterrows():
        row = {name: r.get(name) for name in names}
        side = "clean" if r["role"] == "clean" else "rainy"
        raw = frame.attrs.get("raw_files", {})
        row.update({f"{side}_file": raw.get(r["file"], r["file"]), f"{side}_region": r["region"],
                    f"{side}_frame_time": r["frame_time"]})
        if r["role"] == "pair":
            c = by_key.loc[r["clean_key"]]
            row.update(clean_file=raw.get(c["file"], c["file"]), clean_region=c["region"], clean_frame_time=None, clean_sha256=c["sha256"])
        out.setdefault(r["split"], []).append(row)
    return out


def ingest(
    sources: list[SourceSpec],
    out: str | os.PathLike,
    options: IngestOptions = IngestOptions(),
    progress: Progress | None = None,
    engine: Any = None,
) -> IngestSummary:
    """Curate ``sources`` into ``out`` (DatasetDict, manifest.parquet, report/); see the module docstring.

    The probe stage runs on ``engine`` (:mod:`collection.engine`; default: local processes) with
    ``options.workers`` replicas; everything else runs here and sees only probe records. ``out`` and
    the sources may be fsspec URLs; a remote ``out`` is curated in a local stage
    (:mod:`collection.mirror`) and brought in line with it after the run.
    """
    # One writer per output folder: a second ingest into it fails at once, naming the first.
    if not (is_url(out) and not Location(out).local):
        with output_lock(Location(out).as_path()):
            return _ingest(sources, Location(out).as_path(), options, progress, engine)
    from dataclasses import replace

    from collection import mirror

    remote = Location(out)
    stage = mirror.stage_for(remote)
    rebuilt = False
    with output_lock(stage):  # the stage, not the URL: object stores have no locks (docs/scale-out.md)
        since = mirror.pull(remote, stage)
        try:
            summary = _ingest(sources, stage, options, progress, engine, exclude=str(remote))
            rebuilt = summary.rebuilt
        finally:  # an interrupted run still hands its finished probes to the next one, wherever it runs
            mirror.push(stage, remote, since, dataset=rebuilt)
    return replace(summary, out=str(remote), manifest=str(remote / "manifest.parquet"),
                   report=str(remote / "report" / "report.md"))


def _ingest(sources: list[SourceSpec], out: Path, options: IngestOptions, progress: Progress | None, engine: Any,
            exclude: str | None = None) -> IngestSummary:
    from collection.report import write_report

    progress = progress or (lambda stage, done, total: None)
    if not sources:
        raise ValueError("no sources given")
    for spec in sources:
        if not is_folder(spec.path):
            raise FileNotFoundError(f"{spec.path}: source folder not found")
    for text in options.filters:
        parse_filter(text)  # fail before any work on a bad --filter
    if options.duplicates not in curate.DUPLICATE_POLICIES:
        raise ValueError(f"duplicates={options.duplicates!r}; expected one of {', '.join(curate.DUPLICATE_POLICIES)}")
    (out / CACHE_DIR).mkdir(parents=True, exist_ok=True)
    rows, entries, skipped = discover(sources, options.fps, progress, exclude or out)
    records, probed, cached = _probe(entries, out, options, progress, engine)
    frame = _files_frame(rows, entries, records, skipped, options)
    progress("curate", 0, 2)
    _curate_quarantine(frame, options)
    fixed = curate.fixed_splits(frame, options.split, options.split_file)
    curate.dedup(frame, options.radius, options.duplicates, fixed)
    progress("curate", 1, 2)
    curate.scenes_and_splits(frame, split=options.split, seed=options.seed, fixed=fixed,
                             previous=curate.previous_splits(out, options.seed, options.split),
                             session_gap_s=options.session_gap_s)
    curate.write_split_record(out, options.seed, options.split)
    progress("curate", 2, 2)
    for _, r in frame[(frame["status"] == "quarantined") | frame["warnings"].notna()].iterrows():
        log.debug("%s: %s", r["key"], r["detail"] if r["status"] == "quarantined" else r["warnings"])
    # An all-quarantined run still writes a loadable (empty) dataset next to its manifest and report.
    splits = _dataset_rows(frame, options.keep_gps) or {"train": []}
    fingerprint = dataset_fingerprint(splits, options.keep_gps)
    state_path = out / CACHE_DIR / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    rebuild = state.get("fingerprint") != fingerprint or not (out / "dataset_dict.json").exists()
    while rebuild:
        progress("build", 0, 1)
        try:
            build_dataset(splits, out, fingerprint=fingerprint, keep_gps=options.keep_gps, max_pixels=options.max_pixels)
        except ChangedDuringIngest as exc:  # rare: build again without it; the next run probes the new bytes
            _quarantine_changed(frame, exc)
            splits = _dataset_rows(frame, options.keep_gps) or {"train": []}
            fingerprint = dataset_fingerprint(splits, options.keep_gps)
            continue
        progress("build", 1, 1)
        break
    progress("report", 0, 1)
    table = manifest_table(frame)
    report_dir = out / "report"
    # Report before manifest: a crash in between leaves a stale manifest digest, so the next run redoes both.
    if rebuild or stored_digest(out / "manifest.parquet") != table_digest(table) or not (report_dir / "report.json").exists():
        write_report(frame, report_dir, fingerprint=fingerprint, split=options.split)
    write_if_changed(table, out / "manifest.parquet")
    progress("report", 1, 1)
    if rebuild or state.get("fingerprint") != fingerprint:
        atomic_write(state_path, json.dumps({"fingerprint": fingerprint}, indent=1))
    return IngestSummary(
        out=out, files=len(frame), probed=probed, cached=cached,
        status=frame["status"].value_counts().sort_index().to_dict(),
        reasons=frame.loc[frame["status"] == "quarantined", "reason"].value_counts().sort_index().to_dict(),
        splits={split: len(rows_) for split, rows_ in sorted(splits.items())},
        fingerprint=fingerprint, rebuilt=rebuild, manifest=out / "manifest.parquet", report=report_dir / "report.md",
    )
