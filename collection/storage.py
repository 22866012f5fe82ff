"""Folders and files on shared storage: local paths and fsspec URLs (``file://``, ``s3://``, ``memory://``, ...).

Cluster workers rarely share the driver's local disk, so run directories and datasets may live on
any filesystem fsspec has installed. :class:`Location` is the one handle for them: a local path
keeps the atomic temporary-file-and-rename writes of :mod:`collection.files`; on an object store
a single PUT is already all-or-nothing, so a file is written in one call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from collection.files import atomic_write


def is_url(text: str | os.PathLike) -> bool:
    """True for ``PROTOCOL://...`` (any protocol, ``file://`` included)."""
    return "://" in str(text)


class Location:
    """A file or folder on a local disk or an fsspec filesystem; ``/`` joins names as on a Path."""

    def __init__(self, target: str | os.PathLike | Location, *, storage_options: dict[str, Any] | None = None):
        if isinstance(target, Location):
            self.fs, self.path, self.protocol = target.fs, target.path, target.protocol
            return
        from fsspec.core import url_to_fs
        from fsspec.implementations.local import LocalFileSystem

        text = os.fspath(target)
        if is_url(text):
            self.fs, self.path = url_to_fs(text, **(storage_options or {}))
            self.protocol = None if isinstance(self.fs, LocalFileSystem) else text.split("://", 1)[0]
        else:
            self.fs, self.path, self.protocol = LocalFileSystem(), os.path.abspath(os.path.expanduser(text)), None

    @property
    def local(self) -> bool:
        """True when this is on the local filesystem (``file://`` or a plain path)."""
        return self.protocol is None

    def as_path(self) -> Path:
        """The local path (raises for a remote location)."""
        if not self.local:
            raise ValueError(f"{self}: not a local path")
        return Path(self.path)

    def __truediv__(self, name: str) -> Location:
        joined = Location.__new__(Location)
        joined.fs, joined.protocol = self.fs, self.protocol
        joined.path = f"{self.path.rstrip('/')}/{name}"
        return joined

    def __str__(self) -> str:
        return self.path if self.local else f"{self.protocol}://{self.path.split('://', 1)[-1].lstrip('/')}"

    def __repr__(self) -> str:
        return f"Location({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and str(other) == str(self)

    def __hash__(self) -> int:
        return hash(str(self))

    @property
    def name(self) -> str:
        """The last component of the path."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def exists(self) -> bool:
        """True when a file or folder is there."""
        return bool(self.fs.exists(self.path))

    def is_file(self) -> bool:
        """True for a file."""
        return bool(self.fs.isfile(self.path))

    def is_dir(self) -> bool:
        """True for a folder (on object stores: a prefix with something under it)."""
        return bool(self.fs.isdir(self.path))

    def mkdir(self) -> None:
        """Create the folder and its parents (a no-op on object stores, which have no folders)."""
        self.fs.makedirs(self.path, exist_ok=True)

    def glob(self, pattern: str) -> list[Location]:
        """Entries of this folder matching ``pattern`` (one level), in name order."""
        found = sorted(self.fs.glob(f"{self.path.rstrip('/')}/{pattern}"))
        out = []
        for path in found:
            entry = Location.__new__(Location)
            entry.fs, entry.protocol, entry.path = self.fs, self.protocol, path
            out.append(entry)
        return out

    def read_bytes(self) -> bytes:
        """The file's bytes."""
        return self.fs.cat_file(self.path)

    def read_text(self) -> str:
        """The file's text (UTF-8)."""
        return self.read_bytes().decode("utf-8")

    def write_bytes(self, data: bytes | str) -> Location:
        """Write the whole file at once: atomically (temporary file, rename) on a local disk, one PUT elsewhere."""
        if self.local:
            atomic_write(self.path, data)
            return self
        payload = data.encode("utf-8") if isinstance(data, str) else data
        parent = self.path.rstrip("/").rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        self.fs.pipe_file(self.path, payload)
        return self

    def unlink(self) -> None:
        """Remove the file if it is there."""
        try:
            self.fs.rm_file(self.path)
        except FileNotFoundError:
            pass
