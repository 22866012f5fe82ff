"""Auto-detection: which layout a source folder has, from its folder and file names alone.

rainbench's synth output and SPA list files announce themselves and win outright. The other public
layouts are checked together: exactly one must fit, two is an ambiguity the user settles with
``--layout``, none means a plain folder of photographs (or of videos).
"""

from __future__ import annotations

from .ddn import ddn_anchors
from .gtrain import has_gtrain
from .item import LayoutError
from .pairs import has_rain100, is_realrain1k, is_synth, pair_anchors
from .rain800 import looks_like_rain800
from .spa import pair_lists
from .tree import Tree
from .unpaired import has_unpaired


def candidates(tree: Tree) -> list[str]:
    """Every specific layout whose marks the tree carries (empty for a plain folder)."""
    if pair_lists(tree):
        return ["spa"]
    if is_synth(tree):
        return ["synth"]
    found = []
    anchors = pair_anchors(tree)
    if anchors and all(is_realrain1k(a) for a in anchors):
        found.append("realrain1k")
    elif anchors:
        found.append("paired")
    if ddn_anchors(tree):
        found.append("ddn")
    if has_unpaired(tree):
        found.append("unpaired")
    if has_gtrain(tree):
        found.append("gtrain")
    if has_rain100(tree):
        found.append("rain100")
    if looks_like_rain800(tree):
        found.append("rain800")
    return found


def detect(tree: Tree) -> str:
    """The one layout that fits ``tree``; LayoutError naming the folder when none or several do."""
    found = candidates(tree)
    if len(found) > 1:
        raise LayoutError(
            f"{tree.root}: ambiguous layout, looks like {' and '.join(found)}; choose one with --layout"
        )
    if found:
        return found[0]
    if tree.images():
        return "plain"
    if tree.videos():
        return "video"
    if tree.files:
        return "plain"  # only unsupported files: the pipeline quarantines each one
    raise LayoutError(f"{tree.root}: no files found")
