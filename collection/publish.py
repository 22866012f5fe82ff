"""Build the Hugging Face Hub tree of a curated dataset and upload it, resumably.

The tree (:func:`dry_run`) is what lands on the Hub, byte for byte::

    README.md                                   dataset card (collection.card), uploaded last
    data/<split>-00000-of-00003.parquet         Parquet shards, image bytes embedded

Shards are written split by split and row group by row group with ``datasets``' own Parquet
writer (features in the schema metadata, so ``load_dataset`` restores the Image columns); at most
:data:`ROWS_PER_GROUP` rows are in memory. A row keeps its ``rainy`` and ``clean`` images, so
pairs stay pairs. Unless ``keep_gps``, personal data goes (:mod:`collection.privacy`): GPS,
serial-number and owner columns, and the same fields inside the images' EXIF, pixels untouched.

:func:`upload` pushes a tree with ``huggingface_hub``: one commit per batch of shards, shards
already on the Hub with the same size and sha256 are skipped, stale shards of an older upload are
deleted and the card is committed last, so an interrupted upload never looks finished and a
re-run resumes it. Token, endpoint and cached login are resolved by ``huggingface_hub``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collection.files import sha256_file
from collection.privacy import PersonalDataError, personal_columns, scrub_images

log = logging.getLogger(__name__)

Progress = Callable[[str, int, "int | None"], None]

DEFAULT_SHARD_SIZE = 500 * 1000**2
"""Target bytes of one Parquet shard (Arrow size before compression; images barely compress)."""

ROWS_PER_GROUP = 8
"""Rows per Parquet row group and per write: memory holds a few copies of this many rows' images."""

_SHARD_NAME = re.compile(r"\w+(\.\w+)*-\d{5}-of-\d{5}\.parquet(\.tmp)?")
DEFAULT_FILES_PER_COMMIT = 20
DEFAULT_BYTES_PER_COMMIT = 10 * 1000**3


class PublishError(Exception):
    """Publishing failed; the message is one line naming what and why."""


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


@dataclass
class UploadSummary:
    """What :func:`upload` did."""

    repo_id: str
    revision: str
    url: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    commits: int = 0


def parse_size(text: str | int) -> int:
    """``500MB``, ``2GiB``, ``1e6`` or an int -> bytes (decimal units, ``i`` for binary)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9.e+]+)\s*([kmgt]?)(i?)b?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r}: not a size (expected e.g. 500MB, 2GiB or a number of bytes)")
    try:
        number = float(match.group(1))
    except ValueError:
        raise ValueError(f"{text!r}: not a size (expected e.g. 500MB, 2GiB or a number of bytes)") from None
    exponent = "kmgt".find(match.group(2).lower()) + 1 if match.group(2) else 0
    value = number * (1024 if match.group(3) else 1000) ** exponent
    if value < 1:
        raise ValueError(f"{text!r}: a shard size must be at least 1 byte")
    return int(value)


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if the Hub accepts it as a dataset repo ``ORG/NAME``, else a one-line :class:`PublishError`.

    The rules are huggingface_hub's own ``validate_repo_id`` (characters, 96 per part, no ``--``,
    ``..`` or ``.git``), plus the namespace a dataset upload needs.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PublishError(f"{repo_id!r}: a dataset repo id is ORG/NAME (or USER/NAME)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PublishError(f"{repo_id if len(repo_id) <= 60 else repo_id[:57] + '...'!r}: not a valid Hub repo id "
                           f"(letters, digits, '-', '_', '.'; at most 96 per part; no '--', '..' or trailing "
                           f"'.git'; {len(repo_id)} characters given)") from exc
    return repo_id


def check_license_id(license: str) -> str:
    """``license`` if the Hub knows it (:data:`collection.card.HUB_LICENSES`), else a one-line :class:`PublishError`."""
    from collection.card import check_license

    try:
        return check_license(license)
    except ValueError as exc:
        raise PublishError(str(exc)) from None


# ----------------------------------------------------------------------------- the tree


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
        tmp = out / f"{rel}.tmp"
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
        os.replace(tmp, out / rel)
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
    foreign = [p.name for p in (out / "data").glob("*") if not _SHARD_NAME.fullmatch(p.name)] \
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
    card_path = out / "README.md"
    tmp = card_path.with_suffix(".md.tmp")
    tmp.write_text(str(card), encoding="utf-8")
    os.replace(tmp, card_path)
    return TreeSummary(out=out, rows={s: len(dsd[s]) for s in splits}, shards=shards, card=card_path,
                       dropped_columns=drop, scrubbed_images=scrubbed)


# ----------------------------------------------------------------------------- upload


def _is_network_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return isinstance(exc, (ConnectionError, TimeoutError)) or bool(
        names & {"TransportError", "NetworkError", "ConnectError", "TimeoutException", "ConnectionError"})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def _hub_errors(endpoint: str, repo_id: str, action: str, resume_hint: str = "") -> Iterator[None]:
    """Turn huggingface_hub / transport failures into one-line :class:`PublishError`s."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        yield
    except OfflineModeIsEnabled:
        raise PublishError(f"cannot publish {repo_id}: HF_HUB_OFFLINE is set (unset it to upload)") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if getattr(exc, "response", None) is not None else None
        if status == 401:
            message = (f"{endpoint} rejected the token (401 Unauthorized) while {action}; "
                       "log in with `hf auth login`, set HF_TOKEN or pass --token")
        elif status == 403:
            message = (f"no write permission on {repo_id} (403 Forbidden) while {action}; "
                       f"use a token with write access to '{repo_id.split('/')[0]}'")
        else:
            message = f"the Hub answered {status} while {action}: {_first_line(exc)}"
        raise PublishError(message + resume_hint) from exc
    except Exception as exc:
        if _is_network_error(exc):
            raise PublishError(f"cannot reach the Hub at {endpoint} while {action} ({_first_line(exc)}); "
                               f"check the network or HF_ENDPOINT{resume_hint}") from exc
        raise


def _git_blob_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def _same_file(local: Path, remote: Any) -> bool:
    """True when ``remote`` (a RepoFile) holds ``local``'s bytes: same size and sha256 (LFS) or git oid."""
    if remote is None or getattr(remote, "size", None) != local.stat().st_size:
        return False
    lfs = getattr(remote, "lfs", None)
    if lfs:
        return lfs.sha256 == sha256_file(local)
    return getattr(remote, "blob_id", None) == _git_blob_sha1(local)


def _remote_files(api: Any, repo_id: str, revision: str) -> dict[str, Any]:
    from huggingface_hub.hf_api import RepoFile

    tree = api.list_repo_tree(repo_id, recursive=True, repo_type="dataset", revision=revision)
    return {entry.path: entry for entry in tree if isinstance(entry, RepoFile)}


def _batches(files: list[tuple[str, Path]], per_commit: int, bytes_per_commit: int) -> list[list[tuple[str, Path]]]:
    batches: list[list[tuple[str, Path]]] = []
    size = 0
    for rel, path in files:
        length = path.stat().st_size
        if not batches or len(batches[-1]) >= per_commit or (batches[-1] and size + length > bytes_per_commit):
            batches.append([])
            size = 0
        batches[-1].append((rel, path))
        size += length
    return batches


def upload(
    tree_dir: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    endpoint: str | None = None,
    files_per_commit: int = DEFAULT_FILES_PER_COMMIT,
    bytes_per_commit: int = DEFAULT_BYTES_PER_COMMIT,
    progress: Progress | None = None,
) -> UploadSummary:
    """Upload a tree written by :func:`dry_run` to the dataset repo ``repo_id`` (created if needed).

    Data files go first, in commits of at most ``files_per_commit`` files / ``bytes_per_commit``
    bytes, skipping files already there; the last commit writes ``README.md`` and deletes shards of
    an older upload that the tree no longer has. Re-running after a failure resumes.
    """
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.utils import disable_progress_bars

    progress = progress or (lambda stage, done, total: None)
    tree = Path(tree_dir)
    card = tree / "README.md"
    if not card.is_file():
        raise PublishError(f"{tree}: no README.md; write the tree with a dry run first")
    check_repo_id(repo_id)
    if token is None and get_token() is None:
        raise PublishError("no Hugging Face token: run `hf auth login`, set HF_TOKEN or pass --token")
    api = HfApi(endpoint=endpoint, token=token)
    with disable_progress_bars():  # library code never prints; the CLI shows its own progress
        return _push(api, tree, repo_id, revision or "main", private, files_per_commit, bytes_per_commit, progress)


def _push(api: Any, tree: Path, repo_id: str, branch: str, private: bool, files_per_commit: int,
          bytes_per_commit: int, progress: Progress) -> UploadSummary:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    card = tree / "README.md"
    with _hub_errors(api.endpoint, repo_id, f"creating {repo_id}"):
        url = str(api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private))
        if branch != "main":
            api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
    with _hub_errors(api.endpoint, repo_id, f"listing {repo_id}@{branch}"):
        remote = _remote_files(api, repo_id, branch)
    local = sorted((p.relative_to(tree).as_posix(), p) for p in tree.rglob("*")
                   if p.is_file() and p != card and not p.name.endswith(".tmp"))
    summary = UploadSummary(repo_id=repo_id, revision=branch, url=url)
    todo = []
    for rel, path in local:
        if _same_file(path, remote.get(rel)):
            summary.skipped.append(rel)
        else:
            todo.append((rel, path))
    batches = _batches(todo, max(1, files_per_commit), max(1, bytes_per_commit))
    total, done = len(local) + 1, len(summary.skipped)
    progress("files", done, total)
    for n, batch in enumerate(batches, 1):
        hint = (f"; {done} of {len(local)} data files are on the Hub and the dataset card is not, "
                "so the repo is not marked finished: re-run the same command to resume")
        operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(path)) for rel, path in batch]
        with _hub_errors(api.endpoint, repo_id, f"commit {n}/{len(batches) + 1}", hint):
            api.create_commit(repo_id, operations, commit_message=f"Upload data files ({n}/{len(batches)}) with rainbench",
                              repo_type="dataset", revision=branch)
        summary.commits += 1
        summary.uploaded += [rel for rel, _ in batch]
        done += len(batch)
        progress("files", done, total)
    names = {rel for rel, _ in local}
    summary.deleted = sorted(p for p in remote if p.startswith("data/") and p not in names)
    final: list[Any] = [CommitOperationDelete(path_in_repo=p) for p in summary.deleted]
    if not _same_file(card, remote.get("README.md")):
        final.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card)))
    if final:
        hint = "; all data files are on the Hub but the dataset card is not: re-run the same command to finish"
        with _hub_errors(api.endpoint, repo_id, "committing the dataset card", hint):
            api.create_commit(repo_id, final, commit_message="Dataset card (rainbench publish)",
                              repo_type="dataset", revision=branch)
        summary.commits += 1
        if any(isinstance(op, CommitOperationAdd) for op in final):
            summary.uploaded.append("README.md")
    else:
        summary.skipped.append("README.md")
    progress("files", total, total)
    return summary
