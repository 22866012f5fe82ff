"""The shared tiler: exact for the identity, seamless for local filters, any size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from baselines.tiling import pad_to_multiple, tile_apply


def _blur5(x: torch.Tensor) -> torch.Tensor:
    kernel = torch.ones(x.shape[1], 1, 5, 5, dtype=x.dtype) / 25
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


SHAPES = [(1, 3, 301, 457), (2, 3, 185, 185), (1, 3, 64, 999), (1, 3, 513, 520), (3, 3, 97, 131)]


@pytest.mark.parametrize("shape", SHAPES)
def test_identity_is_exact(shape):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    out = tile_apply(lambda t: t, x, tile=96, overlap=24, multiple=4, batch_tiles=3)
    assert out.shape == x.shape and torch.equal(out, x)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("batch_tiles", [1, 5])
def test_local_filter_matches_untiled_away_from_border(shape, batch_tiles):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    ref = _blur5(x)
    out = tile_apply(_blur5, x, tile=100, overlap=16, batch_tiles=batch_tiles)
    assert (out - ref)[..., 2:-2, 2:-2].abs().max() < 1e-5


def test_small_overlap_leaks_edge_effects():
    # The guarantee needs overlap/4 >= the filter radius (2): with overlap 4 seams must show.
    x = torch.rand(1, 3, 200, 200, generator=torch.Generator().manual_seed(2))
    out = tile_apply(_blur5, x, tile=64, overlap=4)
    assert (out - _blur5(x))[..., 2:-2, 2:-2].abs().max() > 1e-3


def test_function_sees_multiples_and_output_is_cropped_back():
    seen = []

    def fn(t):
        seen.append(tuple(t.shape[-2:]))
        return t * 2

    x = torch.rand(1, 3, 130, 77)
    out = tile_apply(fn, x, tile=64, overlap=16, multiple=8)
    assert out.shape == x.shape and torch.allclose(out, x * 2)
    assert seen and all(h % 8 == 0 and w % 8 == 0 for h, w in seen)
    small = tile_apply(fn, torch.rand(1, 3, 30, 21), tile=64, multiple=4)
    assert small.shape == (1, 3, 30, 21) and seen[-1] == (32, 24)


def test_padding_reflects_and_reports_size():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    padded, size = pad_to_multiple(x, 4)
    assert size == (3, 4) and padded.shape == (1, 1, 4, 4)
    assert torch.equal(padded[0, 0, 3], x[0, 0, 1])


def test_bad_function_output_is_a_clear_error():
    with pytest.raises(ValueError, match="shaped like its input"):
        tile_apply(lambda t: t[..., :-1], torch.rand(1, 3, 300, 300), tile=128, overlap=16)
    with pytest.raises(ValueError, match="overlap"):
        tile_apply(lambda t: t, torch.rand(1, 3, 300, 300), tile=64, overlap=64)


def test_tiles_go_to_the_requested_device_in_bounded_batches():
    # "meta" stands in for an accelerator on a CPU-only machine: a tile that was not moved stays "cpu".
    calls = []

    def fn(t):
        calls.append((t.shape[0], t.device.type))
        return torch.full(t.shape, 0.5)  # what the device computed, handed back

    x = torch.rand(2, 3, 300, 300)
    out = tile_apply(fn, x, tile=100, overlap=20, batch_tiles=2, device="meta")
    assert {device for _, device in calls} == {"meta"}
    # 4 x 4 positions of 2 images, 2 positions per call: never the whole image at once
    assert [n for n, _ in calls] == [2 * 2] * 8
    assert out.device == x.device and torch.equal(out, torch.full_like(x, 0.5))
    tile_apply(fn, torch.rand(1, 3, 50, 50), tile=100, device="meta")  # one tile: passed whole, still moved
    assert calls[-1] == (1, "meta")
    calls.clear()
    tile_apply(fn, x, tile=100, overlap=20, batch_tiles=2)  # no device: tiles stay on the input's
    assert {device for _, device in calls} == {"cpu"}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tiles_match_cpu():
    seen = []

    def blur_on_device(t):
        seen.append(t.device.type)
        return _blur5(t)

    x = torch.rand(1, 3, 300, 400)
    out = tile_apply(blur_on_device, x, tile=128, overlap=32, device="cuda")
    assert set(seen) == {"cuda"}
    assert out.device.type == "cpu" and (out - _blur5(x))[..., 2:-2, 2:-2].abs().max() < 1e-5
