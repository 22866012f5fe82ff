"""Derain image files with one method on an engine: the work behind ``rainbench derain``.

Jobs are ``(source, target)`` file pairs. The local engine runs the one created method in this
process, a file per shard (progress per file); a distributed engine starts ``replicas`` workers,
each creating the method itself from its request (weights read where it runs), and hands them
shards of a few files. A file that cannot be read or derained is reported in the results and the
others go on; a target that exists is skipped unless ``overwrite``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collection.engine import Group, chunks


@dataclass(frozen=True)
class FileResult:
    """What became of one job: written, skipped (already present), or failed with a one-line error."""

    source: str
    target: str
    status: str  # written | skipped | failed
    error: str | None = None


def derain_file(method: Any, source: str | Path, target: str | Path) -> None:
    """Decode, derain and save one image (atomically); either may be a local path or an fsspec URL."""
    from collection.images import decode, save_image, to_tensor, to_uint8
    from collection.storage import Location

    image = decode(str(source)).image
    result = method.derain(to_tensor(image))
    save_image(to_uint8(result)[0], Location(target))


def one_line(source: str | Path, exc: BaseException) -> str:
    """``SOURCE: first line of the error`` (the source named once)."""
    from rainbench.batch import error_text

    text = error_text(exc) if isinstance(exc, SystemExit) else (
        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return text if text.startswith(str(source)) else f"{source}: {text}"


class FileDerainer:
    """The worker: derains shards of jobs with one method."""

    def __init__(self, method: Any, overwrite: bool):
        self.method, self.overwrite = method, overwrite

    def __call__(self, jobs: list[tuple[str, str]]) -> list[FileResult]:
        from collection.storage import Location
        from rainbench.batch import is_method_failure

        results = []
        for source, target in jobs:
            if Location(target).exists() and not self.overwrite:
                results.append(FileResult(source, target, "skipped"))
                continue
            try:
                derain_file(self.method, source, target)
                results.append(FileResult(source, target, "written"))
            except BaseException as exc:  # one bad file must not stop the others; a method's sys.exit neither
                if not is_method_failure(exc):
                    raise
                results.append(FileResult(source, target, "failed", one_line(source, exc)))
        return results


@dataclass(frozen=True)
class RemoteDerainer:
    """Picklable factory of a :class:`FileDerainer`, creating the method where the worker runs."""

    name: str
    weights: str | None
    config: dict[str, Any]
    tile: int | None
    device: str
    seed: int
    overwrite: bool
    threads: int = 1

    def __call__(self) -> FileDerainer:
        import torch

        import baselines

        torch.set_num_threads(max(1, self.threads))
        torch.manual_seed(self.seed)
        method = baselines.create(self.name, weights=self.weights, device=self.device, **self.config)
        if self.tile is not None:
            method.tile = self.tile
        return FileDerainer(method, self.overwrite)


def derain_files(engine: Any, method: Any, jobs: Sequence[tuple[Path, Path]], *, overwrite: bool,
                 remote: RemoteDerainer | None = None, replicas: int | None = None,
                 gpus_per_replica: float = 0.0, shard_files: int = 4) -> Iterator[FileResult]:
    """Derain ``jobs`` on ``engine``, yielding one :class:`FileResult` per job as it finishes.

    ``method`` is the created method (run in this process on the local engine); a distributed
    engine needs ``remote`` to create it on each of its ``replicas`` workers.
    """
    pairs = [(str(s), str(t)) for s, t in jobs]
    if engine.distributed:
        if remote is None:
            raise ValueError("a distributed engine needs the method's request (remote=RemoteDerainer(...))")
        group = Group("derain", remote, chunks(pairs, shard_files),
                      replicas=replicas or engine.slots(1.0, gpus_per_replica), num_gpus=gpus_per_replica)
    else:
        worker = FileDerainer(method, overwrite)
        group = Group("derain", lambda: worker, chunks(pairs, 1))
    for _, _, results in engine.map([group]):
        yield from results
