"""`rainbench derain` input checks: output-name clashes refused before any work, broken links reported."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from rainbench.cli import main


def _png(path, value: int) -> None:
    Image.fromarray(np.full((12, 16, 3), value, np.uint8)).save(path)


def _jpeg_bytes(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((12, 16, 3), value, np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def camera_folder(tmp_path):
    """One shot saved three ways, as phones and converters leave them, plus an unrelated image."""
    root = tmp_path / "in"
    root.mkdir()
    (root / "IMG_0001.JPG").write_bytes(_jpeg_bytes(100))
    (root / "IMG_0001.HEIC").write_bytes(b"not decodable here: only its name matters to the clash check")
    _png(root / "IMG_0001.png", 100)
    _png(root / "IMG_0002.png", 50)
    return root


def derain(*args):
    return main(["derain", "--method", "identity", "-q", "--device", "cpu", *map(str, args)])


def test_clashing_output_names_are_refused_before_any_work(camera_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert derain(camera_folder, "--out", out) == 2
    err = capsys.readouterr().err
    for name in ("IMG_0001.JPG", "IMG_0001.HEIC", "IMG_0001.png"):
        assert name in err
    assert "IMG_0001.png" in err and "--keep-suffix" in err
    assert not out.exists()  # nothing written, not even IMG_0002


def test_two_inputs_with_one_name_clash_too(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _png(tmp_path / "a" / "x.png", 10)
    _png(tmp_path / "b" / "x.png", 20)
    assert derain(tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "a" / "x.png") in err and str(tmp_path / "b" / "x.png") in err


def test_keep_suffix_keeps_them_apart(camera_folder, tmp_path, capsys):
    out = tmp_path / "out"
    code = derain(camera_folder, "--out", out, "--keep-suffix")
    captured = capsys.readouterr()
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == ["IMG_0001.JPG.png", "IMG_0001.png.png", "IMG_0002.png.png"]
    # the fake HEIC fails to decode and says so; the others are written
    assert code == 1 and "IMG_0001.HEIC" in captured.err and "3 written" in captured.out


def test_broken_links_and_loops_are_reported_and_skipped(tmp_path, capsys):
    root = tmp_path / "in"
    root.mkdir()
    _png(root / "ok.png", 10)
    os.symlink(root / "gone.png", root / "dangling.png")
    os.symlink(root / "loop.png", root / "loop.png")
    os.symlink(root / "ok.png", root / "alias.png")  # a good link is an ordinary input
    out = tmp_path / "out"
    assert derain(root, "--out", out) == 0
    captured = capsys.readouterr()
    assert "dangling.png" in captured.err and "gone.png" in captured.err
    assert "loop.png" in captured.err and "loop" in captured.err.split("loop.png", 1)[1]
    assert "2 written" in captured.out and "2 broken link(s) skipped" in captured.out
    assert sorted(p.name for p in out.glob("*.png")) == ["alias.png", "ok.png"]


def test_an_out_inside_the_input_is_not_read_back(tmp_path, capsys):
    root = tmp_path / "in"
    root.mkdir()
    _png(root / "a.png", 10)
    assert derain(root, "--out", root / "derained") == 0
    assert derain(root, "--out", root / "derained") == 0  # second run: a.png present, derained/a.png not an input
    assert "1 already present" in capsys.readouterr().out
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png")) == ["a.png", "derained/a.png"]
