"""`rainbench ingest`: curate folders of rainy photographs and public derain sets into a deduplicated, split HF dataset."""

from __future__ import annotations

from pathlib import Path

import click

from rainbench.cli.common import (
    LazyChoice,
    PathOrURL,
    common_options,
    deprecated_option,
    parse_key_values,
    progress,
    stage_reporter,
    stdout_console,
)

_STAGES = {"discover": "discovering sources", "probe": "probing files", "curate": "curating", "build": "writing dataset",
           "report": "manifest and report"}


def _layouts() -> list[str]:
    from collection.layouts import LAYOUTS

    return ["auto", *LAYOUTS]


@click.command("ingest")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option("--out", "-o", required=True, type=PathOrURL(folder=True), metavar="DIR",
              help="Output folder or fsspec URL (s3://..., gs://...): DatasetDict, manifest.parquet, report/ and the "
                   "probe cache; a URL is curated in a local stage and uploaded after (docs/scale-out.md).")
@click.option("--layout", type=LazyChoice(_layouts), default="auto", show_default=True,
              help="Source layout for every SOURCE (auto-detected by default; see docs/layouts.md).")
@click.option("--source-name", default=None, metavar="NAME", help="Source name for a single SOURCE (default: the folder name).")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Label every row, e.g. rain_kind=heavy (repeatable).")
@click.option("--sidecar", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="CSV or JSONL of per-file labels keyed by relative path.")
@click.option("--min-side", type=click.IntRange(min=1), default=1024, show_default=True, metavar="PIXELS",
              help="Quarantine images whose short side is below this many pixels.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None, metavar="N",
              help="Quarantine images above N pixels (default 200 MP, the loader's limit).")
@click.option("--radius", type=click.IntRange(0, 32), default=8, show_default=True, metavar="BITS",
              help="Perceptual-hash Hamming radius for near duplicates (0-32).")
@click.option("--duplicates", type=click.Choice(["auto", "drop", "flag"]), default="auto", show_default=True,
              help="Near duplicates: flag (keep, with duplicate_of), drop (keep one per cluster), or auto: flag in "
                   "fixed splits (layout, --split-file, a single --split-ratios split), drop in free ones.")
@click.option("--split-ratios", "split", default=None, metavar="NAME=RATIO,...",
              help="Split ratios, e.g. train=0.8,test=0.2 (default; splits fixed by a layout are kept).")
@deprecated_option("--split", new="split", new_flag="--split-ratios")
@click.option("--split-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="CSV with 'split' and 'id' or 'path' columns pinning rows to splits.")
@click.option("--keep-gps", is_flag=True, help="Record GPS latitude, longitude and altitude (personal data: off by default).")
@click.option("--fps", type=float, default=1.0, show_default=True, metavar="FPS", help="Frames sampled per second of video.")
@click.option("--filter", "filters", multiple=True, metavar="FIELD>=X",
              help="Quarantine rows failing a quality threshold, e.g. sharpness>=50 (repeatable, opt-in).")
@common_options(workers=True, seed=True, engine=True, seed_help="Seed of the split assignment: the same seed gives the same splits.",
                workers_help="Processes (Ray actors with --engine ray) probing files (default: the CPUs this process "
                             "may use: affinity mask, cgroup quota, SLURM_CPUS_PER_TASK; the cluster's CPUs on Ray; "
                             "0 = in this process).")
def command(sources: tuple[str, ...], out: Path | str, layout: str, source_name: str | None, tags: tuple[str, ...],
            sidecar: Path | None, min_side: int, max_pixels: int | None, radius: int, duplicates: str, split: str | None,
            split_file: Path | None, keep_gps: bool, fps: float, filters: tuple[str, ...], common) -> None:
    """Curate SOURCE folders (PATH, URL or NAME=PATH) into a deduplicated, split Hugging Face dataset in --out."""
    from collection.images import DEFAULT_MAX_PIXELS
    from collection.ingest import IngestOptions, SourceSpec, ingest
    from collection.quality import parse_filter
    from collection.storage import is_folder

    if split and split_file:
        raise click.UsageError("--split-ratios and --split-file exclude each other")
    if source_name and len(sources) > 1:
        raise click.BadParameter("--source-name names one SOURCE; use NAME=PATH for several", param_hint="--source-name")
    for text in filters:
        try:
            parse_filter(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--filter") from None
    if split:
        from collection.splits import parse_ratios

        try:
            parse_ratios(split)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--split-ratios") from None
    labels = parse_key_values(tags, "--tag")
    specs = []
    for text in sources:
        spec = SourceSpec.parse(text, layout=layout, tags=labels, sidecar=sidecar)
        if source_name:
            spec = SourceSpec(spec.path, source_name, layout, labels, sidecar)
        if not is_folder(spec.path):
            raise click.BadParameter(f"{spec.path}: not a folder", param_hint="SOURCE")
        specs.append(spec)
    from collection.lock import OutputLockedError

    if common.engine == "ray" and common.workers == 0:
        raise click.UsageError("--workers 0 probes in this process: not with --engine ray (give N >= 1 actors)")
    try:
        with common.open_engine() as engine, progress(common) as bar:
            options = IngestOptions(
                min_side=min_side, max_pixels=max_pixels or DEFAULT_MAX_PIXELS, radius=radius, duplicates=duplicates,
                split=split, split_file=split_file, seed=common.seed, keep_gps=keep_gps, fps=fps,
                filters=tuple(filters), workers=common.n_workers(engine),
            )
            report = stage_reporter(bar, _STAGES)
            summary = ingest(specs, out, options, progress=report, engine=engine)
    except OutputLockedError as exc:  # one line, no traceback hint: the user only has to wait or pick another --out
        raise click.ClickException(str(exc)) from None
    _show(summary)


def _show(summary) -> None:
    """Print the end-of-run tables: files by status and reason, rows per split."""
    from rich.table import Table

    console = stdout_console()
    table = Table(title=f"rainbench ingest -> {summary.out}")
    table.add_column("files", style="bold")
    table.add_column("reason")
    table.add_column("count", justify="right")
    for status, count in summary.status.items():
        table.add_row(status, "", str(count))
        if status == "quarantined":
            for reason, n in summary.reasons.items():
                table.add_row("", reason, str(n))
    console.print(table)
    splits = Table(title="dataset rows")
    splits.add_column("split", style="bold")
    splits.add_column("rows", justify="right")
    for name, count in summary.splits.items():
        splits.add_row(name, str(count))
    console.print(splits)
    state = "rebuilt" if summary.rebuilt else "unchanged"
    console.print(f"probed {summary.probed} files, {summary.cached} from cache; dataset {state} "
                  f"(fingerprint {summary.fingerprint[:16]}); report: {summary.report}")
