"""No-reference quality figures recorded for every image: sharpness, brightness, contrast, noise.

All four are computed on the 8-bit luma (ITU-R BT.601 weights) of a **working image**: the file
decoded at 1/2, 1/4 or 1/8 scale (JPEG DCT scaling, :func:`pick_reduce`) and then box-reduced by
an integer factor until its long side is at most :data:`WORK_SIDE` pixels (so between 512 and 1024
pixels for any image larger than that). A fixed working size makes the figures comparable between a 12 MP
phone photo and a 50 MP camera file, and keeps probing fast; the price is that the figures describe
the image as seen at about 1 MP, which is also the scale at which rain streaks are judged.

- ``sharpness``: variance of the 3x3 Laplacian (Pech-Pacheco et al. 2000). Rain and fog lower it.
- ``brightness``: mean luma, 0..255.
- ``contrast``: RMS contrast, the standard deviation of luma, 0..~128.
- ``noise``: Immerkaer's fast noise estimate (1996), the standard deviation sigma of additive
  Gaussian noise in 0..255 units, from the mask ``[[1,-2,1],[-2,4,-2],[1,-2,1]]`` that cancels
  linear structure.

Rain lowers contrast and sharpness, so these are report columns; filtering on them is opt-in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np
from PIL import Image

WORK_SIDE = 1024
"""Long side (pixels) of the working image the figures are computed on."""

QUALITY_FIELDS = ("sharpness", "brightness", "contrast", "noise")
"""The figures :func:`quality` returns."""

_FILTER = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|>|<|==)\s*([-+0-9.eE]+)\s*$")


def pick_reduce(width: int, height: int, side: int = WORK_SIDE) -> int:
    """The largest DCT reduction (1, 2, 4 or 8) that keeps the long side at or above 3/4 of ``side``.

    Accepting 768 px rather than 1024 lets a 12 MP (4000 px) JPEG decode at 1/4 scale, about twice
    as fast as 1/2; :func:`working_image` lands between 512 and 1024 px for other sizes anyway.
    """
    long_side = max(width, height)
    reduce = 1
    for factor in (2, 4, 8):
        if long_side // factor >= side * 3 // 4:
            reduce = factor
    return reduce


def working_image(img: Image.Image, side: int = WORK_SIDE) -> Image.Image:
    """Box-reduce ``img`` by integer factors until its long side is at most ``side``."""
    long_side = max(img.size)
    factor = math.ceil(long_side / side) if long_side > side else 1
    return img.reduce(factor) if factor > 1 else img


def _luma(img: Image.Image) -> np.ndarray:
    # Pillow's "L" conversion is BT.601 (299/587/114), the luma convention of the metrics side too.
    return np.asarray(img.convert("L"), dtype=np.float32)


def _second_differences(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Laplacian, Immerkaer response) on the valid interior, from separable second differences.

    Both 3x3 masks factor through ``d = [1, -2, 1]``: the 4-neighbour Laplacian is ``d_x + d_y`` and
    Immerkaer's mask is the outer product ``d_y * d_x``, so three 3-tap passes give both, about a
    third of the work of two direct 3x3 correlations.
    """
    dx = gray[:, :-2] - 2.0 * gray[:, 1:-1]
    dx += gray[:, 2:]
    dy = gray[:-2, 1:-1] - 2.0 * gray[1:-1, 1:-1]
    dy += gray[2:, 1:-1]
    laplacian = dy
    laplacian += dx[1:-1]
    immerkaer = dx[:-2] - 2.0 * dx[1:-1]
    immerkaer += dx[2:]
    return laplacian, immerkaer


def quality(img: Image.Image) -> dict[str, float]:
    """Sharpness, brightness, contrast and noise of an RGB image (see the module docstring)."""
    gray = _luma(working_image(img))
    brightness = float(gray.mean())
    contrast = float(gray.std())
    h, w = gray.shape
    if h < 3 or w < 3:
        return {"sharpness": 0.0, "brightness": brightness, "contrast": contrast, "noise": 0.0}
    laplacian, immerkaer = _second_differences(gray)
    sharpness = float(laplacian.var(dtype=np.float64))
    residual = np.abs(immerkaer).sum(dtype=np.float64)
    noise = float(residual * math.sqrt(math.pi / 2.0) / (6.0 * (w - 2) * (h - 2)))
    return {"sharpness": sharpness, "brightness": brightness, "contrast": contrast, "noise": noise}


def parse_filter(text: str) -> tuple[str, str, float]:
    """Parse ``sharpness>=120`` into ``("sharpness", ">=", 120.0)``; ValueError naming the problem."""
    match = _FILTER.match(text)
    if not match:
        raise ValueError(f"cannot parse filter {text!r}: expected FIELD OP NUMBER, e.g. sharpness>=100")
    field, op, number = match.groups()
    if field not in QUALITY_FIELDS:
        raise ValueError(f"unknown filter field {field!r} in {text!r}: choose from {', '.join(QUALITY_FIELDS)}")
    return field, op, float(number)


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    "<": lambda a, b: a < b, "==": lambda a, b: a == b,
}


def failed_filter(figures: dict[str, float | None], filters: list[tuple[str, str, float]]) -> str | None:
    """The first filter ``figures`` fails, as text (``"sharpness 12.3 fails >=100"``), or None."""
    for field, op, threshold in filters:
        value = figures.get(field)
        if value is None or not _OPS[op](float(value), threshold):
            shown = "missing" if value is None else f"{float(value):.4g}"
            return f"{field} {shown} fails {op}{threshold:g}"
    return None
