"""A method cannot end the process, and `rainbench run` exits non-zero when images failed.

The misbehaving methods are plugins registered the way third-party code registers
(``@register``), each failing on some images only, so the run must record those and score the rest.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest

from rainbench.cli import main
from rainbench.results import read_results

# Registered for the whole module; each method fails on images brighter than the threshold.
PLUGIN = '''
import sys
from dataclasses import dataclass

from baselines import Method, MethodInfo, register


class Stop(BaseException):
    """Not an Exception: what a careless plugin might raise."""


def _info(name):
    return MethodInfo(name=name, kind="prior", paper="test", year=None, code_license="MIT", weights_license=None,
                      learns_from="none", needs_weights=False, summary="fails on bright images")


class _Picky(Method):
    @dataclass(frozen=True)
    class Config:
        threshold: float = 0.45

    def _derain(self, batch):
        if bool((batch.mean(dim=(1, 2, 3)) > self.config.threshold).any()):
            self.fail()
        return batch


@register(_info("test-exits"))
class Exits(_Picky):
    def fail(self):
        sys.exit(3)


@register(_info("test-base-exception"))
class RaisesBase(_Picky):
    def fail(self):
        raise Stop("plugin gave up")


@register(_info("test-ctrl-c"))
class CtrlC(_Picky):
    def fail(self):
        raise KeyboardInterrupt
'''

NAMES = ("test-exits", "test-base-exception", "test-ctrl-c")


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    from baselines.registry import unregister

    root = tmp_path_factory.mktemp("plugin")
    (root / "rb_test_failing_plugin.py").write_text(PLUGIN)
    sys.path.insert(0, str(root))
    import rb_test_failing_plugin  # noqa: F401 - registers the methods

    yield
    for name in NAMES:
        unregister(name)
    sys.modules.pop("rb_test_failing_plugin", None)
    sys.path.remove(str(root))


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    from test_runner import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data"))


@dataclass
class Case:
    bright: set[str]
    """ids of the images the picky methods fail on."""
    total: int


@pytest.fixture(scope="module")
def case(paired):
    from collection.images import to_tensor

    _, rows = paired
    scored = [r for r in rows if r["_rainy"] is not None and r["_clean"] is not None]  # psnr needs the clean image
    bright = {r["id"] for r in scored if float(to_tensor(r["_rainy"]).mean()) > 0.45}
    assert 0 < len(bright) < len(scored), "the test data must hold bright and dark images"
    return Case(bright, len(scored))


def _run(data, out, *extra):
    return main(["run", "--dataset", str(data), "--metrics", "psnr", "--out", str(out), "-q", "--workers", "0",
                 "--device", "cpu", "--batch-size", "2", *extra])


@pytest.mark.parametrize("method, error", [("test-exits", "sys.exit(3)"), ("test-base-exception", "plugin gave up")])
def test_a_method_that_exits_is_recorded_per_image_and_the_run_goes_on(plugins, paired, case, tmp_path, capsys,
                                                                        method, error):
    data, _ = paired
    code = _run(data, tmp_path / "run", "--method", method)
    out = capsys.readouterr().out
    assert code == 1  # not 3: the method did not get to end the process
    frame = read_results(tmp_path / "run")
    mine = frame[frame["method"] == method]
    failed = mine[mine["error"].notna()]
    assert set(failed["image_id"]) == case.bright
    assert all(error in text for text in failed["error"])
    assert mine[mine["error"].isna()]["value"].notna().all()
    assert set(mine["image_id"]) == set(frame[frame["method"] == "identity"]["image_id"])  # every image has rows
    last = out.strip().splitlines()[-1]
    assert f"{len(case.bright)} of {case.total} image(s) failed" in last and method in last

    # a rerun resumes without dying the same way, and --allow-failures makes the exit code 0
    assert _run(data, tmp_path / "run", "--method", method, "--allow-failures") == 0


def test_a_clean_run_exits_zero(paired, tmp_path, capsys):
    data, _ = paired
    assert _run(data, tmp_path / "run") == 0
    assert "failed" not in capsys.readouterr().out.strip().splitlines()[-1]


def test_ctrl_c_in_a_method_still_stops_the_run(plugins, paired, case, tmp_path, capsys):
    data, _ = paired
    code = _run(data, tmp_path / "run", "--method", "test-ctrl-c")
    assert code == 130 and "abort" in capsys.readouterr().err  # click turns Ctrl-C into Abort
    frame = read_results(tmp_path / "run")
    assert not (frame["method"] == "test-ctrl-c").any() or frame["error"].isna().all()  # never recorded as a failure


def test_derain_records_a_method_that_exits_and_goes_on(plugins, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((16, 16, 3), 250, np.uint8)).save(src / "bright.png")
    Image.fromarray(np.full((16, 16, 3), 10, np.uint8)).save(src / "dark.png")
    code = main(["derain", "--method", "test-exits", str(src), "--out", str(tmp_path / "out"), "-q", "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 1
    assert "bright.png" in captured.err and "sys.exit(3)" in captured.err
    assert "1 written" in captured.out and "1 failed" in captured.out
    assert (tmp_path / "out" / "dark.png").exists() and not (tmp_path / "out" / "bright.png").exists()
    assert main(["derain", "--method", "test-ctrl-c", str(src), "--out", str(tmp_path / "out2"), "-q",
                 "--device", "cpu"]) == 130
