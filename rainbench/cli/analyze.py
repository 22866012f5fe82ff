"""`rainbench analyze-id`: intrinsic dimension of non-local background vs rain patches (NLCL's premise)."""

from __future__ import annotations

from pathlib import Path

import click

from rainbench.cli.common import common_options, stdout_console, track


@click.command("analyze-id")
@click.argument("rainy", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path), metavar="RAINY...")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="NLCL generator checkpoint (released latest_net_Back.pth or ours) that splits B and R; "
                   "without it a 7x7 median low-pass split is used.")
@click.option("--estimator", type=click.Choice(["mle", "twonn"]), default="mle", show_default=True,
              help="ID estimator: Levina-Bickel k-NN MLE or TwoNN.")
@click.option("--neighbours", type=click.IntRange(min=3), default=10, show_default=True, metavar="K",
              help="k of the k-NN MLE.")
@click.option("--groups", type=click.IntRange(min=1), default=16, show_default=True, metavar="N",
              help="Non-local patch groups drawn per image and layer.")
@click.option("--group-size", type=click.IntRange(min=16), default=128, show_default=True, metavar="N",
              help="Patches per group (the k most similar in a 40x40 window).")
@click.option("--patch", type=click.IntRange(min=2), default=8, show_default=True, metavar="PIXELS", help="Patch side in pixels.")
@click.option("--max-side", type=click.IntRange(min=64), default=512, show_default=True, metavar="PIXELS",
              help="Downscale images whose long side exceeds this (bounds time and memory).")
@common_options(device=True, seed=True, torch_threads=True, seed_help="Seed of the patch-group sampling.")
def command(rainy: tuple[Path, ...], weights: Path | None, estimator: str, neighbours: int, groups: int,
            group_size: int, patch: int, max_side: int, common) -> None:
    """Estimate the intrinsic dimension of background and rain patches in RAINY images or folders.

    Torch computes with as many threads as this process has CPUs (OMP_NUM_THREADS overrides).
    """
    import torch.nn.functional as F
    from rich.table import Table

    from collection.images import is_image_file, load_image, to_tensor
    from nlcl import estimate_intrinsic_dim, load_generator

    files: list[Path] = []
    for src in rainy:
        files += sorted(p for p in src.rglob("*") if is_image_file(p)) if src.is_dir() else [src]
    if not files:
        raise click.UsageError(f"no image files found in {', '.join(map(str, rainy))}")
    device = common.torch_device()
    generator = load_generator(weights, "background", map_location=device) if weights is not None else None
    per_image = []
    images = []
    for path in track(common, files, len(files), "analyze-id"):
        x = to_tensor(load_image(path))
        scale = max_side / max(x.shape[-2:])
        if scale < 1:
            x = F.interpolate(x, scale_factor=scale, mode="area")
        x = x.to(device)
        images.append(x)
        rep = estimate_intrinsic_dim(x, generator, groups_per_image=groups, group_size=group_size, patch=patch,
                                     estimator=estimator, neighbours=neighbours, seed=common.seed)
        per_image.append((path.name, rep))
    overall = estimate_intrinsic_dim(images, generator, groups_per_image=groups, group_size=group_size, patch=patch,
                                     estimator=estimator, neighbours=neighbours, seed=common.seed)
    table = Table(title=f"Intrinsic dimension ({estimator}, split: {overall.decomposition})")
    for col in ("image", "background ID", "rain ID", "bg > rain"):
        table.add_column(col, justify="left" if col == "image" else "right")
    for name, rep in per_image + [("all", overall)]:
        table.add_row(name, f"{rep.background_id:.2f} ± {rep.background_std:.2f}",
                      f"{rep.rain_id:.2f} ± {rep.rain_std:.2f}", "yes" if rep.background_id > rep.rain_id else "no")
    stdout_console().print(table)
