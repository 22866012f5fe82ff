"""CycleGAN / NLCL unpaired folders: ``trainA``/``testA`` rainy, ``trainB``/``testB`` clean."""

from __future__ import annotations

import re

from .item import LayoutError, Listing, SourceItem
from .tree import Tree, name_of

_FOLDER = re.compile(r"^(train|test|val)([ab])$", re.IGNORECASE)


def unpaired_folders(tree: Tree) -> list[tuple[str, str, str]]:
    """``(folder, split, side)`` for every ``trainA``-style folder; side ``A`` is rainy, ``B`` clean."""
    found = []
    for d in tree.dirs:
        m = _FOLDER.match(name_of(d))
        if m:
            found.append((d, m.group(1).lower(), m.group(2).upper()))
    return found


def has_unpaired(tree: Tree) -> bool:
    """True when there is at least one ``*A`` and one ``*B`` folder."""
    sides = {side for _, _, side in unpaired_folders(tree)}
    return sides == {"A", "B"}


def list_unpaired(tree: Tree, source: str, fps: float) -> Listing:
    """A images as role ``rainy``, B images as role ``clean``; split from the folder name."""
    folders = unpaired_folders(tree)
    if not folders:
        raise LayoutError(f"{tree.root}: no trainA/trainB/testA/testB folders found")
    listing = Listing()
    for folder, split, side in folders:
        for f in tree.files_under(folder):
            if tree.is_image(f):
                listing.items.append(
                    SourceItem(
                        source=source,
                        layout="unpaired",
                        role="rainy" if side == "A" else "clean",
                        path=f,
                        file=tree.abspath(f),
                        split=split,
                    )
                )
    if not listing.items:
        raise LayoutError(f"{tree.root}: the trainA/trainB/testA/testB folders hold no images")
    return listing
