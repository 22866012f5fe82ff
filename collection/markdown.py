"""The one Markdown table writer (dataset card, curation report, leaderboards).

Cells are escaped so that a ``|`` in a file name, a reason or a method label stays inside its
cell, and line breaks are folded to spaces: a cell never breaks the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def escape_cell(value: Any) -> str:
    """``value`` as the text of one Markdown table cell (``|`` escaped, newlines folded)."""
    return " ".join(str(value).replace("|", "\\|").split())


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, align: str = "",
                   empty: Sequence[Any] | None = None) -> list[str]:
    """The lines of a Markdown table, then a blank line.

    ``align`` has one letter per column, ``l`` or ``r`` (default all left); ``empty`` is the row
    shown when there are no rows (none: a header-only table).
    """
    align = align or "l" * len(header)
    if len(align) != len(header):
        raise ValueError(f"align {align!r} has {len(align)} letters for {len(header)} columns")
    rules = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(escape_cell(h) for h in header) + " |", "|" + "|".join(rules) + "|"]
    body = [list(row) for row in rows]
    if not body and empty is not None:
        body = [list(empty)]
    for row in body:
        if len(row) != len(header):
            raise ValueError(f"table row has {len(row)} cells for {len(header)} columns: {row!r}")
        lines.append("| " + " | ".join(escape_cell(c) for c in row) + " |")
    return lines + [""]
