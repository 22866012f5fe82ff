"""Where the heavy verbs' work runs: in this process, in local worker processes, or on a Ray cluster.

Ingest's probe stage, ``run``'s scoring and ``derain`` all cut their work into *shards* (a chunk of
files, or of dataset rows) and hand them to an engine as :class:`Group` s: a worker factory, the
shards it works through, how many replicas of the worker to start and what each one needs (CPUs,
a GPU share). :meth:`Engine.map` yields ``(group key, shard, result)`` as shards finish, in
completion order, so the caller (the driver) keeps only metadata and writes what is written once
(caches, ``run.json``, the consolidated table).

- :class:`LocalEngine` runs each worker in this process (``replicas=0``) or in a pool of local
  processes, each building its worker once; today's single-machine behaviour.
- :class:`RayEngine` (:mod:`collection.ray_engine`) starts one Ray actor per replica, placed by
  Ray with the group's ``num_cpus``/``num_gpus``, and keeps at most ``in_flight`` shards queued
  per actor, so neither the driver nor the actors hold more than a few shards at a time.

A worker is a picklable zero-argument factory returning a callable ``worker(shard) -> result``;
results travel back to the driver, so they should be small (counts, records, file names).
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from collection.ray_engine import EngineError, RayEngine

__all__ = ["ENGINES", "EngineError", "EngineSpec", "Group", "LocalEngine", "RayEngine", "chunks"]

ENGINES = ("local", "ray")
"""The engine names ``--engine`` accepts."""


@dataclass
class Group:
    """Shards of one kind of work and the workers that do it."""

    key: str
    """Names the group in results and errors (a method name, ``probe``)."""
    make: Callable[[], Callable[[Any], Any]]
    """Picklable factory of the worker; called once per replica, where the replica runs."""
    shards: Iterable[Any]
    replicas: int = 0
    """Worker processes or actors; 0 runs the worker in this process (local engine only)."""
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    init: Callable[[], None] | None = field(default=None, repr=False)
    """Run first in each local worker process (e.g. to end it with its parent); not on Ray."""


class LocalEngine:
    """Workers in this process, or in local processes (one worker built per process)."""

    name = "local"
    distributed = False

    def __init__(self, in_flight: int = 4):
        self.in_flight = in_flight

    def map(self, groups: Sequence[Group]) -> Iterator[tuple[str, Any, Any]]:
        """Yield ``(group.key, shard, result)`` for every shard of every group, group after group."""
        for group in groups:
            if group.replicas <= 0:
                worker = group.make()
                for shard in group.shards:
                    yield group.key, shard, worker(shard)
            else:
                yield from self._pool(group)

    def _pool(self, group: Group) -> Iterator[tuple[str, Any, Any]]:
        limit = self.in_flight * group.replicas
        shards = iter(group.shards)
        with cf.ProcessPoolExecutor(max_workers=group.replicas, initializer=_start_worker,
                                    initargs=(group.make, group.init)) as pool:
            pending: dict[cf.Future, Any] = {}

            def submit() -> bool:
                for shard in shards:
                    pending[pool.submit(_run_worker, shard)] = shard
                    return True
                return False

            while len(pending) < limit and submit():
                pass
            while pending:
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    shard = pending.pop(future)
                    yield group.key, shard, future.result()
                    submit()

    def close(self) -> None:
        """Nothing to release."""


_WORKER: list[Callable[[Any], Any]] = []  # the worker of this pool process, built by _start_worker


def _start_worker(make: Callable[[], Callable[[Any], Any]], init: Callable[[], None] | None) -> None:
    if init is not None:
        init()
    _WORKER[:] = [make()]


def _run_worker(shard: Any) -> Any:
    return _WORKER[0](shard)


@dataclass(frozen=True)
class EngineSpec:
    """Which engine a command asked for (``--engine``, ``--ray-address``) and how much it may use."""

    name: str = "local"
    address: str | None = None
    """Ray cluster address; None: ``RAY_ADDRESS``, else a local instance started for the command."""
    num_cpus: int | None = None
    """CPUs of a local Ray instance started for the command (default: Ray's count)."""

    def create(self) -> LocalEngine | RayEngine:
        """The engine itself (connecting to or starting Ray for ``ray``)."""
        if self.name == "local":
            if self.address:
                raise EngineError("--ray-address needs --engine ray")
            return LocalEngine()
        if self.name == "ray":
            return RayEngine.connect(self.address, num_cpus=self.num_cpus)
        raise EngineError(f"unknown engine {self.name!r}; expected one of {', '.join(ENGINES)}")


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of at most ``size``, lazily (a million files never become one list here)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
