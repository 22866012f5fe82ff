"""The leakage report: how many rows of each (source, split) repeat a scene of another, with thumbnails.

A *cell* is one source in one split (``rain100l/test``). Two rows are linked when they share a
``dup_group`` (the near-duplicate cluster of their identity image: a pair's clean background, see
:mod:`collection.curate`). For every ordered pair of cells (A, B) the report counts the rows of A
linked to at least one other row of B, and how many of them curation removed (``duplicate``: a
dropped copy or a training-side ``leak``). A == B counts repeats inside one cell. Across splits the
kept count is zero by construction; the removed count says what ingest took out to make it so.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collection.markdown import markdown_table

MAX_EXAMPLES = 3
"""Thumbnail pairs drawn per pair of cells."""

MAX_THUMBNAIL_PAIRS = 20
"""Pairs of cells given thumbnails (the most linked first); the JSON lists them all."""

THUMB_HEIGHT = 96


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    primary = frame["primary"].fillna(False).astype(bool) if "primary" in frame else pd.Series(True, frame.index)
    rows = frame[primary & frame["status"].isin(["ok", "duplicate"]) & frame["split"].notna() & frame["dup_group"].notna()]
    rows = rows.sort_values("key", kind="stable")
    return rows.assign(cell=rows["source"].astype(str) + "/" + rows["split"].astype(str))


def summarise_leakage(frame: pd.DataFrame) -> dict[str, Any]:
    """Per cell: rows, clusters, repeats; per ordered cell pair with links: rows linked, removed, examples."""
    rows = _rows(frame)
    cells = [{"cell": cell, "rows": len(part), "clusters": int(part["dup_group"].nunique()),
              "repeats": len(part) - int(part["dup_group"].nunique())}
             for cell, part in rows.groupby("cell", sort=True)]
    links: dict[tuple[str, str], dict[str, Any]] = {}
    for _, members in rows.groupby("dup_group", sort=True):
        if len(members) < 2:
            continue
        keys, cell_of, removed = members["key"].tolist(), members["cell"].tolist(), (members["status"] == "duplicate").tolist()
        for i, key in enumerate(keys):
            partners: dict[str, str] = {}
            for j, other in enumerate(keys):
                if i != j:
                    partners.setdefault(cell_of[j], other)  # keys are sorted: the first partner per cell
            for cell, other in partners.items():
                entry = links.setdefault((cell_of[i], cell), {"a": cell_of[i], "b": cell, "rows": 0, "removed": 0,
                                                              "examples": []})
                entry["rows"] += 1
                entry["removed"] += int(removed[i])
                if len(entry["examples"]) < MAX_EXAMPLES:
                    entry["examples"].append([key, other])
    pairs = sorted(links.values(), key=lambda e: (e["a"] == e["b"], -e["rows"], e["a"], e["b"]))
    return {"cells": cells, "pairs": pairs}


def _identity_image(by_key: pd.DataFrame, key: str, raw_files: dict[str, Any]):
    """A small RGB Pillow image of a row's identity image (a pair's clean image, else its own).

    ``raw_files`` maps the escaped text of a non-UTF-8 file name back to the name on disk.
    """
    from PIL import Image

    from collection.build import image_bytes
    from collection.images import open_image

    row = by_key.loc[key]
    if row.get("role") == "pair" and isinstance(row.get("clean_key"), str) and row["clean_key"] in by_key.index:
        row = by_key.loc[row["clean_key"]]
    region = row.get("region")
    frame_time = row.get("frame_time")
    has_region = region is not None and not (isinstance(region, float) and np.isnan(region))
    has_time = frame_time is not None and not (isinstance(frame_time, float) and np.isnan(frame_time))
    if has_region or has_time:
        source: Any = io.BytesIO(image_bytes(raw_files.get(row["file"], row["file"]),
                                             tuple(region) if has_region else None,
                                             float(frame_time) if has_time else None))
    else:
        source = raw_files.get(row["file"], row["file"])
    img = open_image(source, reduce=4)
    scale = THUMB_HEIGHT / img.height
    return img.resize((max(1, round(img.width * scale)), THUMB_HEIGHT), Image.Resampling.LANCZOS)


def write_thumbnails(summary: dict[str, Any], frame: pd.DataFrame, out: Path) -> list[str]:
    """Side-by-side thumbnails of the example pairs as ``leakage/<n>.png`` under ``out``; their names."""
    from PIL import Image

    from collection.images import ImageLoadError

    folder = Path(out) / "leakage"
    made = []
    by_key = frame.set_index("key")
    for n, entry in enumerate(summary["pairs"][:MAX_THUMBNAIL_PAIRS], 1):
        strips = []
        for a, b in entry["examples"]:
            try:
                raw = frame.attrs.get("raw_files", {})
                left, right = _identity_image(by_key, a, raw), _identity_image(by_key, b, raw)
            except (OSError, ImageLoadError, KeyError):
                continue  # a file moved since the probe: the counts stand, the picture is skipped
            strip = Image.new("RGB", (left.width + right.width + 4, THUMB_HEIGHT), "white")
            strip.paste(left, (0, 0))
            strip.paste(right, (left.width + 4, 0))
            strips.append(strip)
        if not strips:
            continue
        sheet = Image.new("RGB", (max(s.width for s in strips), len(strips) * (THUMB_HEIGHT + 4) - 4), "white")
        for k, strip in enumerate(strips):
            sheet.paste(strip, (0, k * (THUMB_HEIGHT + 4)))
        folder.mkdir(parents=True, exist_ok=True)
        name = f"leakage/{n:02d}.png"
        sheet.save(Path(out) / name)
        entry["thumbnails"] = name
        made.append(name)
    return made


def leakage_markdown(summary: dict[str, Any]) -> list[str]:
    """The report's "Leakage" section."""
    lines = ["## Leakage and repeats", "",
             "Rows linked to a row of another source or split by their scene identity (a pair's clean image). "
             "Across splits every link was removed (`removed`); within one cell the repeats are listed.", ""]
    lines += markdown_table(("source/split", "rows", "scenes", "repeats"),
                            [(c["cell"], c["rows"], c["clusters"], c["repeats"]) for c in summary["cells"]],
                            align="lrrr")
    pairs = []
    for p in summary["pairs"]:
        shown = f"![{p['a']} vs {p['b']}]({p['thumbnails']})" if p.get("thumbnails") else \
            ", ".join(f"`{a}` ~ `{b}`" for a, b in p["examples"])
        pairs.append((p["a"], p["b"], p["rows"], p["removed"], shown))
    return lines + markdown_table(("rows of", "linked to", "rows", "removed", "examples"), pairs, align="llrrl",
                                  empty=("(none)", "", 0, 0, ""))
