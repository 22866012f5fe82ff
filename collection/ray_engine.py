"""The Ray engine: one actor per worker replica, shards fed to them as they free up.

Groups are :class:`collection.engine.Group` s (read by attribute; this module imports ray only
when an engine connects, so the local engine never pays for it).

Ray places the actors (``num_cpus``/``num_gpus`` per replica, fractional GPUs allowed) and
restarts a dead one once, retrying its shard (``max_restarts``/``max_task_retries``); this module
only hands out shards, and only to actors that are up. Every group asks for its actors at once;
when a cluster cannot hold them all, Ray keeps the rest pending and the actors of a group that has
run out of shards are released, so the pending ones start. See docs/scale-out.md.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any


log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """An engine cannot start, or a worker died; the message says which and why."""

_NONE = object()


class _Replica:
    """The actor body: builds its worker once, then runs shards through it."""

    def __init__(self, make):
        self.worker = make()

    def run(self, shard):
        return self.worker(shard)


class RayEngine:
    """Runs groups on a Ray cluster (or a local Ray instance started for the command)."""

    name = "ray"
    distributed = True

    def __init__(self, ray: Any, owned: bool, in_flight: int = 2):
        self.ray = ray
        self.owned = owned
        self.in_flight = in_flight

    @classmethod
    def connect(cls, address: str | None = None, *, num_cpus: int | None = None) -> RayEngine:
        """Join the cluster at ``address`` (else ``RAY_ADDRESS``), or start a local instance; reuse a running one."""
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is a dependency; a trimmed install may lack it
            raise EngineError("--engine ray needs the `ray` package (pip install ray)") from exc
        if ray.is_initialized():
            return cls(ray, owned=False)
        address = address or os.environ.get("RAY_ADDRESS") or None
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                                      configure_logging=True)
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        for attempt in (1, 2):  # a busy machine can miss the start-up deadline once
            try:
                if address:
                    ray.init(address=address, **kwargs)
                else:  # "local": a new instance, even beside a `ray start` head (which would refuse num_cpus)
                    ray.init(address="local", num_cpus=num_cpus, **kwargs)
                return cls(ray, owned=True)
            except Exception as exc:  # ray raises ConnectionError, RuntimeError, ValueError here
                ray.shutdown()
                if attempt == 2:
                    raise EngineError(f"cannot start or reach {where}: {exc}") from exc
                log.warning("%s did not come up (%s); trying once more", where, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def slots(self, num_cpus: float = 1.0, num_gpus: float = 0.0) -> int:
        """How many replicas needing ``num_cpus`` CPUs and ``num_gpus`` GPUs the cluster holds at once."""
        resources = self.ray.cluster_resources()
        fits = []
        if num_cpus > 0:
            fits.append(int(resources.get("CPU", 0) // num_cpus))
        if num_gpus > 0:
            fits.append(int(resources.get("GPU", 0) // num_gpus))
        return max(1, min(fits)) if fits else 1

    def map(self, groups: Sequence[Any]) -> Iterator[tuple[str, Any, Any]]:
        """Yield ``(group.key, shard, result)`` for every shard of every group, as shards finish."""
        ray = self.ray
        actor_class = ray.remote(_Replica)
        queues: dict[str, deque] = {}
        iterators = {g.key: iter(g.shards) for g in groups}
        actors: list[tuple[Any, Any]] = []
        for group in groups:
            first = next(iterators[group.key], _NONE)
            if first is _NONE:
                continue  # nothing to do: no actor started for it
            queues[group.key] = deque([first])
            options = dict(num_cpus=group.num_cpus, num_gpus=group.num_gpus, max_restarts=1, max_task_retries=1)
            actors += [(actor_class.options(**options).remote(group.make), group) for _ in range(max(1, group.replicas))]

        exhausted: set[str] = set()

        def next_shard(key: str) -> tuple[bool, Any]:
            if queues[key]:
                return True, queues[key].popleft()
            for shard in iterators[key]:
                return True, shard
            exhausted.add(key)
            return False, None

        def drop_idle_starters() -> None:
            for ref, (actor, group) in list(starting.items()):
                if group.key in exhausted:  # its group ran out of shards before it came up: never start it
                    del starting[ref]
                    ray.kill(actor)

        running: dict[Any, tuple[Any, Any, Any]] = {}  # object ref -> (actor, group, shard)
        load = {id(a): 0 for a, _ in actors}

        def feed(actor: Any, group: Any) -> None:
            while load[id(actor)] < self.in_flight:
                ok, shard = next_shard(group.key)
                if not ok:
                    break
                running[actor.run.remote(shard)] = (actor, group, shard)
                load[id(actor)] += 1
            if load[id(actor)] == 0:
                ray.kill(actor)  # its group is done: free its CPUs/GPU for pending actors

        starting: dict[Any, tuple[Any, Any]] = {}  # ready ref -> (actor, group): shards go to live actors only
        for actor, group in actors:
            starting[actor.__ray_ready__.remote()] = (actor, group)
        try:
            while running or starting:
                ready, _ = ray.wait([*starting, *running], num_returns=1)
                ref = ready[0]
                if ref in starting:
                    actor, group = starting.pop(ref)
                    self._result(ref, group)  # raises when the actor could not be built
                    feed(actor, group)
                    drop_idle_starters()
                    continue
                actor, group, shard = running.pop(ref)
                load[id(actor)] -= 1
                yield group.key, shard, self._result(ref, group)
                feed(actor, group)
                drop_idle_starters()
        finally:
            for actor, _ in actors:
                try:
                    ray.kill(actor)
                except Exception:  # noqa: BLE001 - already gone
                    pass

    def _result(self, ref: Any, group: Any) -> Any:
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as exc:  # it could not start, or died (after one restart)
            raise EngineError(f"{group.key}: a Ray worker died: {_first_line(exc)}; finished shards are "
                              "kept, re-run to resume") from exc
        except ray.exceptions.RayTaskError as exc:
            raise EngineError(f"{group.key}: a Ray worker failed: {_first_line(exc)}") from exc

    def close(self) -> None:
        """Shut down the local Ray instance this engine started (a joined cluster is left running)."""
        if self.owned and self.ray.is_initialized():
            self.ray.shutdown()


def _first_line(exc: BaseException) -> str:
    """The line of a Ray error that says what went wrong (its cause's message, not Ray's frames)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and str(cause).strip():
        return f"{type(cause).__name__}: {str(cause).strip().splitlines()[0]}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "Error:" in line or "Exception:" in line]
    return (errors or lines or [type(exc).__name__])[-1]
