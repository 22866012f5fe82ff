"""`rainbench leaderboard`: turn run directories into leaderboards: tables with CIs, plots, an HTML report."""

from __future__ import annotations

from pathlib import Path

import click

from rainbench.cli.common import common_options, stderr_console, stdout_console


def _split_list(value: str, option: str, allowed: set[str] | None = None) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if allowed is not None:
        bad = sorted(set(items) - allowed)
        if bad:
            raise click.BadParameter(f"unknown value(s) {', '.join(bad)} (choose from {', '.join(sorted(allowed))})",
                                     param_hint=option)
    return items


@click.command("leaderboard")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "formats", default="md,csv,html", show_default=True, metavar="LIST",
              help="Comma-separated outputs: md, csv, html (report with plots, self-contained), json (DVC metrics).")
@click.option("--by", default="", metavar="COLUMNS", help="Also tabulate per subset, e.g. rain_kind,source.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output directory (default: FIRST_RUN_DIR/leaderboard).")
@click.option("--bootstrap", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Bootstrap resamples for the confidence intervals (seeded by --seed).")
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True,
              help="Confidence level of the intervals.")
@common_options
def command(common, run_dirs, formats, by, out, bootstrap, confidence) -> None:
    """Turn run directories into leaderboards: tables with CIs, plots, an HTML report.

    \b
    Example:
      rainbench leaderboard runs/first runs/second --by rain_kind,source --out board/
    Prints the main table; writes leaderboard.md, leaderboard.csv, report.html (+ PNG plots)
    and metric_specs.json (the exact convention of every metric) to --out.
    """
    import pandas as pd
    from rich.markup import escape
    from rich.table import Table

    from rainbench.leaderboard import build_leaderboard, load_runs
    from rainbench.report import wide_table, write_leaderboard
    from rainbench.results import run_dir_problem

    format_list = _split_list(formats, "--format", {"md", "csv", "html", "json"})
    by_list = _split_list(by, "--by", {"source", "rain_kind"})
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

    console = stdout_console()
    wide = wide_table(lb)
    several = wide["dataset"].nunique() > 1
    table = Table(title=f"leaderboard: mean [{confidence:.0%} CI]  (↑ higher is better, ↓ lower is better)")
    columns = [c for c in wide.columns if c != "dataset" or several]
    for column in columns:
        table.add_column(column, justify="left" if column in ("dataset", "method") else "right")
    for row in wide[columns].itertuples(index=False):
        table.add_row(*["" if pd.isna(v) else str(v) for v in row])
    console.print(table)
    for kind, path in written.items():
        console.print(f"{kind}: {path}")
