"""Fit a NIQE model (the pristine multivariate Gaussian) on clean images, with pyiqa's feature code.

NIQE scores an image by the distance between the Gaussian fitted to its patch features and a
Gaussian fitted once on pristine images (Mittal et al. 2012, ``estimatemodelparam.m``): patches of
``patch_size`` pixels, two scales, the 36 features of pyiqa's ``compute_feature``, keeping only
patches whose sharpness (mean local standard deviation) exceeds ``sharpness_threshold`` times the
image's sharpest patch. The result is saved as pyiqa reads it (``mu_prisparam``,
``cov_prisparam`` in a .mat), so ``create_metric("niqe", niqe_model=path)`` runs pyiqa's NIQE.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from collection.files import atomic_path
from rainbench.metrics.errors import MetricError

logger = logging.getLogger(__name__)


def _luma_for_niqe(image: np.ndarray, color_space: str) -> torch.Tensor:
    """The 1 x 1 x H x W float64 luma pyiqa's ``calculate_niqe`` scores (same conversion, same rounding)."""
    from pyiqa.archs.func_util import diff_round
    from pyiqa.utils.color_util import to_y_channel

    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].to(torch.float32) / 255.0
    return diff_round(to_y_channel(x, 255, color_space)).to(torch.float64)


def niqe_patch_features(image: np.ndarray, patch_size: int = 96, sharpness_threshold: float = 0.75,
                        color_space: str = "yiq") -> np.ndarray:
    """Features (P x 36) of one image's sharp patches, as ``estimatemodelparam.m`` selects them."""
    from pyiqa.archs.func_util import normalize_img_with_gauss
    from pyiqa.archs.niqe_arch import compute_feature
    from pyiqa.matlab_utils import blockproc, fspecial, imfilter, imresize

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise MetricError(f"expected a uint8 H x W x 3 image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    if h < patch_size or w < patch_size:
        raise MetricError(f"image {w}x{h} is smaller than one {patch_size}x{patch_size} NIQE patch")
    img = _luma_for_niqe(image, color_space)
    img = img[..., : (h // patch_size) * patch_size, : (w // patch_size) * patch_size]

    # Sharpness of each patch: mean local standard deviation with NIQE's 7x7 window (scale 1 only).
    window = fspecial(7, 7.0 / 6, 1).to(img)
    mu = imfilter(img, window, padding="replicate")
    sigma = torch.sqrt((imfilter(img * img, window, padding="replicate") - mu * mu).abs())
    sharpness = blockproc(sigma, [patch_size, patch_size],
                          fun=lambda block, _args: block.mean(dim=(1, 2, 3)).reshape(-1, 1))
    sharpness = sharpness.reshape(-1)

    feats = []
    for scale in (1, 2):
        normalized = normalize_img_with_gauss(img, padding="replicate")
        feats.append(blockproc(normalized, [patch_size // scale, patch_size // scale], fun=compute_feature))
        if scale == 1:
            img = imresize(img / 255.0, scale=0.5, antialiasing=True) * 255.0
    features = torch.cat(feats, dim=-1)[0]
    keep = sharpness > sharpness_threshold * sharpness.max()
    return features[keep].cpu().numpy()


def fit_niqe(clean_images: Iterable[np.ndarray], out_path: str | os.PathLike, patch_size: int = 96,
             sharpness_threshold: float = 0.75, color_space: str = "yiq",
             on_image: Callable[[int, int], None] | None = None) -> Path:
    """Fit NIQE's pristine Gaussian on uint8 H x W x 3 images and save it as a pyiqa-readable .mat.

    ``on_image(index, n_patches)`` is called after each image (for progress). Returns ``out_path``.
    """
    from scipy.io import savemat

    if patch_size != 96:
        # pyiqa's NIQE scores with 96-pixel patches; a model fitted on others would not match it.
        logger.warning("pyiqa's NIQE scores 96x96 patches; a model fitted on %d-pixel patches mismatches it",
                       patch_size)
    rows = []
    for index, image in enumerate(clean_images):
        feats = niqe_patch_features(image, patch_size, sharpness_threshold, color_space)
        rows.append(feats)
        if on_image is not None:
            on_image(index, len(feats))
    if not rows:
        raise MetricError("fit_niqe: no clean images given")
    data = np.concatenate(rows, axis=0)
    data = data[np.isfinite(data).all(axis=1)]
    n_features = data.shape[1] if data.ndim == 2 else 0
    if data.shape[0] < 2:
        raise MetricError(f"fit_niqe: only {data.shape[0]} usable patch(es); give more (or larger) clean "
                          "images, or lower sharpness_threshold")
    if data.shape[0] <= n_features:
        # NIQE inverts (cov_pristine + cov_image) / 2 with a pseudo-inverse, so this still scores,
        # but the pristine covariance is rank-deficient.
        logger.warning("fit_niqe: %d patches for %d features: the covariance is rank-deficient",
                       data.shape[0], n_features)
    mu = data.mean(axis=0)
    cov = np.cov(data, rowvar=False)
    out = Path(out_path).expanduser()
    # savemat appends ".mat" to bare names; a handle keeps ours.
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        savemat(fh, {"mu_prisparam": mu[None, :], "cov_prisparam": cov,
                     "n_patches": np.array([[data.shape[0]]]), "patch_size": np.array([[patch_size]]),
                     "sharpness_threshold": np.array([[sharpness_threshold]])})
    return out
