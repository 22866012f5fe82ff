"""`rainbench demo`: the whole journey on built-in sample images, offline."""

from __future__ import annotations

from pathlib import Path

import click

from rainbench.cli.common import common_options, progress, stdout_console


@click.command("demo")
@click.option("--out", default="demo-out", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for everything the demo writes (synthetic data, dataset, runs, report).")
@click.option("--full", is_flag=True, help="A longer training budget for better numbers (tens of minutes on CPU).")
@common_options
def command(out: Path, full: bool, common) -> None:
    """Run the whole journey on built-in sample images: synth, ingest, train, run, leaderboard.

    Needs no data and no network: the clean images ship inside scikit-image. Re-running resumes.
    """
    from rainbench.demo import run_demo

    with progress(common) as bar:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, rate="")
            bar.update(tasks[stage], completed=done, total=total)

        result = run_demo(out, seed=common.seed, full=full, progress=report)
    console = stdout_console()
    console.print(f"[bold]rainbench demo[/bold] -> {result.out}")
    for stage, text in result.stages.items():
        console.print(f"  {stage:12s} {text}")
