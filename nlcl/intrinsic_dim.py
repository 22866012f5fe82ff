"""Intrinsic dimension of non-local patch sets: the premise of the asymmetric layer contrast.

For each image, a background layer B and a rain layer R = O - B are obtained (given explicitly,
from a trained G_B, or from a median low-pass split when neither is available). Groups of the
``k`` most similar patches in a window around random centres are drawn on each layer with the
same non-local sampler the training uses, and the intrinsic dimension (ID) of every group is
estimated with the Levina-Bickel k-NN maximum-likelihood estimator (MacKay-Ghahramani pooling)
or TwoNN. The report averages the per-group estimates for each layer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .inference import derain
from .sampler import random_centres, sample_nonlocal

ESTIMATORS = ("mle", "twonn")


def _neighbour_distances(points: Tensor, k: int) -> Tensor:
    """Sorted distances (G, N, k) from each point to its k nearest others, within each group."""
    d = torch.cdist(points, points)
    n = points.shape[1]
    d = d.masked_fill(torch.eye(n, dtype=torch.bool, device=d.device), float("inf"))
    return d.topk(k, dim=2, largest=False).values


def levina_bickel(points: Tensor, k: int = 10) -> Tensor:
    """k-NN maximum-likelihood ID per group (Levina & Bickel 2004, pooled as MacKay & Ghahramani).

    ``points``: (N, D) or (G, N, D). Returns a scalar tensor or (G,).
    """
    single = points.dim() == 2
    pts = points[None] if single else points
    if pts.shape[1] <= k:
        raise ValueError(f"levina_bickel: need more than k={k} points per group, got {pts.shape[1]}")
    t = _neighbour_distances(pts.double(), k).clamp_min(1e-12)
    inv = torch.log(t[..., -1:] / t[..., :-1]).sum(-1) / (k - 1)  # G x N: inverse local ID
    est = 1.0 / inv.mean(-1).clamp_min(1e-12)
    return est[0] if single else est


def two_nn(points: Tensor, discard: float = 0.1) -> Tensor:
    """TwoNN ID per group (Facco et al. 2017): slope of -log(1 - F(mu)) on log(mu), mu = r2 / r1.

    The fit goes through the origin and drops the largest ``discard`` share of the ratios.
    """
    single = points.dim() == 2
    pts = points[None] if single else points
    t = _neighbour_distances(pts.double(), 2).clamp_min(1e-12)
    log_mu = torch.log(t[..., 1] / t[..., 0]).sort(dim=-1).values  # G x N, ascending
    n = log_mu.shape[-1]
    keep = max(2, math.floor(n * (1.0 - discard)))
    emp = torch.arange(1, n + 1, dtype=log_mu.dtype, device=log_mu.device) / n
    y = -torch.log1p(-emp[:keep])
    x = log_mu[..., :keep]
    est = (x * y).sum(-1) / (x * x).sum(-1).clamp_min(1e-12)
    return est[0] if single else est


def nonlocal_patch_groups(
    layer: Tensor, n_groups: int, k: int, patch: int = 8, window: int = 40, generator: torch.Generator | None = None
) -> Tensor:
    """(n_groups, k, C*patch*patch) patch vectors: k nearest patches around each of n_groups random centres."""
    if layer.dim() == 3:
        layer = layer[None]
    _, c, h, w = layer.shape
    rep = layer.expand(n_groups, c, h, w)
    centres = random_centres(n_groups, h, w, patch, generator)
    coords = sample_nonlocal(rep, k, patch, window, centres=centres)  # G x k x 2
    half = patch // 2
    padded = layer[0]
    offs = torch.arange(patch) - half
    rows = coords[..., 0, None, None] + offs[:, None]  # G x k x p x 1
    cols = coords[..., 1, None, None] + offs[None, :]  # G x k x 1 x p
    patches = padded[:, rows, cols]  # C x G x k x p x p
    return patches.permute(1, 2, 0, 3, 4).reshape(n_groups, k, -1)


def median_lowpass(image: Tensor, size: int = 7) -> Tensor:
    """Per-channel median filter (N x C x H x W), a crude background estimate that removes thin streaks."""
    pad = size // 2
    n, c, h, w = image.shape
    cols = F.unfold(F.pad(image, (pad, pad, pad, pad), mode="reflect"), size)  # N x C*s*s x HW
    return cols.view(n, c, size * size, h * w).median(dim=2).values.view(n, c, h, w)


@dataclass(frozen=True)
class IDReport:
    """Mean (and spread) of per-group intrinsic dimension for background and rain patch groups."""

    background_id: float
    rain_id: float
    background_std: float
    rain_std: float
    n_background_groups: int
    n_rain_groups: int
    estimator: str
    neighbours: int
    patch: int
    group_size: int
    decomposition: str

    def to_dict(self) -> dict[str, float | int | str]:
        """Plain dictionary, for tables and JSON."""
        return asdict(self)


def _layers(
    rainy: Tensor, generator: nn.Module | None, rain: Tensor | None, background: Tensor | None
) -> tuple[Tensor, Tensor, str]:
    if rain is not None:
        return rainy - rain, rain, "given"
    if background is not None:
        return background, rainy - background, "given"
    if generator is not None:
        b = derain(generator, rainy).to(rainy.device)
        return b, rainy - b, "model"
    b = median_lowpass(rainy)
    return b, rainy - b, "lowpass"


def _as_batch(x: Tensor, name: str) -> Tensor:
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"estimate_intrinsic_dim: each {name} must be 3 x H x W or N x 3 x H x W, got {tuple(x.shape)}")
    return x.float()


def estimate_intrinsic_dim(
    rainy: Tensor | Iterable[Tensor],
    generator: nn.Module | None = None,
    rain_layers: Tensor | Iterable[Tensor] | None = None,
    backgrounds: Tensor | Iterable[Tensor] | None = None,
    groups_per_image: int = 16,
    group_size: int = 128,
    patch: int = 8,
    window: int = 40,
    estimator: str = "mle",
    neighbours: int = 10,
    min_std: float = 1e-3,
    seed: int = 0,
) -> IDReport:
    """ID of non-local background patch groups vs rain patch groups over rainy images in [0, 1].

    Layers come from ``rain_layers`` or ``backgrounds`` when given (e.g. synthetic ground
    truth), else from ``generator`` (a trained G_B: B = derain(G_B, O), R = O - B), else from a
    7x7 median split. Groups whose patches are almost constant (std < ``min_std``, e.g. a window
    with no rain) carry no geometry and are skipped.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimate_intrinsic_dim: estimator must be one of {ESTIMATORS}, got {estimator!r}")
    images = [rainy] if isinstance(rainy, Tensor) else list(rainy)
    rains = [rain_layers] if isinstance(rain_layers, Tensor) else (list(rain_layers) if rain_layers is not None else None)
    bgs = [backgrounds] if isinstance(backgrounds, Tensor) else (list(backgrounds) if backgrounds is not None else None)
    for name, extra in (("rain_layers", rains), ("backgrounds", bgs)):
        if extra is not None and len(extra) != len(images):
            raise ValueError(f"estimate_intrinsic_dim: {len(extra)} {name} for {len(images)} rainy images")
    gen = torch.Generator().manual_seed(seed)
    fn = (lambda p: levina_bickel(p, neighbours)) if estimator == "mle" else two_nn
    estimates: dict[str, list[Tensor]] = {"background": [], "rain": []}
    source = "lowpass"
    for i, img in enumerate(images):
        batch = _as_batch(img, "rainy image")
        r = _as_batch(rains[i], "rain layer") if rains is not None else None
        b = _as_batch(bgs[i], "background") if bgs is not None else None
        bg_layer, rain_layer, source = _layers(batch, generator, r, b)
        for name, layer in (("background", bg_layer), ("rain", rain_layer)):
            for one in layer.cpu():
                groups = nonlocal_patch_groups(one, groups_per_image, group_size, patch, window, gen)
                groups = groups[groups.std(dim=(1, 2)) >= min_std]
                if len(groups):
                    estimates[name].append(fn(groups).float().reshape(-1))
    stats = {}
    for name, parts in estimates.items():
        if not parts:
            raise ValueError(f"estimate_intrinsic_dim: no {name} patch group had any variation")
        v = torch.cat(parts)
        stats[name] = (float(v.mean()), float(v.std()) if len(v) > 1 else 0.0, len(v))
    return IDReport(
        background_id=stats["background"][0], rain_id=stats["rain"][0],
        background_std=stats["background"][1], rain_std=stats["rain"][1],
        n_background_groups=stats["background"][2], n_rain_groups=stats["rain"][2],
        estimator=estimator, neighbours=neighbours, patch=patch, group_size=group_size, decomposition=source,
    )
