"""Plain folders of photographs (recursive), videos among them sampled as frames."""

from __future__ import annotations

from .item import LayoutError, Listing, SourceItem
from .tree import Tree
from .video import video_items


def list_plain(tree: Tree, source: str, fps: float) -> Listing:
    """Every image file as role ``rainy`` (decode decides if it is really an image); videos as frames."""
    if not tree.files:
        raise LayoutError(f"{tree.root}: no files found")
    listing = Listing()
    for rel in tree.images():
        listing.items.append(SourceItem(source=source, layout="plain", role="rainy", path=rel, file=tree.abspath(rel)))
    for rel in tree.videos():
        listing.items.extend(video_items(tree, source, rel, fps))
    return listing
