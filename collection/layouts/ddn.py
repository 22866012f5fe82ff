"""DDN / Rain1400: ``ground_truth/N.jpg`` with ``rainy_image/N_1.jpg ... N_14.jpg`` (one clean, many rainy)."""

from __future__ import annotations

from .item import LayoutError, Listing, SourceItem
from .pairs import NO_PARTNER
from .tree import Tree, split_of_path, stem_of

CLEAN_FOLDER = "ground_truth"
RAINY_FOLDER = "rainy_image"


def ddn_anchors(tree: Tree) -> list[str]:
    """Folders (root included) holding both ``ground_truth/`` and ``rainy_image/``."""
    return [d for d in [""] + tree.dirs if {CLEAN_FOLDER, RAINY_FOLDER} <= tree.subdirs(d).keys()]


def clean_id(rainy_stem: str) -> str:
    """Clean image id of a DDN rainy name: ``12_3`` -> ``12`` (the last ``_`` part is the rain variant)."""
    return rainy_stem.rsplit("_", 1)[0] if "_" in rainy_stem else rainy_stem


def list_ddn(tree: Tree, source: str, fps: float) -> Listing:
    """DDN pairs; scene is the clean id, prefixed by the folder above when there are several sets."""
    anchors = ddn_anchors(tree)
    if not anchors:
        raise LayoutError(f"{tree.root}: no {CLEAN_FOLDER}/ + {RAINY_FOLDER}/ folders found")
    listing = Listing()
    for anchor in anchors:
        subs = tree.subdirs(anchor)
        clean = {}
        for f in tree.files_under(subs[CLEAN_FOLDER]):
            if tree.is_image(f):
                clean.setdefault(stem_of(f), f)
        used = set()
        split = split_of_path(anchor)
        for f in tree.files_under(subs[RAINY_FOLDER]):
            if not tree.is_image(f):
                continue
            n = clean_id(stem_of(f))
            c = clean.get(n)
            used.add(c)
            listing.items.append(
                SourceItem(
                    source=source,
                    layout="ddn",
                    role="pair" if c else "rainy",
                    path=f,
                    file=tree.abspath(f),
                    clean_path=c,
                    clean_file=tree.abspath(c) if c else None,
                    split=split,
                    # training/1 and testing/1 are different photographs: keep their scenes apart.
                    scene=f"{anchor}/{n}" if anchor else n,
                )
            )
        for c in clean.values():
            if c not in used:
                listing.skipped[c] = NO_PARTNER
    if not listing.items:
        raise LayoutError(f"{tree.root}: no images in {RAINY_FOLDER}/")
    return listing
