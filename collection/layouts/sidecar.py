"""Per-file labels from a CSV or JSONL sidecar keyed by the file's path relative to the source root.

CSV: a header row with a ``path`` column; every other column is a tag (empty cells add nothing).
JSONL: one JSON object per line with a ``path`` key; every other non-null value is a tag.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .item import LayoutError

PATH_KEY = "path"


def normalise_key(path: str) -> str:
    """Relative path as the layouts spell it: POSIX separators, no leading ``./``."""
    key = path.strip().replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key


def read_sidecar(sidecar: str | Path) -> dict[str, dict[str, str]]:
    """Read a sidecar file into ``{relative path: {tag: value}}``; LayoutError names file and line."""
    path = Path(sidecar)
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".jsonl", ".ndjson"}:
        raise LayoutError(f"{path}: sidecar must be .csv or .jsonl, got {suffix or 'no suffix'!r}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LayoutError(f"{path}: sidecar not found") from None
    except UnicodeDecodeError as exc:
        raise LayoutError(f"{path}: sidecar is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise LayoutError(f"{path}: cannot read sidecar ({exc.strerror or exc})") from None
    rows = _csv_rows(path, text) if suffix == ".csv" else _jsonl_rows(path, text)
    labels: dict[str, dict[str, str]] = {}
    for line, key, tags in rows:
        key = normalise_key(key)
        if not key:
            raise LayoutError(f"{path}:{line}: empty {PATH_KEY!r}")
        if key in labels:
            raise LayoutError(f"{path}:{line}: {key!r} is listed twice")
        labels[key] = tags
    return labels


def _csv_rows(path: Path, text: str):
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise LayoutError(f"{path}:1: empty sidecar, expected a header row with a {PATH_KEY!r} column") from None
    except csv.Error as exc:
        raise LayoutError(f"{path}:1: malformed CSV ({exc})") from None
    header = [h.strip() for h in header]
    if PATH_KEY not in header:
        raise LayoutError(f"{path}:1: header has no {PATH_KEY!r} column (columns: {', '.join(header)})")
    if len(set(header)) != len(header) or "" in header:
        raise LayoutError(f"{path}:1: header has empty or repeated column names")
    at = header.index(PATH_KEY)
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise LayoutError(f"{path}:{line}: {len(cells)} fields, the header has {len(header)}")
            tags = {h: c.strip() for h, c in zip(header, cells) if h != PATH_KEY and c.strip()}
            yield line, cells[at], tags
    except csv.Error as exc:
        raise LayoutError(f"{path}:{reader.line_num}: malformed CSV ({exc})") from None


def _jsonl_rows(path: Path, text: str):
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LayoutError(f"{path}:{line}: malformed JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise LayoutError(f"{path}:{line}: expected a JSON object, got {type(record).__name__}")
        key = record.get(PATH_KEY)
        if not isinstance(key, str):
            raise LayoutError(f"{path}:{line}: missing or non-string {PATH_KEY!r}")
        tags = {}
        for name, value in record.items():
            if name == PATH_KEY or value is None:
                continue
            if isinstance(value, (dict, list)):
                raise LayoutError(f"{path}:{line}: tag {name!r} must be a string or number")
            tags[name] = value if isinstance(value, str) else json.dumps(value)
        yield line, key, tags
