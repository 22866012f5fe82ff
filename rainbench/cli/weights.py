"""`rainbench metric-weights`: manage metric weight files offline: list, fetch, verify, path, fit-niqe.

The verb was `rainbench weights` and its option `--weights-dir`; both old spellings still work for
one release (``weights`` is a hidden alias of the group). Method weights are `--weights FILE` of
`derain`, `run` and `analyze-id`.
"""

from __future__ import annotations

from pathlib import Path

import click

from rainbench.cli.common import (
    common_options,
    deprecated_option,
    stdout_console,
    track,
)
from rainbench.cli.listing import Column, emit, format_option

WEIGHTS_DIR_HELP = "Metric weights directory (default: $RAINBENCH_WEIGHTS_DIR, else pyiqa's own cache)."


def weights_dir_option(func):
    """Add ``--metric-weights DIR`` (also read from $RAINBENCH_WEIGHTS_DIR; old spelling ``--weights-dir``)."""
    func = deprecated_option("--weights-dir", new="weights_dir", new_flag="--metric-weights",
                             type=click.Path(file_okay=False, path_type=Path))(func)
    return click.option("--metric-weights", "weights_dir", type=click.Path(file_okay=False, path_type=Path),
                        default=None, metavar="DIR", envvar="RAINBENCH_WEIGHTS_DIR", help=WEIGHTS_DIR_HELP)(func)


LIST_COLUMNS = (
    Column("metric", "metric"),
    Column("file", "file", shrink=True),
    Column("source", "source", drop=3),
    Column("size", "size", right=True, drop=2),
    Column("sha256", "sha256", drop=4, short=lambda v: (v[:12] + "…") if v and len(v) > 13 else (v or "")),
    Column("status", "status"),
    Column("path", "path", drop=1),
)


def _metrics_or_all(metrics: tuple[str, ...]) -> list[str]:
    from rainbench.metrics import available_metrics

    known = available_metrics()
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise click.BadParameter(f"unknown metric(s) {', '.join(unknown)}; available: {', '.join(known)}",
                                 param_hint="METRIC")
    return list(metrics) or known


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"  # pragma: no cover


@click.group("metric-weights", context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """Manage metric weight files offline: list, fetch, verify, path, fit-niqe.

    \b
    On a connected machine:  rainbench metric-weights fetch niqe lpips --metric-weights W/
    On the offline node:     rainbench run ... --metric-weights W/ --offline
    """


@command.command("list")
@click.argument("metrics", nargs=-1, metavar="[METRIC]...")
@weights_dir_option
@format_option
@common_options
def list_cmd(metrics: tuple[str, ...], weights_dir: Path | None, fmt: str, common) -> None:
    """Show the weight files each metric needs, where they are expected, and which are present."""
    from rainbench.weights import MANIFEST, expected_path, locate, resolve_weights_dir

    names = _metrics_or_all(metrics)
    wdir = resolve_weights_dir(weights_dir)
    rows = []
    for name in names:
        entries = [e for e in MANIFEST if name in e.metrics]
        if not entries:
            rows.append({"metric": name, "status": "no weights needed"})
            continue
        for entry in entries:
            path = locate(entry, wdir)
            sha = entry.sha256 or (f"{entry.sha256_prefix}..." if entry.sha256_prefix else "unknown")
            rows.append({"metric": name, "file": entry.key, "source": entry.source,
                         "size": _size(path.stat().st_size if path else entry.size), "sha256": sha,
                         "status": "present" if path else "missing", "path": str(path or expected_path(entry, wdir))})
    emit(rows, LIST_COLUMNS, fmt, title=f"metric weights ({wdir if wdir else 'pyiqa default cache'})")


@command.command("fetch")
@click.argument("metrics", nargs=-1, metavar="[METRIC]...")
@weights_dir_option
@common_options
def fetch_cmd(metrics: tuple[str, ...], weights_dir: Path | None, common) -> None:
    """Download the weight files of METRIC... (default: all) into the weights directory."""
    from rich.table import Table

    from rainbench.weights import WeightsError, fetch, manifest_for, resolve_weights_dir

    names = _metrics_or_all(metrics)
    wdir = resolve_weights_dir(weights_dir)
    if wdir is None:
        raise click.UsageError("give --metric-weights DIR (or set RAINBENCH_WEIGHTS_DIR)")
    table = Table(title=f"fetched into {wdir}")
    for col in ("file", "metrics", "path"):
        table.add_column(col, overflow="fold")
    needed = [n for n in names if manifest_for(n)]
    try:
        for name in track(common, needed, total=len(needed), description="fetching"):
            for path in fetch([name], wdir, on_file=None):
                table.add_row(path.name, name, str(path))
    except WeightsError as exc:
        raise click.ClickException(str(exc)) from None
    stdout_console().print(table)


@command.command("verify")
@click.argument("metrics", nargs=-1, metavar="[METRIC]...")
@weights_dir_option
@click.option("--strict", is_flag=True, help="Also fail when a file is missing.")
@common_options
def verify_cmd(metrics: tuple[str, ...], weights_dir: Path | None, strict: bool, common) -> None:
    """Check sizes and sha256 of the present weight files; exit 1 on a mismatch."""
    from rich.table import Table

    from rainbench.weights import verify

    names = _metrics_or_all(metrics)
    results = verify(names, weights_dir)
    table = Table(title="weight files")
    for col in ("file", "metrics", "status", "sha256", "detail"):
        table.add_column(col, overflow="fold")
    colours = {"ok": "green", "unverified": "yellow", "missing": "red"}
    for r in results:
        colour = colours.get(r.status, "red")
        table.add_row(r.entry.key, ", ".join(r.entry.metrics), f"[{colour}]{r.status}[/{colour}]",
                      r.sha256 or "", r.detail or (str(r.path) if r.path else ""))
    stdout_console().print(table)
    bad = [r for r in results if r.status.startswith("bad") or (strict and r.status == "missing")]
    if bad:
        raise click.ClickException(f"{len(bad)} weight file(s) failed verification: "
                                   + ", ".join(r.entry.key for r in bad))


@command.command("path")
@weights_dir_option
@common_options
def path_cmd(weights_dir: Path | None, common) -> None:
    """Print the weights directory in force (or pyiqa's default cache when none is set)."""
    from rainbench.weights import default_cache_root, resolve_weights_dir

    wdir = resolve_weights_dir(weights_dir)
    click.echo(str(wdir if wdir is not None else default_cache_root("pyiqa")))


@command.command("fit-niqe")
@click.argument("clean", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path), metavar="CLEAN...")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Where to write the NIQE model (.mat, pyiqa's format).")
@click.option("--patch-size", type=click.IntRange(min=8), default=96, show_default=True, metavar="PIXELS",
              help="Patch size in pixels (pyiqa's NIQE scores 96).")
@click.option("--sharpness-threshold", type=click.FloatRange(0, 1), default=0.75, show_default=True, metavar="FRACTION",
              help="Keep patches sharper than this fraction of the image's sharpest patch.")
@click.option("--max-images", type=click.IntRange(min=1), default=None, metavar="N", help="Use at most N images.")
@common_options
def fit_niqe_cmd(clean: tuple[Path, ...], out: Path, patch_size: int, sharpness_threshold: float,
                 max_images: int | None, common) -> None:
    """Fit a NIQE model on CLEAN image files or folders; use it with `rainbench run --niqe-model FILE`."""
    from rich.table import Table

    from collection.images import ImageLoadError, is_image_file, load_image
    from rainbench.metrics import MetricError, fit_niqe

    files: list[Path] = []
    for item in clean:
        if item.is_dir():
            files.extend(sorted(p for p in item.rglob("*") if p.is_file() and is_image_file(p)))
        else:
            files.append(item)
    if max_images is not None:
        files = files[:max_images]
    if not files:
        raise click.UsageError("no image files found in CLEAN")
    counts: list[int] = []

    def images():
        for path in track(common, files, total=len(files), description="fitting NIQE"):
            try:
                yield load_image(path)
            except ImageLoadError as exc:
                raise click.ClickException(str(exc)) from None

    try:
        path = fit_niqe(images(), out, patch_size=patch_size, sharpness_threshold=sharpness_threshold,
                        on_image=lambda i, n: counts.append(n))
    except MetricError as exc:
        raise click.ClickException(str(exc)) from None
    table = Table(title="NIQE model")
    table.add_column("images")
    table.add_column("patches")
    table.add_column("model")
    table.add_row(str(len(counts)), str(sum(counts)), str(path))
    stdout_console().print(table)
