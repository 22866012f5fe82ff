"""The engine seam (issue 18): the Ray engine gives what the local engine gives, for ingest, derain and run.

Every Ray test shares one local Ray instance (``ray.init(num_cpus=2, include_dashboard=False)``),
shut down when the module ends so later tests fork without Ray's threads around.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collection.engine import EngineError, EngineSpec, Group, LocalEngine, chunks
from collection.ingest import IngestOptions, SourceSpec, ingest
from rainbench.results import part_files, read_results
from rainbench.runner import MethodRequest, run_benchmark

TESTS = Path(__file__).parent


class Square:
    """A worker with state: counts what it did, so replicas show in the results."""

    def __init__(self, offset: int = 0):
        self.offset, self.calls = offset, 0

    def __call__(self, shard: list[int]) -> list[int]:
        self.calls += 1
        return [x * x + self.offset for x in shard]


def _square(offset: int = 0):
    return Square(offset)


@pytest.fixture(scope="module")
def ray_engine():
    ray = pytest.importorskip("ray")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception:  # noqa: BLE001 - a loaded machine can miss Ray's start-up deadline once
        ray.shutdown()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    import test_runner

    for module in (test_runner, sys.modules[__name__]):  # test code travels to the workers by value
        ray.cloudpickle.register_pickle_by_value(module)
    engine = EngineSpec("ray").create()
    assert engine.owned is False, "an initialised Ray is joined, not restarted"
    yield engine
    ray.shutdown()


# --- the seam itself


def test_chunks_are_lazy_and_complete():
    def numbers():
        yield from range(7)
        raise AssertionError("read past what was asked")  # pragma: no cover

    it = chunks(numbers(), 3)
    assert next(it) == [0, 1, 2] and next(it) == [3, 4, 5]
    with pytest.raises(ValueError, match=">= 1"):
        list(chunks([1], 0))


@pytest.mark.parametrize("replicas", [0, 2])
def test_local_engine_maps_every_shard_once(replicas):
    from functools import partial

    engine = LocalEngine()
    groups = [Group("a", partial(_square, 0), chunks(range(10), 3), replicas=replicas),
              Group("b", partial(_square, 100), [[1], [2]], replicas=replicas)]
    got = {(key, tuple(shard)): result for key, shard, result in engine.map(groups)}
    assert got[("a", (9,))] == [81] and got[("b", (2,))] == [104]
    assert sorted(x for (key, _), r in got.items() if key == "a" for x in r) == sorted(i * i for i in range(10))


def test_engine_spec_refuses_unknown_names_and_stray_addresses():
    with pytest.raises(EngineError, match="unknown engine"):
        EngineSpec("dask").create()
    with pytest.raises(EngineError, match="--engine ray"):
        EngineSpec("local", address="ray://head:10001").create()


def test_ray_engine_maps_groups_bigger_than_the_cluster(ray_engine):
    from functools import partial

    assert ray_engine.slots(1.0) == 2
    # three actors on two CPUs: a finished group releases its actor to the pending one
    groups = [Group(str(k), partial(_square, k), chunks(range(12), 2), replicas=1) for k in range(3)]
    groups.append(Group("empty", partial(_square, 0), [], replicas=1))
    got = {}
    for key, shard, result in ray_engine.map(groups):
        got.setdefault(key, []).extend(zip(shard, result))
    for k in range(3):
        assert sorted(got[str(k)]) == [(i, i * i + k) for i in range(12)]


def test_a_failing_ray_worker_is_an_engine_error_naming_the_group(ray_engine):
    def make():
        def work(shard):
            raise ValueError("bad shard")
        return work

    with pytest.raises(EngineError, match="probe.*bad shard"):
        list(ray_engine.map([Group("probe", make, [[1]], replicas=1)]))


def test_engine_flags_that_would_do_nothing_are_refused(tmp_path, capsys):
    from rainbench.cli import main

    (tmp_path / "src").mkdir()
    assert main(["ingest", str(tmp_path / "src"), "--out", str(tmp_path / "o"), "--ray-address", "h:6379"]) == 2
    assert "--ray-address needs --engine ray" in capsys.readouterr().err
    assert main(["ingest", str(tmp_path / "src"), "--out", str(tmp_path / "o"), "--engine", "ray", "--workers", "0"]) == 2
    assert main(["run", "--dataset", str(tmp_path), "--out", str(tmp_path / "r"), "--replicas", "2"]) == 2
    assert "--replicas needs --engine ray" in capsys.readouterr().err
    assert main(["run", "--dataset", str(tmp_path), "--out", str(tmp_path / "r"), "--engine", "ray",
                 "--workers", "2"]) == 2
    assert main(["derain", str(tmp_path / "src"), "-m", "guided", "-o", str(tmp_path / "d"),
                 "--gpus-per-replica", "0.5"]) == 2


# --- ingest


def test_ingest_on_ray_equals_local(ray_engine, tmp_path):
    from test_ingest import MIN_SIDE, SPLIT, dataset_content, make_sources

    sources = make_sources(tmp_path / "src")
    specs = [SourceSpec(path) for path in sources.values()]
    options = IngestOptions(min_side=MIN_SIDE, split=SPLIT, workers=2)
    local = ingest(specs, tmp_path / "local", options)
    remote = ingest(specs, tmp_path / "ray", options, engine=ray_engine)
    assert remote.fingerprint == local.fingerprint and remote.splits == local.splits
    assert dataset_content(tmp_path / "ray") == dataset_content(tmp_path / "local")
    drop = ["seconds"]
    a = pd.read_parquet(tmp_path / "local" / "manifest.parquet").drop(columns=drop, errors="ignore")
    b = pd.read_parquet(tmp_path / "ray" / "manifest.parquet").drop(columns=drop, errors="ignore")
    pd.testing.assert_frame_equal(a, b)
    again = ingest(specs, tmp_path / "ray", options, engine=ray_engine)
    assert again.probed == 0 and again.cached == remote.probed and not again.rebuilt


def test_killed_ray_ingest_resumes_with_only_unfinished_files(tmp_path):
    from test_ingest import MIN_SIDE, SPLIT, dataset_content, make_sources

    sources = make_sources(tmp_path / "src")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rainbench", "ingest", *map(str, sources.values()), "--out", str(out),
           "--min-side", str(MIN_SIDE), "--split-ratios", SPLIT, "--engine", "ray", "--workers", "1", "-q"]
    env = {**os.environ, "RAINBENCH_PROBE_DELAY": "0.3"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 150
    try:
        while not list(out.glob(".cache/probe/*/shard-*.jsonl")):
            assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "no cache shard appeared"
            time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: Ray's own processes notice and end
        proc.wait()
        _kill_group(proc.pid)
    assert not (out / "dataset_dict.json").exists()
    specs = [SourceSpec(path) for path in sources.values()]
    options = IngestOptions(min_side=MIN_SIDE, split=SPLIT, workers=0)
    resumed = ingest(specs, out, options)
    whole = ingest(specs, tmp_path / "whole", options)
    assert 0 < resumed.cached and resumed.probed < whole.probed, "only the unfinished files are probed again"
    assert resumed.fingerprint == whole.fingerprint
    assert dataset_content(out) == dataset_content(tmp_path / "whole")


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --- run


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    from test_runner import make_dataset

    return make_dataset(tmp_path_factory.mktemp("pairs"))[0]


def _scores(run_dir: Path) -> pd.DataFrame:
    frame = read_results(run_dir).drop(columns=["seconds", "run_id"])
    return frame.sort_values(["image_id", "method", "metric"]).reset_index(drop=True)


def test_run_on_ray_equals_local_to_the_last_digit(ray_engine, pairs, tmp_path):
    import baselines
    from test_runner import FakeMethod, _bad_key, make_dataset

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    baselines.create("nlcl", ngf=4, n_blocks=1, nce_layers=(0, 2)).save(tmp_path / "nlcl.pt")  # random weights
    bad = (_bad_key(make_dataset(tmp_path / "again")[1], 1),)
    # two groups, so both replicas start at once on the two CPUs (each loads the metric stack: ~10 s)
    methods = [MethodRequest("nlcl", weights=str(tmp_path / "nlcl.pt")), FakeMethod("boom", "raise", bad)]
    metrics = ["psnr", "ssim", "piqe"]
    kwargs = dict(batch_size=2, include_identity=False)
    local = run_benchmark(pairs, methods, metrics, tmp_path / "local", **kwargs)
    # dataset and run directory as fsspec URLs, as on shared storage
    remote = run_benchmark(f"file://{pairs}", methods, metrics, f"file://{tmp_path}/ray", engine=ray_engine, **kwargs)
    a, b = _scores(tmp_path / "local"), _scores(tmp_path / "ray")
    assert len(a) == 2 * (4 * 2 + 5)  # 2 methods; psnr, ssim on the 4 pairs, piqe on the 5 rainy images
    assert a.drop(columns=["value"]).equals(b.drop(columns=["value"]))
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    assert remote.n_processed == local.n_processed == 5
    assert remote.failures == local.failures == {"nlcl": 0, "boom": 1}
    assert (tmp_path / "ray" / "results.parquet").is_file() and len(part_files(tmp_path / "ray")) == 1
    changed = b[(b["metric"] == "psnr") & (b["method"] == "nlcl")]["value"]
    assert changed.notna().all() and (changed < 60).all(), "the network really ran (its output is not the input)"
    resumed = run_benchmark(pairs, methods, metrics, tmp_path / "ray", engine=ray_engine, **kwargs)
    assert resumed.n_processed == 0 and resumed.n_resumed == 5


_KILLED_RUN = """
import sys
sys.path.insert(0, {tests!r})
import ray, test_runner
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
ray.cloudpickle.register_pickle_by_value(test_runner)
from collection.engine import EngineSpec
from rainbench.runner import run_benchmark
run_benchmark({data!r}, [test_runner.FakeMethod("slow", delay=1.0)], [test_runner.FakePSNR()], {out!r},
              flush_every=1, engine=EngineSpec("ray").create(), replicas=1, include_identity=False)
"""


def test_killed_ray_run_resumes_whichever_engine_finishes_it(ray_engine, pairs, tmp_path):
    from test_runner import FakeMethod, FakePSNR

    out = tmp_path / "killed"
    script = _KILLED_RUN.format(tests=str(TESTS), data=str(pairs), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=str(TESTS.parent), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 150
    try:
        while not any("slow" in p.name for p in part_files(out)):
            assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "no part of the slow method appeared"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _kill_group(proc.pid)
    partial = read_results(out)
    slow_done = partial["image_id"].nunique()
    assert 0 < slow_done < 4  # FakePSNR scores the 4 pairs
    kwargs = dict(include_identity=False)
    resumed = run_benchmark(pairs, [FakeMethod("slow")], [FakePSNR()], out, **kwargs)  # the local engine finishes it
    whole = run_benchmark(pairs, [FakeMethod("slow")], [FakePSNR()], tmp_path / "whole", **kwargs)
    assert resumed.n_resumed == slow_done and resumed.n_processed == whole.n_processed - slow_done
    a, b = _scores(out), _scores(tmp_path / "whole")
    assert a.drop(columns=["value"]).equals(b.drop(columns=["value"]))
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())


def test_run_reads_and_writes_fsspec_urls(pairs, tmp_path):
    import datasets
    import fsspec
    from test_runner import FakeBrightness, FakeMethod, FakePSNR

    from rainbench.cli import main

    datasets.load_from_disk(str(pairs)).save_to_disk("memory://rainbench-test/data")
    methods, metrics = [FakeMethod("half")], [FakePSNR(), FakeBrightness()]
    local = run_benchmark(pairs, methods, metrics, tmp_path / "local", save_outputs=True)
    remote = run_benchmark("memory://rainbench-test/data", methods, metrics, "memory://rainbench-test/run",
                           save_outputs=True)
    assert remote.dataset_fingerprint == local.dataset_fingerprint and str(remote.run_dir) == "memory://rainbench-test/run"
    a, b = _scores(tmp_path / "local"), _scores("memory://rainbench-test/run")
    assert a.drop(columns=["value"]).equals(b.drop(columns=["value"]))
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())
    memory = fsspec.filesystem("memory")
    saved = sorted(Path(p).name for p in memory.ls("/rainbench-test/run/outputs/half", detail=False))
    assert saved == sorted(p.name for p in (tmp_path / "local" / "outputs" / "half").iterdir())
    assert memory.cat_file("/rainbench-test/run/summary.json") == (tmp_path / "local" / "summary.json").read_bytes()
    again = run_benchmark("memory://rainbench-test/data", methods, metrics, "memory://rainbench-test/run")
    assert again.n_processed == 0 and again.n_resumed == local.n_processed
    assert main(["run", "--dataset", "memory://rainbench-test/nothing", "--out", "memory://x/y", "-q"]) != 0


# --- derain


def test_derain_on_ray_writes_the_local_bytes(ray_engine, tmp_path):
    from PIL import Image

    from rainbench.cli import main
    from test_runner import _images

    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, (_, rainy) in enumerate(_images()[:4]):
        Image.fromarray(rainy).save(inputs / f"r{i}.png")
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n nothing")
    for engine in ("local", "ray"):
        rc = main(["derain", str(inputs), "-m", "guided", "-o", str(tmp_path / engine), "--engine", engine, "-q"])
        assert rc == 1, "the broken file fails, the others are written"
    for i in range(4):
        assert (tmp_path / "ray" / f"r{i}.png").read_bytes() == (tmp_path / "local" / f"r{i}.png").read_bytes()
    assert not (tmp_path / "ray" / "broken.png").exists()
    assert (tmp_path / "ray" / "derain.json").read_text() == (tmp_path / "local" / "derain.json").read_text()


# --- sources and outputs as URLs that every worker process reaches
# ``simplecache::file://`` is an fsspec filesystem that is not the local one (rainbench treats it as
# a store: no paths, no locks) yet reaches the same disk from every process, as a bucket would.


def test_ray_workers_read_url_sources_themselves(ray_engine, tmp_path):
    from test_ingest import MIN_SIDE, SPLIT, dataset_content, make_sources

    sources = make_sources(tmp_path / "src")
    options = IngestOptions(min_side=MIN_SIDE, split=SPLIT, workers=2)
    local = ingest([SourceSpec(path) for path in sources.values()], tmp_path / "local", options)
    specs = [SourceSpec.parse(f"simplecache::file://{path}") for path in sources.values()]
    remote = ingest(specs, tmp_path / "ray", options, engine=ray_engine)
    assert remote.fingerprint == local.fingerprint and remote.status == local.status
    assert dataset_content(tmp_path / "ray") == dataset_content(tmp_path / "local")
    drop = ["file", "detail", "seconds"]
    a = pd.read_parquet(tmp_path / "local" / "manifest.parquet").drop(columns=drop, errors="ignore")
    b = pd.read_parquet(tmp_path / "ray" / "manifest.parquet")
    assert b["file"].str.startswith("simplecache::file:///").all()
    pd.testing.assert_frame_equal(a, b.drop(columns=drop, errors="ignore"))


def test_derain_on_ray_reads_and_writes_urls(ray_engine, tmp_path):
    from PIL import Image

    from rainbench.cli import main
    from test_runner import _images

    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, (_, rainy) in enumerate(_images()[:3]):
        Image.fromarray(rainy).save(inputs / f"r{i}.png")
    assert main(["derain", str(inputs), "-m", "guided", "-o", str(tmp_path / "local"), "-q"]) == 0
    out = f"simplecache::file://{tmp_path / 'store'}"
    assert main(["derain", f"simplecache::file://{inputs}", "-m", "guided", "-o", out, "--engine", "ray", "-q"]) == 0
    for i in range(3):
        assert (tmp_path / "store" / f"r{i}.png").read_bytes() == (tmp_path / "local" / f"r{i}.png").read_bytes()
