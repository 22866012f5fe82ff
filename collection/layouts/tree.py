"""One scan of a source folder: every non-hidden file and folder, by relative POSIX path.

Layout detection and enumeration both read this scan, so a large folder is listed once. Hidden
names (``.cache``, ``.DS_Store``, macOS ``._`` files) are not part of any source.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

from collection.images import IMAGE_SUFFIXES

from .item import LayoutError

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
"""File name suffixes (lower case) read as videos."""

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


def is_video_file(path: str | os.PathLike) -> bool:
    """True when the file name has a video suffix (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _suffix(rel: str) -> str:
    # os.path.splitext agrees with Path.suffix on these names and is ~10x cheaper on 10^6 files.
    return os.path.splitext(rel)[1].lower()


def is_hidden(name: str) -> bool:
    """True for names that are never part of a source (dot files and folders)."""
    return name.startswith(".")


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


class Tree:
    """The non-hidden files and folders under ``root``, sorted, as relative POSIX paths."""

    def __init__(self, root: str | os.PathLike):
        path = Path(root).expanduser()
        if not path.exists():
            raise LayoutError(f"{path}: no such folder")
        if not path.is_dir():
            raise LayoutError(f"{path}: not a folder (point at the folder that holds the source)")
        self.root = path.resolve()
        self.files: list[str] = []
        self.dirs: list[str] = []
        self._subdirs: dict[str, list[str]] = defaultdict(list)
        self._direct: dict[str, list[str]] = defaultdict(list)
        self._scan()

    def _scan(self) -> None:
        # Symlinked folders are followed once: the (device, inode) guard stops loops.
        seen: set[tuple[int, int]] = set()
        stack = [""]
        while stack:
            rel = stack.pop()
            folder = self.root / rel if rel else self.root
            try:
                st = folder.stat()
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                raise LayoutError(f"{folder}: cannot read folder ({exc.strerror or exc})") from None
            for entry in entries:
                if is_hidden(entry.name):
                    continue
                child = f"{rel}/{entry.name}" if rel else entry.name
                try:
                    if entry.is_dir():
                        self.dirs.append(child)
                        self._subdirs[rel].append(child)
                        stack.append(child)
                    elif entry.is_file():
                        self.files.append(child)
                        self._direct[rel].append(child)
                except OSError:  # a dangling link is neither; nothing to read
                    continue
        self.files.sort()
        self.dirs.sort()
        self._images = [f for f in self.files if _suffix(f) in IMAGE_SUFFIXES]
        self._videos = [f for f in self.files if _suffix(f) in VIDEO_SUFFIXES]
        self._image_set = set(self._images)
        self._video_set = set(self._videos)

    def abspath(self, rel: str) -> Path:
        """Absolute path of a relative path."""
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
