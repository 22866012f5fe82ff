"""The default PSNR/SSIM convention checked against an independent numpy implementation.

The reference below follows the MATLAB scripts line by line (rgb2ycbcr on uint8, compute_psnr,
SSIM_index, ssim.m's downsampling), in numpy float64, sharing no code with rainbench.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metric_images import pairs
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from rainbench.metrics import create_metric

# ---------------------------------------------------------------- numpy reference (MATLAB semantics)


def np_rgb2y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr(uint8)(:,:,1): 16 + (65.481 R + 128.553 G + 24.966 B)/255, rounded half away."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    return np.clip(np.floor(y + 0.5), 0, 255)


def np_psnr(a: np.ndarray, b: np.ndarray) -> float:
    diff = a.astype(np.float64) - b.astype(np.float64)
    rmse = math.sqrt(np.mean(diff**2))
    return math.inf if rmse == 0 else 20.0 * math.log10(255.0 / rmse)


def np_gaussian(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size) - (size - 1) / 2.0
    xx, yy = np.meshgrid(ax, ax)
    h = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


def np_filter_valid(img: np.ndarray, win: np.ndarray) -> np.ndarray:
    """MATLAB filter2(win, img, 'valid'): correlate, keep only positions where the window fits."""
    r = win.shape[0] // 2
    return ndimage.correlate(img, win, mode="constant")[r:-r, r:-r]


def np_ssim_index(a: np.ndarray, b: np.ndarray) -> float:
    """Wang's SSIM_index.m for two grayscale images in 0..255."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    win = np_gaussian()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = np_filter_valid(a, win), np_filter_valid(b, win)
    s1 = np_filter_valid(a * a, win) - mu1**2
    s2 = np_filter_valid(b * b, win) - mu2**2
    s12 = np_filter_valid(a * b, win) - mu1 * mu2
    smap = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s1 + s2 + c2))
    return float(smap.mean())


def np_ssim_m_downsample(img: np.ndarray) -> np.ndarray:
    """ssim.m (2009): f = round(min(M,N)/256); imfilter(ones(f)/f^2, 'symmetric'); img(1:f:end,1:f:end)."""
    m, n = img.shape
    f = max(1, math.floor(min(m, n) / 256 + 0.5))
    if f == 1:
        return img.astype(np.float64)
    centre = (f + 1) // 2  # MATLAB imfilter places the kernel origin at floor((f+1)/2)
    padded = np.pad(img.astype(np.float64), ((centre - 1, f - centre), (centre - 1, f - centre)), mode="symmetric")
    box = sliding_window_view(padded, (f, f)).mean(axis=(2, 3))
    assert box.shape == (m, n)
    return box[::f, ::f]


# ---------------------------------------------------------------- helpers


def to_batch(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


@pytest.fixture(scope="module")
def data_pairs():
    return pairs()


@pytest.fixture(scope="module")
def metrics():
    return {n: create_metric(n) for n in ("psnr", "ssim", "psnr_rgb", "ssim_rgb", "ssim_ds")}


# ---------------------------------------------------------------- tests


def test_y_of_known_colours_matches_matlab_limited_range(metrics):
    # White maps to 235 and black to 16 in BT.601 limited range (the defining property of the range).
    from rainbench.metrics.ycbcr import y_bt601_limited

    rgb = torch.tensor([[255.0, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]])
    y = y_bt601_limited(rgb.T.reshape(1, 3, 1, 5)).reshape(-1).tolist()
    assert y == [235.0, 16.0, 81.0, 145.0, 41.0]  # rgb2ycbcr(uint8([255 0 0]))(1) = 81, etc.
    assert y == np_rgb2y(rgb.numpy()[None]).reshape(-1).tolist()


def test_y_matches_numpy_on_every_pixel_of_the_test_images(data_pairs):
    from rainbench.metrics.ycbcr import y_bt601_limited

    for _, rainy, _ in data_pairs:
        ours = y_bt601_limited(torch.from_numpy(rainy).permute(2, 0, 1)[None].double())[0, 0].numpy()
        np.testing.assert_array_equal(ours, np_rgb2y(rainy))


def test_psnr_y_matches_numpy_reference(metrics, data_pairs):
    for name, rainy, clean in data_pairs:
        ours = metrics["psnr"](to_batch(rainy), to_batch(clean)).item()
        ref = np_psnr(np_rgb2y(rainy), np_rgb2y(clean))
        assert abs(ours - ref) < 1e-4, name


def test_ssim_y_matches_numpy_reference(metrics, data_pairs):
    for name, rainy, clean in data_pairs:
        ours = metrics["ssim"](to_batch(rainy), to_batch(clean)).item()
        ref = np_ssim_index(np_rgb2y(rainy), np_rgb2y(clean))
        assert abs(ours - ref) < 1e-5, name
        assert 0.0 < ours < 1.0


def test_rgb_variants_match_numpy_reference(metrics, data_pairs):
    for name, rainy, clean in data_pairs:
        psnr = metrics["psnr_rgb"](to_batch(rainy), to_batch(clean)).item()
        assert abs(psnr - np_psnr(rainy, clean)) < 1e-4, name
        ssim = metrics["ssim_rgb"](to_batch(rainy), to_batch(clean)).item()
        ref = np.mean([np_ssim_index(rainy[..., c], clean[..., c]) for c in range(3)])
        assert abs(ssim - ref) < 1e-5, name


@pytest.mark.parametrize("size", [(400, 600), (700, 760)])  # f = 2 and f = 3 (odd: MATLAB alignment)
def test_downsampling_variant_matches_numpy_ssim_m(metrics, data_pairs, size):
    _, rainy, clean = data_pairs[2]
    reps = (math.ceil(size[0] / rainy.shape[0]), math.ceil(size[1] / rainy.shape[1]), 1)
    rainy = np.tile(rainy, reps)[: size[0], : size[1]]
    clean = np.tile(clean, reps)[: size[0], : size[1]]
    ours = metrics["ssim_ds"](to_batch(rainy), to_batch(clean)).item()
    ref = np_ssim_index(np_ssim_m_downsample(np_rgb2y(rainy)), np_ssim_m_downsample(np_rgb2y(clean)))
    assert abs(ours - ref) < 1e-5
    plain = np_ssim_index(np_rgb2y(rainy), np_rgb2y(clean))
    assert abs(ours - plain) > 1e-4  # the variant really downsamples


def test_float_outputs_are_quantised_to_uint8_first(metrics, data_pairs):
    # A method's float output is scored as its rounded 8-bit PNG would be.
    _, rainy, clean = data_pairs[0]
    gen = torch.Generator().manual_seed(0)
    noisy = to_batch(rainy) + (torch.rand(to_batch(rainy).shape, generator=gen) - 0.5) * (0.9 / 255)
    noisy = noisy.clamp(0, 1)
    quantised = np.clip(np.floor(noisy[0].permute(1, 2, 0).double().numpy() * 255 + 0.5), 0, 255)
    ref_psnr = np_psnr(np_rgb2y(quantised), np_rgb2y(clean))
    assert abs(metrics["psnr"](noisy, to_batch(clean)).item() - ref_psnr) < 1e-4
    assert metrics["ssim"](noisy, to_batch(clean)).item() == pytest.approx(
        metrics["ssim"](to_batch(rainy), to_batch(clean)).item(), abs=1e-12)


def test_identical_images_give_infinite_psnr_and_unit_ssim(metrics, data_pairs):
    _, _, clean = data_pairs[1]
    x = to_batch(clean)
    assert metrics["psnr"](x, x).item() == math.inf
    assert metrics["psnr_rgb"](x, x).item() == math.inf
    assert metrics["ssim"](x, x).item() == pytest.approx(1.0, abs=1e-12)


def test_batch_scores_equal_single_image_scores(metrics, data_pairs):
    _, rainy, clean = data_pairs[0]
    r, c = to_batch(rainy), to_batch(clean)
    flipped_r, flipped_c = r.flip(-1), c.flip(-1).roll(3, dims=-1)
    batch = metrics["psnr"](torch.cat([r, flipped_r]), torch.cat([c, flipped_c]))
    assert batch.dtype == torch.float64 and batch.shape == (2,)
    assert batch[0].item() == pytest.approx(metrics["psnr"](r, c).item(), abs=1e-10)
    assert batch[1].item() == pytest.approx(metrics["psnr"](flipped_r, flipped_c).item(), abs=1e-10)
    assert abs(batch[0].item() - batch[1].item()) > 1e-3  # the two images really differ
    ssim = metrics["ssim"](torch.cat([r, flipped_r]), torch.cat([c, flipped_c]))
    assert ssim[1].item() == pytest.approx(metrics["ssim"](flipped_r, flipped_c).item(), abs=1e-12)
