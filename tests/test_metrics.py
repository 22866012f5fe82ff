"""Metric specs, the create_metric contract, input validation and weight-free pyiqa metrics."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from metric_images import pairs

from rainbench.metrics import (
    MetricError,
    MetricSpec,
    available_metrics,
    create_metric,
    get_spec,
)
from rainbench.weights import WeightsMissingError

ALL = ["psnr", "ssim", "psnr_rgb", "ssim_rgb", "ssim_ds", "lpips", "niqe", "brisque", "piqe",
       "musiq", "clipiqa", "maniqa", "topiq_nr"]


def to_batch(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


@pytest.fixture()
def isolated_caches(tmp_path, monkeypatch):
    """Empty torch hub and Hub caches, no weights dir: nothing can be found by accident."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("RAINBENCH_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def test_available_metrics_are_the_contract_names():
    assert sorted(available_metrics()) == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_spec_fields_and_direction(name):
    spec = get_spec(name)
    assert spec.name == name and spec.quantise == "uint8" and spec.crop == 0
    assert spec.pyiqa_version == __import__("pyiqa").__version__
    # Directions the metric papers define (spec/metrics.md): distances and NR "naturalness" scores
    # are lower-better, fidelity and learned quality scores higher-better.
    assert spec.lower_better == (name in {"lpips", "niqe", "brisque", "piqe"})
    assert spec.needs_reference == (name in {"psnr", "ssim", "psnr_rgb", "ssim_rgb", "ssim_ds", "lpips"})


def test_default_convention_is_the_matlab_one():
    for name in ("psnr", "ssim", "ssim_ds"):
        assert get_spec(name).color_space == "ycbcr-bt601-limited"
    assert get_spec("ssim").ssim_variant == "ssim_index_2003"
    assert get_spec("ssim_ds").ssim_variant == "ssim_downsample"
    assert get_spec("psnr_rgb").color_space == get_spec("ssim_rgb").color_space == "rgb"
    assert get_spec("psnr").ssim_variant is None


def test_spec_json_is_stable_and_complete():
    spec = get_spec("lpips")
    text = spec.to_json()
    assert text == get_spec("lpips").to_json()
    assert json.loads(text) == spec.to_dict()
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert {"name", "pyiqa_name", "options", "color_space", "quantise", "crop", "ssim_variant", "lower_better",
            "needs_reference", "pyiqa_version", "weights"} <= set(json.loads(text))
    assert "LPIPS_v0.1_alex-df73285e.pth" in spec.weights
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]
    assert isinstance(spec, MetricSpec)


def test_unknown_metric_names_the_choices():
    with pytest.raises(MetricError, match="unknown metric 'psnrr'.*psnr"):
        get_spec("psnrr")
    with pytest.raises(MetricError, match="unknown metric"):
        create_metric("nope")


@pytest.fixture(scope="module")
def psnr():
    return create_metric("psnr")


def test_created_direction_equals_pyiqa_metric_attribute(psnr):
    import pyiqa

    for metric, pyiqa_name in ((psnr, "psnr"), (create_metric("piqe"), "piqe"), (create_metric("ssim"), "ssim")):
        assert metric.spec.lower_better == bool(pyiqa.create_metric(pyiqa_name, device="cpu").lower_better)


def test_bad_inputs_raise_metric_error(psnr):
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(MetricError, match="needs a reference"):
        psnr(x)
    with pytest.raises(MetricError, match="differ in shape"):
        psnr(x, torch.rand(1, 3, 32, 30))
    with pytest.raises(MetricError, match="N x 3 x H x W"):
        psnr(torch.rand(3, 32, 32), torch.rand(3, 32, 32))
    with pytest.raises(MetricError, match="NaN"):
        psnr(torch.full((1, 3, 32, 32), math.nan), x)
    with pytest.raises(MetricError, match="float"):
        psnr((x * 255).to(torch.uint8), x)


def test_values_outside_unit_range_are_clipped_like_a_saved_png(psnr):
    ref = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    over = ref.clone()
    over[..., :4, :4] = 1.7
    clipped = over.clamp(0, 1)
    assert psnr(over, ref).item() == psnr(clipped, ref).item()


def test_piqe_runs_the_real_pyiqa_metric_on_quantised_input():
    import pyiqa

    _, rainy, clean = pairs()[0]
    metric = create_metric("piqe")
    batch = torch.cat([to_batch(rainy), to_batch(clean)])
    ours = metric(batch)
    assert ours.shape == (2,) and ours.dtype == torch.float64 and torch.isfinite(ours).all()
    direct = pyiqa.create_metric("piqe", device="cpu")(batch).reshape(-1).double()
    torch.testing.assert_close(ours, direct, rtol=1e-6, atol=1e-6)
    assert metric.spec.weights == {}


def test_metric_with_missing_weights_fails_before_loading(isolated_caches):
    wdir = isolated_caches / "weights"
    with pytest.raises(WeightsMissingError) as info:
        create_metric("brisque", weights_dir=wdir)
    message = str(info.value)
    assert "brisque_svm_weights.pth" in message
    assert str(wdir / "pyiqa" / "brisque_svm_weights.pth") in message
    assert f"rainbench metric-weights fetch brisque --metric-weights {wdir}" in message
    assert not (wdir / "pyiqa").exists()  # nothing was downloaded or created


def test_images_smaller_than_the_ssim_window_are_rejected():
    tiny = torch.rand(1, 3, 8, 40)
    with pytest.raises(MetricError, match="smaller than the 11x11 SSIM window"):
        create_metric("ssim")(tiny, tiny)


def test_scores_ignore_a_callers_autocast_context():
    # pyiqa's PIQE filters float32 images with conv2d, which CPU autocast would run in bfloat16.
    _, rainy, _ = pairs()[1]
    metric = create_metric("piqe")
    plain = metric(to_batch(rainy)).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = metric(to_batch(rainy)).item()
    assert inside == plain


def test_weighted_pyiqa_metric_loads_from_weights_dir_offline(isolated_caches):
    # A stand-in BRISQUE SVM (pyiqa's file format: (sv_coef, sv) tensors) placed in a weights dir:
    # create_metric must run pyiqa's real BRISQUE on it without network and record its sha256.
    import pyiqa

    from collection.files import sha256_file

    wdir = isolated_caches / "weights"
    path = wdir / "pyiqa" / "brisque_svm_weights.pth"
    path.parent.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    torch.save((torch.randn(6, generator=gen, dtype=torch.float64),
                torch.rand(6, 36, generator=gen, dtype=torch.float64)), path)
    metric = create_metric("brisque", weights_dir=wdir, offline=True)
    assert metric.spec.weights == {"brisque_svm_weights.pth": sha256_file(path)}
    _, rainy, _ = pairs()[0]
    direct = pyiqa.create_metric("brisque", pretrained_model_path=str(path), device="cpu")
    assert metric(to_batch(rainy)).item() == pytest.approx(direct(to_batch(rainy)).item(), rel=1e-6)
