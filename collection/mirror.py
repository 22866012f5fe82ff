"""A local working copy of an ingest output that lives on an fsspec filesystem (``s3://``, ``gs://``, ...).

Curation reads and rewrites its own output (probe cache, split record, manifest, report) and builds
the dataset with atomic renames and a lock, none of which an object store offers. So an ingest into
a URL runs in a *stage*, a local folder named after the URL, and the URL is brought in line with it:

- :func:`pull` before: every file of the remote output except the dataset's split folders (the
  records curation reads; the images it does not need), so any machine can resume a run begun on
  another. Probe-cache shards are immutable by name and are not fetched again when already staged.
- :func:`push` after, and after an interrupted run (Ctrl-C, a failing file): files the run wrote
  or the remote lacks are uploaded, files gone from the stage removed from the remote. The dataset
  (split folders, then ``dataset_dict.json`` last, the old one removed first) goes only when it was
  rebuilt, so a reader never sees a mix of two builds; its local copy is then removed, so the stage
  holds only metadata between runs.

A driver killed outright (SIGKILL) pushes nothing: its finished probes stay in the stage of that
machine, and the next run there resumes from them; elsewhere it resumes from the last push.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from collection.lock import LOCK_NAME
from collection.storage import Location

DATASET_RECORD = "dataset_dict.json"
_IMMUTABLE = ".cache/probe/"  # shard names are unique and never rewritten


def stage_home() -> Path:
    """Where stages live: $RAINBENCH_CACHE/stage, else $XDG_CACHE_HOME/rainbench/stage, else ~/.cache/rainbench/stage."""
    root = os.environ.get("RAINBENCH_CACHE")
    if root:
        return Path(root) / "stage"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "rainbench" / "stage"


def stage_for(remote: Location) -> Path:
    """The local stage of a remote output folder (one per URL)."""
    digest = hashlib.sha256(str(remote).encode()).hexdigest()[:16]
    return stage_home() / f"{remote.name or 'out'}-{digest}"


def _splits(record: Path | Location) -> list[str]:
    """Split folders a ``dataset_dict.json`` names (none when it is absent or unreadable)."""
    try:
        text = record.read_text()
        return list(json.loads(text)["splits"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _local_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file() and p.name != LOCK_NAME}


def _remote_files(remote: Location) -> set[str]:
    return {rel for rel, kind in remote.find() if kind == "file"} if remote.is_dir() else set()


def _in_dataset(rel: str, splits: set[str]) -> bool:
    return rel == DATASET_RECORD or rel.split("/", 1)[0] in splits


def pull(remote: Location, local: Path) -> float:
    """Bring ``remote``'s records into ``local`` (see the module docstring); the time the stage was in line."""
    local.mkdir(parents=True, exist_ok=True)
    splits = set(_splits(remote / DATASET_RECORD)) if remote.exists() else set()
    for rel in sorted(_remote_files(remote)):
        if rel.split("/", 1)[0] in splits:
            continue
        target = local / rel
        source = remote / rel
        if rel.startswith(_IMMUTABLE) and target.is_file() and target.stat().st_size == source.size():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        Location(target).write_bytes(source.read_bytes())
    return time.time()


def push(local: Path, remote: Location, since: float, *, dataset: bool) -> None:
    """Bring ``remote`` in line with ``local``: files written after ``since`` or missing there; the dataset when ``dataset``."""
    remote.mkdir()
    there = _remote_files(remote)
    here = _local_files(local)
    new_splits = set(_splits(local / DATASET_RECORD))
    old_splits = set(_splits(remote / DATASET_RECORD)) if DATASET_RECORD in there else set()
    every_split = new_splits | old_splits

    def upload(rel: str) -> None:
        (remote / rel).write_bytes(here[rel].read_bytes())

    for rel in sorted(here):
        if _in_dataset(rel, every_split) or rel.startswith(".cache/build/"):
            continue
        # A second of slack: file times are kept at the kernel's coarse clock, a few ms behind time.time().
        if rel not in there or here[rel].stat().st_mtime >= since - 1.0:
            upload(rel)
    for rel in sorted(there):
        if rel not in here and not _in_dataset(rel, every_split):
            (remote / rel).unlink()
    if not dataset or DATASET_RECORD not in here:
        return
    (remote / DATASET_RECORD).unlink()  # from here until the last upload, no half-written dataset loads
    for rel in sorted(there):
        if _in_dataset(rel, every_split) and rel != DATASET_RECORD and rel not in here:
            (remote / rel).unlink()
    for rel in sorted(here):
        if _in_dataset(rel, new_splits) and rel != DATASET_RECORD:
            upload(rel)
    upload(DATASET_RECORD)
    for split in new_splits:  # the images are on the remote now; the stage keeps only metadata
        shutil.rmtree(local / split, ignore_errors=True)
