"""Layouts of rainy/clean pairs matched by file name: generic pair folders, RealRain-1k, rainbench's
own synth output, and Rain100L/H ``rain-001.png`` / ``norain-001.png`` in one folder."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from .item import LayoutError, Listing, SourceItem
from .tree import Tree, name_of, parent_of, split_of_name, split_of_path, stem_of

PAIR_FOLDERS: tuple[tuple[str, str], ...] = (
    ("rain", "norain"),
    ("input", "target"),
    ("rainy", "clean"),
    ("inputcrop", "cleancrop"),
    ("rainy", "norain"),
)
"""(rainy folder, clean folder) names, compared case-insensitively, that make a generic pair folder."""

NO_PARTNER = "clean image with no rainy partner"


@dataclass(frozen=True)
class Anchor:
    """A folder holding a rainy folder and its clean twin."""

    folder: str
    rainy: str
    clean: str


def pair_anchors(tree: Tree) -> list[Anchor]:
    """Every folder (root included) with one of :data:`PAIR_FOLDERS`; two kinds in one folder is an error."""
    anchors = []
    for folder in [""] + tree.dirs:
        subs = tree.subdirs(folder)
        found = [(r, c) for r, c in PAIR_FOLDERS if r in subs and c in subs]
        if len(found) > 1:
            names = ", ".join(f"{r}/+{c}/" for r, c in found)
            raise LayoutError(f"{tree.abspath(folder)}: ambiguous pair folders ({names}); keep one kind")
        if found:
            r, c = found[0]
            anchors.append(Anchor(folder, subs[r], subs[c]))
    return anchors


def is_realrain1k(anchor: Anchor) -> bool:
    """RealRain-1k shape: ``input/`` + ``target/`` inside a folder naming a split (``train``, ``test``)."""
    return name_of(anchor.rainy).lower() == "input" and split_of_name(name_of(anchor.folder)) is not None


def is_synth(tree: Tree) -> bool:
    """rainbench synth output: ``rainy/`` + ``clean/`` at the root with per-image parameter JSON."""
    subs = tree.subdirs("")
    if "rainy" not in subs or "clean" not in subs:
        return False
    return "params" in subs or any(f.lower().endswith(".json") for f in tree.direct_files(subs["rainy"]))


_LOOSE_PREFIX = re.compile(r"^(?:no[-_ ]?)?rainy?(?:[-_ ]+|(?=\d))")
_LOOSE_SUFFIX = re.compile(r"[-_ ](?:rain|rainy|norain|clean|gt|target|input)$")


def loose_key(key: str) -> str:
    """A name key with rain/clean markers dropped: ``rain-001`` and ``norain-1`` both become ``1``."""
    stem = name_of(key).lower()
    stem = _LOOSE_SUFFIX.sub("", stem)
    stem = _LOOSE_PREFIX.sub("", stem) or stem
    if stem.isdigit():
        stem = str(int(stem))
    folder = parent_of(key)
    return f"{folder}/{stem}" if folder else stem


def match_by_name(
    rainy: list[str], clean: list[str], rainy_dir: str, clean_dir: str
) -> tuple[list[tuple[str, str | None]], dict[str, str]]:
    """Pair files of two folders on their path below the folder without suffix, then on :func:`loose_key`.

    Returns ``(rainy, clean or None)`` for every rainy file and ``{clean: reason}`` for clean files
    left over. Several rainy files may share one clean file; a clean name given twice (``x.png``,
    ``x.jpg``) pairs by its first file in sorted order.
    """
    skipped: dict[str, str] = {}

    def key_of(rel: str, folder: str) -> str:
        inner = rel[len(folder) + 1 :] if folder else rel
        return f"{parent_of(inner)}/{stem_of(inner)}" if "/" in inner else stem_of(inner)

    exact: dict[str, str] = {}
    for c in clean:
        k = key_of(c, clean_dir)
        if k in exact:
            skipped[c] = f"clean name taken twice; {name_of(exact[k])} is used"
        else:
            exact[k] = c
    loose: dict[str, list[str]] = {}
    for k, c in exact.items():
        loose.setdefault(loose_key(k), []).append(c)
    pairs: list[tuple[str, str | None]] = []
    used: set[str] = set()
    for r in rainy:
        k = key_of(r, rainy_dir)
        partner = exact.get(k)
        if partner is None:
            candidates = loose.get(loose_key(k), [])
            partner = candidates[0] if len(candidates) == 1 else None
        pairs.append((r, partner))
        if partner is not None:
            used.add(partner)
    for c in exact.values():
        if c not in used:
            skipped[c] = NO_PARTNER
    return pairs, skipped


def _images(tree: Tree, folder: str) -> list[str]:
    return [f for f in tree.files_under(folder) if tree.is_image(f)]


def _pairs_listing(
    tree: Tree, source: str, layout: str, anchors: list[Anchor], *, fixed_split: bool = True
) -> Listing:
    listing = Listing()
    for anchor in anchors:
        pairs, skipped = match_by_name(
            _images(tree, anchor.rainy), _images(tree, anchor.clean), anchor.rainy, anchor.clean
        )
        listing.skipped.update(skipped)
        split = split_of_path(anchor.folder) if fixed_split else None
        for r, c in pairs:
            listing.items.append(
                SourceItem(
                    source=source,
                    layout=layout,
                    role="pair" if c else "rainy",
                    path=r,
                    file=tree.abspath(r),
                    clean_path=c,
                    clean_file=tree.abspath(c) if c else None,
                    split=split,
                )
            )
    if not listing.items:
        raise LayoutError(f"{tree.root}: no {layout} images found")
    return listing


def list_paired(tree: Tree, source: str, fps: float) -> Listing:
    """Generic pair folders (:data:`PAIR_FOLDERS`) anywhere below the root; split from a train/test folder above."""
    anchors = pair_anchors(tree)
    if not anchors:
        names = ", ".join(f"{r}/+{c}/" for r, c in PAIR_FOLDERS)
        raise LayoutError(f"{tree.root}: no pair folders found (expected one of {names})")
    return _pairs_listing(tree, source, "paired", anchors)


def list_realrain1k(tree: Tree, source: str, fps: float) -> Listing:
    """RealRain-1k: ``{train,test}/{input,target}``, possibly under ``RealRain-1k-H``/``-L``; split from the folder."""
    anchors = [a for a in pair_anchors(tree) if is_realrain1k(a)]
    if not anchors:
        raise LayoutError(f"{tree.root}: no train/input + train/target (or test/...) folders found")
    return _pairs_listing(tree, source, "realrain1k", anchors)


def list_synth(tree: Tree, source: str, fps: float) -> Listing:
    """rainbench synth output: ``rainy/`` + ``clean/``, preset of ``params/NAME.json`` as tag ``rain_kind``."""
    subs = tree.subdirs("")
    if "rainy" not in subs or "clean" not in subs:
        raise LayoutError(f"{tree.root}: synth output needs rainy/ and clean/ folders")
    anchor = Anchor("", subs["rainy"], subs["clean"])
    listing = _pairs_listing(tree, source, "synth", [anchor], fixed_split=False)
    params = {}
    for folder in (subs.get("params"), anchor.rainy):
        if folder is None:
            continue
        for f in tree.direct_files(folder):
            if f.lower().endswith(".json"):
                params.setdefault(stem_of(f), f)
                listing.metadata.add(f)
    items = []
    for item in listing.items:
        tags = dict(item.tags)
        sidecar = params.get(stem_of(item.path))
        if sidecar is not None:
            preset = _preset(tree, sidecar)
            if preset is not None:
                tags["rain_kind"] = preset
        items.append(replace(item, tags=tags))
    listing.items = items
    return listing


def _preset(tree: Tree, rel: str) -> str | None:
    path = tree.abspath(rel)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LayoutError(f"{path}: unreadable synth parameters ({exc})") from None
    preset = record.get("preset") if isinstance(record, dict) else None
    return None if preset is None else str(preset)


_RAIN100 = re.compile(r"^(no)?rain[-_]?(\d+)$", re.IGNORECASE)


def rain100_groups(tree: Tree) -> tuple[dict[str, list[str]], dict[tuple[str, int], str]]:
    """Rain100 names: ``{folder: [rain-K files]}`` and ``{(folder, K): norain-K file}`` (first by name)."""
    rainy: dict[str, list[str]] = {}
    clean: dict[tuple[str, int], str] = {}
    for f in tree.images():
        m = _RAIN100.match(stem_of(f))
        if not m:
            continue
        if m.group(1):
            clean.setdefault((parent_of(f), int(m.group(2))), f)
        else:
            rainy.setdefault(parent_of(f), []).append(f)
    return rainy, clean


def _rain100_partner(f: str, clean: dict[tuple[str, int], str]) -> str | None:
    k = int(_RAIN100.match(stem_of(f)).group(2))
    folder = parent_of(f)
    # Some copies keep norain-K beside the rainy folder rather than in it.
    return clean.get((folder, k)) or (clean.get((parent_of(folder), k)) if folder else None)


def has_rain100(tree: Tree) -> bool:
    """True when some ``rain-K`` has a ``norain-K`` in its folder or the folder above."""
    rainy, clean = rain100_groups(tree)
    return any(_rain100_partner(f, clean) for files in rainy.values() for f in files)


def list_rain100(tree: Tree, source: str, fps: float) -> Listing:
    """Rain100L/H: ``rain-K.png`` with ``norain-K.png`` (K compared as a number) in one folder."""
    rainy, clean = rain100_groups(tree)
    listing = Listing()
    used = set()
    for files in rainy.values():
        for f in files:
            c = _rain100_partner(f, clean)
            used.add(c)
            listing.items.append(
                SourceItem(
                    source=source,
                    layout="rain100",
                    role="pair" if c else "rainy",
                    path=f,
                    file=tree.abspath(f),
                    clean_path=c,
                    clean_file=tree.abspath(c) if c else None,
                    split=split_of_path(parent_of(f)),
                )
            )
    for c in clean.values():
        if c not in used:
            listing.skipped[c] = NO_PARTNER
    for f in tree.images():
        if not _RAIN100.match(stem_of(f)) and f not in listing.skipped:
            listing.skipped[f] = "not a rain-K / norain-K file of the rain100 layout"
    if not listing.items:
        raise LayoutError(f"{tree.root}: no rain-K.png / norain-K.png files found")
    return listing
