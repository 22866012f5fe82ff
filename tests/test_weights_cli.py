"""`rainbench metric-weights list|fetch|verify|path|fit-niqe` end to end (file:// URLs, no network)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import scipy.io
from PIL import Image
from skimage import data

from rainbench import weights as W
from rainbench.cli import main


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """Empty default caches, a wide terminal, and a manifest whose brisque file is a local file:// URL."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv(W.ENV_VAR, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    src = tmp_path / "src" / "brisque_svm_weights.pth"
    src.parent.mkdir()
    src.write_bytes(b"svm")
    manifest = (W.WeightFile("brisque_svm_weights.pth", ("brisque",), "pyiqa", src.as_uri(),
                             sha256=hashlib.sha256(b"svm").hexdigest()),)
    monkeypatch.setattr(W, "MANIFEST", manifest)  # what the CLI lists
    monkeypatch.setattr(W.manifest, "MANIFEST", manifest)  # what resolution and fetch read
    return tmp_path


def test_path_prefers_option_then_env_then_pyiqa_cache(env, monkeypatch, capsys):
    assert main(["metric-weights", "path", "--metric-weights", str(env / "a")]) == 0
    assert capsys.readouterr().out.strip() == str(env / "a")
    monkeypatch.setenv(W.ENV_VAR, str(env / "b"))
    assert main(["metric-weights", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(env / "b")
    monkeypatch.delenv(W.ENV_VAR)
    assert main(["metric-weights", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(env / "torch" / "hub")


def test_fetch_then_list_and_verify(env, capsys):
    wdir = env / "w"
    assert main(["metric-weights", "list", "brisque", "piqe", "--metric-weights", str(wdir)]) == 0
    out = capsys.readouterr().out
    assert "missing" in out and "no weights needed" in out and "present" not in out
    assert main(["metric-weights", "fetch", "brisque", "--metric-weights", str(wdir), "-q"]) == 0
    assert (wdir / "pyiqa" / "brisque_svm_weights.pth").read_bytes() == b"svm"
    capsys.readouterr()
    assert main(["metric-weights", "list", "brisque", "--metric-weights", str(wdir)]) == 0
    assert "present" in capsys.readouterr().out
    assert main(["metric-weights", "verify", "brisque", "--metric-weights", str(wdir)]) == 0
    assert " ok " in capsys.readouterr().out
    (wdir / "pyiqa" / "brisque_svm_weights.pth").write_bytes(b"tampered")
    assert main(["metric-weights", "verify", "--metric-weights", str(wdir)]) == 1
    captured = capsys.readouterr()
    assert "bad-sha256" in captured.out and "brisque_svm_weights.pth" in captured.err


def test_fetch_needs_a_directory_and_known_metrics(env, capsys):
    assert main(["metric-weights", "fetch", "brisque"]) == 2
    assert "--metric-weights" in capsys.readouterr().err
    assert main(["metric-weights", "fetch", "nosuch", "--metric-weights", str(env)]) == 2
    assert "unknown metric" in capsys.readouterr().err


def test_verify_strict_fails_on_missing(env, capsys):
    assert main(["metric-weights", "verify", "brisque", "--metric-weights", str(env / "w")]) == 0
    assert main(["metric-weights", "verify", "brisque", "--strict", "--metric-weights", str(env / "w")]) == 1


def test_fit_niqe_from_image_folder(env, capsys):
    folder = env / "clean"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(data.astronaut()[:192, :192]).save(folder / "a.png")
    Image.fromarray(data.coffee()[:192, :288]).save(folder / "sub" / "b.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image")
    out = env / "models" / "niqe.mat"
    assert main(["metric-weights", "fit-niqe", str(folder), "--out", str(out), "--sharpness-threshold", "0", "-q"]) == 0
    params = scipy.io.loadmat(out)
    assert params["mu_prisparam"].shape == (1, 36)
    assert int(params["n_patches"][0, 0]) == 4 + 6  # every 96x96 patch of both images
    assert "niqe.mat" in capsys.readouterr().out
    assert np.isfinite(params["cov_prisparam"]).all()


def test_fit_niqe_reports_a_broken_image(env, capsys):
    bad = env / "broken.png"
    bad.write_bytes(b"not a png")
    assert main(["metric-weights", "fit-niqe", str(bad), "--out", str(env / "x.mat"), "-q"]) == 1
    assert "broken.png" in capsys.readouterr().err
