"""One 8-bit quantiser (MATLAB's ``im2uint8``: half away from zero, float64) for saving, the runner and metrics.

The tie values used here are float32 numbers whose product with 255 rounds, in float32, to exactly
k + 0.5 for an even level k while the exact product lies above k + 0.5: rounding in float32 half to
even gives k, MATLAB (double, half away from zero) gives k + 1.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from collection.images import quantise, to_tensor, to_uint8


def _matlab_level(x: np.float32) -> int:
    """im2uint8 of double(x), by exact rational arithmetic: an oracle independent of the code under test."""
    exact = Fraction(float(x)) * 255
    return int(exact + Fraction(1, 2)) if exact >= 0 else 0


def _tie(k: int) -> np.float32 | None:
    """A float32 within 30 ulps of (k + 0.5) / 255 that float32 rounds to the tie k + 0.5 while exactly it lies above."""
    low = high = np.float32((k + 0.5) / 255)
    for _ in range(30):
        for x in (low, high):
            if np.float32(x) * np.float32(255) == k + 0.5 and Fraction(float(x)) * 255 > Fraction(2 * k + 1, 2):
                return x
        low, high = np.nextafter(low, np.float32(0)), np.nextafter(high, np.float32(1))
    return None


LEVELS = [k for k in range(0, 254, 2) if _tie(k) is not None]


def test_tie_values_are_ties_in_float32_only():
    assert len(LEVELS) >= 32  # every even level below 128 has such a value
    assert 100 in LEVELS
    for k in LEVELS:
        x = _tie(k)
        assert np.float32(x) * np.float32(255) == k + 0.5  # float32 sees a tie
        assert _matlab_level(x) == k + 1  # the exact product lies above it


def test_to_uint8_and_quantise_follow_matlab_on_ties():
    values = np.array([_tie(k) for k in LEVELS], dtype=np.float32)
    expected = np.array([_matlab_level(v) for v in values])
    batch = torch.from_numpy(np.repeat(values[None, None, None, :], 3, axis=1))  # 1 x 3 x 1 x L
    assert np.array_equal(to_uint8(batch)[0, 0, :, 0], expected)
    assert np.array_equal(quantise(batch)[0, 0, 0].numpy(), expected)
    assert np.array_equal(quantise(values), expected)  # arrays and tensors agree


def test_quantise_clips_and_refuses_nan():
    assert quantise(torch.tensor([-0.2, 1.7])).tolist() == [0.0, 255.0]
    with pytest.raises(ValueError, match="NaN"):
        quantise(torch.tensor([0.5, float("nan")]))


class TieMethod:
    """Outputs the tie value of level 100 everywhere, whatever the input."""

    name = "tie"
    config_hash = "tie"

    def derain(self, x):
        return torch.full_like(x, float(_tie(100)))


def test_runner_and_direct_metric_agree_on_ties(tmp_path):
    from test_runner import FakeBrightness, make_dataset

    from rainbench.metrics import create_metric
    from rainbench.runner import run_benchmark

    path, rows = make_dataset(tmp_path)
    run_benchmark(path, [TieMethod()], ["psnr", FakeBrightness()], tmp_path / "run", include_identity=False)
    from rainbench.results import read_results

    frame = read_results(tmp_path / "run")
    bright = frame[frame["metric"] == "fake_bright"]["value"].to_numpy()
    assert np.allclose(bright, 101 / 255)  # what the metric saw: MATLAB's level, not float32's even one
    psnr = create_metric("psnr")
    stored = frame[frame["metric"] == "psnr"].set_index("image_id")["value"]
    for row in rows:
        if row["_clean"] is None or row["_rainy"] is None:
            continue
        clean = to_tensor(row["_clean"])
        direct = float(psnr(TieMethod().derain(clean), clean)[0])
        assert stored[row["id"]] == pytest.approx(direct, rel=1e-12)
