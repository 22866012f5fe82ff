"""Unpaired training data: cycling over re-iterable image sources and independent random crops."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor


class CyclingSource:
    """Endless stream over a re-iterable collection of 3 x H x W images, counting what it consumed.

    Re-iterates the collection when it runs out; ``skip`` fast-forwards after a resume so the
    stream continues exactly where a checkpoint left it.
    """

    def __init__(self, images: Iterable[Tensor], name: str, consumed: int = 0) -> None:
        self.images = images
        self.name = name
        self.consumed = 0
        self._it: Iterator[Tensor] = iter(images)
        for _ in range(consumed):
            self.next()

    def next(self) -> Tensor:
        """The next image, restarting the collection at its end."""
        try:
            item = next(self._it)
        except StopIteration:
            self._it = iter(self.images)
            try:
                item = next(self._it)
            except StopIteration:
                raise ValueError(
                    f"NLCL training: the {self.name} images yielded nothing on re-iteration; pass a "
                    "re-iterable collection (list, dataset), not a one-shot iterator"
                ) from None
        self.consumed += 1
        return item


def random_crop(image: Tensor, crop: int | tuple[int, int], generator: torch.Generator, name: str = "image") -> Tensor:
    """Random crop of a 3 x H x W image in [0, 1]; images smaller than the crop are upsampled first."""
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"NLCL training: each {name} must be a 3 x H x W float tensor, got {shape}")
    ch, cw = (crop, crop) if isinstance(crop, int) else crop
    image = image.float()
    _, h, w = image.shape
    scale = max(ch / h, cw / w)
    if scale > 1:
        size = (max(ch, math.ceil(h * scale)), max(cw, math.ceil(w * scale)))
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
        _, h, w = image.shape
    top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
    return image[:, top : top + ch, left : left + cw]


def crop_batch(
    source: CyclingSource, batch_size: int, crop: int | tuple[int, int], generator: torch.Generator
) -> Tensor:
    """A batch of independent random crops, mapped from [0, 1] to the network range [-1, 1]."""
    crops = [random_crop(source.next(), crop, generator, source.name) for _ in range(batch_size)]
    return torch.stack(crops) * 2.0 - 1.0
