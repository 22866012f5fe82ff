"""Upload a tree written by :func:`collection.publish.tree.dry_run`, resumably.

One commit per batch of shards; shards already on the Hub with the same size and sha256 (LFS) or
git blob id are skipped, stale shards of an older upload are deleted and the card is committed
last, so an interrupted upload never looks finished and a re-run resumes it. Token, endpoint and
cached login are resolved by ``huggingface_hub``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collection.files import is_temporary, sha256_file
from collection.publish.checks import PublishError, check_repo_id
from collection.publish.hub_errors import hub_errors
from collection.publish.tree import Progress

DEFAULT_FILES_PER_COMMIT = 20
DEFAULT_BYTES_PER_COMMIT = 10 * 1000**3


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
    with hub_errors(api.endpoint, repo_id, f"creating {repo_id}"):
        url = str(api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private))
        if branch != "main":
            api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
    with hub_errors(api.endpoint, repo_id, f"listing {repo_id}@{branch}"):
        remote = _remote_files(api, repo_id, branch)
    local = sorted((p.relative_to(tree).as_posix(), p) for p in tree.rglob("*")
                   if p.is_file() and p != card and not p.name.endswith(".tmp") and not is_temporary(p))
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
        with hub_errors(api.endpoint, repo_id, f"commit {n}/{len(batches) + 1}", hint):
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
        with hub_errors(api.endpoint, repo_id, "committing the dataset card", hint):
            api.create_commit(repo_id, final, commit_message="Dataset card (rainbench publish)",
                              repo_type="dataset", revision=branch)
        summary.commits += 1
        if any(isinstance(op, CommitOperationAdd) for op in final):
            summary.uploaded.append("README.md")
    else:
        summary.skipped.append("README.md")
    progress("files", total, total)
    return summary
