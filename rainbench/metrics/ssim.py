"""SSIM as Wang et al. distribute it in MATLAB, in float64 torch.

``SSIM_index.m`` (2003, v1.0) is what deraining papers' evaluation scripts call: an 11x11 Gaussian
window (sigma 1.5), K = (0.01, 0.03), L = 255, 'valid' filtering, the mean of the SSIM map. pyiqa's
``ssim`` has the same window and constants but clamps the contrast-structure term at zero
(``relu``), which changes the score wherever rain makes local structure anti-correlated, so the
map is computed here. ``ssim.m`` (2009) adds automatic downsampling by f = round(min(H, W) / 256):
a symmetric-padded f x f box filter, then every f-th pixel from the first; pyiqa approximates it with
``avg_pool2d`` (different alignment for odd f, banker's rounding of f).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rainbench.metrics.errors import MetricError

K1, K2, DATA_RANGE = 0.01, 0.03, 255.0


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """MATLAB ``fspecial('gaussian', size, sigma)``: normalised, tails below eps*max zeroed."""
    half = (size - 1) / 2.0
    coords = torch.arange(size, dtype=torch.float64) - half
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    h = torch.exp(-(xx * xx + yy * yy) / (2.0 * sigma * sigma))
    h = torch.where(h < torch.finfo(torch.float64).eps * h.max(), torch.zeros_like(h), h)
    return (h / h.sum()).to(dtype)


def gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor | None:
    """The 1-D factor of :func:`gaussian_window` when the 2-D window is exactly separable, else None."""
    half = (size - 1) / 2.0
    coords = torch.arange(size, dtype=torch.float64) - half
    g = torch.exp(-(coords * coords) / (2.0 * sigma * sigma))
    corner = g[0] * g[0]  # smallest 2-D value; fspecial zeroes values below eps * max
    if corner < torch.finfo(torch.float64).eps:
        return None
    return g / g.sum()


def _filter_valid(stack: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """'valid' Gaussian filtering of every map in ``stack`` (B x 1 x H x W), separably when exact."""
    g = gaussian_1d(size, sigma)
    if g is None:
        return F.conv2d(stack, gaussian_window(size, sigma).to(stack)[None, None])
    g = g.to(stack)
    # Two 1-D passes: 22 instead of 121 multiplications per pixel, same window to rounding error.
    return F.conv2d(F.conv2d(stack, g.view(1, 1, 1, size)), g.view(1, 1, size, 1))


def ssim_map(x: torch.Tensor, y: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The SSIM_index map of N x C x H x W images in 0..255 (each channel on its own), 'valid' size."""
    x = x.to(torch.float64)
    y = y.to(torch.float64)
    n, c, h, w = x.shape
    if h < size or w < size:
        raise MetricError(f"image {h}x{w} is smaller than the {size}x{size} SSIM window")
    stack = torch.stack([x, y, x * x, y * y, x * y]).reshape(5 * n * c, 1, h, w)
    mu1, mu2, xx, yy, xy = _filter_valid(stack, size, sigma).reshape(5, n, c, h - size + 1, w - size + 1)
    c1 = (K1 * DATA_RANGE) ** 2
    c2 = (K2 * DATA_RANGE) ** 2
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = xx - mu1_sq
    sigma2_sq = yy - mu2_sq
    sigma12 = xy - mu1_mu2
    return ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))


def image_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean per image of an N x ... tensor, float64, with the same digits whatever torch's thread count.

    torch splits one large sum among its threads, so the last digit of a whole-image mean depends
    on how many there are (a local run and a one-CPU Ray actor would disagree at 1e-15). Rows are
    summed one per thread (a fixed order), then the few row sums in numpy's fixed pairwise order.
    """
    n = t.shape[0]
    rows = t.double().reshape(n, -1, t.shape[-1]).sum(dim=-1)
    total = rows.cpu().numpy().sum(axis=1)
    return torch.from_numpy(total / (t[0].numel())).to(t.device)


def ssim_index(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per image (averaged over channels too) -> float64 tensor [N]."""
    return image_mean(ssim_map(x, y))


def downsample_factor(height: int, width: int) -> int:
    """``ssim.m``'s f = max(1, round(min(H, W) / 256)), MATLAB rounding (half away from zero)."""
    return max(1, math.floor(min(height, width) / 256 + 0.5))


def _symmetric_indices(n: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    idx = torch.arange(-before, n + after, device=device)
    idx = torch.where(idx < 0, -idx - 1, idx)
    return torch.where(idx >= n, 2 * n - idx - 1, idx)


def matlab_downsample(x: torch.Tensor, f: int) -> torch.Tensor:
    """``imfilter(x, ones(f)/f^2, 'symmetric', 'same')`` then ``x(1:f:end, 1:f:end)``."""
    if f <= 1:
        return x
    center = (f + 1) // 2  # MATLAB's kernel centre (1-based) for an f x f kernel
    before, after = center - 1, f - center
    h, w = x.shape[-2:]
    rows = _symmetric_indices(h, before, after, x.device)
    cols = _symmetric_indices(w, before, after, x.device)
    padded = x.index_select(-2, rows).index_select(-1, cols)
    box = torch.full((x.shape[1], 1, f, f), 1.0 / (f * f), dtype=x.dtype, device=x.device)
    filtered = F.conv2d(padded, box, groups=x.shape[1])
    return filtered[..., ::f, ::f]


def ssim_downsampled(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``ssim.m`` (2009): downsample both images by f = round(min(H, W) / 256), then SSIM_index."""
    f = downsample_factor(*x.shape[-2:])
    x = matlab_downsample(x.to(torch.float64), f)
    y = matlab_downsample(y.to(torch.float64), f)
    return ssim_index(x, y)
