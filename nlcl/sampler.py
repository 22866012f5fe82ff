"""Vectorised non-local self-similarity sampler: k nearest patches in a window around a random centre.

Conventions: a patch "centred" at c covers ``[c - patch//2, c - patch//2 + patch)`` on each axis;
candidate centres are ``c + d`` for ``d`` in ``[-window//2, window - window//2)`` on each axis,
kept only when their patch lies inside the map. Coordinates are (row, col).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def centre_range(size: int, patch: int) -> tuple[int, int]:
    """Half-open range of reference centres along one axis: a patch away from the border when possible."""
    half = patch // 2
    if size < patch:
        raise ValueError(f"non-local sampler: map side {size} is smaller than the patch size {patch}")
    if size > 2 * patch:
        return patch, size - patch
    return half, size - patch + half + 1


def random_centres(batch: int, height: int, width: int, patch: int, generator: torch.Generator | None = None) -> Tensor:
    """Random reference centres (batch, 2) as (row, col), drawn with ``generator`` on the CPU."""
    lo_y, hi_y = centre_range(height, patch)
    lo_x, hi_x = centre_range(width, patch)
    ys = torch.randint(lo_y, hi_y, (batch,), generator=generator)
    xs = torch.randint(lo_x, hi_x, (batch,), generator=generator)
    return torch.stack([ys, xs], dim=1)


def window_regions(x: Tensor, centres: Tensor, patch: int = 16, window: int = 40) -> Tensor:
    """The (B, C, S, S) pixels, S = window + patch - 1, covering every candidate patch; zeros off the map.

    Region pixel (r, s) of image b is map pixel (top_b + r, left_b + s), with top/left the corner of
    the candidate at the most negative offset; so the candidate at offset index (i, j) is the patch
    whose top-left corner is region pixel (i, j). One slice per image, never a loop over patches.
    """
    b, c, h, w = x.shape
    span = window + patch - 1
    corner = centres.cpu() - (window // 2) - patch // 2
    region = x.new_zeros(b, c, span, span)
    for i, (top, left) in enumerate(corner.tolist()):
        y0, y1 = max(top, 0), min(top + span, h)
        x0, x1 = max(left, 0), min(left + span, w)
        region[i, :, y0 - top : y1 - top, x0 - left : x1 - left] = x[i, :, y0:y1, x0:x1]
    return region


def window_distances(region: Tensor, patch: int = 16) -> Tensor:
    """Approximate squared distances (B, window^2) from the reference patch to every candidate.

    |P|^2 - 2 P.R + |R|^2 with a box filter and a per-image correlation: fast, but float32
    rounding can swap near-ties, so :func:`sample_nonlocal` re-ranks its shortlist exactly.
    """
    b, c, s, _ = region.shape
    window = s - patch + 1
    mid = window // 2
    ref = region[:, :, mid : mid + patch, mid : mid + patch]
    cross = F.conv2d(region.reshape(1, b * c, s, s), ref, groups=b)[0]  # B x window x window
    energy = F.avg_pool2d(region.pow(2).sum(1, keepdim=True), patch, stride=1)[:, 0] * (patch * patch)
    ref_energy = ref.pow(2).sum((1, 2, 3))[:, None, None]
    return (energy - 2.0 * cross + ref_energy).reshape(b, -1)


def exact_distances(region: Tensor, index: Tensor, patch: int = 16) -> Tensor:
    """Exact squared distances (B, k) from the reference to the candidates with flat window ``index``."""
    b, c, s, _ = region.shape
    window = s - patch + 1
    rl = region.permute(0, 2, 3, 1).contiguous()
    # Element [b, y, x] of this view is the patch row starting at (y, x): p * C contiguous values,
    # so a patch is read with p index operations instead of p * p.
    rows = rl.as_strided((b, s, window, patch * c), (s * s * c, s * c, c, 1))
    bidx = torch.arange(b, device=region.device)[:, None, None]
    steps = torch.arange(patch, device=region.device)

    def read(flat: Tensor) -> Tensor:  # (B, k) flat window index -> (B, k, p, p * C)
        top, left = flat // window, flat % window
        return rows[bidx, top[..., None] + steps, left[..., None].expand(*left.shape, patch)]

    mid = window // 2
    ref = read(torch.full((b, 1), mid * window + mid, device=region.device))
    return (read(index) - ref).pow(2).flatten(2).sum(2, dtype=torch.float64)


def valid_candidates(centres: Tensor, height: int, width: int, patch: int = 16, window: int = 40) -> Tensor:
    """(B, window^2) mask of candidates whose patch lies inside a ``height`` x ``width`` map."""
    half = patch // 2
    offsets = torch.arange(-(window // 2), window - window // 2)
    ys = centres[:, 0:1].cpu() + offsets[None]
    xs = centres[:, 1:2].cpu() + offsets[None]
    vy = (ys >= half) & (ys <= height - patch + half)
    vx = (xs >= half) & (xs <= width - patch + half)
    return (vy[:, :, None] & vx[:, None, :]).reshape(len(centres), -1)


@torch.no_grad()
def sample_nonlocal(
    x: Tensor,
    k: int,
    patch: int = 16,
    window: int = 40,
    centres: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Centres (B, k, 2) of the k patches nearest (Euclidean, all channels and pixels) to a reference.

    The reference centre is ``centres`` if given, else drawn at random per image; it is always the
    first result (distance 0). A fast correlation shortlists ``k + margin`` candidates, which are
    then ranked by exact distance; ties break by raster order of the window, deterministically.
    """
    if x.dim() != 4:
        raise ValueError(f"non-local sampler expects a B x C x H x W tensor, got shape {tuple(x.shape)}")
    _, _, h, w = x.shape
    if centres is None:
        centres = random_centres(x.shape[0], h, w, patch, generator)
    centres = centres.long().cpu()
    valid = valid_candidates(centres, h, w, patch, window)
    n_valid = int(valid.sum(1).min())
    if n_valid < k:
        raise ValueError(
            f"non-local sampler: only {n_valid} candidate patches fit in a {window}x{window} window "
            f"of a {h}x{w} map, fewer than k={k}; use larger crops or a smaller k"
        )
    region = window_regions(x.detach().float(), centres, patch, window)
    dist = window_distances(region, patch).masked_fill(~valid.to(region.device), float("inf"))
    short = min(n_valid, k + max(16, k // 8))
    idx = torch.topk(dist, short, dim=1, largest=False).indices.sort(dim=1).values  # raster order
    exact = exact_distances(region, idx, patch)
    order = torch.sort(exact, dim=1, stable=True).indices[:, :k]
    flat = torch.gather(idx, 1, order).cpu()
    offsets = torch.stack([flat // window, flat % window], dim=-1) - window // 2
    return (centres[:, None, :] + offsets).to(x.device)


def gather_at(feat: Tensor, coords: Tensor, size: tuple[int, int]) -> Tensor:
    """Feature vectors (B, k, C) at ``coords`` given on a ``size`` = (H, W) map, scaled per axis to ``feat``."""
    _, c, fh, fw = feat.shape
    h, w = size
    ys = (coords[..., 0].to(feat.device) * fh) // h
    xs = (coords[..., 1].to(feat.device) * fw) // w
    idx = (ys.clamp(0, fh - 1) * fw + xs.clamp(0, fw - 1)).long()  # B x k
    flat = feat.flatten(2)  # B x C x HW
    return torch.gather(flat, 2, idx[:, None, :].expand(-1, c, -1)).transpose(1, 2)
