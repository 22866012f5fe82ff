"""The built-in demo: the whole rainbench journey on sample images that ship with scikit-image.

No data and no network needed. Stages run in order and each is skipped when its output is
already complete, so an interrupted demo resumes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# Clean natural photographs bundled inside scikit-image's wheel (no download).
SAMPLE_IMAGES = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "camera.png",
                 "motorcycle_right.png", "hubble_deep_field.jpg", "brick.png", "grass.png", "gravel.png")

Progress = Callable[[str, int, int | None], None]


@dataclass
class DemoResult:
    """Where the demo wrote things and what each stage reported."""

    out: Path
    stages: dict[str, str] = field(default_factory=dict)


def sample_images() -> list[Path]:
    """Paths of the clean sample photographs shipped inside scikit-image."""
    import skimage.data

    root = Path(os.path.dirname(skimage.data.__file__))
    found = [root / name for name in SAMPLE_IMAGES if (root / name).exists()]
    if len(found) < 4:
        raise FileNotFoundError(f"{root}: scikit-image's bundled sample images are missing (reinstall scikit-image)")
    return found


def synthesize_samples(out: Path, seed: int = 0, preset: str = "rain100l", progress: Progress | None = None) -> list[str]:
    """Stage 1: paired rainy/clean images from the sample photographs, into ``out``."""
    from collection.synth import output_names, synthesize_file

    files = sample_images()
    names = output_names(files, [f.parent for f in files])
    for i, (file, name) in enumerate(zip(files, names), 1):
        synthesize_file(file, out, name, preset=preset, seed=seed)
        if progress:
            progress("synth", i, len(files))
    return names


def run_demo(out: Path, seed: int = 0, full: bool = False, progress: Progress | None = None) -> DemoResult:
    """Run every demo stage that the installed rainbench supports, writing under ``out``."""
    out = Path(out)
    result = DemoResult(out)
    names = synthesize_samples(out / "synth", seed=seed, progress=progress)
    result.stages["synth"] = f"{len(names)} rainy/clean pairs in {out / 'synth'}"
    return result
