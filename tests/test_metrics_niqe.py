"""NIQE offline: fit the pristine Gaussian on test images, then score with pyiqa's own NIQE code."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch
from metric_images import add_rain
from skimage import data

from collection.files import sha256_file
from rainbench.metrics import MetricError, create_metric, fit_niqe


def to_batch(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


TRAIN = data.astronaut()[:192, :288]


@pytest.fixture(scope="module")
def single_model(tmp_path_factory):
    """A model fitted on one image with every patch kept."""
    return fit_niqe([TRAIN], tmp_path_factory.mktemp("niqe") / "one.mat", sharpness_threshold=0.0)


def test_model_file_has_pyiqa_keys_and_a_valid_gaussian(single_model):
    params = scipy.io.loadmat(single_model)
    mu, cov = params["mu_prisparam"], params["cov_prisparam"]
    assert mu.shape == (1, 36) and cov.shape == (36, 36)  # 18 features x 2 scales, as pyiqa's NIQE
    np.testing.assert_allclose(cov, cov.T, atol=1e-10)
    assert np.linalg.eigvalsh(cov).min() > -1e-8
    assert int(params["n_patches"][0, 0]) == (192 // 96) * (288 // 96)


def test_image_scored_against_its_own_model_is_perfectly_natural(single_model):
    # NIQE is the Mahalanobis-like distance between the image's feature mean and the model's mean:
    # a model fitted on exactly the image's patches gives 0, only if fitting used NIQE's features.
    metric = create_metric("niqe", niqe_model=single_model)
    assert metric(to_batch(TRAIN)).item() == pytest.approx(0.0, abs=1e-6)


def test_rain_scores_worse_than_clean_on_held_out_images(tmp_path):
    train = [data.astronaut()[:288, :384], data.coffee()[:288, :384], data.chelsea()[:288, :384]]
    model = fit_niqe(train, tmp_path / "niqe.mat", sharpness_threshold=0.0)
    metric = create_metric("niqe", niqe_model=model)
    held_out = data.rocket()[:288, :384]
    scores = metric(torch.cat([to_batch(held_out), to_batch(add_rain(held_out, seed=5, heavy=True))]))
    assert metric.spec.lower_better
    assert scores[1] > scores[0]


def test_spec_records_the_model_hash_and_a_file_in_weights_dir_is_used(single_model, tmp_path, monkeypatch):
    direct = create_metric("niqe", niqe_model=single_model)
    assert direct.spec.weights == {single_model.name: sha256_file(single_model)}
    wdir = tmp_path / "weights"
    (wdir / "pyiqa").mkdir(parents=True)
    placed = wdir / "pyiqa" / "niqe_modelparameters.mat"
    placed.write_bytes(single_model.read_bytes())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch"))
    from_dir = create_metric("niqe", weights_dir=wdir, offline=True)
    assert from_dir.spec.weights == {"niqe_modelparameters.mat": sha256_file(placed)}
    rainy = to_batch(add_rain(TRAIN, seed=3))
    assert from_dir(rainy).item() == pytest.approx(direct(rainy).item(), rel=1e-9)


def test_fit_rejects_bad_images(tmp_path):
    with pytest.raises(MetricError, match="smaller than one 96x96"):
        fit_niqe([np.zeros((50, 200, 3), np.uint8)], tmp_path / "x.mat")
    with pytest.raises(MetricError, match="uint8"):
        fit_niqe([np.zeros((100, 100), np.float32)], tmp_path / "x.mat")
    with pytest.raises(MetricError, match="no clean images"):
        fit_niqe([], tmp_path / "x.mat")
    with pytest.raises(MetricError, match="not found"):
        create_metric("niqe", niqe_model=tmp_path / "missing.mat")
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"definitely not MATLAB")
    with pytest.raises(MetricError, match="junk.mat: not a NIQE model"):
        create_metric("niqe", niqe_model=junk)
    scipy.io.savemat(str(tmp_path / "other.mat"), {"something": np.zeros(3)})
    with pytest.raises(MetricError, match="other.mat: not a NIQE model"):
        create_metric("niqe", niqe_model=tmp_path / "other.mat")
