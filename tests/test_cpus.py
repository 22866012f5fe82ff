"""The CPU budget: affinity, cgroup v2/v1 quotas and SLURM, each read from files and variables the test writes."""

from __future__ import annotations

import pytest

from rainbench import cpus


def _v2(tmp_path, cpu_max: str, nested: str | None = None):
    root = tmp_path / "cgroup"
    own = root / "job" if nested is not None else root
    own.mkdir(parents=True)
    (root / "cpu.max").write_text(cpu_max + "\n")
    if nested is not None:
        (own / "cpu.max").write_text(nested + "\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/job\n" if nested is not None else "0::/\n")
    return root, proc


@pytest.mark.parametrize(("cpu_max", "nested", "expected"), [
    ("max 100000", None, None),          # no quota
    ("200000 100000", None, 2),
    ("150000 100000", None, 2),          # 1.5 CPUs still run two threads' worth of work
    ("50000 100000", None, 1),
    ("max 100000", "300000 100000", 3),  # the process's own cgroup sets the quota
    ("100000 100000", "400000 100000", 1),  # a parent's tighter quota applies
])
def test_cgroup_v2_quota(tmp_path, cpu_max, nested, expected):
    root, proc = _v2(tmp_path, cpu_max, nested)
    assert cpus.cgroup_cpus(root, proc) == expected


def test_cgroup_v1_quota(tmp_path):
    root = tmp_path / "cgroup"
    folder = root / "cpu,cpuacct" / "docker" / "abc"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text("250000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n")
    assert cpus.cgroup_cpus(root, proc) == 3
    (folder / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpus.cgroup_cpus(root, proc) is None


def test_slurm_cpus():
    assert cpus.slurm_cpus({"SLURM_CPUS_PER_TASK": "4"}) == 4
    assert cpus.slurm_cpus({"SLURM_CPUS_PER_TASK": "x"}) is None
    assert cpus.slurm_cpus({}) is None


def test_budget_is_the_least_of_affinity_quota_and_slurm(monkeypatch):
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 8)
    monkeypatch.setattr(cpus, "cgroup_cpus", lambda: 4)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert cpus.cpu_budget() == 4
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert cpus.cpu_budget() == 2
    monkeypatch.setattr(cpus, "cgroup_cpus", lambda: None)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert cpus.cpu_budget() == 8


def test_affinity_is_this_process_mask_not_the_machine():
    import os

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no affinity mask on this platform")
    assert cpus.affinity_cpus() == len(os.sched_getaffinity(0))


def test_torch_threads_split_the_budget_and_omp_num_threads_wins(monkeypatch):
    monkeypatch.setattr(cpus, "cpu_budget", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpus.torch_threads(1) == 4
    assert cpus.torch_threads(4) == 1
    assert cpus.torch_threads(8) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpus.torch_threads(1) == 3
