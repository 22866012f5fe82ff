"""The one tiling helper: apply any image-to-image function to an arbitrarily large image.

Full-resolution networks (NLCL's generators keep H x W all the way) need memory proportional to
the image, so a 12 MP photograph is processed as overlapping tiles that are blended back without
seams. Blending is a linear cross-fade over each overlap, written as ``lerp(previous, new, alpha)``
in raster order. Two properties follow and are tested:

- where neighbouring tiles agree (e.g. the identity), the result equals the input exactly;
- each tile's own border (the outer quarter of every overlap) is given zero weight, so the edge
  effects of a local operator with a receptive-field radius up to ``overlap / 4`` pixels never
  reach the output: tiled and untiled results agree away from the image border.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

ImageFn = Callable[[torch.Tensor], torch.Tensor]


def _positions(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``size`` pixels; the last tile is flush with the end."""
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


def _weights(length: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Blend weights along one axis of a tile that overlaps its predecessor by ``before`` pixels
    and its successor by ``after`` pixels.

    Across the overlap with the predecessor the weight rises 0 -> 1; its first quarter is 0 (this
    tile's border) and its last quarter is 1 (the predecessor's border). The last quarter of the
    overlap with the successor is 0: this tile's own border is never written, the successor
    overwrites it with weight 1.
    """
    weights = torch.ones(length, device=device)
    if before > 0:
        margin = before // 4
        inner = before - 2 * margin
        weights[:margin] = 0.0
        if inner > 0:
            steps = torch.arange(inner, device=device, dtype=torch.float32)
            weights[margin : margin + inner] = (steps + 0.5) / inner
    if after > 0 and after // 4 > 0:
        weights[length - after // 4 :] = 0.0
    return weights


def pad_to_multiple(x: torch.Tensor, multiple: int, offset: int = 0) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad ``x`` (N x C x H x W) on the bottom and right until each side minus ``offset`` is a
    multiple of ``multiple`` (a window of ``offset`` pixels sliding by ``multiple`` then covers it);
    returns it and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (offset - h) % multiple, (offset - w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def tile_apply(
    fn: ImageFn,
    x: torch.Tensor,
    *,
    tile: int = 512,
    overlap: int = 32,
    multiple: int = 1,
    batch_tiles: int = 4,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Apply ``fn`` to ``x`` (N x C x H x W) in overlapping tiles and blend them without seams.

    ``fn`` maps a batch of tiles to a batch of the same shape. Tiles are sent to ``device`` (the
    input's device by default) ``batch_tiles`` positions at a time, and results come back to the
    input's device, so the device only ever holds a few tiles. The input is reflect-padded to a
    multiple of ``multiple`` and the output cropped back. Images no larger than one tile are passed
    to ``fn`` whole.
    """
    if x.ndim != 4:
        raise ValueError(f"expected an N x C x H x W tensor, got shape {tuple(x.shape)}")
    if multiple < 1 or tile < 1 or overlap < 0 or batch_tiles < 1:
        raise ValueError("tile, multiple and batch_tiles must be positive and overlap non-negative")
    tile = max(multiple, tile - tile % multiple)
    if overlap >= tile:
        raise ValueError(f"overlap ({overlap}) must be smaller than the tile ({tile})")
    target = torch.device(device) if device is not None else x.device
    padded, (h, w) = pad_to_multiple(x, multiple)
    n, _, hp, wp = padded.shape

    if hp <= tile and wp <= tile:
        out = fn(padded.to(target))
        _check_output(out, padded.shape)
        return out.to(x.device)[..., :h, :w]

    ys, xs = _positions(hp, min(tile, hp), overlap), _positions(wp, min(tile, wp), overlap)
    th, tw = min(tile, hp), min(tile, wp)
    canvas: torch.Tensor | None = None
    grid = [(i, j) for i in range(len(ys)) for j in range(len(xs))]
    for first in range(0, len(grid), batch_tiles):
        chunk = grid[first : first + batch_tiles]
        tiles = torch.cat([padded[:, :, ys[i] : ys[i] + th, xs[j] : xs[j] + tw] for i, j in chunk])
        result = fn(tiles.to(target))
        _check_output(result, tiles.shape)
        result = result.to(x.device)
        if canvas is None:
            canvas = torch.zeros((n, result.shape[1], hp, wp), dtype=result.dtype, device=x.device)
        for k, (i, j) in enumerate(chunk):
            y0, x0 = ys[i], xs[j]
            top = ys[i - 1] + th - y0 if i > 0 else 0
            bottom = y0 + th - ys[i + 1] if i + 1 < len(ys) else 0
            left = xs[j - 1] + tw - x0 if j > 0 else 0
            right = x0 + tw - xs[j + 1] if j + 1 < len(xs) else 0
            alpha = _weights(th, top, bottom, x.device)[:, None] * _weights(tw, left, right, x.device)[None, :]
            region = canvas[:, :, y0 : y0 + th, x0 : x0 + tw]
            new = result[k * n : (k + 1) * n]
            # Raster order guarantees alpha is exactly 1 wherever no earlier tile wrote, so the
            # zeros there are replaced, never blended in; lerp of equal values is exact.
            region.copy_(torch.lerp(region, new, alpha.to(new.dtype)))
    assert canvas is not None
    return canvas[..., :h, :w]


def _check_output(out: torch.Tensor, shape: torch.Size) -> None:
    if not isinstance(out, torch.Tensor) or out.shape[0] != shape[0] or out.shape[2:] != shape[2:]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the tiled function must return a tensor shaped like its input {tuple(shape)}, got {got}")
