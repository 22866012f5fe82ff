"""The Hub tree of a curated dataset, written locally byte for byte as it will land on the Hub.

::

    README.md                                   dataset card (collection.card), uploaded last
    data/<split>-00000-of-00003.parquet         Parquet shards, image bytes embedded

Shards are written split by split and row group by row group with ``datasets``' own Parquet
writer (features in the schema metadata, so ``load_dataset`` restores the Image columns); at most
:data:`ROWS_PER_GROUP` rows are in memory. A row keeps its ``rainy`` and ``clean`` images, so
pairs stay pairs. Unless ``keep_gps``, personal data goes (:mod:`collection.privacy`): GPS,
serial-number and owner columns, and the same fields inside the images' EXIF, pixels untouched.
Every shard and the card are written atomically (:mod:`collection.files`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collection.files import atomic_path, atomic_write, is_temporary
from collection.privacy import PersonalDataError, personal_columns, scrub_images
from collection.publish.checks import (
    PublishError,
    check_license_id,
    check_repo_id,
    parse_size,
)

log = logging.getLogger(__name__)

Progress = Callable[[str, int, "int | None"], None]
"""``progress(stage, done, total)``: how far a build or an upload is (the CLI draws it)."""

DEFAULT_SHARD_SIZE = 500 * 1000**2
"""Target bytes of one Parquet shard (Arrow size before compression; images barely compress)."""

ROWS_PER_GROUP = 8
"""Rows per Parquet row group and per write: memory holds a few copies of this many rows' images."""

# A shard name, or a temporary left by an older version killed mid-write (``name.parquet.tmp``).
_SHARD_NAME = re.compile(r"\w+(\.\w+)*-\d{5}-of-\d{5}\.parquet(\.tmp)?")


@dataclass
class ShardInfo:
    """One Parquet file of the tree."""

    path: str
    split: str
    rows: int
    num_bytes: int
    size: int


@dataclass
class TreeSummary:
    """What :func:`dry_run` wrote."""

    out: Path
    rows: dict[str, int]
    shards: list[ShardInfo]
    card: Path
    dropped_columns: list[str]
    scrubbed_images: int

    @property
    def download_size(self) -> int:
        """Bytes of all Parquet files."""
        return sum(s.size for s in self.shards)


def load_curated(dataset_dir: str | os.PathLike) -> Any:
    """The DatasetDict written by ``rainbench ingest`` (memory-mapped), with a clear error otherwise."""
    import datasets

    path = Path(dataset_dir)
    if not (path / "dataset_dict.json").is_file():
        raise PublishError(f"{path}: not a dataset written by `rainbench ingest --out` (no dataset_dict.json)")
    return datasets.load_from_disk(str(path))


def read_report(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    """``report/report.json`` of an ingest run, or ``{}`` when it is missing or unreadable."""
    path = Path(dataset_dir) / "report" / "report.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        log.warning("%s: no curation report; the dataset card will lack curation counts", path)
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable curation report (%s); the dataset card will lack curation counts", path, exc)
    return {}


def _write_split(ds: Any, split: str, out: Path, shard_size: int, drop: list[str], keep_gps: bool,
                 progress: Progress, done: list[int], total: int) -> tuple[list[ShardInfo], int]:
    from datasets import Features
    from datasets.arrow_writer import ParquetWriter

    features = Features({k: v for k, v in ds.features.items() if k not in drop})
    n = len(ds)
    count = max(1, min(n, math.ceil(ds.data.nbytes / shard_size))) if n else 1
    arrow = ds.with_format("arrow")
    shards, scrubbed = [], 0
    for index in range(count):
        lo, hi = index * n // count, (index + 1) * n // count
        rel = f"data/{split}-{index:05d}-of-{count:05d}.parquet"
        with atomic_path(out / rel) as tmp:
            writer = ParquetWriter(path=str(tmp), features=features, embed_local_files=True)
            try:
                for start in range(lo, hi, ROWS_PER_GROUP):
                    table = arrow[start:min(hi, start + ROWS_PER_GROUP)].drop_columns(drop)
                    if not keep_gps:
                        ids = [str(i) for i in table.column("id").to_pylist()] if "id" in table.column_names else \
                            [str(i) for i in range(start, start + table.num_rows)]
                        table, k = scrub_images(table, ids)
                        scrubbed += k
                    writer.write_table(table, writer_batch_size=ROWS_PER_GROUP)
                    done[0] += table.num_rows
                    progress("rows", done[0], total)
                rows, num_bytes = writer.finalize()
            finally:
                writer.close()
        shards.append(ShardInfo(rel, split, rows, num_bytes, (out / rel).stat().st_size))
    return shards, scrubbed


def dry_run(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    repo_id: str,
    shard_size: int | str = DEFAULT_SHARD_SIZE,
    license: str = "cc-by-4.0",
    keep_gps: bool = False,
    pretty_name: str | None = None,
    progress: Progress | None = None,
) -> TreeSummary:
    """Write the exact Hub tree (Parquet shards + README.md) of ``dataset_dir`` into ``out_dir``.

    ``out_dir``'s ``data/`` and ``README.md`` are replaced; nothing else in it is touched.
    """
    from collection.card import dataset_card, describe

    progress = progress or (lambda stage, done, total: None)
    check_repo_id(repo_id)  # before anything is staged: the Hub would refuse the tree at upload time
    check_license_id(license)
    shard_bytes = parse_size(shard_size)
    dsd = load_curated(dataset_dir)
    report = read_report(dataset_dir)
    out = Path(out_dir)
    if out.resolve() == Path(dataset_dir).resolve():
        raise PublishError(f"{out}: the tree must go to another folder than the dataset itself")
    foreign = [p.name for p in (out / "data").glob("*") if not (_SHARD_NAME.fullmatch(p.name) or is_temporary(p))] \
        if (out / "data").is_dir() else []
    if foreign:  # never wipe a folder of the user's that merely happens to be called data/
        raise PublishError(f"{out / 'data'}: holds files that are not shards (e.g. {foreign[0]}); choose an empty folder")
    shutil.rmtree(out / "data", ignore_errors=True)
    (out / "data").mkdir(parents=True)
    (out / "README.md").unlink(missing_ok=True)
    splits = sorted(dsd)
    drop = sorted({c for s in splits for c in personal_columns(dsd[s].column_names, keep_gps)})
    total = sum(len(dsd[s]) for s in splits)
    done, shards, scrubbed = [0], [], 0
    for split in splits:
        try:
            new, k = _write_split(dsd[split], split, out, shard_bytes,
                                  [c for c in drop if c in dsd[split].column_names],
                                  keep_gps, progress, done, total)
        except PersonalDataError as exc:
            raise PublishError(f"{dataset_dir}: {exc}") from exc
        shards += new
        scrubbed += k
    features = dsd[splits[0]].features if splits else None
    card = dataset_card(
        repo_id=repo_id,
        features={k: v for k, v in features.items() if k not in drop} if features else {},
        splits={s: (sum(x.rows for x in shards if x.split == s), sum(x.num_bytes for x in shards if x.split == s))
                for s in splits},
        download_size=sum(s.size for s in shards),
        stats=describe(dsd),
        report=report,
        license=license,
        pretty_name=pretty_name,
        keep_gps=keep_gps,
        scrubbed_images=scrubbed,
    )
    card_path = atomic_write(out / "README.md", str(card))
    return TreeSummary(out=out, rows={s: len(dsd[s]) for s in splits}, shards=shards, card=card_path,
                       dropped_columns=drop, scrubbed_images=scrubbed)
