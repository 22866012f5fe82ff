"""Fixed test images for the metric tests: skimage sample photos with synthetic rain streaks."""

from __future__ import annotations

import numpy as np
from skimage import data


def add_rain(image: np.ndarray, seed: int, streaks: int = 700, strength: float = 0.55) -> np.ndarray:
    """Bright, slanted, semi-transparent streaks blended over a uint8 image -> uint8."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    layer = np.zeros((h, w), np.float64)
    for _ in range(streaks):
        x, y = rng.integers(0, w), rng.integers(0, h)
        length = rng.integers(8, 40)
        alpha = rng.uniform(0.3, 1.0)
        t = np.arange(length)
        yy, xx = y + t, x + t // 3
        ok = (yy < h) & (xx < w)
        layer[yy[ok], xx[ok]] = np.maximum(layer[yy[ok], xx[ok]], alpha)
    img = image.astype(np.float64) / 255.0
    out = img + strength * layer[..., None] * (1.0 - img)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def clean_images() -> dict[str, np.ndarray]:
    """Crops of three colour photographs, of different sizes (uint8 H x W x 3), small to keep tests fast."""
    return {"astronaut": data.astronaut()[:240, 140:400], "chelsea": data.chelsea()[40:240, 60:360],
            "coffee": data.coffee()[80:336, 100:388]}


def pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, rainy, clean) for each clean image, each with its own rain seed."""
    return [(name, add_rain(img, seed), img) for seed, (name, img) in enumerate(clean_images().items())]
