"""Rain synthesis: paired rainy/clean data from clean photographs.

The model is the one most synthetic deraining sets use (Rain100L/H, Rain1400): a rain layer of
motion-blurred streaks is *added* to the background and the sum clipped, ``O = clip(B + R)``,
optionally after a veiling haze ``B' = B (1 - h) + A h`` that mimics the loss of contrast in heavy
rain. Each streak layer has a density, length, width, angle (with per-streak jitter), intensity and
an extra depth blur; several layers of decreasing size and brightness give depth.

Sizes are defined at a reference short side of 512 pixels and scale with the image, so a preset
gives the same look (and the same fraction of rainy pixels) at 481x321 and at 4000x3000.

Memory stays bounded at any resolution: streaks are rendered by splatting points along each
segment into horizontal strips with a margin, so only one strip of the rain layer exists at a time
(plus the output image itself).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from collection.files import atomic_write
from collection.images import is_image_file, load_image, save_image

REFERENCE_SIDE = 512
"""Streak sizes and densities are expressed for an image whose short side is this many pixels."""

STRIP_ROWS = 512
"""Rows rendered at a time; bounds the rain layer's memory whatever the image size."""


@dataclass(frozen=True)
class StreakLayer:
    """One layer of rain streaks (sizes in pixels at the reference short side of 512)."""

    density: float = 0.002
    """Streaks per reference pixel (0.002 is about 520 streaks on a 512 x 512 image)."""
    length: float = 20.0
    """Mean streak length; each streak draws uniformly within +-30 %."""
    width: float = 0.6
    """Gaussian sigma across the streak."""
    angle: float = 0.0
    """Mean direction in degrees from vertical (positive leans right at the bottom)."""
    angle_jitter: float = 3.0
    """Standard deviation of each streak's angle around the mean, degrees."""
    intensity: float = 0.6
    """Peak brightness added by a streak, in [0, 1]; each streak draws within 60-100 % of it."""
    blur: float = 0.0
    """Extra Gaussian blur sigma (depth of field, distance)."""


@dataclass(frozen=True)
class RainParams:
    """Everything that defines a synthetic rain: the layers, the veiling haze, the seed."""

    layers: tuple[StreakLayer, ...] = (StreakLayer(),)
    haze: float = 0.0
    """Veiling strength h in [0, 1]: B' = B (1 - h) + A h."""
    haze_light: float = 0.85
    """Atmospheric light A (grey level in [0, 1]) of the veil."""

    def to_dict(self) -> dict:
        """A JSON-ready dict (inverse of :meth:`from_dict`)."""
        return {"layers": [asdict(layer) for layer in self.layers], "haze": self.haze, "haze_light": self.haze_light}

    @classmethod
    def from_dict(cls, data: dict) -> RainParams:
        """Rebuild parameters from :meth:`to_dict` output."""
        return cls(tuple(StreakLayer(**layer) for layer in data["layers"]), data.get("haze", 0.0), data.get("haze_light", 0.85))


PRESETS: dict[str, RainParams] = {
    # Light, sparse, thin streaks in one direction, like Rain100L.
    "rain100l": RainParams(layers=(StreakLayer(density=0.0016, length=22, width=0.55, angle=8, angle_jitter=2.0, intensity=0.45),)),
    # Heavy, dense, multi-direction streaks of several depths with a veil, like Rain100H.
    "rain100h": RainParams(
        layers=(
            StreakLayer(density=0.0016, length=34, width=1.0, angle=-14, angle_jitter=4.0, intensity=0.7),
            StreakLayer(density=0.0022, length=24, width=0.8, angle=12, angle_jitter=5.0, intensity=0.45, blur=0.6),
            StreakLayer(density=0.0030, length=14, width=0.6, angle=-4, angle_jitter=6.0, intensity=0.3, blur=1.2),
        ),
        haze=0.10,
    ),
    # A drizzle: short, faint, many.
    "drizzle": RainParams(layers=(StreakLayer(density=0.004, length=10, width=0.5, angle=4, angle_jitter=8.0, intensity=0.3, blur=0.4),)),
}
"""Named rain styles; ``rainbench synth --preset NAME``."""

_LAYER_FIELDS = {f for f in StreakLayer.__dataclass_fields__}


def resolve_params(preset: str | RainParams = "rain100l", **overrides: float) -> RainParams:
    """A preset by name (or parameters as given) with overrides applied.

    Layer fields (``density``, ``length``, ``width``, ``angle``, ``angle_jitter``, ``intensity``,
    ``blur``) are *multiplied* into every layer for ``density``, ``length``, ``width`` and
    ``intensity`` (so ``density=2`` doubles a multi-layer preset's streaks) and *set* for the
    others; ``haze``, ``haze_light`` and ``layers`` replace the preset's values.
    """
    if isinstance(preset, RainParams):
        params = preset
    else:
        try:
            params = PRESETS[preset]
        except KeyError:
            raise ValueError(f"unknown rain preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}") from None
    layer_changes = {k: v for k, v in overrides.items() if k in _LAYER_FIELDS}
    other = {k: v for k, v in overrides.items() if k not in _LAYER_FIELDS}
    unknown = set(other) - {"haze", "haze_light", "layers"}
    if unknown:
        valid = sorted(_LAYER_FIELDS | {"haze", "haze_light", "layers"})
        raise ValueError(f"unknown rain parameter(s) {', '.join(sorted(unknown))}; valid: {', '.join(valid)}")
    if layer_changes:
        scaled = {"density", "length", "width", "intensity"}
        layers = tuple(
            replace(layer, **{k: (getattr(layer, k) * float(v) if k in scaled else float(v)) for k, v in layer_changes.items()})
            for layer in params.layers
        )
        params = replace(params, layers=layers)
    if other:
        params = replace(params, **other)
    for layer in params.layers:
        if layer.density < 0 or layer.length <= 0 or layer.width <= 0 or not 0 <= layer.intensity <= 1 or layer.blur < 0:
            raise ValueError(f"invalid streak layer {layer}: density >= 0, length > 0, width > 0, 0 <= intensity <= 1, blur >= 0")
    if not 0 <= params.haze <= 1:
        raise ValueError(f"haze must be in [0, 1], got {params.haze}")
    return params


@dataclass
class _Splats:
    """Weighted points of one layer, sorted by row, ready to be rendered strip by strip."""

    y: np.ndarray
    x: np.ndarray
    w: np.ndarray
    sigma: float
    margin: int
    intensity_gain: float = field(default=1.0)


def _layer_splats(layer: StreakLayer, height: int, width: int, rng: np.random.Generator) -> _Splats:
    scale = min(height, width) / REFERENCE_SIDE
    length = layer.length * scale
    count = rng.poisson(layer.density * height * width / max(scale * scale, 1e-12))
    pad = length  # streaks may start outside the frame and enter it
    cy = rng.uniform(-pad, height + pad, count)
    cx = rng.uniform(-pad, width + pad, count)
    theta = np.deg2rad(layer.angle + rng.normal(0.0, layer.angle_jitter, count))
    lengths = length * rng.uniform(0.7, 1.3, count)
    peaks = layer.intensity * rng.uniform(0.6, 1.0, count)
    steps = max(2, math.ceil(length * 1.3 * 2))  # two samples per pixel along the longest streak
    t = np.linspace(-0.5, 0.5, steps)
    taper = 1.0 - np.abs(2 * t) ** 4  # soft ends, like a drop's motion trail
    ys = cy[:, None] + t[None, :] * lengths[:, None] * np.cos(theta)[:, None]
    xs = cx[:, None] + t[None, :] * lengths[:, None] * np.sin(theta)[:, None]
    # Samples are spaced length/(steps-1) apart; weighting by that spacing makes the accumulated
    # value along the streak equal to its peak, independent of the sampling rate.
    ws = peaks[:, None] * taper[None, :] * (lengths[:, None] / (steps - 1))
    # Below half a pixel a streak cannot get thinner, only fainter: keep sigma >= 0.5 so the
    # rendered coverage does not depend on the resolution.
    sigma = max(0.5, math.hypot(layer.width * scale, layer.blur * scale))
    ys, xs, ws = ys.ravel(), xs.ravel(), ws.ravel()
    order = np.argsort(ys, kind="stable")
    # A thin line blurred by a Gaussian of sigma s peaks at 1 / (sqrt(2 pi) s); restore the peak.
    gain = math.sqrt(2 * math.pi) * sigma
    return _Splats(ys[order], xs[order], ws[order], sigma, math.ceil(4 * sigma) + 2, gain)


def _render_strip(splats: _Splats, y0: int, y1: int, width: int, height: int) -> np.ndarray:
    """The layer's rain over rows [y0, y1): splat with bilinear weights into a buffer with margins."""
    b0, b1 = max(0, y0 - splats.margin), min(height, y1 + splats.margin)
    lo, hi = np.searchsorted(splats.y, [b0 - 1, b1 + 1])
    y, x, w = splats.y[lo:hi], splats.x[lo:hi], splats.w[lo:hi]
    rows, cols = b1 - b0, width
    buf = np.zeros(rows * cols, dtype=np.float64)
    fy, fx = np.floor(y), np.floor(x)
    dy, dx = y - fy, x - fx
    iy, ix = fy.astype(np.int64) - b0, fx.astype(np.int64)
    for oy, ox, weight in ((0, 0, (1 - dy) * (1 - dx)), (0, 1, (1 - dy) * dx), (1, 0, dy * (1 - dx)), (1, 1, dy * dx)):
        r, c = iy + oy, ix + ox
        inside = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
        buf += np.bincount(r[inside] * cols + c[inside], weights=(w * weight)[inside], minlength=rows * cols)
    layer = buf.reshape(rows, cols)
    layer = gaussian_filter(layer, splats.sigma, mode="constant") * splats.intensity_gain
    return layer[y0 - b0 : y0 - b0 + (y1 - y0)].astype(np.float32)


def add_rain(
    clean: np.ndarray,
    preset: str | RainParams = "rain100l",
    seed: int = 0,
    *,
    return_layer: bool = True,
    **overrides: float,
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Add synthetic rain to a clean ``H x W x 3`` uint8 image.

    Returns ``(rainy, rain, params)``: the rainy uint8 image, the rain layer actually added
    (float32 ``H x W`` in [0, 1], before the clip against the background; ``None`` when
    ``return_layer`` is false, which keeps memory to one strip) and a JSON-ready dict of every
    parameter, the seed and the image size. The same inputs and seed give the same bytes.
    """
    clean = np.asarray(clean)
    if clean.ndim != 3 or clean.shape[2] != 3 or clean.dtype != np.uint8:
        raise ValueError(f"expected a uint8 H x W x 3 image, got {clean.dtype} {clean.shape}")
    params = resolve_params(preset, **overrides)
    height, width = clean.shape[:2]
    rng = np.random.default_rng(seed)
    splats = [_layer_splats(layer, height, width, rng) for layer in params.layers]
    rainy = np.empty_like(clean)
    full = np.empty((height, width), np.float32) if return_layer else None
    for y0 in range(0, height, STRIP_ROWS):
        y1 = min(height, y0 + STRIP_ROWS)
        rain = np.zeros((y1 - y0, width), np.float32)
        for layer_splats in splats:
            rain += _render_strip(layer_splats, y0, y1, width, height)
        np.clip(rain, 0.0, 1.0, out=rain)
        background = clean[y0:y1].astype(np.float32) / 255.0
        if params.haze > 0:
            background = background * (1.0 - params.haze) + params.haze_light * params.haze
        out = np.clip(background + rain[..., None], 0.0, 1.0)
        rainy[y0:y1] = np.rint(out * 255.0).astype(np.uint8)
        if full is not None:
            full[y0:y1] = rain
    record = {
        "preset": preset if isinstance(preset, str) else "custom",
        "seed": int(seed),
        "overrides": {k: v for k, v in overrides.items() if k != "layers"},
        "width": int(width),
        "height": int(height),
        "model": "O = clip(B * (1 - haze) + haze_light * haze + R)",
        **params.to_dict(),
    }
    return rainy, full, record


def image_seed(seed: int, name: str) -> int:
    """A per-image seed from the run seed and the image's name: adding images never changes others."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def unpaired_halves(image: np.ndarray, swap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(rainy-to-be, clean) halves of an H x W x C image, left then right (right then left when ``swap``).

    Unpaired training data from photographs: both sides share the scenes' colour and brightness,
    yet no pixel is ever seen both rainy and clean, so a discriminator can only learn the rain.
    """
    half = image.shape[1] // 2
    left, right = np.ascontiguousarray(image[:, :half]), np.ascontiguousarray(image[:, half:])
    return (right, left) if swap else (left, right)


def output_names(paths: Sequence[Path], roots: Sequence[Path]) -> list[str]:
    """Unique, filesystem-safe output stems for input files (relative path, '/' -> '__')."""
    names = []
    for path, root in zip(paths, roots):
        rel = path.relative_to(root) if root != path and root in path.parents else Path(path.name)
        names.append("__".join(rel.with_suffix("").parts))
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        unique.append(name if count == 0 else f"{name}-{count}")
    return unique


@dataclass(frozen=True)
class SynthResult:
    """What :func:`synthesize_file` wrote for one clean image."""

    name: str
    rainy: Path
    clean: Path
    params: Path
    skipped: bool


def synthesize_file(
    clean_file: Path,
    out: Path,
    name: str,
    *,
    preset: str = "rain100l",
    seed: int = 0,
    overwrite: bool = False,
    **overrides: float,
) -> SynthResult:
    """Write ``rainy/NAME.png``, ``clean/NAME.png`` and ``params/NAME.json`` for one clean image file.

    A finished pair (its params file written last, see :func:`write_pair`) made with the same rain,
    the same image seed and the same source file is skipped unless ``overwrite``; one made with
    other parameters (another preset, seed or override) is synthesised again, so a folder never
    holds pairs that disagree with the request that last wrote it.
    """
    paths = _pair_paths(out, name)
    if not overwrite and all(p.exists() for p in paths) and _same_request(
            paths[2], resolve_params(preset, **overrides), image_seed(seed, name), str(clean_file)):
        return SynthResult(name, *paths, True)
    return write_pair(load_image(clean_file), out, name, preset=preset, seed=seed,
                      source_file=str(clean_file), **overrides)


def write_pair(
    clean: np.ndarray,
    out: Path,
    name: str,
    *,
    preset: str = "rain100l",
    seed: int = 0,
    source_file: str | None = None,
    **overrides: float,
) -> SynthResult:
    """Add rain to a clean array and write the pair in the synth layout, with a per-image seed.

    The params file is removed first and written last (atomically), so its presence marks a
    finished pair and a killed run leaves nothing that ingest would pick up.
    """
    rainy_path, clean_path, params_path = _pair_paths(out, name)
    rainy, _, record = add_rain(clean, preset, image_seed(seed, name), return_layer=False, **overrides)
    if source_file is not None:
        record["source_file"] = source_file
    # The params file goes first (a redo of a pair made with other rain must not leave the old
    # record beside new images if killed) and comes back last, atomically, marking the pair done.
    params_path.unlink(missing_ok=True)
    save_image(clean, clean_path)
    save_image(rainy, rainy_path)
    atomic_write(params_path, json.dumps(record, indent=2, sort_keys=True))
    return SynthResult(name, rainy_path, clean_path, params_path, False)


def _same_request(params_path: Path, params: RainParams, seed: int, source_file: str) -> bool:
    """True when the params file records this rain, image seed and source (an unreadable one never matches)."""
    try:
        record = json.loads(params_path.read_text())
        recorded = RainParams.from_dict(record)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return (recorded == params and record.get("seed") == seed
            and record.get("source_file", source_file) == source_file)


def _pair_paths(out: Path, name: str) -> tuple[Path, Path, Path]:
    return out / "rainy" / f"{name}.png", out / "clean" / f"{name}.png", out / "params" / f"{name}.json"


def collect_images(inputs: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """Expand files and folders (recursively, sorted, hidden entries skipped) into image files and their roots."""
    files: list[Path] = []
    roots: list[Path] = []
    for entry in inputs:
        entry = Path(entry)
        if entry.is_dir():
            found = sorted(p for p in entry.rglob("*") if p.is_file() and is_image_file(p)
                           and not any(part.startswith(".") for part in p.relative_to(entry).parts))
            files += found
            roots += [entry] * len(found)
        elif entry.exists():
            files.append(entry)
            roots.append(entry.parent)
        else:
            raise FileNotFoundError(f"{entry}: no such file or folder")
    return files, roots
