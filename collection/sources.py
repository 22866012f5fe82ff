"""Ingest sources: what a ``SOURCE`` argument names, and the one survey of every source.

A source is a local folder or an fsspec URL (``s3://bucket/rain``), optionally named
(``NAME=PATH``). :func:`discover` surveys each with its layout (:mod:`collection.layouts`) into
rows (one per dataset row to be) and file entries (one per distinct file side to probe), and
accounts for every file it sets aside.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collection.storage import Location, is_url

Progress = Callable[[str, int, "int | None"], None]


@dataclass(frozen=True)
class SourceSpec:
    """One source folder and how to read it."""

    path: Path | str
    """A local folder, or an fsspec URL (``s3://bucket/rain``, ``memory://src``)."""
    name: str | None = None
    layout: str = "auto"
    tags: dict[str, str] = field(default_factory=dict)
    sidecar: Path | None = None

    @classmethod
    def parse(cls, text: str, **kwargs: Any) -> SourceSpec:
        """``PATH`` or ``NAME=PATH`` (a name without path separators before the first ``=``)."""
        name, sep, path = text.partition("=")
        if sep and name and "/" not in name and os.sep not in name and ":" not in name and not Path(text).exists():
            return cls(path=_source_path(path), name=name, **kwargs)
        return cls(path=_source_path(text), **kwargs)


def _source_path(text: str) -> Path | str:
    """A URL stays text (``Path`` would fold ``s3://`` into ``s3:/``); a ``file://`` URL is its local path."""
    if is_url(text):
        where = Location(text)
        return Path(where.path) if where.local else text
    return Path(text)


def _entry_key(source: str, path: str, region: Any) -> str:
    """The manifest key of one file side: ``SOURCE/PATH``, with a crop region when there is one."""
    from collection.layouts import text_name

    return text_name(f"{source}/{path}" + (f"#region={','.join(map(str, region))}" if region else ""))


def _skip_reason(text: str) -> str:
    """The manifest reason code of a layout's skip reason."""
    from collection import layouts

    if text.startswith(layouts.BROKEN_LINK):
        return "broken_link"
    if text.startswith(layouts.LINK_LOOP):
        return "link_loop"
    if text == layouts.UNSUPPORTED or text.startswith(layouts.NOT_A_FILE):
        return "unsupported"
    return "not_in_layout"


def _relative(path: Path | str, root: Path | str) -> str:
    """``path`` relative to the source root, POSIX style (the path itself if it lies elsewhere)."""
    if is_url(root):  # skipped entries are named as the survey's Location spells them
        prefix = str(Location(root)).rstrip("/") + "/"
        return str(path)[len(prefix):] if str(path).startswith(prefix) else str(path)
    path = Path(path)
    for base in (root.resolve(), root.absolute()):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            continue
    return path.as_posix()


def discover(sources: list[SourceSpec], fps: float, progress: Progress, out: Path | str | None = None):
    """Items and file entries (one per distinct file side to probe) of every source.

    The output folder is never read as a source (an ``--out`` inside a source would otherwise
    ingest its own report). File names that are not UTF-8 are kept, escaped in ``key`` and ``path``.
    """
    from collection import layouts

    rows, entries, skipped = [], {}, []
    for n, spec in enumerate(sources, 1):
        root = spec.path if is_url(spec.path) else Path(spec.path)
        name = spec.name or (Location(root).name if is_url(root) else root.resolve().name)
        found = layouts.survey(root, spec.layout, name, spec.tags, spec.sidecar, fps,
                               exclude=(out,) if out is not None else ())
        for item in found.items:
            rainy_key = clean_key = None
            if item.role in ("pair", "rainy"):
                rainy_key = _entry_key(item.source, item.path, item.region)
                entries.setdefault(rainy_key, dict(side="rainy", path=layouts.text_name(item.path), file=str(item.file),
                                                   region=item.region, frame_time=item.frame_time, item=item))
            if item.role == "pair":
                clean_key = _entry_key(item.source, item.clean_path, item.clean_region)
                entries.setdefault(clean_key, dict(side="clean", path=layouts.text_name(item.clean_path),
                                                   file=str(item.clean_file),
                                                   region=item.clean_region, frame_time=None, item=item))
            if item.role == "clean":
                clean_key = _entry_key(item.source, item.path, item.region)
                entries.setdefault(clean_key, dict(side="clean", path=layouts.text_name(item.path), file=str(item.file),
                                                   region=item.region, frame_time=item.frame_time, item=item))
            rows.append(dict(item=item, rainy_key=rainy_key, clean_key=clean_key))
        for path, reason in found.skipped:
            rel = layouts.text_name(_relative(path, root))
            skipped.append(dict(key=f"{name}/{rel}", source=name, layout=found.layout, path=rel, file=layouts.text_name(str(path)),
                                status="quarantined", detail=layouts.text_name(f"{path}: {reason}"),
                                reason=_skip_reason(reason)))
        progress("discover", n, len(sources))
    return rows, entries, skipped
