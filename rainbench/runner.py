"""The benchmark runner: derain every image of a split with every method and score the outputs.

:func:`run_benchmark` is the library entry point behind ``rainbench run``. It never prints; it
reports progress through a callback and returns a :class:`RunSummary`. Properties it keeps:

- metric weights are checked for every metric before any image is touched;
- results are flushed to Parquet part files every ``flush_every`` images, so a killed run loses
  at most one unflushed batch, and a re-run skips every (image, method) pair that is complete:
  resumed and uninterrupted runs give the same table;
- a method that raises, returns NaN/inf or the wrong shape on an image records an error row for
  that image (value NaN, error text) and the run goes on; a failing batch is retried image by
  image so one bad image never takes its batch-mates down with it. That includes a method that
  calls ``sys.exit`` or raises any other ``BaseException``: only Ctrl-C (``KeyboardInterrupt``)
  stops the run;
- one process writes a run directory at a time (:func:`collection.lock.output_lock`);
- outputs are quantised to uint8 before scoring, as a saved PNG would be, and can be saved so;
- reference metrics are computed only for rows that have a clean image;
- mixed precision (fp16 autocast) is used only on CUDA, and an image whose fp16 output is not
  finite is recomputed in fp32.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collection.lock import locks_output
from rainbench.data import BenchDataset, Sample, open_dataset
from rainbench.results import (
    ResultsError,
    ResultsWriter,
    consolidate,
    failed_images,
    failures_per_method,
    read_results,
    read_run_config,
    summary_table,
    write_run_config,
    write_summary,
)

logger = logging.getLogger(__name__)

SMALL_RUN = 32
"""Runs with fewer images than this decode in the main process whatever ``workers`` says."""

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(images_done, images_total)`` at the start and after every batch."""


@dataclass(frozen=True)
class MethodRequest:
    """A method to run: registry name, optional checkpoint, and config overrides."""

    name: str
    weights: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSummary:
    """What a run did: counts, failures, and the per-method, per-metric means."""

    run_dir: Path
    run_id: str
    dataset: str
    split: str
    dataset_fingerprint: str
    n_images: int
    """Rows of the split that have a rainy image."""
    n_processed: int
    """Images derained by this call (the rest were complete already, or need no work)."""
    n_resumed: int
    """Images skipped because every requested (method, metric) result was already stored."""
    failures: dict[str, int]
    """Per method: images whose result rows carry an error (all runs into this directory)."""
    failed_images: int
    """Images with an error row for at least one method (all runs into this directory)."""
    n_scored: int
    """Images with result rows, failed or not (all runs into this directory)."""
    table: pd.DataFrame
    """One row per (method, metric): mean, n, failures, lower_better."""
    seconds: float


@dataclass
class _Method:
    name: str
    model: Any
    config_hash: str
    request: dict[str, Any]


@dataclass(eq=False)  # compared by identity: the runner asks "is this metric expected for this image"
class _Metric:
    name: str
    fn: Any
    needs_reference: bool
    lower_better: bool
    spec_json: str


def _config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _prepare_method(item: MethodRequest | tuple | Any, device: Any) -> _Method:
    """Create a method from a request (name, weights, config), or wrap an already-built one."""
    if isinstance(item, tuple):
        item = MethodRequest(*item)
    if isinstance(item, str):
        item = MethodRequest(item)
    if isinstance(item, MethodRequest):
        import baselines

        model = baselines.create(item.name, weights=item.weights, device=str(device), **dict(item.config))
        request = {"name": item.name, "weights": item.weights, "config": dict(item.config)}
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
    config_hash = getattr(model, "config_hash", None) or _config_hash(request)
    return _Method(name, model, str(config_hash), request)


def _prepare_metrics(items: Sequence[Any], device: Any, weights_dir: Path | None, niqe_model: Path | None) -> list[_Metric]:
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
        out.append(_Metric(spec.name, item, bool(spec.needs_reference), bool(spec.lower_better), spec_json))
    if len({m.name for m in out}) != len(out):
        raise ValueError("the same metric is requested twice")
    return out


def _done_pairs(existing: pd.DataFrame, dataset: BenchDataset, methods: list[_Method], metrics: list[_Metric]) -> set[tuple[str, str]]:
    """(image_id, method) pairs whose every expected metric row is stored with the current config."""
    if existing.empty:
        return set()
    hashes = {m.name: m.config_hash for m in methods}
    specs = {m.name: m.spec_json for m in metrics}
    current = existing[(existing["method_config_hash"] == existing["method"].map(hashes))
                       & (existing["metric_spec"] == existing["metric"].map(specs))]
    have = current.groupby(["image_id", "method"])["metric"].agg(frozenset)
    has_clean = dict(zip(dataset.meta["id"], dataset.meta["has_clean"]))
    done = set()
    for (image_id, method), got in have.items():
        expected = {m.name for m in metrics if has_clean.get(image_id, False) or not m.needs_reference}
        if expected <= got:
            done.add((image_id, method))
    return done


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


class _BatchRunner:
    """Runs one size-homogeneous batch of samples through every method and metric."""

    def __init__(self, methods, metrics, device, amp: bool, outputs_dir: Path | None, base: dict, meta: pd.DataFrame):
        import torch

        self.torch = torch
        self.methods, self.metrics, self.device = methods, metrics, device
        self.amp = amp and device.type == "cuda"
        self.outputs_dir = outputs_dir
        self.base = base
        self.has_clean = meta["has_clean"].to_numpy()
        self.subsets = [{c: None if pd.isna(v) else str(v) for c, v in zip(("source", "rain_kind"), values)}
                        for values in meta[["source", "rain_kind"]].itertuples(index=False)]

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def _call(self, method: _Method, x, amp: bool):
        torch = self.torch
        autocast = torch.autocast("cuda", dtype=torch.float16) if amp else nullcontext()
        with torch.no_grad(), autocast:
            y = method.model.derain(x)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"derain returned {type(y).__name__}, not a tensor")
        return y.float()

    def derain(self, method: _Method, x) -> tuple[list, list[str | None], list[float]]:
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

    def _one_by_one(self, method: _Method, x):
        outputs, errors, seconds = [], [], []
        for i in range(x.shape[0]):
            o, e, s = self.derain(method, x[i:i + 1])
            outputs += o
            errors += e
            seconds += s
        return outputs, errors, seconds

    def score(self, metric: _Metric, pred, ref) -> list[tuple[float, str | None]]:
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
        from collection.images import save_image, to_tensor, to_uint8

        torch = self.torch
        rows: list[dict] = []
        expected = {s.id: [m for m in self.metrics if self.has_clean[s.index] or not m.needs_reference] for s in samples}

        def row(sample: Sample, method: _Method, metric: _Metric, value: float, error: str | None, seconds: float) -> dict:
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
            # Quantise as a saved PNG would be: round(255 x) / 255 equals to_uint8 then to_tensor, in one pass.
            kept = [out for out in outputs if out is not None]
            pred = kept[0] if len(kept) == 1 else torch.cat(kept)
            pred = torch.round(pred * 255.0).clamp_(0.0, 255.0).div_(255.0)  # never in place: the output may be the method's
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


def _new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@locks_output("out")
def run_benchmark(
    dataset: str | Path | BenchDataset,
    methods: Sequence[MethodRequest | tuple | Any],
    metrics: Sequence[str | Any],
    out: str | Path,
    *,
    split: str = "test",
    device: str | Any = "cpu",
    batch_size: int = 1,
    save_outputs: bool = False,
    workers: int = 0,
    progress: ProgressCallback | None = None,
    weights_dir: str | Path | None = None,
    niqe_model: str | Path | None = None,
    offline: bool = False,
    include_identity: bool = True,
    amp: bool = True,
    flush_every: int = 16,
) -> RunSummary:
    """Derain every image of ``split`` with every method, score it with every metric, store results in ``out``.

    ``methods`` are :class:`MethodRequest` or ``(name, weights, config)`` tuples (or built method
    objects); ``metrics`` are metric names (or built metric objects). ``offline`` applies to the
    dataset (Hub ids resolve from the local cache only); metric weights are never downloaded here.
    The ``identity`` method (the rainy input) is added unless ``include_identity`` is false.
    """
    import torch

    from rainbench.device import resolve_device

    started = time.perf_counter()
    out = Path(out)
    device = device if isinstance(device, torch.device) else resolve_device(str(device))
    weights_dir = Path(weights_dir) if weights_dir is not None else None
    if not methods and not include_identity:
        raise ValueError("no methods to run")
    if not metrics:
        raise ValueError("no metrics to compute")
    niqe_model = Path(niqe_model) if niqe_model is not None else None
    prepared_metrics = _prepare_metrics(list(metrics), device, weights_dir, niqe_model)
    if not isinstance(dataset, BenchDataset):
        dataset = open_dataset(dataset, split, offline=offline)
    prepared = [_prepare_method(item, device) for item in methods]
    if include_identity and "identity" not in {m.name for m in prepared}:
        prepared.insert(0, _prepare_method(MethodRequest("identity"), device))
    if len({m.name for m in prepared}) != len(prepared):
        raise ValueError("the same method is requested twice (one run directory holds one config per method)")

    previous = read_run_config(out)
    if previous is not None and (previous.get("dataset_fingerprint"), previous.get("split")) != (dataset.fingerprint, dataset.split):
        raise ResultsError(f"{out}: holds a run on dataset {previous.get('dataset')} split {previous.get('split')} "
                           f"(fingerprint {previous.get('dataset_fingerprint')}); use a new --out directory")
    run_id = previous["run_id"] if previous else _new_run_id()
    config = {
        "run_id": run_id, "dataset": dataset.name, "dataset_source": dataset.source, "split": dataset.split,
        "dataset_fingerprint": dataset.fingerprint,
        "methods": _merge_methods(previous, prepared),
        "metrics": {**(previous or {}).get("metrics", {}), **{m.name: json.loads(m.spec_json) for m in prepared_metrics}},
        "device": str(device), "batch_size": batch_size, "save_outputs": save_outputs, "amp": amp and device.type == "cuda",
    }
    write_run_config(out, config)

    done = _done_pairs(read_results(out), dataset, prepared, prepared_metrics)
    meta = dataset.meta
    pending: dict[str, set[str]] = {}
    order: list[int] = []
    n_resumed = 0
    for index, (image_id, has_rainy, has_clean) in enumerate(zip(meta["id"], meta["has_rainy"], meta["has_clean"])):
        if not has_rainy or not any(has_clean or not m.needs_reference for m in prepared_metrics):
            continue
        todo = {m.name for m in prepared if (image_id, m.name) not in done}
        if todo:
            pending[image_id] = todo
            order.append(index)
        else:
            n_resumed += 1
    if n_resumed:
        logger.info("%s: %d image(s) already complete, %d to do", out, n_resumed, len(order))
    base = {"run_id": run_id, "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint,
            "split": dataset.split, "device": str(device)}
    batch_runner = _BatchRunner(prepared, prepared_metrics, device, amp, out / "outputs" if save_outputs else None, base, meta)
    writer = ResultsWriter(out)
    total = len(order)
    if total < SMALL_RUN:
        workers = 0  # forking a worker costs about a second of CPU; a small run decodes faster in-process
    n_done = 0
    since_flush = 0
    if progress is not None:
        progress(0, total)
    try:
        for samples in dataset.batches(batch_size, workers=workers, indices=order):
            writer.add(batch_runner.run(samples, pending))
            n_done += len(samples)
            since_flush += len(samples)
            if since_flush >= flush_every:
                writer.flush()
                since_flush = 0
            if progress is not None:
                progress(n_done, total)
    finally:
        writer.close()
    consolidate(out)
    frame = read_results(out)
    write_summary(out, frame)
    return RunSummary(
        run_dir=out, run_id=run_id, dataset=dataset.name, split=dataset.split,
        dataset_fingerprint=dataset.fingerprint, n_images=int(meta["has_rainy"].sum()),
        n_processed=n_done, n_resumed=n_resumed, failures=failures_per_method(frame),
        failed_images=failed_images(frame), n_scored=int(frame["image_id"].nunique()), table=summary_table(frame),
        seconds=time.perf_counter() - started,
    )


def _merge_methods(previous: dict | None, prepared: list[_Method]) -> list[dict]:
    merged = {m["name"]: m for m in (previous or {}).get("methods", [])}
    for m in prepared:
        merged[m.name] = {**m.request, "config_hash": m.config_hash}
    return list(merged.values())
