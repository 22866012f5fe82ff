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
            self.fs, self.path, self.protocol, self._prefix = target.fs, target.path, target.protocol, target._prefix
            return
        from fsspec.core import url_to_fs
        from fsspec.implementations.local import LocalFileSystem

        text = os.fspath(target)
        self._prefix = ""
        if is_url(text):
            # fsspec reads "::" anywhere as a chain (simplecache::s3://...); after the protocol it is
            # part of a file name, so it is hidden from the parser and put back.
            head, rest = text.split("://", 1)
            hidden = "\ue000"
            self.fs, path = url_to_fs(f"{head}://{rest.replace('::', hidden)}", **(storage_options or {}))
            self.path = path.replace(hidden, "::")
            self.protocol = None if isinstance(self.fs, LocalFileSystem) else head
            # How this store spells its paths in a URL, so str() reopens the same entry anywhere:
            # ``memory://a`` is path ``/a``; ``s3://b/k`` is ``b/k``; ``simplecache::file:///t`` is ``/t``.
            self._prefix = f"{head}://" + ("/" if self.path.startswith("/") and rest.startswith("/") else "")
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
        return self._at(f"{self.path.rstrip('/')}/{name}")

    def _at(self, path: str) -> Location:
        """Another entry of the same filesystem."""
        other = Location.__new__(Location)
        other.fs, other.protocol, other._prefix, other.path = self.fs, self.protocol, self._prefix, path
        return other

    def __str__(self) -> str:
        return self.path if self.local else self._prefix + self.path.split("://", 1)[-1].lstrip("/")

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
        return [self._at(path) for path in found]

    def find(self) -> list[tuple[str, str]]:
        """Every entry below this folder, ``(relative POSIX path, "file" | "directory")``, in one listing."""
        base = self.path.rstrip("/") + "/"
        found = self.fs.find(self.path, withdirs=True, detail=True)
        out = []
        for path, info in found.items():
            path = path.rstrip("/")
            rel = path[len(base):] if path.startswith(base) else None
            if rel:
                out.append((rel, "directory" if info.get("type") == "directory" else "file"))
        return sorted(out)

    def size(self) -> int:
        """The file's size in bytes (raises FileNotFoundError when it is not there)."""
        return int(self.fs.info(self.path)["size"])

    def version(self) -> tuple:
        """What changes when the file does: size and the store's modification time or ETag."""
        info = self.fs.info(self.path)
        stamp = next((info[k] for k in ("mtime", "LastModified", "last_modified", "updated", "ETag", "etag",
                                       "md5Hash", "created") if info.get(k) is not None), None)
        return int(info["size"]), str(stamp)

    def open(self, mode: str = "rb"):
        """An open file object (binary unless ``mode`` says text, then UTF-8, strict)."""
        if "b" in mode:
            return self.fs.open(self.path, mode)
        return self.fs.open(self.path, mode, encoding="utf-8", errors="strict")

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


def is_folder(name: str | os.PathLike) -> bool:
    """True for a local folder, or a URL naming a folder (prefix) on its filesystem.

    False, not an error, for a protocol that is not installed or a store that refuses the listing.
    """
    if not is_url(name):
        return Path(name).is_dir()
    try:
        return Location(name).is_dir()
    except (ImportError, ValueError, OSError):
        return False


def portable(name: str | os.PathLike) -> str:
    """A name workers elsewhere can open: an existing local path made absolute; URLs, Hub ids and the rest as given."""
    text = os.fspath(name)
    if is_url(text):
        return text
    path = Path(text).expanduser()
    return str(path.resolve()) if path.exists() else text


def open_source(file: str | os.PathLike, mode: str = "rb"):
    """Open a file named by a local path or a URL (the ``file`` of a source item), for reading."""
    if is_url(file):
        return Location(file).open(mode)
    return open(file, mode) if "b" in mode else open(file, mode, encoding="utf-8", errors="strict")


def source_size(file: str | os.PathLike) -> int:
    """Size in bytes of a file named by a local path or a URL."""
    return Location(file).size() if is_url(file) else os.path.getsize(file)
