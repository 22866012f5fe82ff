"""Source layouts: find the rainy images, clean images and video frames of a source folder.

``discover(root)`` detects the layout (or takes the one named), pairs rainy with clean files and
yields :class:`SourceItem` rows sorted by relative path. Nothing is decoded here except image
headers (Rain800) and video durations; the ingest pipeline decodes with ``collection.images``.
Every file under the root that is not yielded is reported by :func:`skipped_files` with a reason,
so the pipeline can quarantine it rather than lose it. See ``docs/layouts.md``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from .ddn import list_ddn
from .detect import detect
from .gtrain import list_gtrain
from .item import LAYOUTS, ROLES, LayoutError, Listing, SourceItem, crop_region
from .pairs import list_paired, list_rain100, list_realrain1k, list_synth
from .plain import list_plain
from .rain800 import list_rain800
from .sidecar import read_sidecar
from .spa import list_spa
from .tree import BROKEN_LINK, LINK_LOOP, NOT_A_FILE, VIDEO_SUFFIXES, Tree, text_name
from .unpaired import list_unpaired
from .video import frame_label, list_video, read_video_frame

__all__ = [
    "BROKEN_LINK",
    "LAYOUTS",
    "LINK_LOOP",
    "NOT_A_FILE",
    "ROLES",
    "UNSUPPORTED",
    "VIDEO_SUFFIXES",
    "LayoutError",
    "SourceItem",
    "Survey",
    "crop_region",
    "detect_layout",
    "discover",
    "frame_label",
    "read_sidecar",
    "read_video_frame",
    "skipped_files",
    "survey",
    "text_name",
    "unsupported_files",
]

log = logging.getLogger(__name__)

UNSUPPORTED = "unsupported format"
"""Skip reason for files whose suffix is neither an image nor a video suffix."""

_LISTERS: dict[str, Callable[[Tree, str, float], Listing]] = {
    "plain": list_plain,
    "paired": list_paired,
    "rain100": list_rain100,
    "realrain1k": list_realrain1k,
    "ddn": list_ddn,
    "rain800": list_rain800,
    "spa": list_spa,
    "gtrain": list_gtrain,
    "unpaired": list_unpaired,
    "synth": list_synth,
    "video": list_video,
}


@dataclass(frozen=True)
class Survey:
    """Everything one pass over a source found: the layout, its items, and the files set aside."""

    layout: str
    """Layout used (detected or forced)."""
    items: list[SourceItem]
    """Items sorted by relative path (video frames by time)."""
    skipped: list[tuple[Path, str]]
    """(absolute path, reason) of every other non-hidden entry under the root (broken links,
    link loops and FIFOs included), sorted."""


def detect_layout(root: str | os.PathLike) -> str:
    """The layout ``discover(root, layout="auto")`` would use; LayoutError naming the folder if none fits."""
    return detect(Tree(root))


def survey(
    root: str | os.PathLike,
    layout: str = "auto",
    source_name: str | None = None,
    tags: dict[str, str] | None = None,
    sidecar: str | os.PathLike | None = None,
    fps: float = 1.0,
    exclude: tuple[str | os.PathLike, ...] = (),
) -> Survey:
    """Detect or apply ``layout`` under ``root``; items and skipped files in one pass.

    Folders in ``exclude`` (the ingest output) and folders rainbench wrote are not entered.
    """
    if layout != "auto" and layout not in _LISTERS:
        raise LayoutError(f"unknown layout {layout!r}; choose auto or one of {', '.join(LAYOUTS)}")
    if not fps > 0:
        raise LayoutError(f"fps must be positive, got {fps}")
    tree = Tree(root, exclude)
    chosen = detect(tree) if layout == "auto" else layout
    # The name as the user typed it: a symlinked folder keeps its own name, not its target's.
    typed = tree.remote.name if tree.remote is not None else Path(root).expanduser().absolute().name
    source = source_name or (typed if typed not in ("", "..") else tree.root.name)
    listing = _LISTERS[chosen](tree, source, fps)

    labels: dict[str, dict[str, str]] = {}
    metadata = set(listing.metadata)
    if sidecar is not None:
        labels = read_sidecar(sidecar)
        inside = None if tree.remote is not None else _relative_to(Path(sidecar).resolve(), tree.root)
        if inside is not None:
            metadata.add(inside)
    base_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    items = []
    matched: set[str] = set()
    for item in listing.items:
        key = item.path if item.path in labels else item.video_path
        side = labels.get(key, {})
        if side:
            matched.add(key)
        merged = {**base_tags, **item.tags, **side}
        items.append(item if merged == item.tags else replace(item, tags=merged))
    items.sort(key=lambda i: (i.video_path, i.frame_time or 0.0))
    unmatched = [k for k in labels if k not in matched]
    if unmatched:
        log.warning("%s: %d sidecar paths match no item (first: %s)", sidecar, len(unmatched), unmatched[0])

    claimed = set(metadata)
    for item in items:
        claimed.add(item.video_path)
        if item.clean_path is not None:
            claimed.add(item.clean_path)
    skipped = []
    for rel in tree.files:
        if rel in claimed:
            continue
        if rel in listing.skipped:
            reason = listing.skipped[rel]
        elif tree.is_image(rel) or tree.is_video(rel):
            reason = f"not part of the {chosen} layout"
        else:
            reason = UNSUPPORTED
        skipped.append((tree.abspath(rel), reason))
    skipped += [(tree.abspath(rel), reason) for rel, reason in tree.odd.items()]
    skipped.sort(key=lambda s: s[0])
    return Survey(layout=chosen, items=items, skipped=skipped)


def discover(
    root: str | os.PathLike,
    layout: str = "auto",
    source_name: str | None = None,
    tags: dict[str, str] | None = None,
    sidecar: str | os.PathLike | None = None,
    fps: float = 1.0,
) -> Iterator[SourceItem]:
    """Items of the source at ``root``, sorted by relative path; errors are raised before the first item."""
    return iter(survey(root, layout, source_name, tags, sidecar, fps).items)


def skipped_files(
    root: str | os.PathLike, layout: str = "auto", *, sidecar: str | os.PathLike | None = None
) -> Iterator[tuple[Path, str]]:
    """(path, reason) of every non-hidden file under ``root`` that :func:`discover` does not yield."""
    return iter(survey(root, layout, sidecar=sidecar).skipped)


def unsupported_files(
    root: str | os.PathLike, layout: str = "auto", *, sidecar: str | os.PathLike | None = None
) -> Iterator[Path]:
    """Non-hidden files under ``root`` that are neither images nor videos (nor layout metadata)."""
    return (path for path, reason in skipped_files(root, layout, sidecar=sidecar) if reason == UNSUPPORTED)


def _relative_to(path: Path, root: Path) -> str | None:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return None
