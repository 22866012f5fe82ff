"""What a source layout yields: one :class:`SourceItem` per rainy image, pair, unpaired clean image
or sampled video frame, plus the error every layout raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

LAYOUTS: tuple[str, ...] = (
    "plain",
    "paired",
    "rain100",
    "realrain1k",
    "ddn",
    "rain800",
    "spa",
    "gtrain",
    "unpaired",
    "synth",
    "video",
)
"""Every layout name :func:`collection.layouts.discover` accepts (plus ``auto``)."""

ROLES: tuple[str, ...] = ("pair", "rainy", "clean")
"""``pair``: rainy with its clean image; ``rainy``: rainy only; ``clean``: an unpaired clean image."""

Region = tuple[int, int, int, int]


class LayoutError(Exception):
    """A source folder cannot be enumerated; ``str()`` is one line naming the folder or file."""


@dataclass(frozen=True)
class SourceItem:
    """One row-to-be of the dataset, as the source layout describes it (nothing decoded yet)."""

    source: str
    """Source name (``source_name`` or the root folder's name)."""
    layout: str
    """One of :data:`LAYOUTS`; frames of a video are ``video`` whatever layout found the video."""
    role: str
    """``pair`` | ``rainy`` | ``clean`` (see :data:`ROLES`)."""
    path: str
    """Rainy file path relative to the root, POSIX separators (role ``clean``: the clean file);
    video frames: ``clip.mp4#t=12.500``."""
    file: Path
    """Absolute path of the file read for the rainy side (role ``clean``: the clean file)."""
    clean_path: str | None = None
    """Clean file path relative to the root (pairs only)."""
    clean_file: Path | None = None
    """Absolute path of the clean file (pairs only)."""
    region: Region | None = None
    """(left, top, right, bottom) crop of the decoded, upright ``file`` for the rainy side; None: whole."""
    clean_region: Region | None = None
    """Same for the clean side."""
    frame_time: float | None = None
    """Video frames: seconds from the start of the video."""
    split: str | None = None
    """Split fixed by the layout (``train``, ``test``, ``val``), else None."""
    scene: str | None = None
    """Scene the layout knows (GT-RAIN scene, DDN clean id, SPA video, video file), else None."""
    tags: dict[str, str] = field(default_factory=dict)
    """``tags`` of :func:`discover`, then layout labels (synth preset), then sidecar labels (last wins)."""

    @property
    def video_path(self) -> str:
        """The file's own relative path: ``path`` without a video frame's ``#t=`` suffix."""
        if self.frame_time is None:
            return self.path
        return self.path.rsplit("#t=", 1)[0]


def crop_region(img: Image.Image, region: Region | None) -> Image.Image:
    """Crop a decoded image to ``region`` (left, top, right, bottom); None returns the image itself."""
    if region is None:
        return img
    left, top, right, bottom = region
    if not (0 <= left < right <= img.width and 0 <= top < bottom <= img.height):
        raise ValueError(f"region {region} does not fit a {img.width}x{img.height} image")
    return img.crop(region)


@dataclass
class Listing:
    """What one layout found under a root: its items and what it read or set aside."""

    items: list[SourceItem] = field(default_factory=list)
    """Yielded items (any order; :func:`discover` sorts them)."""
    metadata: set[str] = field(default_factory=set)
    """Relative paths of files the layout read as metadata (SPA lists, synth parameters)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Relative path -> reason, for files the layout saw and does not yield."""
