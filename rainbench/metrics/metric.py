"""A scoring callable built from a :class:`MetricSpec`: pyiqa where it follows the convention.

``Metric(pred, ref)`` takes float N x 3 x H x W tensors in [0, 1], quantises them to uint8 values
(as saved PNGs would hold them) and returns one float64 score per image. PSNR of identical images
is ``inf`` (20 log10(255 / 0), as MATLAB gives): rainbench keeps it rather than inventing a cap.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

from rainbench.metrics.errors import MetricError
from rainbench.metrics.specs import MetricSpec, get_spec
from rainbench.metrics.ssim import image_mean, ssim_downsampled, ssim_index
from rainbench.metrics.ycbcr import quantise_uint8, y_bt601_limited

logger = logging.getLogger(__name__)


class Metric:
    """One metric, ready to score batches: ``metric(pred, ref=None) -> Tensor[N]`` (float64, CPU)."""

    def __init__(self, spec: MetricSpec, score: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
                 device: torch.device, pyiqa_model: torch.nn.Module | None = None):
        self.spec = spec
        self.device = device
        self.pyiqa_model = pyiqa_model
        self._score = score

    @property
    def name(self) -> str:
        """The metric's rainbench name."""
        return self.spec.name

    @property
    def lower_better(self) -> bool:
        """Direction, as pyiqa reports it."""
        return self.spec.lower_better

    def __repr__(self) -> str:
        return f"Metric({self.spec.name!r}, device={self.device}, lower_better={self.spec.lower_better})"

    def __call__(self, pred: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """Score ``pred`` (against ``ref`` for reference metrics): one float64 value per image."""
        _check_batch(pred, "pred")
        if self.spec.needs_reference:
            if ref is None:
                raise MetricError(f"metric {self.spec.name!r} needs a reference (clean) image")
            _check_batch(ref, "ref")
            if ref.shape != pred.shape:
                raise MetricError(f"metric {self.spec.name!r}: pred {tuple(pred.shape)} and ref "
                                  f"{tuple(ref.shape)} differ in shape")
        q_pred = quantise_uint8(pred.to(self.device))
        q_ref = quantise_uint8(ref.to(self.device)) if self.spec.needs_reference else None
        # Scores must not depend on a caller's AMP context: autocast off, full precision.
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=False):
            scores = self._score(q_pred, q_ref)
        scores = scores.detach().to("cpu", torch.float64).reshape(-1)
        if scores.numel() != pred.shape[0]:
            raise MetricError(f"metric {self.spec.name!r} returned {scores.numel()} scores for "
                              f"{pred.shape[0]} images")
        return scores


def _check_batch(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise MetricError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise MetricError(f"{what}: expected N x 3 x H x W, got shape {tuple(x.shape)}")


def _build_pyiqa(pyiqa_name: str, device: torch.device, **options) -> torch.nn.Module:
    """``pyiqa.create_metric`` with its stdout chatter ("Loading pretrained model ...") sent to logging."""
    import pyiqa

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        model = pyiqa.create_metric(pyiqa_name, device=device, **options)
    for line in buffer.getvalue().splitlines():
        if line.strip():
            logger.debug("pyiqa: %s", line.strip())
    return model


def _reference_scorer(name: str):
    """The score function of a reference metric on uint8-valued (0..255 float64) batches."""

    if name in ("psnr", "psnr_rgb"):
        def score(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
            if name == "psnr":
                pred, ref = y_bt601_limited(pred), y_bt601_limited(ref)
            # pyiqa's psnr formula (data_range 1, eps 0) with a thread-count-independent mean
            mse = image_mean((pred / 255.0 - ref / 255.0) ** 2)
            return 10 * torch.log10(1.0 / mse)
        return score
    if name in ("ssim", "ssim_rgb"):
        def score(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
            if name == "ssim":
                pred, ref = y_bt601_limited(pred), y_bt601_limited(ref)
            return ssim_index(pred, ref)
        return score
    if name == "ssim_ds":
        return lambda pred, ref: ssim_downsampled(y_bt601_limited(pred), y_bt601_limited(ref))
    return None


def create_metric(name: str, device: str | torch.device = "cpu", weights_dir: str | os.PathLike | None = None,
                  offline: bool = True, niqe_model: str | os.PathLike | None = None) -> Metric:
    """Build metric ``name`` on ``device``; weights resolve from ``weights_dir`` first (see rainbench.weights).

    ``offline`` (default) forbids downloads: a missing weight file raises WeightsMissingError before
    anything is loaded. ``niqe_model`` is a .mat from ``fit_niqe`` (or pyiqa's format) for ``niqe``.
    """
    from collection.files import sha256_file
    from rainbench.weights import pyiqa_environment

    spec = get_spec(name)
    dev = torch.device(device)
    options = dict(spec.options)
    if spec.name in ("psnr", "psnr_rgb"):
        # The score is computed by rainbench (pyiqa's formula); pyiqa's model gives its direction.
        model = _build_pyiqa("psnr", dev, **options)
        spec = spec.replace(lower_better=bool(model.lower_better))
        return Metric(spec, _reference_scorer(spec.name), dev, model)
    if spec.name in ("ssim", "ssim_rgb", "ssim_ds"):
        # The map is computed by rainbench; pyiqa's model is built only for its direction.
        model = _build_pyiqa(spec.pyiqa_name, dev)
        spec = spec.replace(lower_better=bool(model.lower_better))
        return Metric(spec, _reference_scorer(spec.name), dev, model)

    if spec.name == "niqe" and niqe_model is not None:
        path = Path(niqe_model).expanduser()
        if not path.is_file():
            raise MetricError(f"{path}: NIQE model file not found (fit one with `rainbench metric-weights fit-niqe`)")
        try:
            model = _build_pyiqa("niqe", dev, pretrained_model_path=str(path))
        except Exception as exc:  # loadmat raises ValueError, IndexError, KeyError... on foreign files
            raise MetricError(f"{path}: not a NIQE model (.mat with mu_prisparam, cov_prisparam): {exc}") from exc
        spec = spec.replace(lower_better=bool(model.lower_better),
                            options={**spec.options, "pretrained_model_path": path.name},
                            weights={path.name: sha256_file(path, memo=True)})
    else:
        with pyiqa_environment(spec.name, weights_dir, offline=offline) as resolved:
            model = _build_pyiqa(spec.pyiqa_name, dev, **options)
        if resolved:
            spec = spec.replace(weights={key: sha256_file(p, memo=True) for key, p in sorted(resolved.items())})
        spec = spec.replace(lower_better=bool(model.lower_better))

    def score(pred: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
        x = (pred / 255.0).to(torch.float32)
        if spec.needs_reference:
            return model(x, (ref / 255.0).to(torch.float32))
        return model(x)

    return Metric(spec, score, dev, model)
