"""`rainbench synth`: paired rainy/clean data from clean photographs."""

from __future__ import annotations

from pathlib import Path

import click

from rainbench.cli.common import (
    LazyChoice,
    common_options,
    deprecated_option,
    parse_key_values,
    stdout_console,
    track,
)


def _presets() -> list[str]:
    from collection.synth import PRESETS

    return list(PRESETS)


@click.command("synth")
@click.argument("clean", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path), metavar="CLEAN...")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Output folder: rainy/NAME.png, clean/NAME.png, params/NAME.json (read by `rainbench ingest`).")
@click.option("--preset", type=LazyChoice(_presets), default="rain100l", show_default=True,
              help="Rain style: rain100l (light, sparse), rain100h (heavy, multi-direction, haze), drizzle.")
@click.option("--config", "-c", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a rain parameter: density/length/width/intensity scale every layer (density=2 doubles), "
                   "angle/angle_jitter/blur set it, haze sets the veil. Repeatable, or several in one quoted value.")
@deprecated_option("--set", new="overrides", new_flag="--config", multiple=True)
@click.option("--overwrite", is_flag=True, help="Re-synthesise every pair (default: skip pairs already made with the same preset, options, seed and source).")
@common_options(workers=True, seed=True,
                seed_help="Seed of the rain: each image's seed derives from it and the image's name.")
def command(clean: tuple[Path, ...], out: Path, preset: str, overrides: tuple[str, ...], overwrite: bool, common) -> None:
    """Synthesise paired rainy/clean images from CLEAN images or folders.

    Each clean image gets rain streaks (density, length, width, angle with jitter, intensity, depth
    blur, several layers, optional haze) added with a per-image seed derived from --seed and its
    name: the same seed gives the same bytes, and adding images never changes the others.
    """
    from concurrent.futures import ProcessPoolExecutor

    from collection.synth import (
        collect_images,
        output_names,
        resolve_params,
        synthesize_file,
    )

    values = {k: float(v) for k, v in _floats(parse_key_values(overrides, "--config", several=True)).items()}
    try:
        resolve_params(preset, **values)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--preset/--config") from None
    files, roots = collect_images(clean)
    if not files:
        raise click.UsageError(f"no image files found in {', '.join(map(str, clean))}")
    names = output_names(files, roots)
    jobs = [dict(clean_file=f, out=out, name=n, preset=preset, seed=common.seed, overwrite=overwrite, **values)
            for f, n in zip(files, names)]
    workers = min(common.n_workers(), len(jobs))
    written = skipped = 0
    if workers <= 1:
        results = (synthesize_file(**job) for job in jobs)
        for result in track(common, results, len(jobs), "synth"):
            skipped += result.skipped
            written += not result.skipped
    else:
        with ProcessPoolExecutor(workers) as pool:
            futures = [pool.submit(synthesize_file, **job) for job in jobs]
            for future in track(common, (f.result() for f in futures), len(jobs), "synth"):
                skipped += future.skipped
                written += not future.skipped
    stdout_console().print(f"synth: {written} pair(s) written, {skipped} already present, preset {preset}, into {out}")


def _floats(pairs: dict[str, str]) -> dict[str, float]:
    out = {}
    for key, value in pairs.items():
        try:
            out[key] = float(value)
        except ValueError:
            raise click.BadParameter(f"{key}={value!r} is not a number", param_hint="--config") from None
    return out
