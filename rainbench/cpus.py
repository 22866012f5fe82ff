"""How many CPUs this process may use, and how many threads torch gets from them.

``os.cpu_count()`` counts the machine's cores, not the ones a container, a batch scheduler or a
``taskset`` leaves to this process; an OpenMP pool sized to the machine on a 2-core quota runs
10-30x slower (benchmarks/README.md). The budget is the smallest of: the CPU affinity mask, the
cgroup CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``) and SLURM's
``SLURM_CPUS_PER_TASK``.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where the platform has none)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _quota(text_quota: str | None, text_period: str | None) -> int | None:
    """CPUs granted by a quota/period pair (rounded up; a fractional CPU still runs one thread)."""
    if text_quota is None or text_period is None or text_quota in ("max", "-1"):
        return None
    try:
        quota, period = int(text_quota), int(text_period)
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def _own_cgroups(proc_cgroup: Path) -> list[tuple[str, str]]:
    """(controllers, path) of this process's cgroups, from /proc/self/cgroup."""
    text = _read(proc_cgroup) or ""
    out = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out.append((parts[1], parts[2]))
    return out


def _ancestors(root: Path, relative: str) -> list[Path]:
    """The cgroup folder of ``relative`` under ``root`` and each parent up to ``root`` (a limit anywhere above applies)."""
    folder = root / relative.lstrip("/")
    chain = [folder, *folder.parents]
    return [p for p in chain if p == root or root in p.parents]


def cgroup_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int | None:
    """CPUs allowed by the cgroup CPU quota (v2 or v1), or None when there is no quota."""
    limits: list[int] = []
    for controllers, relative in _own_cgroups(proc_cgroup):
        if controllers == "":  # cgroup v2: one unified hierarchy
            for folder in _ancestors(root, relative):
                text = _read(folder / "cpu.max")
                if text:
                    quota, _, period = text.partition(" ")
                    limits.append(_quota(quota, period or "100000"))
        elif "cpu" in controllers.split(","):
            for name in (controllers, "cpu", "cpu,cpuacct"):
                base = root / name
                if base.is_dir():
                    for folder in _ancestors(base, relative):
                        limits.append(_quota(_read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")))
                    break
    if not _own_cgroups(proc_cgroup):  # no /proc (or a test's empty file): the root's own limit
        text = _read(root / "cpu.max")
        if text:
            quota, _, period = text.partition(" ")
            limits.append(_quota(quota, period or "100000"))
    found = [n for n in limits if n is not None]
    return min(found) if found else None


def slurm_cpus(environ: dict[str, str] | None = None) -> int | None:
    """``SLURM_CPUS_PER_TASK`` as a number, or None when unset or malformed."""
    text = (os.environ if environ is None else environ).get("SLURM_CPUS_PER_TASK", "")
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value > 0 else None


def cpu_budget() -> int:
    """CPUs this process may use: the least of affinity, cgroup quota and SLURM_CPUS_PER_TASK (at least 1)."""
    candidates = [affinity_cpus(), cgroup_cpus(), slurm_cpus()]
    return max(1, min(n for n in candidates if n is not None))


def torch_threads(processes: int = 1) -> int:
    """Torch threads per process when ``processes`` share the budget: one each for a pool, all for one process.

    An explicit ``OMP_NUM_THREADS`` wins: the user (or a benchmark) asked for exactly that.
    """
    explicit = os.environ.get("OMP_NUM_THREADS", "")
    if explicit.isdigit() and int(explicit) > 0:
        return int(explicit)
    return max(1, cpu_budget() // max(1, processes))


def set_torch_threads(processes: int = 1) -> int:
    """Set torch's intra-op thread count from :func:`torch_threads` and return it."""
    import torch

    threads = torch_threads(processes)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    logger.debug("torch: %d thread(s) per process (%d process(es), CPU budget %d)", threads, processes, cpu_budget())
    return threads
