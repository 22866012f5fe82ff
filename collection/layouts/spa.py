"""SPA-Data list files: a ``.txt`` with one line per pair, ``rainy_path gt_path``.

Paths are relative to the list file's folder (a leading ``/`` is read as that folder, as in the
published lists). Paths may hold spaces: a line is split after the first image suffix.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from collection.images import IMAGE_SUFFIXES

from .item import LayoutError, Listing, SourceItem
from .tree import Tree, parent_of, split_of_name, split_of_path, stem_of

_SUFFIX = "|".join(re.escape(s[1:]) for s in sorted(IMAGE_SUFFIXES, key=len, reverse=True))
_LINE = re.compile(rf"^(?P<rainy>.+?\.(?:{_SUFFIX}))\s+(?P<clean>.+\.(?:{_SUFFIX}))$", re.IGNORECASE)
_SCENE = re.compile(r"^\d+$")


def parse_line(line: str) -> tuple[str, str] | None:
    """``(rainy, clean)`` of one list line, or None when it is not two image paths."""
    m = _LINE.match(line.strip())
    return (m["rainy"], m["clean"]) if m else None


def _content_lines(path: Path):
    from collection.storage import open_source

    with open_source(path, "r") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if text and not text.startswith("#"):
                yield number, text


def is_pair_list(path: Path) -> bool:
    """True when the first content line of a ``.txt`` file is two image paths."""
    try:
        for _, text in _content_lines(path):
            return parse_line(text) is not None
    except (OSError, UnicodeDecodeError):
        return False
    return False


def pair_lists(tree: Tree) -> list[str]:
    """Relative paths of the ``.txt`` files below the root that are SPA pair lists."""
    return [f for f in tree.files if f.lower().endswith(".txt") and is_pair_list(tree.abspath(f))]


def _relative(tree: Tree, list_dir: str, entry: str) -> str:
    entry = entry.replace("\\", "/").lstrip("/")
    joined = os.path.normpath(os.path.join(list_dir, entry)) if list_dir else os.path.normpath(entry)
    return Path(joined).as_posix()


def scene_of(rel: str) -> str:
    """SPA scene: the first all-digit folder of the rainy path (the video id), else its folder."""
    for part in rel.split("/")[:-1]:
        if _SCENE.match(part):
            return part
    return parent_of(rel) or stem_of(rel)


def list_spa(tree: Tree, source: str, fps: float) -> Listing:
    """One pair per list line; split from the list's name (``real_test_1000.txt`` -> test) or folders."""
    lists = pair_lists(tree)
    if not lists:
        raise LayoutError(f"{tree.root}: no SPA list file (.txt with 'rainy_path gt_path' lines) found")
    listing = Listing(metadata=set(lists))
    seen: set[str] = set()
    for list_rel in lists:
        list_path = tree.abspath(list_rel)
        list_split = split_of_name(stem_of(list_rel))
        try:
            lines = list(_content_lines(list_path))
        except (OSError, UnicodeDecodeError) as exc:
            raise LayoutError(f"{list_path}: cannot read list ({exc})") from None
        for number, text in lines:
            parsed = parse_line(text)
            if parsed is None:
                raise LayoutError(f"{list_path}:{number}: expected 'rainy_path gt_path', got {text!r}")
            rainy = _relative(tree, parent_of(list_rel), parsed[0])
            clean = _relative(tree, parent_of(list_rel), parsed[1])
            if rainy in seen:  # the same pair in two lists (or twice in one) is one item
                continue
            seen.add(rainy)
            listing.items.append(
                SourceItem(
                    source=source,
                    layout="spa",
                    role="pair",
                    path=rainy,
                    file=tree.abspath(rainy),
                    clean_path=clean,
                    clean_file=tree.abspath(clean),
                    split=list_split or split_of_path(parent_of(rainy)),
                    scene=scene_of(rainy),
                )
            )
    if not listing.items:
        raise LayoutError(f"{tree.root}: the SPA list files hold no pairs")
    listed = seen | {i.clean_path for i in listing.items}
    for f in tree.images():
        if f not in listed:
            listing.skipped[f] = "not listed in any SPA list file"
    return listing
