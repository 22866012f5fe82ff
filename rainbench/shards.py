"""A run cut into shards, and the worker that derains and scores them (on any engine).

On the local engine a run is one shard holding every pending row, worked through in this process
by one :class:`Scorer` holding every method (each image is decoded once, in DataLoader workers,
for all methods). On a distributed engine each method gets its own group of replicas
(:class:`RemoteScorer` builds one where it runs: dataset, method and metrics opened there), and
the rows pending for it are cut into shards of whole size-grouped batches, so every image meets
exactly the batch it would meet locally and scores come out the same. Each worker writes its own
Parquet parts (:class:`rainbench.results.ResultsWriter`, one writer name per replica) into the
generation the driver chose; only the driver writes ``run.json`` and consolidates.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collection.storage import Location
from rainbench.batch import BatchRunner, prepare_method, prepare_metrics
from rainbench.data import BenchDataset
from rainbench.results import ResultsWriter


@dataclass
class Shard:
    """Rows to work through (whole size-grouped batches, in batch order) and the methods pending per image id."""

    indices: list[int]
    pending: dict[str, set[str]]

    @property
    def pairs(self) -> int:
        """(image, method) pairs this shard completes."""
        return sum(len(methods) for methods in self.pending.values())


class Scorer:
    """Derains and scores shards, flushing result parts every ``flush_every`` images."""

    def __init__(self, dataset: BenchDataset, batch_runner: BatchRunner, writer: ResultsWriter, *, batch_size: int,
                 flush_every: int, decode_workers: int = 0, progress: Callable[[int], None] | None = None):
        self.dataset, self.batch_runner, self.writer = dataset, batch_runner, writer
        self.batch_size, self.flush_every, self.decode_workers = batch_size, flush_every, decode_workers
        self.progress = progress

    def __call__(self, shard: Shard) -> int:
        """Work through ``shard``; returns the images done (all of them: failures are result rows)."""
        done = since_flush = 0
        try:
            for samples in self.dataset.batches(self.batch_size, workers=self.decode_workers, indices=shard.indices):
                self.writer.add(self.batch_runner.run(samples, shard.pending))
                done += len(samples)
                since_flush += len(samples)
                if since_flush >= self.flush_every:
                    self.writer.flush()
                    since_flush = 0
                if self.progress is not None:
                    self.progress(len(samples))
        finally:
            self.writer.flush()
        return done


@dataclass
class RemoteScorer:
    """Picklable factory of a :class:`Scorer` for one method, built where the replica runs."""

    source: str
    split: str
    offline: bool
    fingerprint: str
    method: Any
    metrics: list[Any]
    device: str
    amp: bool
    out: str
    generation: int
    base: dict[str, Any]
    batch_size: int
    flush_every: int
    save_outputs: bool
    weights_dir: str | None = None
    niqe_model: str | None = None
    threads: int = 1
    seed: int = 0

    def __call__(self) -> Scorer:
        import torch

        from rainbench.data import DatasetError, open_dataset

        torch.set_num_threads(max(1, self.threads))
        torch.manual_seed(self.seed)
        dataset = open_dataset(self.source, self.split, offline=self.offline)
        if dataset.fingerprint != self.fingerprint:
            raise DatasetError(f"{self.source}: this worker sees dataset fingerprint {dataset.fingerprint}, the "
                               f"driver {self.fingerprint}; workers must read the same copy (docs/scale-out.md)")
        device = torch.device(self.device)
        method = prepare_method(self.method, device)
        metrics = prepare_metrics(self.metrics, device, Path(self.weights_dir) if self.weights_dir else None,
                                   Path(self.niqe_model) if self.niqe_model else None)
        out = Location(self.out)
        runner = BatchRunner([method], metrics, device, self.amp, out / "outputs" if self.save_outputs else None,
                             self.base, dataset.meta)
        writer = ResultsWriter(out, self.generation, writer=f"{method.name}-{secrets.token_hex(3)}")
        return Scorer(dataset, runner, writer, batch_size=self.batch_size, flush_every=self.flush_every)


def method_shards(dataset: BenchDataset, order: list[int], pending: dict[str, set[str]], method: str,
                  batch_size: int, shard_images: int) -> Iterator[Shard]:
    """Shards of about ``shard_images`` images pending for ``method``, made of whole size-grouped batches."""
    ids = dataset.meta["id"]
    rows = [i for i in order if method in pending[ids.iat[i]]]
    indices: list[int] = []
    for batch in dataset.size_batches(rows, batch_size):
        indices += batch
        if len(indices) >= shard_images:
            yield Shard(indices, {ids.iat[i]: {method} for i in indices})
            indices = []
    if indices:
        yield Shard(indices, {ids.iat[i]: {method} for i in indices})
