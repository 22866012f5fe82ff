"""One batch of a benchmark run: derain it with every method, quantise, score with every metric.

Also the run's prepared inputs: :class:`MethodRequest` (a method by name, weights and options),
:func:`prepare_method` and :func:`prepare_metrics`, which the driver and every distributed worker
call alike.

:class:`BatchRunner` is the runner's inner loop (see :mod:`rainbench.runner`). A method that
raises, returns NaN/inf or the wrong shape on an image gives that image an error row and the batch
goes on: a failing batch is retried image by image so one bad image never takes its batch-mates
down with it. Outputs are quantised to 8 bits (:func:`collection.images.quantise`, the MATLAB
convention) before scoring, exactly as a saved PNG would hold them.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from baselines.spec import config_hash as hash_config
from rainbench.data import SUBSET_COLUMNS, Sample

logger = logging.getLogger(__name__)


@dataclass
class PreparedMethod:
    """A created method with the name, config hash and request the run records."""

    name: str
    model: Any
    config_hash: str
    request: dict[str, Any]
    item: Any = None
    """What it was created from (a MethodRequest, or the built object): a distributed worker creates its own from it."""


@dataclass(eq=False)  # compared by identity: the runner asks "is this metric expected for this image"
class PreparedMetric:
    """A built metric with what the run needs to know of its spec."""

    name: str
    fn: Any
    needs_reference: bool
    lower_better: bool
    spec_json: str


@dataclass(frozen=True)
class MethodRequest:
    """A method to run: registry name, optional checkpoint, and config overrides."""

    name: str
    weights: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    tile: int | None = None
    """Tile size set on the created method (``method.tile``: 0 never tiles); None keeps its default."""


def prepare_method(item: MethodRequest | tuple | Any, device: Any) -> PreparedMethod:
    """Create a method from a request (name, weights, config), or wrap an already-built one."""
    if isinstance(item, tuple):
        item = MethodRequest(*item)
    if isinstance(item, str):
        item = MethodRequest(item)
    if isinstance(item, MethodRequest):
        import baselines

        model = baselines.create(item.name, weights=item.weights, device=str(device), **dict(item.config))
        request = {"name": item.name, "weights": item.weights, "config": dict(item.config)}
        if item.tile is not None:
            model.tile = item.tile
            request["tile"] = item.tile
        name = item.name
    else:
        model = item
        name = getattr(model, "name", None) or getattr(getattr(model, "info", None), "name", None)
        if not name:
            raise ValueError(f"method object {model!r} has no name (set .name or .info.name)")
        request = {"name": name, "weights": None, "config": dict(getattr(model, "config", {}) or {})}
    if getattr(model, "has_weights", True) is False:  # fail before the run, not once per image
        raise ValueError(f"method {name!r} needs weights: pass --weights {name}=FILE (weights= in MethodRequest), "
                         f"or train them with `rainbench train --method {name}`")
    config_hash = getattr(model, "config_hash", None) or hash_config(request)
    return PreparedMethod(name, model, str(config_hash), request, item)


def prepare_metrics(items: Sequence[Any], device: Any, weights_dir: Path | None, niqe_model: Path | None) -> list[PreparedMetric]:
    """Check every metric's weights first (fail before any work), then build them (never downloading)."""
    names = [item for item in items if isinstance(item, str) and not (item == "niqe" and niqe_model is not None)]
    if names:
        from rainbench.weights import check

        check(names, weights_dir)
    out = []
    for item in items:
        if isinstance(item, str):
            from rainbench.metrics import create_metric

            # Weights were checked above, so nothing needs fetching: a download here would be a bug.
            item = create_metric(item, device=str(device), weights_dir=weights_dir, offline=True,
                                 niqe_model=niqe_model if item == "niqe" else None)
        spec = item.spec
        spec_json = spec.to_json() if hasattr(spec, "to_json") else json.dumps(spec, sort_keys=True, default=str)
        out.append(PreparedMetric(spec.name, item, bool(spec.needs_reference), bool(spec.lower_better), spec_json))
    if len({m.name for m in out}) != len(out):
        raise ValueError("the same metric is requested twice")
    return out


def is_method_failure(exc: BaseException) -> bool:
    """True for what a method may raise and the caller records per image: everything but Ctrl-C.

    ``SystemExit`` (a method calling ``sys.exit``) is a failure of that image, not the end of the
    process; ``KeyboardInterrupt`` and ``GeneratorExit`` keep their meaning and propagate.
    """
    return not isinstance(exc, (KeyboardInterrupt, GeneratorExit))


def error_text(exc: BaseException) -> str:
    """One line for a result row's ``error``: ``Type: first line of the message``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, SystemExit):
        return f"SystemExit: the method called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class BatchRunner:
    """Runs one size-homogeneous batch of samples through every method and metric."""

    def __init__(self, methods, metrics, device, amp: bool, outputs_dir: Path | None, base: dict, meta: pd.DataFrame):
        import torch

        self.torch = torch
        self.methods, self.metrics, self.device = methods, metrics, device
        self.amp = amp and device.type == "cuda"
        self.outputs_dir = outputs_dir
        self.base = base
        self.has_clean = meta["has_clean"].to_numpy()
        self.subsets = [{c: None if pd.isna(v) else str(v) for c, v in zip(SUBSET_COLUMNS, values)}
                        for values in meta[list(SUBSET_COLUMNS)].itertuples(index=False)]

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def _call(self, method: PreparedMethod, x, amp: bool):
        torch = self.torch
        autocast = torch.autocast("cuda", dtype=torch.float16) if amp else nullcontext()
        with torch.no_grad(), autocast:
            y = method.model.derain(x)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"derain returned {type(y).__name__}, not a tensor")
        return y.float()

    def derain(self, method: PreparedMethod, x) -> tuple[list, list[str | None], list[float]]:
        """Per image: the output (or None), the error text (or None), and seconds spent."""
        n = x.shape[0]
        start = time.perf_counter()
        try:
            y = self._call(method, x, self.amp)
            self._sync()
        except BaseException as exc:  # a method's failure is data, recorded per image (sys.exit too)
            if not is_method_failure(exc):
                raise
            if n > 1:
                return self._one_by_one(method, x)
            return [None], [error_text(exc)], [time.perf_counter() - start]
        if tuple(y.shape) != tuple(x.shape):
            if n > 1:
                return self._one_by_one(method, x)
            return [None], [f"wrong output shape {tuple(y.shape)} for input {tuple(x.shape)}"], [time.perf_counter() - start]
        seconds = [(time.perf_counter() - start) / n] * n
        finite = self.torch.isfinite(y.reshape(n, -1)).all(dim=1).tolist()  # one pass for the batch
        outputs, errors = [], []
        for i in range(n):
            out = y[i:i + 1]
            if not finite[i] and self.amp:
                out = self._call(method, x[i:i + 1], amp=False)
                finite[i] = bool(self.torch.isfinite(out).all())
            outputs.append(out if finite[i] else None)
            errors.append(None if finite[i] else "output holds NaN or infinite values")
        return outputs, errors, seconds

    def _one_by_one(self, method: PreparedMethod, x):
        outputs, errors, seconds = [], [], []
        for i in range(x.shape[0]):
            o, e, s = self.derain(method, x[i:i + 1])
            outputs += o
            errors += e
            seconds += s
        return outputs, errors, seconds

    def score(self, metric: PreparedMetric, pred, ref) -> list[tuple[float, str | None]]:
        """Score a batch (against ``ref`` for reference metrics); a failing batch is retried image by image."""
        torch = self.torch
        n = pred.shape[0]
        try:
            with torch.no_grad():
                values = metric.fn(pred, ref) if metric.needs_reference else metric.fn(pred)
            values = torch.as_tensor(values).detach().double().reshape(-1).cpu().numpy()
            if len(values) != n:
                raise ValueError(f"metric returned {len(values)} values for {n} images")
        except BaseException as exc:  # recorded per image, as for methods
            if not is_method_failure(exc):
                raise
            if n > 1:
                return [r for i in range(n) for r in self.score(metric, pred[i:i + 1], None if ref is None else ref[i:i + 1])]
            return [(float("nan"), error_text(exc))]
        # inf is a legitimate score (PSNR of a perfect reconstruction); NaN never is
        return [(float(v), None if not np.isnan(v) else "metric value is nan") for v in values]

    def run(self, samples: list[Sample], pending: dict[str, set[str]]) -> list[dict]:
        """Result rows for every pending (sample, method, expected metric) of one batch."""
        from collection.images import quantise, save_image, to_tensor, to_uint8

        torch = self.torch
        rows: list[dict] = []
        expected = {s.id: [m for m in self.metrics if self.has_clean[s.index] or not m.needs_reference] for s in samples}

        def row(sample: Sample, method: PreparedMethod, metric: PreparedMetric, value: float, error: str | None, seconds: float) -> dict:
            return {**self.base, "image_id": sample.id, "method": method.name, "method_config_hash": method.config_hash,
                    "metric": metric.name, "metric_spec": metric.spec_json, "value": value,
                    "lower_better": metric.lower_better, "seconds": seconds, "error": error, **self.subsets[sample.index]}

        good = [s for s in samples if s.error is None]
        for s in samples:
            if s.error is not None:
                for method in self.methods:
                    if method.name in pending[s.id]:
                        rows += [row(s, method, m, float("nan"), s.error, 0.0) for m in expected[s.id]]
        if not good:
            return rows
        # to_tensor returns a channels-last view; convolutions in methods and metrics run about 2x
        # faster on the usual contiguous N x C x H x W layout.
        x = to_tensor([s.rainy for s in good]).to(self.device, memory_format=torch.contiguous_format)
        clean: dict[str, Any] = {}
        clean_error: dict[str, str] = {}
        for s in good:
            if s.clean is None:
                continue
            if s.clean.shape != s.rainy.shape:
                clean_error[s.id] = f"clean image is {s.clean.shape[1]}x{s.clean.shape[0]}, rainy is {s.rainy.shape[1]}x{s.rainy.shape[0]}"
            else:
                clean[s.id] = to_tensor(s.clean).to(self.device, memory_format=torch.contiguous_format)
        for method in self.methods:
            idx = [i for i, s in enumerate(good) if method.name in pending[s.id]]
            if not idx:
                continue
            outputs, errors, seconds = self.derain(method, x if len(idx) == len(good) else x[idx])
            ok: list[tuple[Sample, float]] = []
            for i, out, err, sec in zip(idx, outputs, errors, seconds):
                if err is None:
                    ok.append((good[i], sec))
                else:
                    logger.debug("%s on %s: %s", method.name, good[i].id, err)
                    rows += [row(good[i], method, m, float("nan"), err, sec) for m in expected[good[i].id]]
            if not ok:
                continue
            # Quantise as a saved PNG would be: quantise / 255 equals to_uint8 then to_tensor, in one pass.
            kept = [out for out in outputs if out is not None]
            pred = kept[0] if len(kept) == 1 else torch.cat(kept)
            pred = quantise(pred).div_(255.0).float()  # a copy: the output may be the method's
            if self.outputs_dir is not None:
                for (s, _), array in zip(ok, to_uint8(pred)):
                    save_image(array, self.outputs_dir / method.name / f"{s.id}.png")
            for metric in self.metrics:
                chosen = [k for k, (s, _) in enumerate(ok) if metric in expected[s.id]]
                if metric.needs_reference:
                    for k in chosen:
                        s, sec = ok[k]
                        if s.id in clean_error:
                            rows.append(row(s, method, metric, float("nan"), clean_error[s.id], sec))
                    chosen = [k for k in chosen if ok[k][0].id in clean]
                if not chosen:
                    continue
                subset = pred if len(chosen) == len(ok) else pred[chosen]
                ref = torch.cat([clean[ok[k][0].id] for k in chosen]) if metric.needs_reference else None
                scores = self.score(metric, subset, ref)
                rows += [row(ok[k][0], method, metric, v, e, ok[k][1]) for k, (v, e) in zip(chosen, scores)]
        if self.outputs_dir is not None:
            for s in good:
                if s.clean is not None and pending[s.id]:
                    path = self.outputs_dir / "_clean" / f"{s.id}.png"
                    if not path.exists():
                        save_image(s.clean, path)
        return rows
