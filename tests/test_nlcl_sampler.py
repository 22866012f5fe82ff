"""The vectorised non-local sampler returns exactly the k nearest patches (vs a brute-force loop)."""

from __future__ import annotations

import pytest
import torch

from nlcl.sampler import gather_at, random_centres, sample_nonlocal


def brute_force(x: torch.Tensor, centre: tuple[int, int], k: int, patch: int, window: int) -> list[tuple[int, int]]:
    """Plain loops: every patch centred within the window, ranked by (distance, raster order)."""
    _, h, w = x.shape
    half = patch // 2
    cy, cx = centre
    ref = x[:, cy - half : cy - half + patch, cx - half : cx - half + patch]
    cands = []
    lo = -(window // 2)
    for dy in range(lo, lo + window):
        for dx in range(lo, lo + window):
            y, x0 = cy + dy, cx + dx
            top, left = y - half, x0 - half
            if top < 0 or left < 0 or top + patch > h or left + patch > w:
                continue
            p = x[:, top : top + patch, left : left + patch]
            cands.append((float(((p - ref) ** 2).sum()), (dy - lo) * window + (dx - lo), (y, x0)))
    cands.sort(key=lambda t: (t[0], t[1]))
    return [c[2] for c in cands[:k]]


@pytest.mark.parametrize("patch,window,k,shape", [(16, 40, 24, (3, 3, 48, 72)), (4, 10, 7, (2, 5, 13, 31))])
def test_k_nearest_match_brute_force_batch_and_non_square(patch: int, window: int, k: int, shape: tuple) -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(*shape, generator=gen)
    centres = random_centres(shape[0], shape[2], shape[3], patch, gen)
    # include a centre on the border range to exercise window clipping
    centres[0] = torch.tensor([patch // 2 if shape[2] <= 2 * patch else patch, shape[3] - patch])
    got = sample_nonlocal(x, k, patch, window, centres=centres)
    assert got.shape == (shape[0], k, 2)
    for b in range(shape[0]):
        want = brute_force(x[b], tuple(centres[b].tolist()), k, patch, window)
        assert [tuple(c) for c in got[b].tolist()] == want
        assert tuple(got[b, 0].tolist()) == tuple(centres[b].tolist())  # the reference itself, distance 0


def test_random_centres_keep_patches_inside() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 40, 90)
    coords = sample_nonlocal(x, 50, 16, 40, generator=gen)
    assert coords[..., 0].min() >= 8 and coords[..., 0].max() <= 40 - 8
    assert coords[..., 1].min() >= 8 and coords[..., 1].max() <= 90 - 8


def test_too_few_candidates_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="fewer than k"):
        sample_nonlocal(torch.rand(1, 3, 20, 20), 200, 16, 40)


def test_gather_scales_each_axis() -> None:
    feat = torch.randn(2, 5, 12, 9)  # H / 4 and W / 8 of a 48 x 72 map
    coords = torch.tensor([[[0, 0], [47, 71], [20, 33]], [[5, 60], [30, 8], [47, 0]]])
    got = gather_at(feat, coords, (48, 72))
    for b in range(2):
        for i, (y, x) in enumerate(coords[b].tolist()):
            assert torch.equal(got[b, i], feat[b, :, y // 4, x // 8])
