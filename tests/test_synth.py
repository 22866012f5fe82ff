"""Rain synthesis: determinism, monotone controls, bounded strips, the paired output layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage import data

from collection import synth
from collection.images import load_image
from collection.synth import PRESETS, add_rain, resolve_params
from rainbench.cli import main


def _luma_psnr(a: np.ndarray, b: np.ndarray) -> float:
    def y(img):
        img = img.astype(np.float64) / 255
        return np.rint(16 + 65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2])

    return float(10 * np.log10(255**2 / np.mean((y(a) - y(b)) ** 2)))


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return data.coffee()[:256, :384].copy()


def test_same_seed_same_bytes_other_seed_differs(clean):
    a, _, pa = add_rain(clean, "rain100h", seed=3)
    b, _, pb = add_rain(clean, "rain100h", seed=3)
    c, _, _ = add_rain(clean, "rain100h", seed=4)
    assert a.tobytes() == b.tobytes() and pa == pb
    assert not np.array_equal(a, c)


def test_rainy_is_clean_plus_rain_layer(clean):
    rainy, rain, _ = add_rain(clean, "rain100l", seed=0)
    expected = np.rint(np.clip(clean / 255.0 + rain[..., None], 0, 1) * 255)
    assert np.abs(rainy.astype(int) - expected).max() <= 1
    assert rain.min() >= 0 and rain.max() <= 1 and rain.dtype == np.float32


@pytest.mark.parametrize("knob", ["density", "intensity"])
def test_more_rain_means_more_rain_pixels_and_lower_psnr(clean, knob):
    fractions, psnrs = [], []
    for factor in (0.5, 1.0, 2.0):
        rainy, rain, _ = add_rain(clean, "rain100l", seed=1, **{knob: factor})
        fractions.append(float((rain > 0.05).mean()))
        psnrs.append(_luma_psnr(rainy, clean))
    if knob == "density":
        assert fractions[0] < fractions[1] < fractions[2]
    else:
        assert fractions[0] <= fractions[1] <= fractions[2]
    assert psnrs[0] > psnrs[1] > psnrs[2]


def test_presets_resemble_their_datasets(clean):
    light = _luma_psnr(add_rain(clean, "rain100l", seed=0)[0], clean)
    heavy = _luma_psnr(add_rain(clean, "rain100h", seed=0)[0], clean)
    # Rain100L's rainy inputs score ~26.9 dB (Y), Rain100H's ~13.6 dB.
    assert 23 < light < 31 and 11 < heavy < 19


def test_strip_rendering_equals_whole_image_rendering(clean, monkeypatch):
    whole = add_rain(clean, "rain100h", seed=5)
    monkeypatch.setattr(synth, "STRIP_ROWS", 37)
    strips = add_rain(clean, "rain100h", seed=5)
    assert np.array_equal(whole[0], strips[0])
    assert np.allclose(whole[1], strips[1], atol=1e-6)


def test_look_is_resolution_independent():
    # Above the half-pixel streak-width floor (short side >= ~470 px) coverage must not drift.
    small = np.full((480, 640, 3), 100, np.uint8)
    large = np.full((1440, 1920, 3), 100, np.uint8)
    frac_small = (add_rain(small, "rain100l", seed=0)[1] > 0.05).mean()
    frac_large = (add_rain(large, "rain100l", seed=0)[1] > 0.05).mean()
    assert abs(frac_small - frac_large) / frac_large < 0.15


def test_parameter_validation():
    with pytest.raises(ValueError, match="unknown rain preset"):
        resolve_params("monsoon")
    with pytest.raises(ValueError, match="unknown rain parameter"):
        resolve_params("rain100l", colour=1)
    with pytest.raises(ValueError, match="intensity"):
        resolve_params("rain100l", intensity=5)
    doubled = resolve_params("rain100h", density=2)
    assert [l.density for l in doubled.layers] == [2 * l.density for l in PRESETS["rain100h"].layers]
    with pytest.raises(ValueError, match="uint8"):
        add_rain(np.zeros((8, 8), np.uint8))


def test_cli_writes_pairs_that_read_back(tmp_path):
    src = tmp_path / "clean" / "sub"
    src.mkdir(parents=True)
    for name in ("astronaut", "chelsea"):
        from collection.images import save_image

        save_image(getattr(data, name)()[:128, :160], src / f"{name}.png")
    out = tmp_path / "synth"
    assert main(["synth", str(tmp_path / "clean"), "--out", str(out), "--preset", "rain100h", "-q", "--workers", "0"]) == 0
    names = sorted(p.stem for p in (out / "rainy").glob("*.png"))
    assert names == ["sub__astronaut", "sub__chelsea"] == sorted(p.stem for p in (out / "clean").glob("*.png"))
    for name in names:
        rainy, clean_img = load_image(out / "rainy" / f"{name}.png"), load_image(out / "clean" / f"{name}.png")
        params = json.loads((out / "params" / f"{name}.json").read_text())
        assert params["preset"] == "rain100h" and params["width"] == 160
        assert rainy.shape == clean_img.shape and _luma_psnr(rainy, clean_img) < 25
    heavy = (out / "rainy" / "sub__astronaut.png").read_bytes()
    assert main(["synth", str(tmp_path / "clean"), "--out", str(out), "-q", "--workers", "0"]) == 0
    light = (out / "rainy" / "sub__astronaut.png").read_bytes()  # another preset (the default): redone
    assert light != heavy
    assert json.loads((out / "params" / "sub__astronaut.json").read_text())["preset"] == "rain100l"


def test_rerun_skips_the_same_request_and_redoes_another(tmp_path):
    from collection.images import save_image

    src = tmp_path / "photo.png"
    save_image(data.astronaut()[:96, :128], src)
    out = tmp_path / "synth"
    first = synth.synthesize_file(src, out, "photo", preset="rain100h", seed=1)
    assert not first.skipped
    made = first.rainy.read_bytes()
    assert synth.synthesize_file(src, out, "photo", preset="rain100h", seed=1).skipped
    assert first.rainy.read_bytes() == made
    for change in ({"preset": "rain100l", "seed": 1}, {"preset": "rain100h", "seed": 2},
                   {"preset": "rain100h", "seed": 1, "density": 2.0}):
        again = synth.synthesize_file(src, out, "photo", **change)
        assert not again.skipped, change
        record = json.loads(again.params.read_text())
        assert (record["preset"], record["seed"]) == (change["preset"], synth.image_seed(change["seed"], "photo"))
        rainy, _, _ = add_rain(load_image(src), change["preset"], synth.image_seed(change["seed"], "photo"),
                               **{k: v for k, v in change.items() if k not in ("preset", "seed")})
        assert np.array_equal(load_image(again.rainy), rainy)  # the images on disk match the record
    again.params.write_text("{not json")  # a damaged record never counts as done
    assert not synth.synthesize_file(src, out, "photo", preset="rain100h", seed=1, density=2.0).skipped
    assert [p.name for p in (out / "params").iterdir()] == ["photo.json"]  # no temporary left behind
