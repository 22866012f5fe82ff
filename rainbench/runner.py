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
- outputs are quantised to uint8 before scoring (:func:`collection.images.quantise`, MATLAB's
  convention, the same as every metric's), as a saved PNG would be, and can be saved so;
- reference metrics are computed only for rows that have a clean image;
- mixed precision (fp16 autocast) is used only on CUDA, and an image whose fp16 output is not
  finite is recomputed in fp32.

The per-batch work (methods, quantisation, metrics, error rows) is :class:`rainbench.batch.BatchRunner`.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from collection.engine import Group
from collection.lock import locks_output
from collection.storage import Location, portable
from rainbench.batch import (  # noqa: F401 - MethodRequest, error_text, is_method_failure: part of the runner's API
    BatchRunner,
    MethodRequest,
    PreparedMethod,
    PreparedMetric,
    error_text,
    is_method_failure,
    prepare_method,
    prepare_metrics,
)
from rainbench.data import BenchDataset, open_dataset
from rainbench.shards import RemoteScorer, Scorer, Shard, method_shards
from rainbench.results import (
    ResultsError,
    ResultsWriter,
    consolidate,
    next_generation,
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


def _done_pairs(existing: pd.DataFrame, dataset: BenchDataset, methods: list[PreparedMethod], metrics: list[PreparedMetric]) -> set[tuple[str, str]]:
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


def _new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@locks_output("out")
def run_benchmark(
    dataset: str | Path | BenchDataset,
    methods: Sequence[MethodRequest | tuple | Any],
    metrics: Sequence[str | Any],
    out: str | Path | Location,
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
    engine: Any = None,
    replicas: int | None = None,
    gpus_per_replica: float | None = None,
) -> RunSummary:
    """Derain every image of ``split`` with every method, score it with every metric, store results in ``out``.

    ``methods`` are :class:`MethodRequest` or ``(name, weights, config)`` tuples (or built method
    objects); ``metrics`` are metric names (or built metric objects). ``offline`` applies to the
    dataset (Hub ids resolve from the local cache only); metric weights are never downloaded here.
    The ``identity`` method (the rainy input) is added unless ``include_identity`` is false.

    ``engine`` (:mod:`collection.engine`; default local: this process, ``workers`` decoding) decides
    where the work runs. On a distributed engine every method gets ``replicas`` workers (default: as
    many as the cluster holds, at most one per shard; methods take turns), each with one CPU and
    ``gpus_per_replica`` of a GPU on CUDA (default 1); ``workers`` then does not apply (workers
    decode their own shards).
    """
    import torch

    from rainbench.device import resolve_device, worker_device

    started = time.perf_counter()
    out = Location(out)
    device = device if isinstance(device, torch.device) else resolve_device(str(device))
    weights_dir = Path(weights_dir) if weights_dir is not None else None
    if not methods and not include_identity:
        raise ValueError("no methods to run")
    if not metrics:
        raise ValueError("no metrics to compute")
    niqe_model = Path(niqe_model) if niqe_model is not None else None
    prepared_metrics = prepare_metrics(list(metrics), device, weights_dir, niqe_model)
    if not isinstance(dataset, BenchDataset):
        dataset = open_dataset(dataset, split, offline=offline)
    prepared = _prepare_methods(methods, device, include_identity)
    run_id = _write_run_config(out, dataset, prepared, prepared_metrics, device=device, batch_size=batch_size,
                               save_outputs=save_outputs, amp=amp)
    pending, order, n_resumed = _plan(out, dataset, prepared, prepared_metrics)
    base = {"run_id": run_id, "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint,
            "split": dataset.split, "device": str(device)}
    generation = next_generation(out)
    if engine is not None and engine.distributed:
        remote = RemoteScorer(
            source=portable(dataset.source), split=dataset.split, offline=offline, fingerprint=dataset.fingerprint,
            method=None, metrics=list(metrics), device=worker_device(device), amp=amp,
            out=str(out), generation=generation, base=base, batch_size=batch_size, flush_every=flush_every,
            save_outputs=save_outputs, weights_dir=str(weights_dir.resolve()) if weights_dir else None,
            niqe_model=str(niqe_model.resolve()) if niqe_model else None, seed=torch.initial_seed())
        n_done = _execute_distributed(engine, remote, dataset, prepared, order, pending,
                                      batch_size=batch_size, flush_every=flush_every, replicas=replicas,
                                      gpus=gpus_per_replica if gpus_per_replica is not None else float(device.type == "cuda"),
                                      progress=progress)
    else:
        batch_runner = BatchRunner(prepared, prepared_metrics, device, amp, out / "outputs" if save_outputs else None,
                                   base, dataset.meta)
        if len(order) < SMALL_RUN:
            workers = 0  # forking a worker costs about a second of CPU; a small run decodes faster in-process
        n_done = _execute_local(batch_runner, dataset, order, pending, ResultsWriter(out, generation),
                                batch_size=batch_size, workers=workers, flush_every=flush_every, progress=progress)
    consolidate(out)
    frame = read_results(out)
    write_summary(out, frame)
    return RunSummary(
        run_dir=out.as_path() if out.local else out, run_id=run_id, dataset=dataset.name, split=dataset.split,
        dataset_fingerprint=dataset.fingerprint, n_images=int(dataset.meta["has_rainy"].sum()),
        n_processed=n_done, n_resumed=n_resumed, failures=failures_per_method(frame),
        failed_images=failed_images(frame), n_scored=int(frame["image_id"].nunique()), table=summary_table(frame),
        seconds=time.perf_counter() - started,
    )


def _prepare_methods(methods: Sequence[Any], device: Any, include_identity: bool) -> list[PreparedMethod]:
    """Create every requested method (identity first unless left out); refuse a name given twice."""
    prepared = [prepare_method(item, device) for item in methods]
    if include_identity and "identity" not in {m.name for m in prepared}:
        prepared.insert(0, prepare_method(MethodRequest("identity"), device))
    if len({m.name for m in prepared}) != len(prepared):
        raise ValueError("the same method is requested twice (one run directory holds one config per method)")
    return prepared


def _write_run_config(out: Location, dataset: BenchDataset, prepared: list[PreparedMethod],
                      metrics: list[PreparedMetric], *, device: Any, batch_size: int, save_outputs: bool,
                      amp: bool) -> str:
    """Write ``run.json`` (merged with a previous run's into the same directory); returns the run id."""
    previous = read_run_config(out)
    if previous is not None and (previous.get("dataset_fingerprint"), previous.get("split")) != (dataset.fingerprint, dataset.split):
        raise ResultsError(f"{out}: holds a run on dataset {previous.get('dataset')} split {previous.get('split')} "
                           f"(fingerprint {previous.get('dataset_fingerprint')}); use a new --out directory")
    run_id = previous["run_id"] if previous else _new_run_id()
    config = {
        "run_id": run_id, "dataset": dataset.name, "dataset_source": dataset.source, "split": dataset.split,
        "dataset_fingerprint": dataset.fingerprint,
        "methods": _merge_methods(previous, prepared),
        "metrics": {**(previous or {}).get("metrics", {}), **{m.name: json.loads(m.spec_json) for m in metrics}},
        "device": str(device), "batch_size": batch_size, "save_outputs": save_outputs,
        "amp": amp and device.type == "cuda",
    }
    write_run_config(out, config)
    return run_id


def _plan(out: Location, dataset: BenchDataset, prepared: list[PreparedMethod],
          metrics: list[PreparedMetric]) -> tuple[dict[str, set[str]], list[int], int]:
    """What is left to do: {image id: methods pending}, the row indices in order, and images already complete."""
    done = _done_pairs(read_results(out), dataset, prepared, metrics)
    meta = dataset.meta
    pending: dict[str, set[str]] = {}
    order: list[int] = []
    n_resumed = 0
    for index, (image_id, has_rainy, has_clean) in enumerate(zip(meta["id"], meta["has_rainy"], meta["has_clean"])):
        if not has_rainy or not any(has_clean or not m.needs_reference for m in metrics):
            continue
        todo = {m.name for m in prepared if (image_id, m.name) not in done}
        if todo:
            pending[image_id] = todo
            order.append(index)
        else:
            n_resumed += 1
    if n_resumed:
        logger.info("%s: %d image(s) already complete, %d to do", out, n_resumed, len(order))
    return pending, order, n_resumed


def _execute_local(batch_runner: BatchRunner, dataset: BenchDataset, order: list[int],
                   pending: dict[str, set[str]], writer: ResultsWriter, *, batch_size: int, workers: int,
                   flush_every: int, progress: ProgressCallback | None) -> int:
    """One shard of every pending row, all methods at once, in this process; returns the images processed."""
    total = len(order)
    done = [0]

    def advance(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    if progress is not None:
        progress(0, total)
    scorer = Scorer(dataset, batch_runner, writer, batch_size=batch_size, flush_every=flush_every,
                    decode_workers=workers, progress=advance)
    scorer(Shard(order, pending))
    return done[0]


def _execute_distributed(engine: Any, remote: RemoteScorer, dataset: BenchDataset,
                         prepared: list[PreparedMethod], order: list[int], pending: dict[str, set[str]], *,
                         batch_size: int, flush_every: int, replicas: int | None, gpus: float,
                         progress: ProgressCallback | None) -> int:
    """One group of replicas per method, shards of whole batches; progress in images (pairs / methods)."""
    slots = engine.slots(1.0, gpus)
    groups = []
    for m in prepared:
        rows = sum(m.name in methods for methods in pending.values())
        # Each method may fill the cluster (Ray holds the others' actors pending until it is done),
        # but never with more replicas than it has shards.
        groups.append(Group(m.name, replace(remote, method=_portable(m.item)),
                            method_shards(dataset, order, pending, m.name, batch_size, flush_every),
                            replicas=replicas or max(1, min(slots, -(-rows // flush_every))), num_cpus=1.0,
                            num_gpus=gpus))
    total_pairs = sum(len(v) for v in pending.values())
    done_pairs = 0
    if progress is not None:
        progress(0, len(order))
    for _, shard, _ in engine.map(groups):
        done_pairs += shard.pairs
        if progress is not None:
            progress(len(order) if done_pairs == total_pairs else done_pairs * len(order) // total_pairs, len(order))
    return len(order)


def _portable(item: Any) -> Any:
    """A method request with its weights file as an absolute path (a worker's cwd may differ)."""
    if isinstance(item, MethodRequest) and item.weights:
        return replace(item, weights=portable(item.weights))
    return item


def _merge_methods(previous: dict | None, prepared: list[PreparedMethod]) -> list[dict]:
    merged = {m["name"]: m for m in (previous or {}).get("methods", [])}
    for m in prepared:
        merged[m.name] = {**m.request, "config_hash": m.config_hash}
    return list(merged.values())
