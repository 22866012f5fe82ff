"""`rainbench methods` and `rainbench derain` end to end on small images written by the test."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from rainbench.cli import cli


def _write(path, h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def run(*args):
    return CliRunner().invoke(cli, [*args, "--device", "cpu", "-q"], catch_exceptions=False)


@pytest.fixture
def inputs(tmp_path):
    root = tmp_path / "in"
    _write(root / "a.png")
    _write(root / "nested" / "b.jpg", seed=1)
    _write(root / "nested" / "deeper" / "c.png", h=70, w=33, seed=2)
    (root / "notes.txt").write_text("not an image, not picked up")
    return root


def test_methods_table_and_json():
    table = CliRunner().invoke(cli, ["methods", "-q"], catch_exceptions=False)
    assert table.exit_code == 0
    for word in ("identity", "guided", "gmm", "reference", "prior"):
        assert word in table.output
    listing = json.loads(CliRunner().invoke(cli, ["methods", "--format", "json"], catch_exceptions=False).output)
    by_name = {m["name"]: m for m in listing}
    assert by_name["gmm"]["paper"].startswith("Li et al.") and by_name["gmm"]["learns_from"] == "none"
    assert by_name["identity"]["needs_weights"] is False


def test_derain_writes_same_relative_names_and_skips_on_rerun(inputs, tmp_path):
    out = tmp_path / "out"
    result = run("derain", "--method", "identity", str(inputs), "--out", str(out))
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == ["a.png", "nested/b.png", "nested/deeper/c.png"]
    # identity + PNG: the pixels of a PNG input come back exactly
    assert np.array_equal(np.asarray(Image.open(out / "a.png")), np.asarray(Image.open(inputs / "a.png")))
    record = json.loads((out / "derain.json").read_text())
    assert record["method"] == "identity" and len(record["config_hash"]) == 16

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = run("derain", "--method", "identity", str(inputs), "--out", str(out))
    assert again.exit_code == 0 and "3 already present" in again.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before


def test_derain_single_file_jpg_with_config_and_tiling(inputs, tmp_path):
    out = tmp_path / "out"
    result = run("derain", "--method", "guided", "--config", "radius=2", "--config", "passes=1", "--tile", "32",
                 "--format", "jpg", str(inputs / "nested" / "deeper" / "c.png"), "--out", str(out))
    assert result.exit_code == 0, result.output
    image = Image.open(out / "c.jpg")
    assert image.format == "JPEG" and image.size == (33, 70)
    assert json.loads((out / "derain.json").read_text())["config"]["radius"] == 2


def test_a_bad_file_is_reported_and_the_rest_go_on(inputs, tmp_path):
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["derain", "--method", "identity", str(inputs), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 1
    assert "broken.png" in result.output and "1 failed" in result.output
    assert len(list(out.rglob("*.png"))) == 3


def test_unknown_method_and_bad_config_are_usage_errors(inputs, tmp_path):
    unknown = run("derain", "--method", "nope", str(inputs), "--out", str(tmp_path / "o"))
    assert unknown.exit_code == 2 and "identity" in unknown.output and "gmm" in unknown.output
    bad = run("derain", "--method", "guided", "--config", "radius=big", str(inputs), "--out", str(tmp_path / "o"))
    assert bad.exit_code == 2 and "radius" in bad.output
    assert not (tmp_path / "o").exists()


def test_outputs_of_another_config_are_not_mixed(inputs, tmp_path):
    out = tmp_path / "out"
    assert run("derain", "--method", "guided", "--config", "passes=1", str(inputs / "a.png"), "--out", str(out)).exit_code == 0
    clash = run("derain", "--method", "guided", "--config", "passes=2", str(inputs / "a.png"), "--out", str(out))
    assert clash.exit_code == 2 and "config hash" in clash.output
    forced = run("derain", "--method", "guided", "--config", "passes=2", "--overwrite", str(inputs / "a.png"), "--out", str(out))
    assert forced.exit_code == 0 and "1 written" in forced.output


def test_a_method_without_its_weights_is_a_usage_error_naming_how_to_get_them(inputs, tmp_path):
    from dataclasses import dataclass

    from baselines import Method, MethodInfo, register
    from baselines.registry import unregister

    @register(MethodInfo(name="test-needs-weights", kind="supervised", paper="test", year=None, code_license="MIT",
                         weights_license=None, learns_from="paired", needs_weights=True, summary="test"))
    class NeedsWeights(Method):
        @dataclass(frozen=True)
        class Config:
            pass

        def _derain(self, batch):
            return batch

    try:
        result = run("derain", "--method", "test-needs-weights", str(inputs), "--out", str(tmp_path / "o"))
        assert result.exit_code == 2
        assert "--weights" in result.output and "rainbench train --method test-needs-weights" in result.output
        assert not (tmp_path / "o").exists()  # refused before any work
    finally:
        unregister("test-needs-weights")
