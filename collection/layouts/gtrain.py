"""GT-RAIN: ``<scene>-R-###.png`` rainy frames with the scene's ``<scene>-C-000.png`` clean frame."""

from __future__ import annotations

import re

from .item import LayoutError, Listing, SourceItem
from .pairs import NO_PARTNER
from .tree import Tree, parent_of, split_of_path, stem_of

_NAME = re.compile(r"^(?P<scene>.+)-(?P<kind>[RC])-(?P<index>\d+)$")


def gtrain_groups(tree: Tree) -> dict[tuple[str, str], dict[str, list[tuple[int, str]]]]:
    """``{(folder, scene): {"R": [(index, file)], "C": [...]}}`` for every GT-RAIN-named image."""
    groups: dict[tuple[str, str], dict[str, list[tuple[int, str]]]] = {}
    for f in tree.images():
        m = _NAME.match(stem_of(f))
        if m:
            group = groups.setdefault((parent_of(f), m["scene"]), {"R": [], "C": []})
            group[m["kind"]].append((int(m["index"]), f))
    return groups


def has_gtrain(tree: Tree) -> bool:
    """True when some scene has both a rainy (``-R-``) and a clean (``-C-``) frame."""
    return any(g["R"] and g["C"] for g in gtrain_groups(tree).values())


def list_gtrain(tree: Tree, source: str, fps: float) -> Listing:
    """GT-RAIN pairs; the clean frame is the scene's lowest ``-C-`` index; scene = ``<scene>``."""
    listing = Listing()
    for (folder, scene), group in sorted(gtrain_groups(tree).items()):
        cleans = sorted(group["C"])
        c = cleans[0][1] if cleans else None
        for _, extra in cleans[1:]:
            listing.skipped[extra] = f"extra clean frame; scene {scene} pairs with {stem_of(c)}"
        if c and not group["R"]:
            listing.skipped[c] = NO_PARTNER
        for _, r in sorted(group["R"]):
            listing.items.append(
                SourceItem(
                    source=source,
                    layout="gtrain",
                    role="pair" if c else "rainy",
                    path=r,
                    file=tree.abspath(r),
                    clean_path=c,
                    clean_file=tree.abspath(c) if c else None,
                    split=split_of_path(folder),
                    scene=scene,
                )
            )
    if not listing.items:
        raise LayoutError(f"{tree.root}: no <scene>-R-###.png files found")
    for f in tree.images():
        if not _NAME.match(stem_of(f)):
            listing.skipped[f] = "not a <scene>-R-### / <scene>-C-### file of the gtrain layout"
    return listing
