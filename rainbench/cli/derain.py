"""`rainbench derain`: apply a deraining method to image files or folders and write the outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from rainbench.cli.common import (
    PathOrURL,
    common_options,
    method_options,
    stderr_console,
    stdout_console,
    tile_option,
    track,
)

RECORD = "derain.json"
"""File in the output folder naming the method, config and config hash that produced the outputs."""


@click.command("derain")
@click.argument("inputs", nargs=-1, required=True, type=PathOrURL(exists=True), metavar="INPUT...")
@click.option("--method", "-m", "method_name", required=True, metavar="NAME", help="Registered method (see `rainbench methods`).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Method weights (a rainbench weights.pt / checkpoint, or the method's released format).")
@click.option("--config", "-c", "config", multiple=True, metavar="[NAME.]KEY=VALUE",
              help="Method option (repeatable, or several in one quoted value); see docs/methods.md.")
@click.option("--out", "-o", required=True, type=PathOrURL(folder=True), metavar="DIR",
              help="Output folder or fsspec URL (s3://...); outputs keep the inputs' relative names.")
@click.option("--format", "fmt", type=click.Choice(["png", "jpg"]), default="png", show_default=True, help="Output image format.")
@tile_option()
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist (default: skip them).")
@click.option("--keep-suffix", is_flag=True,
              help="Keep the input's suffix in the output name (IMG_1.JPG -> IMG_1.JPG.png), so IMG_1.JPG and "
                   "IMG_1.HEIC do not clash.")
@click.option("--replicas", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --engine ray: workers (Ray actors) running the method (default: the cluster's CPUs, or GPUs "
                   "on CUDA).")
@click.option("--gpus-per-replica", type=click.FloatRange(min=0, max=1), default=None, metavar="F",
              help="With --engine ray on CUDA: the share of a GPU each worker takes (default 1).")
@common_options(device=True, seed=True, torch_threads=True, engine=True,
                seed_help="Seed of torch's generator for methods that draw random numbers.")
def command(inputs: tuple[Path | str, ...], method_name: str, weights: Path | None, config: tuple[str, ...], out: Path | str,
            fmt: str, tile: int | None, overwrite: bool, keep_suffix: bool, replicas: int | None,
            gpus_per_replica: float | None, common) -> None:
    """Derain INPUT images or folders (recursively; paths or fsspec URLs) with one method and write the results to --out.

    Re-running skips outputs that already exist; a file that cannot be read or derained is reported
    and the others go on (the exit code is non-zero if any failed). Inputs that would write the same
    output (IMG_1.JPG and IMG_1.png) are refused before any work; broken links are reported and skipped.
    Torch computes with as many threads as this process has CPUs (OMP_NUM_THREADS overrides).
    """
    import torch
    from rich.markup import escape

    import baselines
    from collection.lock import OutputLockedError, output_lock
    from collection.storage import portable
    from rainbench.derain import RemoteDerainer
    from rainbench.device import worker_device

    options = method_options(config, [method_name]).get(method_name, {})
    found = _collect(inputs, out, fmt, keep_suffix)
    if found.clashes:
        raise click.UsageError(_clash_message(found.clashes, out))
    device = common.torch_device()
    torch.manual_seed(common.seed)
    try:
        method = baselines.create(method_name, weights=weights, device=device, **options)
    except baselines.MethodError as exc:
        raise click.UsageError(str(exc)) from None
    if not method.has_weights:
        raise click.UsageError(
            f"method {method_name!r} needs weights: pass --weights FILE, or train them with "
            f"`rainbench train --method {method_name}`")
    if tile is not None:
        method.tile = tile
    common.ray_only(replicas=replicas, gpus_per_replica=gpus_per_replica)
    gpus = gpus_per_replica if gpus_per_replica is not None else float(device.type == "cuda")
    remote = RemoteDerainer(method_name, portable(weights) if weights else None, dict(options), tile,
                            worker_device(device), common.seed, overwrite)
    record = _record(method, weights)
    try:
        with output_lock(out), common.open_engine() as engine:
            done, skipped, failures = _derain_all(engine, method, remote, found.jobs, record, out, overwrite, common,
                                                  replicas=replicas, gpus=gpus)
    except OutputLockedError as exc:
        raise click.ClickException(str(exc)) from None
    for link, why in found.broken:
        stderr_console().print(f"[yellow]skipped[/yellow]: {escape(f'{link}: {why}')}", highlight=False, soft_wrap=True)
    links = f", {len(found.broken)} broken link(s) skipped" if found.broken else ""
    stdout_console().print(
        f"derain: {done} written, {skipped} already present, {len(failures)} failed{links}; method {method_name} "
        f"(config {method.config_hash}) into {out}", highlight=False, soft_wrap=True)
    if failures:
        click.get_current_context().exit(1)


def _derain_all(engine, method, remote, jobs: list[tuple[Path | str, Path | str]], record: dict, out: Path | str, overwrite: bool,
                common, *, replicas: int | None, gpus: float) -> tuple[int, int, list[str]]:
    """Derain every job on ``engine`` (holding the output lock); returns written, skipped and failure lines."""
    import os

    from rich.markup import escape

    from collection.storage import is_url
    from rainbench.derain import derain_files

    _check_record(out, record, overwrite)
    absolute = [(s if is_url(s) else os.path.abspath(s), t if is_url(t) else os.path.abspath(t)) for s, t in jobs]
    counts = {"written": 0, "skipped": 0}
    failures: list[str] = []
    results = derain_files(engine, method, absolute, overwrite=overwrite, remote=remote, replicas=replicas,
                           gpus_per_replica=gpus)
    for result in track(common, results, len(jobs), f"derain {record['method']}"):
        if result.status == "failed":
            failures.append(result.error)
            stderr_console().print(f"[red]failed[/red]: {escape(result.error)}", highlight=False, soft_wrap=True)
        else:
            counts[result.status] += 1
    _write_record(out, record)
    return counts["written"], counts["skipped"], failures


@dataclass
class _Found:
    """What the inputs hold: (input, output) jobs, outputs claimed by several inputs, broken links."""

    jobs: list[tuple[Path | str, Path | str]] = field(default_factory=list)
    clashes: dict[Path | str, list[Path | str]] = field(default_factory=dict)
    broken: list[tuple[Path, str]] = field(default_factory=list)


def _collect(inputs: tuple[Path | str, ...], out: Path | str, fmt: str, keep_suffix: bool = False) -> _Found:
    """Every image under ``inputs`` with its output path; clashes and broken links set apart.

    URLs (inputs or ``out``) give URL strings; local inputs and outputs stay Paths.
    """
    import os
    from pathlib import PurePosixPath

    from collection.images import is_image_file
    from collection.storage import Location, is_url

    found = _Found()
    claims: dict[str, list[tuple[Path | str, Path | str]]] = {}
    own = str(Location(out)) if is_url(out) else Path(os.path.abspath(out))
    for item in inputs:
        if is_url(item):
            where = Location(item)
            if where.is_dir():
                listed = [(str(where / rel), rel) for rel, kind in where.find() if kind == "file"
                         and not any(p.startswith(".") for p in rel.split("/")) and is_image_file(rel)]
                named = [(url, PurePosixPath(rel)) for url, rel in listed if not url.startswith(f"{own}/")]
            else:
                named = [(str(where), PurePosixPath(where.name))]
        elif item.is_dir():
            named = []
            for p in sorted(item.rglob("*")):
                relative = p.relative_to(item)
                if any(part.startswith(".") for part in relative.parts) or not is_image_file(p):
                    continue
                if own in Path(os.path.abspath(p)).parents:  # an --out inside an input: never our own outputs
                    continue
                if p.is_file():
                    named.append((p, relative))
                elif p.is_symlink():
                    found.broken.append((p, _link_problem(p)))
        else:
            named = [(item, Path(item.name))]
        for source, relative in named:
            name = f"{relative.name}.{fmt}" if keep_suffix else f"{relative.stem}.{fmt}"
            if is_url(out):
                target: Path | str = str(Location(out) / PurePosixPath(relative.parent, name).as_posix())
            else:
                target = Path(out) / relative.parent / name
            # normcase: on a case-insensitive system IMG_1.png and img_1.png are one file
            claims.setdefault(os.path.normcase(str(target)), []).append((source, target))
    for claimants in claims.values():
        if len(claimants) > 1:
            found.clashes[claimants[0][1]] = [source for source, _ in claimants]
        else:
            found.jobs.append(claimants[0])
    return found


def _link_problem(link: Path) -> str:
    """Why a symbolic link cannot be read: a loop, or a missing target."""
    import errno
    import os

    try:
        os.stat(link)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"broken symbolic link (target {os.readlink(link)} does not exist)"
    return f"symbolic link to {os.readlink(link)}, not a file"


def _clash_message(clashes: dict[Path, list[Path]], out: Path) -> str:
    """One line: which inputs would write the same output, and the ways out."""
    shown = "; ".join(f"{', '.join(str(s) for s in sources)} would all write {target}"
                      for target, sources in list(clashes.items())[:3])
    more = f" (and {len(clashes) - 3} more)" if len(clashes) > 3 else ""
    return (f"{sum(len(s) for s in clashes.values())} inputs clash on {len(clashes)} output name(s): {shown}{more}; "
            "nothing was written. Use --keep-suffix (IMG_1.JPG -> IMG_1.JPG.png), or derain them into separate --out folders")


def _record(method, weights: Path | None) -> dict:
    import dataclasses

    return {"method": method.info.name, "config": dataclasses.asdict(method.config),
            "config_hash": method.config_hash, "weights": str(weights) if weights else None,
            "weights_sha256": method.weights_sha256}


def _check_record(out: Path | str, record: dict, overwrite: bool) -> None:
    """Refuse to mix outputs of different methods or configs in one folder (unless --overwrite)."""
    import json

    from collection.storage import Location

    path = Location(out) / RECORD
    if overwrite or not path.is_file():
        return
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if previous.get("config_hash") != record["config_hash"]:
        raise click.UsageError(
            f"{out} holds outputs of method {previous.get('method')!r} with config hash "
            f"{previous.get('config_hash')}, not {record['config_hash']}: use another --out or --overwrite")


def _write_record(out: Path | str, record: dict) -> None:
    import json

    from collection.storage import Location

    (Location(out) / RECORD).write_bytes(json.dumps(record, indent=2, sort_keys=True, default=str))
