"""Quantisation to uint8 (the one quantiser, :func:`collection.images.quantise`) and the luma of MATLAB's ``rgb2ycbcr``, exactly as the published scripts.

The MATLAB ``evaluate_PSNR_SSIM.m`` shipped with MPRNet and Restormer reads PNGs (uint8), calls
``rgb2ycbcr`` on the uint8 array and keeps channel 1. For uint8 input MATLAB computes
Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 with R, G, B in 0..255 and rounds the result to
uint8 (half away from zero). pyiqa's ``to_y_channel(..., 'ycbcr')`` is the same matrix but computes
in the input's dtype (float32) and rounds half to even, or not at all when ``data_range`` is 1 (its
PSNR path), so rainbench computes Y itself in float64.
"""

from __future__ import annotations

import torch

from collection.images import quantise
from rainbench.metrics.errors import MetricError

# Rows of MATLAB's rgb2ycbcr matrix that produce Y (BT.601, limited range, scaled for [0, 1] input).
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0


def quantise_uint8(x: torch.Tensor) -> torch.Tensor:
    """Values in 0..255 (float64) as a saved 8-bit PNG would hold them: :func:`collection.images.quantise`."""
    try:
        return quantise(x)
    except ValueError as exc:
        raise MetricError(str(exc)) from None


def y_bt601_limited(rgb255: torch.Tensor) -> torch.Tensor:
    """Y of MATLAB ``rgb2ycbcr`` on uint8 RGB (given as float 0..255, N x 3 x H x W) -> N x 1 x H x W, uint8-valued."""
    if rgb255.ndim != 4 or rgb255.shape[1] != 3:
        raise MetricError(f"expected N x 3 x H x W, got shape {tuple(rgb255.shape)}")
    x = rgb255.to(torch.float64)
    y = x[:, 0:1] * _Y_WEIGHTS[0]
    y.add_(x[:, 1:2], alpha=_Y_WEIGHTS[1]).add_(x[:, 2:3], alpha=_Y_WEIGHTS[2])
    y.div_(255.0).add_(_Y_OFFSET + 0.5).floor_()  # + 0.5 then floor: MATLAB's round for y >= 0
    return y.clamp_(0.0, 255.0)
