"""Opening a benchmark dataset and streaming its rows as decoded, size-grouped batches.

A dataset is one of:

- a directory written by ``rainbench ingest`` (``datasets.DatasetDict.save_to_disk``);
- a published Hub tree on disk (``data/<split>-*.parquet`` next to a ``README.md``);
- a Hub id ``ORG/NAME``, resolved through the local Hugging Face cache (``offline=True`` never
  touches the network and names the id when it is not cached).

Rows are read with image decoding switched off, so the main process only ever touches encoded
bytes; pixels are decoded by :func:`collection.images.decode` in DataLoader worker processes while
the main process computes.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
IMAGE_COLUMNS = ("rainy", "clean")
SUBSET_COLUMNS = ("source", "rain_kind")
"""Row columns copied into every result row, so leaderboards can be split by them."""


class DatasetError(ValueError):
    """A dataset cannot be opened or lacks what the benchmark needs; the message names it."""


@dataclass
class Sample:
    """One decoded row: the rainy image, the clean one where the row has it, or the decode error."""

    index: int
    id: str
    rainy: np.ndarray | None
    clean: np.ndarray | None
    error: str | None = None


class _Rows:
    """Map-style dataset for the DataLoader: decodes one row's images (runs in a worker)."""

    def __init__(self, table: Any, columns: Sequence[str] = IMAGE_COLUMNS):
        self.table = table
        self.columns = tuple(columns)

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> Sample:
        from collection.images import ImageLoadError, decode

        row = self.table[int(index)]
        row_id = str(row["id"])
        images: dict[str, np.ndarray | None] = dict.fromkeys(IMAGE_COLUMNS)
        try:
            for column in self.columns:
                value = row.get(column)
                data = _image_bytes(value)
                images[column] = None if data is None else np.asarray(decode(data, name=f"{row_id}:{column}").image)
        except ImageLoadError as exc:
            return Sample(int(index), row_id, None, None, f"decode: {exc}")
        return Sample(int(index), row_id, images["rainy"], images["clean"])


def _image_bytes(value: Any) -> bytes | None:
    """The encoded bytes of an undecoded Image cell (bytes inline or a path on disk)."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    data, path = value.get("bytes"), value.get("path")
    if data is not None:
        return bytes(data)
    if path:
        return Path(path).read_bytes()
    return None


def _collate(samples: list[Sample]) -> list[Sample]:
    return samples


class BenchDataset:
    """One split of a dataset, ready to stream: metadata in memory, pixels decoded on demand."""

    def __init__(self, table: Any, name: str, split: str, source: str):
        from datasets import Image

        missing = [c for c in ("id", "rainy") if c not in table.column_names]
        if missing:
            raise DatasetError(f"{source}: split {split!r} lacks column(s) {', '.join(missing)} (expected a rainbench dataset)")
        for column in IMAGE_COLUMNS:
            if column in table.column_names:
                table = table.cast_column(column, Image(decode=False))
        keep = [c for c in ("id", *IMAGE_COLUMNS) if c in table.column_names]
        self.table = table.select_columns(keep)
        self.name = name
        self.split = split
        self.source = source
        self.meta = _metadata(table)
        duplicated = self.meta["id"][self.meta["id"].duplicated()]
        if len(duplicated):
            raise DatasetError(f"{source}: split {split!r} has duplicate row ids (e.g. {duplicated.iloc[0]}); results are keyed by id")
        self.fingerprint = _fingerprint(table, split)

    def __len__(self) -> int:
        return len(self.table)

    def rows_with(self, want: str) -> list[int]:
        """Indices of the rows holding a rainy image, a clean one, or both (``want``: rainy | clean | pairs)."""
        masks = {"rainy": self.meta["has_rainy"], "clean": self.meta["has_clean"],
                 "pairs": self.meta["has_rainy"] & self.meta["has_clean"]}
        if want not in masks:
            raise ValueError(f"want must be one of {', '.join(masks)}, got {want!r}")
        return [int(i) for i in np.flatnonzero(masks[want].to_numpy())]

    def sample(self, index: int, columns: Sequence[str] = IMAGE_COLUMNS) -> Sample:
        """Row ``index`` decoded as :meth:`batches` decodes it (only the image ``columns`` asked for)."""
        return _Rows(self.table, columns)[index]

    def batches(self, batch_size: int = 1, workers: int = 0, indices: Sequence[int] | None = None) -> Iterator[list[Sample]]:
        """Yield lists of decoded samples whose rainy images share one size (decode errors alone).

        Rows are grouped by their recorded ``height`` x ``width`` before decoding; the decoded
        shapes are checked again, so a wrong or missing size column only costs smaller batches.
        """
        from torch.utils.data import DataLoader

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        chosen = list(range(len(self))) if indices is None else [int(i) for i in indices]
        loader = DataLoader(
            _Rows(self.table),
            batch_sampler=self.size_batches(chosen, batch_size),
            collate_fn=_collate,
            num_workers=workers,
            prefetch_factor=2 if workers > 0 else None,
        )
        for samples in loader:
            groups: dict[tuple, list[Sample]] = {}
            for sample in samples:
                if sample.error is not None or sample.rainy is None:
                    yield [sample]
                    continue
                groups.setdefault(sample.rainy.shape, []).append(sample)
            yield from groups.values()

    def size_batches(self, indices: list[int], batch_size: int) -> list[list[int]]:
        """Chunks of ``indices`` where each chunk holds rows of one recorded size, in first-seen order."""
        if {"width", "height"} - set(self.meta.columns):
            return [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
        sizes = self.meta[["height", "width"]].to_numpy()
        groups: dict[tuple, list[int]] = {}
        for index in indices:
            groups.setdefault(tuple(sizes[index]), []).append(index)
        return [group[i:i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]


def _present(table: Any, column: str) -> np.ndarray:
    """Which rows hold an image in ``column`` (read from Arrow, without touching the bytes)."""
    import pyarrow.compute as pc

    n = len(table)
    if column not in table.column_names:
        return np.zeros(n, dtype=bool)
    arrow = table.select_columns([column]).with_format("arrow")[0:n].column(column)
    present = pc.invert(pc.is_null(arrow))
    if arrow.type.num_fields:  # Image cells are {bytes, path} structs; either may carry the image
        names = [arrow.type.field(i).name for i in range(arrow.type.num_fields)]
        inner = [pc.invert(pc.is_null(pc.struct_field(arrow, name))) for name in ("bytes", "path") if name in names]
        if inner:
            either = inner[0] if len(inner) == 1 else pc.or_(inner[0], inner[1])
            present = pc.and_(present, either)
    return np.asarray(present.to_numpy(zero_copy_only=False), dtype=bool)


def _metadata(table: Any):
    """Per-row metadata: id, subset columns, recorded size, and which images the row holds."""
    import pandas as pd

    columns = [c for c in ("id", *SUBSET_COLUMNS, "width", "height") if c in table.column_names]
    meta = table.select_columns(columns).to_pandas() if columns else pd.DataFrame(index=range(len(table)))
    meta["id"] = meta["id"].astype(str)
    for column in SUBSET_COLUMNS:
        if column not in meta.columns:
            meta[column] = None
    meta["has_rainy"] = _present(table, "rainy")
    meta["has_clean"] = _present(table, "clean")
    return meta


def _fingerprint(table: Any, split: str) -> str:
    """sha256 over the split's sorted (id, sha256) pairs: the same rows give the same fingerprint."""
    columns = [c for c in ("id", "sha256") if c in table.column_names]
    frame = table.select_columns(columns).to_pandas()
    hashes = frame["sha256"].astype(str) if "sha256" in frame else [""] * len(frame)
    digest = hashlib.sha256()
    for row_id, sha in sorted(zip(frame["id"].astype(str), hashes)):
        digest.update(f"{row_id}\t{sha}\n".encode())
    return digest.hexdigest()[:16]


def is_hub_id(text: str) -> bool:
    """True when ``text`` looks like a Hub dataset id ``ORG/NAME`` and is not an existing path."""
    return bool(_HUB_ID.match(text)) and not Path(text).exists()


def open_dataset(source: str | Path, split: str = "test", *, offline: bool = False) -> BenchDataset:
    """Open one split of a saved dataset directory (a path or an fsspec URL), a Hub tree on disk, or a (cached) Hub id."""
    from collection.storage import Location, is_url

    text = str(source)
    if is_url(text):
        where = Location(text)
        if not where.local:
            return BenchDataset(_select_split(_load_remote(where), split, text), name=where.name, split=split,
                                source=text)
        text = where.path
    path = Path(text).expanduser()
    if path.exists():
        name = path.resolve().name
        loaded = _load_local(path)
    elif is_hub_id(text):
        name = text
        loaded = _load_local(_hub_snapshot(text, offline=offline), label=text)
    else:
        raise DatasetError(f"{text}: no such dataset directory (and not a Hub id of the form ORG/NAME)")
    return BenchDataset(_select_split(loaded, split, text), name=name, split=split, source=text)


def _load_remote(where: Any) -> Any:
    """A dataset saved by ``save_to_disk`` on an fsspec filesystem (s3://, gs://, memory://, ...)."""
    import datasets

    if not (where / "dataset_dict.json").exists() and not (where / "state.json").exists():
        raise DatasetError(f"{where}: no saved dataset there (dataset_dict.json); on remote storage rainbench "
                           "reads datasets written by `rainbench ingest` (save_to_disk)")
    try:
        return datasets.load_from_disk(str(where))
    except Exception as exc:  # datasets and fsspec raise many types; the user needs the URL and the cause
        raise DatasetError(f"{where}: cannot load the dataset: {exc}") from exc


def _load_local(path: Path, label: str | None = None) -> Any:
    import datasets

    label = label or str(path)
    if not path.is_dir():
        raise DatasetError(f"{label}: not a directory (expected a dataset saved by `rainbench ingest` or a Hub tree)")
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return datasets.load_from_disk(str(path))
    if any(path.glob("data/*.parquet")) or any(path.glob("**/*.parquet")):
        try:
            return datasets.load_dataset(str(path))
        except Exception as exc:  # datasets raises many types here; the user needs the path and cause
            raise DatasetError(f"{label}: cannot load the Parquet dataset: {exc}") from exc
    raise DatasetError(f"{label}: neither a saved dataset (dataset_dict.json) nor a Hub tree (data/*.parquet)")


def _hub_snapshot(repo_id: str, *, offline: bool) -> Path:
    """The local snapshot of a Hub dataset: from the cache only when offline, else fetched."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", local_files_only=offline))
    except LocalEntryNotFoundError as exc:
        raise DatasetError(
            f"{repo_id}: not in the local Hugging Face cache and offline mode is on; "
            f"fetch it on a connected machine (`hf download {repo_id} --repo-type dataset`) or pass a local path"
        ) from exc
    except Exception as exc:  # network, auth and not-found errors all need the id in the message
        raise DatasetError(f"{repo_id}: cannot fetch the dataset from the Hub: {exc}") from exc


def _select_split(loaded: Any, split: str, label: str) -> Any:
    import datasets

    if isinstance(loaded, datasets.Dataset):
        return loaded
    if split not in loaded:
        raise DatasetError(f"{label}: no split {split!r} (available: {', '.join(sorted(loaded)) or 'none'})")
    return loaded[split]
