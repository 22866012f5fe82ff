"""Fixed test images for the metric tests: skimage sample photos with the project's synthetic rain."""

from __future__ import annotations

import numpy as np
from skimage import data

from collection.synth import add_rain as synth_rain


def add_rain(image: np.ndarray, seed: int, heavy: bool = False) -> np.ndarray:
    """The image with rain100l (or rain100h) streaks from collection.synth, uint8 in and out."""
    return synth_rain(image, "rain100h" if heavy else "rain100l", seed=seed, return_layer=False)[0]


def clean_images() -> dict[str, np.ndarray]:
    """Crops of three colour photographs, of different sizes (uint8 H x W x 3), small to keep tests fast."""
    return {"astronaut": data.astronaut()[:240, 140:400], "chelsea": data.chelsea()[40:240, 60:360],
            "coffee": data.coffee()[80:336, 100:388]}


def pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, rainy, clean) for each clean image, each with its own rain seed."""
    return [(name, add_rain(img, seed), img) for seed, (name, img) in enumerate(clean_images().items())]
