"""`rainbench demo`: the whole journey on built-in sample images, offline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from rainbench.cli.common import common_options, stderr_console, stdout_console


@click.command("demo")
@click.option("--out", "-o", default="demo-out", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              metavar="DIR",
              help="Folder for everything the demo writes (data, dataset, checkpoints, runs, report).")
@click.option("--train", "train", is_flag=True,
              help="Train NLCL, CUT and PReNet here on the short budget (minutes) instead of using the weights "
                   "shipped with rainbench.")
@click.option("--full", is_flag=True,
              help="Larger images and a longer training budget (tens of minutes on CPU); implies --train.")
@click.option("--data-only", is_flag=True, help="Only write the demo's source images (used by the DVC pipeline).")
@click.option("--size", type=click.IntRange(min=32), default=None, metavar="PIXELS",
              help="Short side of the demo images (default: 160, or 384 with --full).")
@common_options(device=True, seed=True,
                seed_help="Seed of the demo's rain, splits and training: the same seed gives the same leaderboard.")
def command(out: Path, train: bool, full: bool, data_only: bool, size: int | None, common) -> None:
    """Run the whole journey on built-in sample images: synth, ingest, train, run, leaderboard.

    Needs no data and no network: the clean images ship inside scikit-image. The learnable methods
    use weights shipped with rainbench, trained by the demo's own `rainbench train` commands on this
    very data (--train trains them here instead). Each step is printed as the command you would
    type yourself; re-running resumes where it stopped.
    """
    import shlex

    from rainbench.cli import cli
    from rainbench.demo import FAST, FULL, SHIPPED_DIR, make_demo_data, run_demo

    if data_only:
        index = make_demo_data(out, size=size or (FULL if full else FAST).size, seed=common.seed)
        stdout_console().print(f"demo data written; index: {index}")
        return

    def run(args: Sequence[str]) -> None:
        extra = ["-q"] if common.quiet else []
        stderr_console().print(f"[bold cyan]$ rainbench {shlex.join(args)}[/bold cyan]")
        code = cli.main(args=[*args, *extra], prog_name="rainbench", standalone_mode=False)
        if isinstance(code, int) and code != 0:
            raise click.ClickException(f"demo step failed (exit {code}): rainbench {shlex.join(args)}")

    result = run_demo(out, run, seed=common.seed, full=full, device=common.device, size=size, train=train)
    report = result.out / "report"
    console = stdout_console()
    console.print(f"\n[bold]rainbench demo done[/bold]: {len(result.commands)} commands, everything under {result.out}")
    shipped = sorted(name for name, source in result.weights.items() if source == "shipped")
    if shipped:
        console.print(f"  weights of {', '.join(shipped)}: shipped with rainbench ({SHIPPED_DIR / 'weights.json'} "
                      "records the commands that trained them); --train trains them here")
    elif result.shipped_unused:
        console.print(f"  trained here; the shipped weights were not used: {result.shipped_unused}")
    for name in ("leaderboard.md", "report.html"):
        if (report / name).exists():
            console.print(f"  {name:15s} {report / name}")
