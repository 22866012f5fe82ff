"""`rainbench derain`: apply a deraining method to image files or folders and write the outputs."""

from __future__ import annotations

from pathlib import Path

import click

from rainbench.cli.common import (
    common_options,
    parse_key_values,
    stderr_console,
    stdout_console,
    track,
)

RECORD = "derain.json"
"""File in the output folder naming the method, config and config hash that produced the outputs."""


@click.command("derain")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--method", "method_name", required=True, metavar="NAME", help="Registered method (see `rainbench methods`).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Weights file for the method (a rainbench checkpoint or the method's released format).")
@click.option("--config", "config", multiple=True, metavar="KEY=VALUE", help="Method option (repeatable, or several in one quoted value); see docs/methods.md.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder; outputs keep the inputs' relative names.")
@click.option("--format", "fmt", type=click.Choice(["png", "jpg"]), default="png", show_default=True, help="Output image format.")
@click.option("--tile", type=click.IntRange(min=0), default=None, metavar="N",
              help="Process images larger than N pixels in N x N tiles (0 = never tile; default: the method's own).")
@click.option("--overwrite", is_flag=True, help="Redo outputs that already exist (default: skip them).")
@common_options
def command(inputs: tuple[Path, ...], method_name: str, weights: Path | None, config: tuple[str, ...], out: Path,
            fmt: str, tile: int | None, overwrite: bool, common) -> None:
    """Derain INPUT images or folders (recursively) with one method and write the results to --out.

    Re-running skips outputs that already exist; a file that cannot be read or derained is reported
    and the others go on (the exit code is non-zero if any failed).
    """
    import torch

    import baselines

    options = parse_key_values(config, "--config", several=True)
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
    record = _record(method, weights)
    _check_record(out, record, overwrite)

    jobs = _collect(inputs, out, fmt)
    done = skipped = 0
    failures: list[str] = []
    for source, target in track(common, jobs, len(jobs), f"derain {method_name}"):
        if target is None:
            failures.append(f"{source}: another input has the same relative name")
            continue
        if target.exists() and not overwrite:
            skipped += 1
            continue
        try:
            _derain_file(method, source, target)
            done += 1
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            failures.append(_one_line(source, exc))
            stderr_console().print(f"[red]failed[/red]: {failures[-1]}", highlight=False)
    _write_record(out, record)
    stdout_console().print(
        f"derain: {done} written, {skipped} already present, {len(failures)} failed; method {method_name} "
        f"(config {method.config_hash}) into {out}", highlight=False)
    if failures:
        click.get_current_context().exit(1)


def _collect(inputs: tuple[Path, ...], out: Path, fmt: str) -> list[tuple[Path, Path | None]]:
    """(input file, output path) for every image under ``inputs``; None marks a name clash."""
    from collection.images import is_image_file

    pairs: list[tuple[Path, Path | None]] = []
    seen: set[Path] = set()
    for item in inputs:
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file() and is_image_file(p)
                           and not any(part.startswith(".") for part in p.relative_to(item).parts))
            named = [(p, p.relative_to(item)) for p in files]
        else:
            named = [(item, Path(item.name))]
        for source, relative in named:
            target = out / relative.with_suffix(f".{fmt}")
            pairs.append((source, None if target in seen else target))
            seen.add(target)
    return pairs


def _derain_file(method, source: Path, target: Path) -> None:
    """Decode, derain and save one image."""
    from collection.images import decode, save_image, to_tensor, to_uint8

    image = decode(source).image
    batch = to_tensor(image)
    result = method.derain(batch)
    save_image(to_uint8(result)[0], target)


def _one_line(source: Path, exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if text.startswith(str(source)) else f"{source}: {text}"


def _record(method, weights: Path | None) -> dict:
    import dataclasses

    return {"method": method.info.name, "config": dataclasses.asdict(method.config),
            "config_hash": method.config_hash, "weights": str(weights) if weights else None,
            "weights_sha256": method.weights_sha256}


def _check_record(out: Path, record: dict, overwrite: bool) -> None:
    """Refuse to mix outputs of different methods or configs in one folder (unless --overwrite)."""
    import json

    path = out / RECORD
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


def _write_record(out: Path, record: dict) -> None:
    import json

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    tmp.replace(out / RECORD)
