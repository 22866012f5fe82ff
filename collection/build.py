"""Write the curated rows as a Hugging Face ``DatasetDict`` holding the original image bytes.

Images are stored as ``datasets.Image()`` values ``{"bytes": <file bytes>, "path": None}``: the
exact bytes of the source file, never re-encoded, so EXIF, ICC profiles and JPEG quantisation
survive and ``sha256(stored bytes) == sha256(file)``. The only exceptions are Rain800 halves and
video frames, which exist only as crops or decoded frames and are stored as PNG (the same bytes the
probe hashed). Every image's bytes are hashed as they are copied in and compared with the row's
``sha256`` (the probed bytes): a file rewritten since its probe raises :class:`ChangedDuringIngest`
before anything is swapped into ``out``, so a stored image is always the one its row describes.
Rows are generated one at a time (``Dataset.from_generator`` with a small writer
batch), so at most a few images are in memory; rows are sorted by ``id`` so a resumed or repeated
run writes the same dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from collection.probe import ProbeTask, derived_bytes

ROW_COLUMNS: tuple[str, ...] = (
    "id", "rainy", "clean", "role", "source", "layout", "path", "clean_path", "width", "height",
    "format", "sha256", "phash", "dup_group", "duplicate_of", "scene", "rain_kind", "camera_make", "camera_model",
    "lens_model", "datetime_original", "exposure_time", "f_number", "focal_length_mm", "iso",
    "orientation", "gps_latitude", "gps_longitude", "gps_altitude", "sharpness", "brightness",
    "contrast", "noise",
)
"""Dataset columns in order (docs/ARCHITECTURE.md); the ``gps_*`` ones only with ``keep_gps``."""

GPS_COLUMNS = ("gps_latitude", "gps_longitude", "gps_altitude")
BUILD_VERSION = "1"
"""Bumped when the stored rows change for the same inputs, so old datasets are rebuilt."""
WRITER_BATCH_SIZE = 8
"""Rows buffered before Arrow writes them: bounds memory to a few images."""


def features(keep_gps: bool = False):
    """The ``datasets.Features`` of a rainbench dataset row."""
    from datasets import Features, Image, Value

    types = {
        "id": Value("string"), "rainy": Image(), "clean": Image(), "role": Value("string"),
        "source": Value("string"), "layout": Value("string"), "path": Value("string"),
        "clean_path": Value("string"), "width": Value("int32"), "height": Value("int32"),
        "format": Value("string"), "sha256": Value("string"), "phash": Value("string"),
        "dup_group": Value("string"), "duplicate_of": Value("string"), "scene": Value("string"), "rain_kind": Value("string"),
        "camera_make": Value("string"), "camera_model": Value("string"), "lens_model": Value("string"),
        "datetime_original": Value("string"), "exposure_time": Value("float64"),
        "f_number": Value("float64"), "focal_length_mm": Value("float64"), "iso": Value("int32"),
        "orientation": Value("int32"), "gps_latitude": Value("float64"),
        "gps_longitude": Value("float64"), "gps_altitude": Value("float64"),
        "sharpness": Value("float32"), "brightness": Value("float32"), "contrast": Value("float32"),
        "noise": Value("float32"),
    }
    return Features({name: types[name] for name in columns(keep_gps)})


def columns(keep_gps: bool = False) -> tuple[str, ...]:
    """Dataset column names, in order."""
    return tuple(c for c in ROW_COLUMNS if keep_gps or c not in GPS_COLUMNS)


class ChangedDuringIngest(Exception):
    """A file's bytes at build time differ from the bytes its probe hashed."""

    def __init__(self, file: str, expected: str, actual: str):
        self.file, self.expected, self.actual = file, expected, actual
        super().__init__(f"{file}: changed during ingest (probed sha256 {expected[:16]}, now {actual[:16]})")


def image_bytes(file: str, region: Any = None, frame_time: float | None = None, max_pixels: int | None = None) -> bytes:
    """The bytes stored for one image: the file itself, or PNG for a crop region or video frame."""
    if region is None and frame_time is None:
        from collection.storage import open_source

        with open_source(file) as handle:
            return handle.read()
    task = ProbeTask(key=file, file=file, region=tuple(region) if region is not None else None, frame_time=frame_time)
    return derived_bytes(task, max_pixels) if max_pixels is not None else derived_bytes(task)


def _generate(rows: list[dict[str, Any]], names: tuple[str, ...], max_pixels: int | None) -> Iterator[dict[str, Any]]:
    for row in rows:
        out = {name: row.get(name) for name in names if name not in ("rainy", "clean")}
        for side in ("rainy", "clean"):
            source = row.get(f"{side}_file")
            if not source:
                out[side] = None
                continue
            data = image_bytes(source, row.get(f"{side}_region"), row.get(f"{side}_frame_time"), max_pixels)
            expected = row.get("clean_sha256") if side == "clean" and row.get("rainy_file") else row.get("sha256")
            actual = hashlib.sha256(data).hexdigest()
            if expected is not None and actual != expected:
                raise ChangedDuringIngest(source, expected, actual)
            out[side] = {"bytes": data, "path": None}
        yield out


def _clean(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars -> Python, for Arrow and for hashing
    return value


def build_dataset(
    splits: dict[str, list[dict[str, Any]]],
    out: str | os.PathLike,
    *,
    fingerprint: str,
    keep_gps: bool = False,
    max_pixels: int | None = None,
    work_dir: str | os.PathLike | None = None,
) -> None:
    """Write ``splits`` (split -> row dicts) as a DatasetDict into ``out`` (replacing an old one).

    A row dict holds the metadata columns plus ``rainy_file``/``clean_file`` (absolute paths or
    None) and optional ``*_region``/``*_frame_time``. The new dataset is written next to ``out``
    and moved in split by split; ``dataset_dict.json`` is replaced last.
    """
    import datasets.utils as hf_utils

    bars = not hf_utils.are_progress_bars_disabled()
    hf_utils.disable_progress_bars()  # library code never prints; the CLI shows its own progress
    try:
        _build(splits, Path(out), fingerprint, keep_gps, max_pixels, work_dir)
    except Exception as exc:
        changed = _changed_cause(exc)  # datasets wraps what the generator raised
        if changed is None:
            raise
        raise changed from None
    finally:
        if bars:
            hf_utils.enable_progress_bars()


def _build(splits: dict[str, list[dict[str, Any]]], out: Path, fingerprint: str, keep_gps: bool,
           max_pixels: int | None, work_dir: str | os.PathLike | None) -> None:
    from datasets import Dataset, DatasetDict

    work = Path(work_dir) if work_dir else out / ".cache" / "build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    names = columns(keep_gps)
    feats = features(keep_gps)
    parts = {}
    for split in sorted(splits):
        rows = sorted(({k: _clean(v) for k, v in row.items()} for row in splits[split]), key=lambda r: r["id"])
        if not rows:
            parts[split] = Dataset.from_dict({name: [] for name in names}, features=feats)
            continue
        parts[split] = Dataset.from_generator(
            _generate, features=feats, cache_dir=str(work / "arrow"),
            gen_kwargs={"rows": rows, "names": names, "max_pixels": max_pixels},
            fingerprint=f"{fingerprint[:32]}-{split}", writer_batch_size=WRITER_BATCH_SIZE,
        )
    staged = work / "dataset"
    # One shard per split at least: an empty split saved with zero shards does not load back.
    shards = {split: 1 for split, part in parts.items() if len(part) == 0}
    DatasetDict(parts).save_to_disk(str(staged), num_shards=shards or None)
    del parts
    _swap_in(staged, out)
    shutil.rmtree(work, ignore_errors=True)


def _changed_cause(exc: BaseException | None) -> ChangedDuringIngest | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ChangedDuringIngest):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _swap_in(staged: Path, out: Path) -> None:
    """Replace the dataset part of ``out`` with ``staged`` (manifest, report and cache untouched)."""
    out.mkdir(parents=True, exist_ok=True)
    old = out / "dataset_dict.json"
    previous = json.loads(old.read_text())["splits"] if old.exists() else []
    old.unlink(missing_ok=True)  # a crash from here on leaves no dataset_dict.json: never a mixed dataset
    new_splits = json.loads((staged / "dataset_dict.json").read_text())["splits"]
    for split in set(previous) | set(new_splits):
        shutil.rmtree(out / split, ignore_errors=True)
    for split in new_splits:
        shutil.move(str(staged / split), str(out / split))
    shutil.move(str(staged / "dataset_dict.json"), str(old))


def dataset_fingerprint(splits: dict[str, list[dict[str, Any]]], keep_gps: bool) -> str:
    """Content fingerprint of a planned dataset: ids, bytes' hashes, metadata and splits (not file locations)."""
    digest = hashlib.sha256(f"rainbench-dataset-v{BUILD_VERSION}|gps={int(keep_gps)}".encode())
    for split in sorted(splits):
        for row in sorted(splits[split], key=lambda r: r["id"]):
            public = {k: v for k, v in row.items() if not k.endswith("_file")}
            digest.update(json.dumps([split, public], sort_keys=True, default=_jsonable).encode())
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    return str(value)
