"""Rain800 (ID-CGAN): each file holds the clean image on the LEFT half and the rainy image on the RIGHT.

That is the order of the published Rain800 files (``training/``, ``test_syn/``). ``test_nature/``
holds real rainy photographs without ground truth: whole files, role ``rainy``.
"""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from .item import LayoutError, Listing, SourceItem
from .tree import Tree, parent_of, split_of_path

_NAME = re.compile(r"rain[-_ ]?800", re.IGNORECASE)
UNPAIRED_FOLDERS = frozenset({"test_nature"})
"""Rain800 folders of single (not side-by-side) rainy photographs."""

_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that turn the stored image by 90 degrees


SUBFOLDERS = frozenset({"training", "test_syn", "test_nature"})
"""Folder names of the published Rain800 release."""


def looks_like_rain800(tree: Tree) -> bool:
    """Conservative: the root or a folder below is named like ``rain800``, or holds ``test_syn``;
    or the root is a Rain800 sub-folder (``training``, ...) of a folder named like ``rain800``."""
    names = [tree.root.name] + [d.rsplit("/", 1)[-1] for d in tree.dirs]
    if any(_NAME.search(n) for n in names) or any(n.lower() == "test_syn" for n in names):
        return True
    return tree.root.name.lower() in SUBFOLDERS and bool(_NAME.search(tree.root.parent.name))


def upright_size(path: Path) -> tuple[int, int]:
    """Width and height after EXIF orientation, from the header alone (no pixel decode)."""
    from collection.storage import open_source

    with open_source(path) as handle, Image.open(handle) as img:
        width, height = img.size
        try:
            orientation = int(img.getexif().get(0x0112, 1))
        except (OSError, ValueError, TypeError, SyntaxError):  # malformed EXIF: the loader reads it as upright
            orientation = 1
    return (height, width) if orientation in _SWAPS_AXES else (width, height)


def list_rain800(tree: Tree, source: str, fps: float) -> Listing:
    """Side-by-side pairs split at half width: clean = left half, rainy = right half."""
    listing = Listing()
    for f in tree.images():
        folder = parent_of(f)
        base = {"source": source, "layout": "rain800", "path": f, "file": tree.abspath(f), "split": split_of_path(folder)}
        if any(p.lower() in UNPAIRED_FOLDERS for p in folder.split("/")):
            listing.items.append(SourceItem(role="rainy", **base))
            continue
        try:
            width, height = upright_size(tree.abspath(f))
        except (OSError, ValueError, SyntaxError, EOFError):
            # Unreadable header: yield the whole file so the pipeline's decode quarantines it with the reason.
            listing.items.append(SourceItem(role="rainy", **base))
            continue
        if width % 2:
            listing.skipped[f] = f"width {width} is odd: not a side-by-side clean|rainy Rain800 image"
            continue
        half = width // 2
        listing.items.append(
            SourceItem(
                role="pair",
                clean_path=f,
                clean_file=tree.abspath(f),
                region=(half, 0, width, height),
                clean_region=(0, 0, half, height),
                **base,
            )
        )
    if not listing.items and not listing.skipped:
        raise LayoutError(f"{tree.root}: no images found for the rain800 layout")
    return listing
