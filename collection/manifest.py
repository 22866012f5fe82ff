"""The manifest (one Parquet row per file seen) and the incremental probe cache behind it.

**Cache.** Probing is the expensive step, so each probe record is cached under
``OUT/.cache/probe/<options-signature>/`` keyed by the file's absolute path, size, ``mtime_ns``,
``ctime_ns`` and inode (plus the crop region or video frame time): a file rewritten in place or
replaced by another with the same size and a restored mtime still changes ctime (which no user
tool can set back) or inode, so it is probed again rather than served a stale record. Records are appended in batches: every
``batch_size`` records (or ``flush_seconds`` of work) become one new JSONL shard, written to a temporary name and renamed into
place, so a shard is either complete or absent. A run killed with SIGKILL at any point loses at
most the batch in progress, and the next run probes only what is missing; since a probe is a pure
function of the file, the resumed result is identical to an uninterrupted one. Shards are merged
into one when they grow numerous (merge written first, old shards removed after; a crash in
between only leaves duplicate, identical entries). The content hash (sha256) stored in each
record lets curation recognise a file that was renamed or copied.

**Manifest.** :data:`MANIFEST_COLUMNS` lists the columns of ``OUT/manifest.parquet``;
:func:`write_if_changed` rewrites it only when its content changed, so a re-run is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from collection.files import atomic_path, atomic_write
from collection.layouts.tree import text_name

CACHE_DIR = ".cache"
"""Folder under the output directory that holds everything that is not the dataset itself."""

MAX_SHARDS = 64
"""Shard count above which the cache is merged into one shard on open."""

MANIFEST_COLUMNS: dict[str, pa.DataType] = {
    "key": pa.string(),            # unique entry key: source/path (+ #region=...)
    "source": pa.string(),
    "layout": pa.string(),
    "role": pa.string(),           # pair | rainy | clean (the dataset row this file belongs to)
    "side": pa.string(),           # rainy | clean (which image of the row this file is)
    "path": pa.string(),           # relative to the source root (video: clip.mp4#t=12.500)
    "clean_path": pa.string(),     # pairs: the clean file of the row
    "file": pa.string(),           # absolute path read
    "status": pa.string(),         # ok | quarantined | duplicate
    "reason": pa.string(),         # quarantine code (probe.REASONS) or exact | near for duplicates
    "detail": pa.string(),         # full message behind the reason
    "warnings": pa.string(),       # e.g. unreadable EXIF (not a quarantine)
    "id": pa.string(),
    "duplicate_of": pa.string(),   # id of the cluster representative
    "dup_group": pa.string(),
    "scene": pa.string(),
    "split": pa.string(),
    "rain_kind": pa.string(),
    "tags": pa.string(),           # JSON object of every tag
    "size": pa.int64(),
    "width": pa.int32(),
    "height": pa.int32(),
    "format": pa.string(),
    "mode": pa.string(),
    "orientation": pa.int32(),
    "sha256": pa.string(),
    "pixel_hash": pa.string(),
    "phash": pa.string(),
    "camera_make": pa.string(),
    "camera_model": pa.string(),
    "lens_model": pa.string(),
    "datetime_original": pa.string(),
    "exposure_time": pa.float64(),
    "f_number": pa.float64(),
    "iso": pa.int32(),
    "focal_length_mm": pa.float64(),
    "gps_latitude": pa.float64(),
    "gps_longitude": pa.float64(),
    "gps_altitude": pa.float64(),
    "sharpness": pa.float32(),
    "brightness": pa.float32(),
    "contrast": pa.float32(),
    "noise": pa.float32(),
}
"""Columns of ``manifest.parquet`` and their Arrow types."""


def file_version(file: str | os.PathLike) -> list:
    """What changes when a file does: size, mtime, ctime and inode locally; size and the store's stamp for a URL.

    Raises OSError when the file cannot be read.
    """
    from collection.storage import Location, is_url

    where = Location(file) if is_url(file) else None
    if where is not None and not where.local:
        return list(where.version())
    st = os.stat(where.path if where is not None else file)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def cache_key(file: str | os.PathLike, version: list, region: Any = None, frame_time: float | None = None) -> str:
    """The cache key of a file version (:func:`file_version`; and crop region or frame): a compact JSON string."""
    return json.dumps([os.fspath(file), *version, list(region) if region else None, frame_time],
                      separators=(",", ":"))




class ProbeCache:
    """Append-only, crash-safe cache of probe records (see the module docstring)."""

    def __init__(self, out: str | os.PathLike, signature: str, *, batch_size: int = 64, flush_seconds: float = 5.0):
        self.dir = Path(out) / CACHE_DIR / "probe" / signature
        self.dir.mkdir(parents=True, exist_ok=True)
        self.batch_size = max(1, batch_size)
        self.flush_seconds = flush_seconds
        self._last_flush = time.monotonic()
        self._records: dict[str, dict[str, Any]] = {}
        self._buffer: list[tuple[str, dict[str, Any]]] = []
        self._counter = 0
        shards = sorted(self.dir.glob("shard-*.jsonl"))
        for shard in shards:
            for line in shard.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    key, record = json.loads(line)
                    self._records[key] = record
        if len(shards) > MAX_SHARDS:
            self._write_shard(list(self._records.items()))
            for shard in shards:
                shard.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached record for ``key``, or None."""
        return self._records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Add a record; it reaches disk with the next full batch or :meth:`flush`."""
        self._records[key] = record
        self._buffer.append((key, record))
        # Slow files (huge TIFFs, videos) must not keep minutes of work in an unwritten batch.
        if len(self._buffer) >= self.batch_size or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write buffered records as one new shard (atomically)."""
        if self._buffer:
            self._write_shard(self._buffer)
            self._buffer = []
        self._last_flush = time.monotonic()

    def _write_shard(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        self._counter += 1
        name = f"shard-{time.time_ns()}-{os.getpid()}-{self._counter:06d}.jsonl"
        text = "".join(json.dumps([key, record], sort_keys=True) + "\n" for key, record in items)
        atomic_write(self.dir / name, text, fsync=True)


def manifest_table(frame: pd.DataFrame) -> pa.Table:
    """The manifest as an Arrow table with :data:`MANIFEST_COLUMNS`, rows sorted by ``key``.

    Text holding file names that are not valid UTF-8 is stored escaped (:func:`text_name`).
    """
    frame = frame.sort_values("key", kind="stable").reset_index(drop=True)
    arrays = {}
    for name, dtype in MANIFEST_COLUMNS.items():
        values = frame[name].tolist() if name in frame else [None] * len(frame)
        values = [None if _missing(v) else (text_name(v) if isinstance(v, str) else v) for v in values]
        arrays[name] = pa.array(values, type=dtype)
    return pa.table(arrays)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def table_digest(table: pa.Table) -> str:
    """sha256 of a table's content (column names, types and values), independent of file encoding."""
    digest = hashlib.sha256()
    digest.update(str(table.schema).encode())
    for batch in table.to_batches(max_chunksize=4096):
        digest.update(json.dumps(batch.to_pylist(), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def stored_digest(path: str | os.PathLike) -> str | None:
    """The content digest recorded in a manifest written by :func:`write_if_changed` (None if absent)."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None  # missing or unreadable manifest: it will be rewritten
    return meta.get(b"rainbench_digest", b"").decode() or None


def write_if_changed(table: pa.Table, path: str | os.PathLike) -> bool:
    """Write ``table`` to Parquet unless the file already holds the same content; True if written."""
    path = Path(path)
    digest = table_digest(table)
    if stored_digest(path) == digest:
        return False
    table = table.replace_schema_metadata({"rainbench_digest": digest})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # 0644: the manifest is meant to be shared with the dataset
        pq.write_table(table, tmp)
    return True


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest back as a DataFrame."""
    return pq.read_table(path).to_pandas()
