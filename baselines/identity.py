"""``identity``: the rainy input unchanged, the floor every method must beat."""

from __future__ import annotations

import torch

from baselines.method import Method
from baselines.registry import MethodInfo, register


@register(MethodInfo(
    name="identity",
    kind="reference",
    paper="(none: the rainy input itself)",
    year=None,
    code_license="MIT",
    weights_license=None,
    learns_from="none",
    needs_weights=False,
    devices=("cpu", "cuda"),
    summary="Returns the rainy input unchanged; the score every method must beat.",
))
class Identity(Method):
    """The rainy input, unchanged."""

    def _derain(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.clone()
