"""Quality figures (collection.quality): each responds to what it claims to measure."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data

from collection.quality import (
    WORK_SIDE,
    failed_filter,
    parse_filter,
    pick_reduce,
    quality,
    working_image,
)


def gray_rgb(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).convert("RGB")


def test_constant_image_brightness_and_zero_contrast_sharpness_noise():
    q = quality(gray_rgb(np.full((64, 80), 77.0)))
    assert q["brightness"] == pytest.approx(77.0)
    assert q["contrast"] == pytest.approx(0.0)
    assert q["sharpness"] == pytest.approx(0.0)
    assert q["noise"] == pytest.approx(0.0)


def test_contrast_is_rms_of_luma():
    arr = np.zeros((64, 64))
    arr[:, 32:] = 200.0
    q = quality(gray_rgb(arr))
    assert q["contrast"] == pytest.approx(100.0, rel=1e-3)
    assert q["brightness"] == pytest.approx(100.0, rel=1e-3)


def test_blur_lowers_sharpness():
    img = Image.fromarray(data.camera()).convert("RGB")
    blurred = img.filter(ImageFilter.GaussianBlur(3))
    assert quality(blurred)["sharpness"] < 0.3 * quality(img)["sharpness"]


@pytest.mark.parametrize("sigma", [5.0, 12.0])
def test_noise_estimate_tracks_gaussian_sigma(sigma):
    rng = np.random.default_rng(0)
    # a smooth ramp (linear structure the Immerkaer mask cancels) plus Gaussian noise
    ramp = np.tile(np.linspace(60, 190, 400), (300, 1))
    q = quality(gray_rgb(ramp + rng.normal(0, sigma, ramp.shape)))
    assert q["noise"] == pytest.approx(sigma, rel=0.15)
    clean = quality(gray_rgb(ramp))
    assert clean["noise"] < 1.0


def test_working_image_is_bounded_and_reduce_keeps_enough_pixels():
    big = Image.new("RGB", (5000, 3000))
    assert max(working_image(big).size) <= WORK_SIDE
    small = Image.new("RGB", (800, 600))
    assert working_image(small).size == (800, 600)
    assert pick_reduce(4000, 3000) == 4  # 1000 px decoded: at least 3/4 of the working side
    assert pick_reduce(3000, 4000) == 4
    assert pick_reduce(5000, 3000) == 4  # 5000/8 = 625 would be too small
    assert pick_reduce(8192, 6000) == 8
    assert pick_reduce(900, 600) == 1


def test_filters_parse_and_apply():
    assert parse_filter("sharpness>=12.5") == ("sharpness", ">=", 12.5)
    with pytest.raises(ValueError, match="unknown filter field"):
        parse_filter("beauty>3")
    with pytest.raises(ValueError, match="cannot parse"):
        parse_filter("sharpness is high")
    rules = [parse_filter("sharpness>=10"), parse_filter("noise<5")]
    assert failed_filter({"sharpness": 20.0, "noise": 1.0}, rules) is None
    assert "sharpness" in failed_filter({"sharpness": 2.0, "noise": 1.0}, rules)
    assert "noise" in failed_filter({"sharpness": 20.0, "noise": 9.0}, rules)


def test_sharpness_and_noise_match_their_3x3_mask_definitions():
    from scipy.ndimage import correlate

    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (40, 56)).astype(np.float64)
    q = quality(gray_rgb(gray))
    inner = (slice(1, -1), slice(1, -1))
    laplacian = correlate(gray, np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float))[inner]
    immerkaer = correlate(gray, np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], float))[inner]
    sigma = np.abs(immerkaer).sum() * np.sqrt(np.pi / 2) / (6 * 38 * 54)
    assert q["sharpness"] == pytest.approx(laplacian.var(), rel=1e-4)
    assert q["noise"] == pytest.approx(sigma, rel=1e-4)
