"""``--format table|csv|json|md`` for the listing verbs (``methods``, ``metric-weights list``, ``leaderboard``).

``table`` is plain text for a terminal: one line per row, fitted to the terminal's width (80
columns when piped) without breaking a word across lines: long cells are cut at a word boundary
and end in ``…``, and when that is not enough the least important columns are left out (named
on stderr). ``csv``, ``json`` and ``md`` always carry every column in full.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from collection.markdown import markdown_table

FORMATS = ("table", "csv", "json", "md")
ELLIPSIS = "…"
GAP = "  "


@dataclass(frozen=True)
class Column:
    """One column of a listing: the row key, its title, and how the terminal table may shrink it."""

    key: str
    title: str
    drop: int = 0
    """Drop order when the table is too wide: higher goes first; 0 is never dropped."""
    shrink: bool = False
    """May be cut (at a word boundary, with an ellipsis) to fit the width."""
    right: bool = False
    """Right-aligned (numbers)."""
    short: Callable[[Any], str] | None = None
    """The cell's abbreviated text in the terminal table (the other formats keep the full value)."""


def format_option(func: Callable) -> Callable:
    """Add ``--format table|csv|json|md`` (parameter ``fmt``)."""
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                        help="Listing format: table (fits the terminal, abbreviated), csv, json or md (full text).")(func)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return " ".join(str(value).split())  # one line: newlines and runs of spaces become one space


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut after a whole word and marked with an ellipsis."""
    if len(text) <= width:
        return text
    words = text.split(" ")
    kept = ""
    for word in words:
        candidate = f"{kept} {word}" if kept else word
        if len(candidate) + 1 > width:
            break
        kept = candidate
    if not kept:  # the first word alone is too long: its abbreviation
        return text[: max(0, width - 1)] + ELLIPSIS
    return kept.rstrip(",;:") + ELLIPSIS


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], width: int | None = None,
          title: str | None = None) -> tuple[str, list[str]]:
    """The terminal table fitted to ``width`` (default: the terminal's) and the titles of columns left out."""
    width = width or shutil.get_terminal_size((80, 24)).columns
    cells = {c.key: [c.short(r.get(c.key)) if c.short else _text(r.get(c.key)) for r in rows] for c in columns}
    shown = list(columns)
    dropped: list[str] = []

    def natural(c: Column) -> int:
        return max([len(c.title), *map(len, cells[c.key])])

    def floor(c: Column) -> int:
        return max(len(c.title), min(natural(c), 12)) if c.shrink else natural(c)

    while True:
        widths = {c.key: natural(c) for c in shown}
        excess = sum(widths.values()) + len(GAP) * (len(shown) - 1) - width
        for c in sorted((c for c in shown if c.shrink), key=lambda c: -widths[c.key]):
            if excess <= 0:
                break
            give = min(excess, widths[c.key] - floor(c))
            widths[c.key] -= give
            excess -= give
        droppable = [c for c in shown if c.drop > 0]
        if excess <= 0 or not droppable:
            break
        victim = max(droppable, key=lambda c: c.drop)
        shown.remove(victim)
        dropped.append(victim.title)

    def line(values: list[str]) -> str:
        parts = [v.rjust(widths[c.key]) if c.right else v.ljust(widths[c.key]) for c, v in zip(shown, values)]
        return GAP.join(parts).rstrip()

    out = [cut(title, width)] if title else []
    out.append(line([c.title for c in shown]))
    out.append(line(["-" * widths[c.key] for c in shown]))
    for i in range(len(rows)):
        out.append(line([cut(cells[c.key][i], widths[c.key]) for c in shown]))
    return "\n".join(out), dropped


def markdown(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """A Markdown table with every column in full (the project's one writer, ``|`` escaped)."""
    lines = markdown_table([c.title for c in columns], ([_text(r.get(c.key)) for c in columns] for r in rows),
                           align="".join("r" if c.right else "l" for c in columns))
    return "\n".join(lines).rstrip("\n")


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """CSV with the row keys as header and every value in full."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.key for c in columns])
    for r in rows:
        writer.writerow([_text(r.get(c.key)) for c in columns])
    return buffer.getvalue().rstrip("\n")


def emit(rows: Sequence[dict[str, Any]], columns: Sequence[Column], fmt: str, title: str | None = None,
         records: Sequence[Any] | None = None) -> None:
    """Print a listing to stdout in ``fmt``; ``records`` (default: the rows) are what ``json`` prints."""
    if fmt == "json":
        click.echo(json.dumps(list(records if records is not None else rows), indent=2, default=str))
    elif fmt == "csv":
        click.echo(csv_text(rows, columns))
    elif fmt == "md":
        click.echo(markdown(rows, columns))
    else:
        text, dropped = table(rows, columns, title=title)
        click.echo(text)
        if dropped:
            click.echo(f"(not shown at this width: {', '.join(dropped)}; --format csv, json or md has every column)",
                       err=True)
