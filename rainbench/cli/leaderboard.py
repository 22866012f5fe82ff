"""`rainbench leaderboard`: turn run directories into leaderboards: tables with CIs, plots, an HTML report."""

from __future__ import annotations

from pathlib import Path

import click

from rainbench.cli.common import (
    ListOf,
    common_options,
    flat,
    stderr_console,
    warn_deprecated,
)
from rainbench.cli.listing import FORMATS, Column, emit

FILES = ("md", "csv", "html", "json")
DEFAULT_FILES = ("md", "csv", "html")


def _subset_columns() -> tuple[str, ...]:
    from rainbench.data import SUBSET_COLUMNS

    return SUBSET_COLUMNS


def _format(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """The printed table's format; the old ``--format md,csv,...`` (files to write) still works, as --write."""
    if value in FORMATS:
        return value
    items = [v.strip() for v in value.split(",") if v.strip()]
    if items and all(v in FILES for v in items):
        warn_deprecated(f"--format {value}", f"--write {value}")
        ctx.meta["rainbench.leaderboard.write"] = tuple(items)
        return "table"
    raise click.BadParameter(f"{value!r}: choose one of {', '.join(FORMATS)} (files to write go to --write)")


@click.command("leaderboard")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
                metavar="RUN_DIR...")
@click.option("--format", "fmt", default="table", show_default=True, callback=_format, metavar="[table|csv|json|md]",
              help="Format of the printed table: table (fits the terminal, abbreviated), csv, json or md (full text).")
@click.option("--write", "write", multiple=True, type=ListOf(FILES), metavar="FORMAT[,FORMAT...]",
              help="Files written to --out (repeatable or comma-separated; default md,csv,html): md, csv, "
                   "html (report with plots, self-contained), json (DVC metrics).")
@click.option("--by", "by", multiple=True, type=ListOf(_subset_columns), metavar="COLUMN[,COLUMN...]",
              help="Also tabulate per subset: source, rain_kind (repeatable or comma-separated).")
@click.option("--out", "-o", "out", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Output directory (default: FIRST_RUN_DIR/leaderboard).")
@click.option("--bootstrap", type=click.IntRange(min=100), default=2000, show_default=True, metavar="N",
              help="Bootstrap resamples for the confidence intervals (seeded by --seed).")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True, metavar="LEVEL",
              help="Confidence level of the intervals (0.5-0.999).")
@common_options(seed=True, seed_help="Seed of the bootstrap: the same seed gives the same intervals.")
def command(common, run_dirs, fmt, write, by, out, bootstrap, confidence) -> None:
    """Turn run directories into leaderboards: tables with CIs, plots, an HTML report.

    \b
    Example:
      rainbench leaderboard runs/first runs/second --by rain_kind,source --out board/
    Prints the main table (mean [CI] per method and metric) to stdout and writes leaderboard.md,
    leaderboard.csv, report.html (+ PNG plots) and metric_specs.json (the exact convention of
    every metric) to --out; the paths written go to stderr.
    """
    import pandas as pd
    from rich.markup import escape

    from rainbench.leaderboard import build_leaderboard, load_runs
    from rainbench.report import wide_table, write_leaderboard
    from rainbench.results import run_dir_problem

    old = click.get_current_context().meta.get("rainbench.leaderboard.write", ())
    format_list = flat([*write, old]) or list(DEFAULT_FILES)
    by_list = flat(by)
    # Shown even with -q: a folder silently left out changes the table.
    problems = {d: run_dir_problem(d) for d in run_dirs}
    for d, problem in problems.items():
        if problem:
            stderr_console().print(f"[yellow]ignored[/yellow]: {escape(f'{d}: {problem}')}", highlight=False,
                                   soft_wrap=True)
    run_dirs = tuple(d for d, problem in problems.items() if problem is None)
    if not run_dirs:
        raise click.ClickException(f"none of {', '.join(map(str, problems))} is a run directory with results")
    out = out or run_dirs[0] / "leaderboard"
    lb = build_leaderboard(load_runs(run_dirs), by=by_list, confidence=confidence, n_boot=bootstrap, seed=common.seed)
    written = write_leaderboard(lb, out, format_list, run_dirs=run_dirs)

    wide = wide_table(lb)
    several = wide["dataset"].nunique() > 1
    names = [c for c in wide.columns if c != "dataset" or several]
    columns = [Column(c, c, right=c not in ("dataset", "method"),
                      drop=0 if c in ("dataset", "method") or i == 2 - (not several) else i) for i, c in enumerate(names)]
    rows = [{c: ("" if pd.isna(v) else str(v)) for c, v in zip(names, row)} for row in wide[names].itertuples(index=False)]
    emit(rows, columns, fmt, title=f"leaderboard: mean [{confidence:.0%} CI]  (↑ higher is better, ↓ lower is better)")
    for kind, path in written.items():
        stderr_console().print(f"{kind}: {path}", highlight=False, soft_wrap=True)
