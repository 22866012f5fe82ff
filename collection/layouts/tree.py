"""One scan of a source folder: every non-hidden file and folder, by relative POSIX path.

The root may be an fsspec URL (``s3://bucket/rain``): it is then listed in one recursive listing
and :meth:`Tree.abspath` gives URLs, which every reader opens through :mod:`collection.storage`.
Layout detection and enumeration both read this scan, so a large folder is listed once. Hidden
names (``.cache``, ``.DS_Store``, macOS ``._`` files) are not part of any source, nor are folders
rainbench wrote (:data:`OUTPUT_MARKERS`: an ingest ``--out`` inside a source, a run or derain
folder) or folders the caller excludes. Entries that are neither a file nor a folder are kept in
:attr:`Tree.odd` with why (a dangling link, a link loop, a FIFO), so the pipeline can account for them.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from collection.images import IMAGE_SUFFIXES

from .item import LayoutError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
"""File name suffixes (lower case) read as videos."""

BROKEN_LINK = "broken symbolic link"
"""Start of the reason given for a link whose target does not exist."""
LINK_LOOP = "symbolic link loop"
"""Start of the reason given for a link that loops or leads to a folder already listed."""
NOT_A_FILE = "not a regular file"
"""Start of the reason given for FIFOs, sockets and device files."""

OUTPUT_MARKERS: tuple[tuple[str, ...], ...] = (
    ("dataset_dict.json", "manifest.parquet"),  # rainbench ingest --out
    ("run.json",),  # rainbench run
    ("derain.json",),  # rainbench derain
    ("train.json",),  # rainbench train
    ("metric_specs.json",),  # rainbench leaderboard
)
"""Files that together mark a folder rainbench wrote; such a folder below a source root is skipped.
(``collection`` cannot import the verbs' constants, so the names are restated here.)"""

_SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "trainset": "train",
    "test": "test",
    "testing": "test",
    "testset": "test",
    "val": "val",
    "valid": "val",
    "validation": "val",
}


def _suffix(rel: str) -> str:
    # os.path.splitext agrees with Path.suffix on these names and is ~10x cheaper on 10^6 files.
    return os.path.splitext(rel)[1].lower()


def is_hidden(name: str) -> bool:
    """True for names that are never part of a source (dot files and folders)."""
    return name.startswith(".")


def text_name(name: str) -> str:
    """A file-system name as valid text: bytes that are not UTF-8 are written as ``\\xHH``.

    Python decodes such bytes to lone surrogates, which no UTF-8 writer (Parquet, Arrow, JSON
    files, the terminal) accepts; valid names are returned unchanged.
    """
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


def is_rainbench_output(folder: str | os.PathLike, names: Iterable[str] | None = None) -> bool:
    """True when ``folder`` holds one of :data:`OUTPUT_MARKERS` (``names``: its entries, if listed)."""
    found = set(os.listdir(folder) if names is None else names)
    if any(all(m in found for m in marker) for marker in OUTPUT_MARKERS):
        return True
    return ".cache" in found and os.path.isfile(os.path.join(folder, ".cache", "state.json"))


def split_of_name(name: str) -> str | None:
    """The split a folder name announces (``train``, ``GT-RAIN_test``, ``test_syn``), else None."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    found = {_SPLIT_WORDS[w] for w in words if w in _SPLIT_WORDS}
    return found.pop() if len(found) == 1 else None


def split_of_path(rel_dir: str) -> str | None:
    """The split announced by the nearest folder of ``rel_dir`` (relative to the root) that names one."""
    for part in reversed([p for p in rel_dir.split("/") if p]):
        split = split_of_name(part)
        if split is not None:
            return split
    return None


def parent_of(rel: str) -> str:
    """Relative folder of a relative path (``""`` for the root)."""
    return rel.rsplit("/", 1)[0] if "/" in rel else ""


def name_of(rel: str) -> str:
    """Last component of a relative path."""
    return rel.rsplit("/", 1)[-1]


def stem_of(rel: str) -> str:
    """File name without its last suffix."""
    name = name_of(rel)
    dot = name.rfind(".")
    return name[:dot] if dot > 0 else name


def _odd_reason(entry: os.DirEntry) -> str:
    """Why an entry that is neither a file nor a folder cannot be read."""
    if entry.is_symlink():
        target = os.readlink(entry.path)
        try:
            os.stat(entry.path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return f"{LINK_LOOP} (-> {text_name(target)})"
            return f"{BROKEN_LINK} (-> {text_name(target)}: {exc.strerror or exc})"
        return f"{NOT_A_FILE} (link to a FIFO, socket or device: {text_name(target)})"
    return f"{NOT_A_FILE} (FIFO, socket or device)"


class Tree:
    """The non-hidden files and folders under ``root``, sorted, as relative POSIX paths.

    ``exclude``: folders (any spelling of their path) never entered, e.g. the ingest output.
    """

    def __init__(self, root: str | os.PathLike, exclude: Iterable[str | os.PathLike] = ()):
        from collection.storage import Location, is_url

        self.files: list[str] = []
        self.dirs: list[str] = []
        self.odd: dict[str, str] = {}
        """Relative path -> reason, for entries that are neither file nor folder (links, FIFOs)."""
        self.outputs: list[str] = []
        """Relative folders skipped as rainbench outputs or excluded."""
        self._subdirs: dict[str, list[str]] = defaultdict(list)
        self._direct: dict[str, list[str]] = defaultdict(list)
        self.remote: Location | None = None
        """The root on an fsspec filesystem (``s3://``, ``memory://``, ...); None on a local disk."""
        where = Location(root) if is_url(root) else None
        if where is not None and not where.local:
            self.remote = where
            self.root = Path(where.path)  # names and messages; files are opened through ``remote``
            self._scan_remote({str(Location(p)) for p in exclude if is_url(p)})
            self._index()
            return
        path = Path(where.path if where is not None else root).expanduser()
        if not path.exists():
            raise LayoutError(f"{path}: no such folder")
        if not path.is_dir():
            raise LayoutError(f"{path}: not a folder (point at the folder that holds the source)")
        self.root = path.resolve()
        self._exclude = {Path(p).expanduser().resolve() for p in exclude if not is_url(p)}
        self._scan()
        self._index()

    def _scan_remote(self, exclude: set[str]) -> None:
        """One listing of an object store prefix; it has no links, so only hidden names and outputs are set aside."""
        assert self.remote is not None
        if not self.remote.is_dir():
            raise LayoutError(f"{self.remote}: no such folder")
        entries = self.remote.find()
        files = {rel for rel, kind in entries if kind == "file"}
        folders = {rel for rel, kind in entries if kind == "directory"}
        for rel in files | folders:  # object stores may list a prefix only through the names under it
            while "/" in rel:
                rel = parent_of(rel)
                folders.add(rel)
        names: dict[str, set[str]] = defaultdict(set)
        for rel in files | folders:
            names[parent_of(rel)].add(name_of(rel))
        outputs: list[str] = []
        for rel in sorted(files | folders):
            if any(is_hidden(p) for p in rel.split("/")) or any(rel.startswith(o + "/") for o in outputs):
                continue
            parent = parent_of(rel)
            if rel in folders:
                written = any(all(m in names[rel] for m in marker) for marker in OUTPUT_MARKERS)
                if written or f"{rel}/.cache/state.json" in files or str(self.remote / rel) in exclude:
                    log.info("%s: skipped, a folder rainbench writes (an output, not a source)", self.remote / rel)
                    self.outputs.append(rel)
                    outputs.append(rel)
                    continue
                self.dirs.append(rel)
                self._subdirs[parent].append(rel)
            else:
                self.files.append(rel)
                self._direct[parent].append(rel)

    def _scan(self) -> None:
        # Symlinked folders are followed once: the (device, inode) guard stops loops, and a link
        # to a folder already listed is reported rather than listed twice.
        st = self.root.stat()
        seen: dict[tuple[int, int], str] = {(st.st_dev, st.st_ino): ""}
        stack = [""]
        while stack:
            rel = stack.pop()
            folder = self.root / rel if rel else self.root
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                raise LayoutError(f"{folder}: cannot read folder ({exc.strerror or exc})") from None
            if rel and (folder.resolve() in self._exclude or is_rainbench_output(folder, [e.name for e in entries])):
                log.info("%s: skipped, a folder rainbench writes (an output, not a source)", folder)
                self.outputs.append(rel)
                continue
            for entry in entries:
                if is_hidden(entry.name):
                    continue
                child = f"{rel}/{entry.name}" if rel else entry.name
                try:
                    is_dir = entry.is_dir()
                    is_file = not is_dir and entry.is_file()
                except OSError as exc:  # ELOOP: a link chain that never ends
                    self.odd[child] = f"{LINK_LOOP} ({exc.strerror or exc})"
                    continue
                if is_dir:
                    if entry.is_symlink():
                        target = os.stat(entry.path)
                        ident = (target.st_dev, target.st_ino)
                        if ident in seen:
                            where = seen[ident] or "the source root"
                            self.odd[child] = f"{LINK_LOOP} (leads to {where}, already listed)"
                            continue
                        seen[ident] = child
                    else:
                        target = entry.stat()
                        seen.setdefault((target.st_dev, target.st_ino), child)
                    self.dirs.append(child)
                    self._subdirs[rel].append(child)
                    stack.append(child)
                elif is_file:
                    self.files.append(child)
                    self._direct[rel].append(child)
                else:
                    self.odd[child] = _odd_reason(entry)

    def _index(self) -> None:
        self.files.sort()
        self.dirs.sort()
        self._images = [f for f in self.files if _suffix(f) in IMAGE_SUFFIXES]
        self._videos = [f for f in self.files if _suffix(f) in VIDEO_SUFFIXES]
        self._image_set = set(self._images)
        self._video_set = set(self._videos)

    def abspath(self, rel: str) -> Path | str:
        """Absolute path of a relative path (a URL string for a remote root)."""
        if self.remote is not None:
            return str(self.remote / rel) if rel else str(self.remote)
        return self.root / rel if rel else self.root

    def subdirs(self, rel: str = "") -> dict[str, str]:
        """Immediate sub-folders of ``rel``: lower-case name -> relative path."""
        return {name_of(d).lower(): d for d in self._subdirs.get(rel, [])}

    def direct_files(self, rel: str = "") -> list[str]:
        """Files directly in ``rel`` (not in its sub-folders), sorted."""
        return list(self._direct.get(rel, []))

    def files_under(self, rel: str) -> list[str]:
        """Files anywhere below ``rel``, sorted."""
        if not rel:
            return list(self.files)
        prefix = rel + "/"
        return [f for f in self.files if f.startswith(prefix)]

    def images(self) -> list[str]:
        """Every file whose suffix is an image suffix (``collection.images.IMAGE_SUFFIXES``), sorted."""
        return list(self._images)

    def videos(self) -> list[str]:
        """Every file whose suffix is a video suffix, sorted."""
        return list(self._videos)

    def is_image(self, rel: str) -> bool:
        """True when ``rel`` is a listed file with an image suffix."""
        return rel in self._image_set

    def is_video(self, rel: str) -> bool:
        """True when ``rel`` is a listed file with a video suffix."""
        return rel in self._video_set
