"""One writer per output folder: `ingest`, `run` and `derain` refuse an --out another process is writing.

The other process is real: a child that takes the lock (as `rainbench` would) and waits, or a real
`run_benchmark` with a slow method. The error must be one line naming that process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from collection.lock import LOCK_NAME, OutputLockedError, output_lock
from rainbench.cli import main

TESTS = Path(__file__).parent
REPO = TESTS.parent

_HOLDER = """
import sys
from collection.lock import output_lock
with output_lock(sys.argv[1], "rainbench fake-writer --out " + sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()  # hold until the test closes our stdin (or kills us)
"""


class Holder:
    """A child process holding the lock of ``folder`` until :meth:`release` (or kill)."""

    def __init__(self, folder: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], cwd=str(REPO),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.strip() == "locked", f"the holder did not take the lock: {line!r}"

    def release(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def holder():
    made: list[Holder] = []

    def start(folder: Path) -> Holder:
        made.append(Holder(folder))
        return made[-1]

    yield start
    for h in made:
        if h.proc.poll() is None:
            h.kill()


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_second_writer_fails_naming_the_first_and_the_lock_goes_with_its_holder(tmp_path, holder):
    out = tmp_path / "out"
    first = holder(out)
    with pytest.raises(OutputLockedError) as info, output_lock(out, "second"):
        pass
    message = str(info.value)
    assert str(out) in message and f"pid {first.proc.pid}" in message
    assert "rainbench fake-writer" in message and "\n" not in message
    first.kill()  # kill -9: the kernel drops the lock, the stale file does not block anyone
    assert (out / LOCK_NAME).exists()
    with output_lock(out, "third") as path:
        assert '"third"' in path.read_text()
    assert not (out / LOCK_NAME).exists()


def test_lock_is_exclusive_within_one_process_and_an_unused_folder_is_removed(tmp_path):
    out = tmp_path / "new" / "out"
    with output_lock(out, "outer"), pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"), \
            output_lock(out, "inner"):
        pass
    assert not out.exists()  # created by the lock, nothing written: gone again
    with output_lock(out, "writer"):
        (out / "kept.txt").write_text("x")
    assert (out / "kept.txt").exists() and not (out / LOCK_NAME).exists()


def test_ingest_into_a_folder_being_written_is_one_clear_line(tmp_path, holder, capsys):
    src = tmp_path / "photos"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(src / "a.png")
    out = tmp_path / "data"
    other = holder(out)
    code = main(["ingest", str(src), "--out", str(out), "-q", "--workers", "0"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 1 and f"pid {other.proc.pid}" in line and str(out) in line
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing of the dataset was written
    other.release()
    assert main(["ingest", str(src), "--out", str(out), "-q", "--workers", "0"]) == 0
    assert (out / "dataset_dict.json").exists() and not (out / LOCK_NAME).exists()


def test_derain_into_a_folder_being_written_is_one_clear_line(tmp_path, holder, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / "a.png")
    out = tmp_path / "out"
    other = holder(out)
    code = main(["derain", "--method", "identity", str(src), "--out", str(out), "-q", "--device", "cpu"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 1 and f"pid {other.proc.pid}" in line
    assert not (out / "a.png").exists()
    other.release()
    assert main(["derain", "--method", "identity", str(src), "--out", str(out), "-q", "--device", "cpu"]) == 0
    assert (out / "a.png").exists()


_SLOW_RUN = """
import sys
sys.path.insert(0, {tests!r})
from test_runner import FakeMethod, FakeBrightness
from rainbench.runner import run_benchmark
run_benchmark({data!r}, [FakeMethod("slow", delay=2.0)], [FakeBrightness()], {out!r}, flush_every=1)
"""


def test_two_runs_into_one_out_the_second_is_refused_and_the_first_completes(tmp_path):
    from test_runner import FakeBrightness, FakeMethod, make_dataset

    from rainbench.results import read_results
    from rainbench.runner import run_benchmark

    data, _ = make_dataset(tmp_path)
    out = tmp_path / "run"
    script = _SLOW_RUN.format(tests=str(TESTS), data=str(data), out=str(out))
    first = subprocess.Popen([sys.executable, "-c", script], cwd=str(REPO))
    try:
        deadline = time.monotonic() + 120
        while not (out / "run.json").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the second could start"
        second = FakeMethod("slow")
        with pytest.raises(OutputLockedError, match=f"pid {first.pid}"):
            run_benchmark(data, [second], [FakeBrightness()], out)
        assert second.calls == 0  # refused before any work, not a second copy of it
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        resumed = run_benchmark(data, [FakeMethod("slow")], [FakeBrightness()], out)  # the lock died with it
        assert resumed.n_processed + resumed.n_resumed == 5
        assert set(read_results(out)["method"]) == {"identity", "slow"}
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


_FORKING_HOLDER = """
import os, sys, time
from collection.lock import output_lock
with output_lock(sys.argv[1]):
    if os.fork() == 0:  # a worker: outlives its parent for a while, like a probe worker after kill -9
        # The fork hooks have run once fork returns here; saying so only now keeps the test from
        # racing a child that the scheduler has not run yet (it failed so on a loaded machine).
        print(os.getpid(), flush=True)
        time.sleep(30)
        os._exit(0)
    time.sleep(60)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_does_not_keep_a_killed_parents_lock(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _FORKING_HOLDER, str(out)], cwd=str(REPO),
                            stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    try:
        with pytest.raises(OutputLockedError), output_lock(out):
            pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        os.kill(child, 0)  # the worker is still alive ...
        with output_lock(out):  # ... and the folder is free
            pass
    finally:
        proc.kill()
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
