"""File helpers every package shares: the sha256 of a file and atomic writes.

This module imports nothing of rainbench's packages, so ``collection`` and ``rainbench`` can both
use it. ``baselines`` may not import ``collection``: it uses ``nlcl.checkpoint``'s torch-side pair
(``atomic_save``, ``file_sha256``), which ``nlcl`` keeps so that it stays importable alone. An atomic write goes to a temporary file in the target's directory and is renamed over the
target only once complete: a reader sees the old file or the new one, never half of one, and an
interrupted write leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20
"""Bytes read at a time when hashing a file."""

_SHA_CACHE: dict[tuple[str, int, int, int], str] = {}


def sha256_file(path: str | os.PathLike, *, memo: bool = False) -> str:
    """Hex sha256 of a file's bytes, read in chunks.

    With ``memo`` the digest is remembered by path, size, mtime and inode, so a large checkpoint
    named again in one process is hashed once; leave it off where a file may change in place.
    """
    key = None
    if memo:
        stat = os.stat(path)
        key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
        if key in _SHA_CACHE:
            return _SHA_CACHE[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    hexdigest = digest.hexdigest()
    if key is not None:
        _SHA_CACHE[key] = hexdigest
    return hexdigest


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mode: int = 0o644, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends cleanly it replaces ``path``.

    The temporary name keeps the target's suffix (writers that pick a format from the suffix, or
    append one, see the real one) and is hidden (``.name.XXXX.tmp.suffix``). On an exception it is
    removed and ``path`` is untouched. ``mode`` is applied before the rename (``mkstemp`` creates
    0600 files; datasets and results are meant to be shared).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: bytes | str, *, mode: int = 0o644, fsync: bool = False) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; returns the path."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path, mode=mode, fsync=fsync) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def is_temporary(path: str | os.PathLike) -> bool:
    """True for a temporary file :func:`atomic_path` leaves while a write is under way."""
    name = Path(path).name
    return name.startswith(".") and ".tmp" in name
