"""Inference: G_B on whole image batches in [0, 1], with the network's [-1, 1] range and padding."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[Any]:
    if amp and device.type == "cuda":
        # float16 keeps 10 mantissa bits, enough for exact 8-bit output in practice.
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


class UnitRange(nn.Module):
    """A generator as a function of [0, 1] images: maps the input to [-1, 1] and the output back, unclamped.

    Holds the generator (no copy of its weights); a plain chain of arithmetic and the generator's
    own layers, so that a tiling executor can trace it.
    """

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        return (self.generator(x * 2.0 - 1.0) + 1.0) * 0.5


@torch.no_grad()
def derain(generator: nn.Module, x: Tensor, multiple: int = 1, amp: bool = True) -> Tensor:
    """Background estimate for a N x 3 x H x W batch in [0, 1], same shape out, clamped to [0, 1].

    The input is mapped to [-1, 1], run on the generator's device (AMP on CUDA) and mapped back.
    NLCL's generators keep full resolution, so no padding is needed (``multiple`` 1, the default);
    a larger ``multiple`` reflect-pads the bottom and right and crops back, which changes the
    InstanceNorm statistics. The 8-bit image of the network output y is
    round(clip((y + 1) / 2 * 255)), which equals round(derain(...) * 255).
    """
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"nlcl.derain expects an N x 3 x H x W tensor in [0, 1], got shape {tuple(x.shape)}")
    param = next(generator.parameters())
    device = param.device
    h, w = x.shape[-2:]
    y = x.to(device=device, dtype=torch.float32)
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        y = F.pad(y, (0, pad_w, 0, pad_h), mode=mode)
    was_training = generator.training
    generator.eval()
    with _autocast(device, amp):
        out = UnitRange(generator)(y)
    generator.train(was_training)
    return out[..., :h, :w].float().clamp_(0.0, 1.0)
