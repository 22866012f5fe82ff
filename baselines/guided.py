"""``guided``: guided-filter low-pass decomposition, the simplest prior-based deraining baseline.

The image is split into a base layer (an edge-preserving guided filter of the luma, He et al.,
ECCV 2010 / TPAMI 2013) and a detail layer (the rest). Rain streaks are thin, so they land in the
detail layer, but so does texture: removing the whole detail layer blurs the photograph and
*lowers* PSNR on light rain. What is removed instead is the part of the detail that looks like
rain (Kang et al., TIP 2012 and Ding et al., 2016 use the same observations):

- bright: rain adds light, so only positive luma detail is a candidate;
- achromatic: a streak adds about the same amount to R, G and B;
- oriented: streaks in one image share a direction; the dominant direction is estimated from the
  detail layer's structure tensor, and detail whose local orientation is coherent and aligned with
  it is suppressed.

Everything is box filters (separable average pooling) and pointwise maths, vectorised in torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from baselines.method import Method
from baselines.registry import MethodInfo, register

LUMA = (0.299, 0.587, 0.114)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window (N x C x H x W), normalised at the borders; separable."""
    if radius <= 0:
        return x
    k = 2 * radius + 1
    x = F.avg_pool2d(x, (k, 1), stride=1, padding=(radius, 0), count_include_pad=False)
    return F.avg_pool2d(x, (1, k), stride=1, padding=(0, radius), count_include_pad=False)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter of ``src`` with a grey ``guide`` (N x 1 x H x W), window radius and eps."""
    mean_i, mean_p = box_mean(guide, radius), box_mean(src, radius)
    cov = box_mean(guide * src, radius) - mean_i * mean_p
    var = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


def luma(batch: torch.Tensor) -> torch.Tensor:
    """Full-range BT.601 luma (N x 1 x H x W) of an RGB batch."""
    weights = torch.tensor(LUMA, dtype=batch.dtype, device=batch.device).view(1, 3, 1, 1)
    return (batch * weights).sum(1, keepdim=True)


def orientation_field(detail: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Local gradient orientation (doubled angle, as cos/sin) and coherence in [0, 1] of a grey layer."""
    padded = F.pad(detail, (1, 1, 1, 1), mode="replicate")
    gx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) * 0.5
    gy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) * 0.5
    jxx, jxy, jyy = (box_mean(t, radius) for t in (gx * gx, gx * gy, gy * gy))
    diff, cross = jxx - jyy, 2 * jxy
    norm = torch.sqrt(diff * diff + cross * cross)
    coherence = norm / (jxx + jyy + 1e-8)
    return torch.stack((diff, cross), 0) / (norm + 1e-12), coherence


@register(MethodInfo(
    name="guided",
    kind="prior",
    paper="Guided filter decomposition (He et al., ECCV 2010); rain-detail cues after Kang et al., TIP 2012",
    year=2010,
    code_license="MIT",
    weights_license=None,
    learns_from="none",
    needs_weights=False,
    devices=("cpu", "cuda"),
    summary="Guided-filter base/detail split; removes bright, achromatic detail aligned with the dominant streak direction.",
    tile=1024,
))
class GuidedFilter(Method):
    """Guided-filter low-pass decomposition with rain-like detail suppression."""

    @dataclass(frozen=True)
    class Config:
        """Options of the guided-filter baseline."""

        radius: int = 3
        """Guided filter window radius (pixels): wider than a streak, narrower than texture."""
        eps: float = 0.03
        """Guided filter regulariser: larger flattens more (and moves more texture to the detail layer)."""
        strength: float = 1.0
        """Fraction of the rain-like detail removed (0 = identity)."""
        orientation_power: float = 4.0
        """Sharpness of the preference for the dominant streak direction (0 = ignore orientation)."""
        chroma_tolerance: float = 0.1
        """Colour deviation of the detail (in [0, 1] units) still considered achromatic rain."""
        passes: int = 3
        """Decomposition passes: each removes rain that the previous base layer still held."""

        def __post_init__(self) -> None:
            if self.radius < 1 or self.eps <= 0 or self.passes < 1:
                raise ValueError("radius and passes must be >= 1 and eps > 0")
            if not 0.0 <= self.strength <= 1.0 or self.orientation_power < 0 or self.chroma_tolerance <= 0:
                raise ValueError("strength must lie in [0, 1], orientation_power >= 0, chroma_tolerance > 0")

    # The orientation radius sets the scale at which streak direction is judged.
    overlap = 48

    def _derain(self, batch: torch.Tensor) -> torch.Tensor:
        out = batch
        for _ in range(self.config.passes):
            out = out - self.config.strength * self.rain_layer(out)
        return out

    def rain_layer(self, batch: torch.Tensor) -> torch.Tensor:
        """The achromatic rain estimate (N x 1 x H x W, >= 0) that is subtracted from every channel."""
        cfg = self.config
        y = luma(batch)
        base = guided_filter(y, y, cfg.radius, cfg.eps)
        detail_y = y - base
        bright = detail_y.clamp(min=0.0)

        # Achromatic: a white streak leaves the colour differences (channel minus luma) untouched,
        # so their own detail layer is near zero on rain and large on coloured texture.
        chroma = batch - y
        spread = (chroma - box_mean(chroma, cfg.radius)).abs().amax(1, keepdim=True)
        factor = torch.exp(-((spread / cfg.chroma_tolerance) ** 2))

        if cfg.orientation_power > 0:
            direction, coherence = orientation_field(detail_y, cfg.radius + 1)
            # The dominant orientation of each image: the weighted mean of the doubled angles.
            weight = (bright * factor * coherence).unsqueeze(0)
            mean = (direction * weight).sum(dim=(-1, -2), keepdim=True)
            mean = mean / (torch.sqrt((mean * mean).sum(0, keepdim=True)) + 1e-12)
            alignment = ((1.0 + (direction * mean).sum(0)) * 0.5).clamp(0.0, 1.0)
            factor = factor * alignment**cfg.orientation_power * coherence.clamp(0.0, 1.0).sqrt()
        return bright * factor
