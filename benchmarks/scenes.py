"""Shared by the "does it derain" benchmarks: scikit-image sample scenes as tensors, and PSNR on Y."""

from __future__ import annotations

import numpy as np
import skimage.data
import torch


def scene(name: str, max_side: int = 384) -> np.ndarray:
    """A scikit-image sample photograph as H x W x 3 uint8, long side at most ``max_side``."""
    im = getattr(skimage.data, name)()
    if isinstance(im, tuple):  # stereo_motorcycle: (left, right, disparity); the left view
        im = im[0]
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)
    im = im[..., :3]
    step = int(np.ceil(max(im.shape[:2]) / max_side))
    return np.ascontiguousarray(im[::step, ::step])


def to_tensor(im: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float() / 255.0


def psnr_y(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of BT.601 limited-range Y (MATLAB rgb2ycbcr) between two 8-bit-quantised 3 x H x W images."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64)[:, None, None]
    ya = ((a.double() * 255).round().clamp(0, 255) / 255 * w).sum(0) + 16
    yb = ((b.double() * 255).round().clamp(0, 255) / 255 * w).sum(0) + 16
    return float(10 * torch.log10(255.0**2 / ((ya - yb) ** 2).mean()))
