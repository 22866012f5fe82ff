"""`rainbench train`: train a learnable method (nlcl, cut, prenet, ...) and write its weights.

Data sources (``SRC``) are image files, folders (any layout ``rainbench ingest`` understands:
plain folders, ``rainy/`` + ``clean/`` pairs, Rain100, ...) or datasets written by ``rainbench
ingest`` (one split, ``--split``), read by :mod:`rainbench.training_data` (the Python API's
reader too): images are decoded lazily, one at a time, so the training set never has to fit in memory.

``RUN_DIR`` receives ``checkpoint.pt`` (the full training state; ``--resume`` continues from it),
``weights.pt`` (for ``--weights`` in ``derain`` / ``run``) and ``train.json`` (method, options,
sources, summary).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from rainbench.cli.common import (
    common_options,
    method_options,
    progress,
    stdout_console,
)


def open_sources(sources: Sequence[str], want: str, split: str, option: str) -> Any:
    """Every image (or pair) of ``sources`` as one lazy sequence (:mod:`rainbench.training_data`); bad ones name ``option``."""
    from rainbench.training_data import SourceError, open_training_sources

    try:
        return open_training_sources(sources, want, split)
    except SourceError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _resolve_config(cls: Any, run_dir: Path, options: dict[str, str], variant: str | None,
                    iters: int | None, seed: int, resume: bool) -> dict[str, Any]:
    """The method options: saved ones on --resume, then --config, --variant, --iters and --seed."""
    from baselines.registry import config_fields

    fields = config_fields(cls)
    record = run_dir / "train.json"
    saved: dict[str, Any] = {}
    if resume and record.exists():
        saved = dict(json.loads(record.read_text()).get("config") or {})
    merged: dict[str, Any] = {**saved, **options}
    if variant is not None:
        if "variant" not in fields:
            raise click.BadParameter(f"method {cls.info.name!r} has no variants", param_hint="--variant")
        merged["variant"] = variant
    if iters is not None and "iters" in fields:
        merged["iters"] = iters
    if "seed" in fields and "seed" not in options and "seed" not in saved:
        merged["seed"] = seed
    return merged


def _canonical(src: str) -> str:
    return str(Path(src).expanduser().resolve())


def _format_losses(values: dict[str, Any]) -> str:
    return "  ".join(f"{k}={v:.4g}" for k, v in values.items() if k not in ("step", "iters") and isinstance(v, float))


@click.command("train")
@click.option("--method", "-m", "method_name", required=True, metavar="NAME",
              help="Method to train (see `rainbench methods`: nlcl, cut, prenet, ...).")
@click.option("--out", "-o", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Run directory for checkpoint.pt, weights.pt and train.json.")
@click.option("--rainy", multiple=True, metavar="SRC",
              help="Rainy images (files, folders or an ingested dataset); unpaired methods. Repeatable.")
@click.option("--clean", multiple=True, metavar="SRC",
              help="Clean images (files, folders or an ingested dataset); unpaired methods. Repeatable.")
@click.option("--pairs", multiple=True, metavar="SRC",
              help="Rainy/clean pairs (a dataset, or a folder with rainy/ + clean/ and the like); supervised methods.")
@click.option("--split", default="train", show_default=True, metavar="NAME", help="Split to read from dataset sources.")
@click.option("--iters", type=click.IntRange(min=1), default=None, metavar="N", help="Training budget in iterations.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Training budget in passes over the rainy images (or pairs); excludes --iters.")
@click.option("--variant", type=click.Choice(["symmetric", "asymmetric"]), default=None,
              help="NLCL's layer contrast: symmetric (CVPR 2022) or asymmetric (TPAMI 2024).")
@click.option("--config", "-c", "config_pairs", multiple=True, metavar="[NAME.]KEY=VALUE",
              help="A method option, e.g. crop=128 or lambda_layer=0.5. Repeatable, or several in one quoted value.")
@click.option("--resume", is_flag=True, help="Continue from RUN_DIR/checkpoint.pt with the saved options.")
@common_options(device=True, seed=True, torch_threads=True,
                seed_help="Seed of the method's initialisation, crops and sampling: the same seed trains the same weights.")
def command(method_name: str, run_dir: Path, rainy: tuple[str, ...], clean: tuple[str, ...], pairs: tuple[str, ...],
            split: str, iters: int | None, epochs: int | None, variant: str | None, config_pairs: tuple[str, ...],
            resume: bool, common: Any) -> None:
    """Train a learnable method on unpaired (--rainy, --clean) or paired (--pairs) data.

    Torch computes with as many threads as this process has CPUs (OMP_NUM_THREADS overrides).
    """
    import baselines
    from baselines.registry import get_class

    try:
        cls = get_class(method_name)
    except baselines.MethodError as exc:
        raise click.BadParameter(str(exc), param_hint="--method") from None
    learns = cls.info.learns_from
    if learns == "none":
        raise click.UsageError(f"method {method_name!r} learns nothing: use it directly with `rainbench derain`")
    if iters is not None and epochs is not None:
        raise click.UsageError("--iters and --epochs exclude each other")
    if learns == "paired" and (rainy or clean or not pairs):
        raise click.UsageError(f"method {method_name!r} learns from pairs: pass --pairs (a dataset or a rainy/+clean/ folder)")
    if learns == "unpaired" and (pairs or not rainy or not clean):
        raise click.UsageError(
            f"method {method_name!r} learns from unpaired data: pass --rainy and --clean (ideally from disjoint scenes)"
        )
    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.exists() and not resume:
        raise click.UsageError(f"{run_dir} already holds a checkpoint: pass --resume to continue, or choose another --out")

    options = _resolve_config(cls, run_dir, method_options(config_pairs, [method_name]).get(method_name, {}), variant, iters, common.seed, resume)
    try:
        method = baselines.create(method_name, device=common.torch_device(), **options)
    except baselines.MethodError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from None

    shared = sorted(set(map(_canonical, rainy)) & set(map(_canonical, clean)))
    if shared:
        logging.getLogger("rainbench").warning(
            "--rainy and --clean share %s: unpaired training assumes clean images of other scenes", ", ".join(shared)
        )
    if learns == "paired":
        data = {"pairs": open_sources(pairs, "pairs", split, "--pairs")}
    else:
        data = {"rainy": open_sources(rainy, "rainy", split, "--rainy"),
                "clean": open_sources(clean, "clean", split, "--clean")}
    if epochs is not None:
        first = data.get("pairs") or data["rainy"]
        iters = epochs * math.ceil(len(first) / max(1, int(getattr(method.config, "batch_size", 1))))
    budget = iters if iters is not None else int(getattr(method.config, "iters", 0))

    run_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "method": method_name, "config": _plain(method.config),
        "sources": {"rainy": list(rainy), "clean": list(clean), "pairs": list(pairs), "split": split},
        "counts": {name: len(images) for name, images in data.items()},
        "iters": budget, "device": str(method.device),
    }
    (run_dir / "train.json").write_text(json.dumps(record, indent=2))

    console = stdout_console()
    counts = ", ".join(f"{len(images)} {name}" for name, images in data.items())
    if not common.quiet:
        console.print(f"[bold]{method_name}[/bold]: {counts}; {budget} iterations on {method.device} -> {run_dir}")
    start = time.perf_counter()
    with progress(common) as bar:
        task = bar.add_task(f"train {method_name}", total=budget, rate="")

        def on_log(values: dict[str, Any]) -> None:
            step = int(values.get("step", 0))
            elapsed = time.perf_counter() - start
            bar.update(task, completed=step, rate=f"{step / elapsed:.2f} it/s" if elapsed > 0 else "")
            if not common.quiet:
                bar.console.print(f"step {step}/{budget}  {_format_losses(values)}")

        summary = method.fit(**data, iters=budget, out=run_dir, resume=resume, on_log=on_log)
    weights = method.save(run_dir / "weights.pt")
    record.update(summary=_plain(summary), weights=str(weights), config_hash=method.config_hash,
                  seconds=time.perf_counter() - start)
    (run_dir / "train.json").write_text(json.dumps(record, indent=2, default=str))
    _print_summary(method_name, record, summary)


def _plain(value: Any) -> Any:
    """Dataclasses and tuples as JSON-ready dicts and lists."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _print_summary(method_name: str, record: dict[str, Any], summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"rainbench train: {method_name}", show_header=False)
    table.add_row("iterations", str(summary.get("step", record["iters"])))
    table.add_row("seconds", f"{record['seconds']:.1f}")
    for name, value in (summary.get("losses") or {}).items():
        table.add_row(f"loss {name}" if name != "lr" else "lr", f"{value:.5g}")
    table.add_row("checkpoint", str(summary.get("checkpoint") or "-"))
    table.add_row("weights", record["weights"])
    table.add_row("config hash", record["config_hash"])
    stdout_console().print(table)
