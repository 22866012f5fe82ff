"""The weights manifest, resolution order, missing-file errors, verify, fetch and pyiqa redirection.

All files are made by the tests (fetch reads file:// URLs); nothing touches the network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from rainbench import weights as W
from rainbench.metrics import available_metrics, get_spec

WEIGHT_FREE = {"psnr", "ssim", "psnr_rgb", "ssim_rgb", "ssim_ds", "piqe"}


@pytest.fixture()
def caches(tmp_path, monkeypatch):
    """Empty default caches (torch hub via TORCH_HOME, Hub cache) and no weights dir in the env."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(W.ENV_VAR, raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def entry(name: str, payload: bytes | None = None, source: str = "pyiqa", metric: str = "fake",
          url: str = "https://example.invalid/x", **kw) -> W.WeightFile:
    sha = hashlib.sha256(payload).hexdigest() if payload is not None else None
    return W.WeightFile(name, (metric,), source, url, sha256=sha, **kw)


def write(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def test_manifest_covers_exactly_the_metrics_that_need_weights():
    for name in available_metrics():
        files = W.manifest_for(name)
        assert bool(files) == (name not in WEIGHT_FREE), name
        assert set(get_spec(name).weights) == {e.key for e in files}
    keys = [e.key for e in W.MANIFEST]
    assert len(keys) == len(set(keys))
    for e in W.MANIFEST:
        assert e.url.startswith("https://") and e.filename in e.url
        assert e.sha256 is None or len(e.sha256) == 64
    clip = next(e for e in W.MANIFEST if e.source == "clip")
    assert clip.sha256 in clip.url  # OpenAI publishes the digest in the URL


def test_weights_dir_wins_over_default_cache_and_env_is_honoured(caches, monkeypatch):
    e = entry("a.pth")
    wdir = caches / "w"
    default = write(caches / "torch" / "hub" / "pyiqa" / "a.pth", b"default")
    assert W.locate(e, wdir) == default  # only in pyiqa's cache: found there
    mine = write(wdir / "pyiqa" / "a.pth", b"mine")
    assert W.locate(e, wdir) == mine
    monkeypatch.setenv(W.ENV_VAR, str(wdir))
    assert W.resolve_weights_dir() == wdir
    assert W.locate(e) == mine
    assert W.check(["fake"], manifest=[e]) == {"a.pth": mine}
    assert W.locate(e, wdir, use_default_cache=False) == mine


def test_missing_file_error_names_file_path_and_fetch_command(caches):
    wdir = caches / "w"
    files = [entry("a.pth"), entry("b.pth", metric="other")]
    with pytest.raises(W.WeightsMissingError) as info:
        W.check(["fake", "other"], wdir, manifest=files)
    msg = str(info.value)
    assert str(wdir / "pyiqa" / "a.pth") in msg and str(wdir / "pyiqa" / "b.pth") in msg
    assert f"rainbench metric-weights fetch fake other --metric-weights {wdir}" in msg
    assert isinstance(info.value, FileNotFoundError)
    assert [m[0].filename for m in info.value.missing] == ["a.pth", "b.pth"]


def test_verify_reports_ok_bad_sha_prefix_unverified_and_missing(caches):
    wdir = caches / "w"
    good = entry("good.pth", b"good")
    bad = W.WeightFile("bad.pth", ("fake",), "pyiqa", "https://x", sha256=hashlib.sha256(b"other").hexdigest())
    prefixed = W.WeightFile("alex.pth", ("fake",), "torchvision", "https://x", sha256_prefix="00000000")
    unknown = entry("unknown.pth")
    sized = W.WeightFile("sized.pth", ("fake",), "pyiqa", "https://x", size=3)
    write(wdir / "pyiqa" / "good.pth", b"good")
    write(wdir / "pyiqa" / "bad.pth", b"tampered")
    write(wdir / "checkpoints" / "alex.pth", b"alex")
    write(wdir / "pyiqa" / "unknown.pth", b"?")
    write(wdir / "pyiqa" / "sized.pth", b"four")
    results = {r.entry.filename: r for r in W.verify(["fake"], wdir, manifest=[good, bad, prefixed, unknown, sized,
                                                                              entry("gone.pth")])}
    assert results["good.pth"].status == "ok"
    assert results["bad.pth"].status == "bad-sha256" and results["bad.pth"].sha256 == hashlib.sha256(b"tampered").hexdigest()
    assert results["alex.pth"].status == "bad-sha256"
    assert results["unknown.pth"].status == "unverified"
    assert results["sized.pth"].status == "bad-size"
    assert results["gone.pth"].status == "missing"


def test_fetch_downloads_into_the_layout_and_rejects_a_bad_hash(caches):
    src = write(caches / "src" / "model.pth", b"weights!")
    good = entry("model.pth", b"weights!", url=src.as_uri())
    paths = W.fetch(["fake"], caches / "w", manifest=[good])
    assert paths == [caches / "w" / "pyiqa" / "model.pth"] and paths[0].read_bytes() == b"weights!"
    assert W.fetch(["fake"], caches / "w", manifest=[good]) == paths  # present: kept, not re-fetched
    wrong = entry("model.pth", b"something else", url=src.as_uri())
    with pytest.raises(W.WeightsError, match="expected"):
        W.fetch(["fake"], caches / "w2", manifest=[wrong])
    gone = entry("x.pth", url=(caches / "nowhere.pth").as_uri())
    with pytest.raises(W.WeightsError, match="x.pth: download from .* failed"):
        W.fetch(["fake"], caches / "w3", manifest=[gone])


def test_pyiqa_and_torch_hub_load_from_the_weights_dir_offline(caches):
    from pyiqa.utils.download_util import load_file_from_url

    wdir = caches / "w"
    mine = write(wdir / "pyiqa" / "a.pth", b"A")
    torch.save({"w": torch.arange(3)}, write(wdir / "checkpoints" / "tv-1234.pth", b""))
    files = [entry("a.pth"), entry("tv-1234.pth", source="torchvision")]
    with W.pyiqa_environment("fake", wdir, offline=True, manifest=files) as resolved:
        assert set(resolved) == {"a.pth", "tv-1234.pth"}
        # pyiqa's and torchvision's real loaders find the files without a download.
        assert Path(load_file_from_url("https://huggingface.co/any/resolve/main/a.pth")).resolve() == mine
        state = torch.hub.load_state_dict_from_url("https://download.pytorch.org/models/tv-1234.pth")
        assert state["w"].tolist() == [0, 1, 2]
        with pytest.raises(W.WeightsError, match="offline"):
            load_file_from_url("https://huggingface.co/any/resolve/main/not-in-manifest.pth")
    assert not Path(torch.hub.get_dir()).is_relative_to(wdir)  # state restored afterwards
    with pytest.raises(W.WeightsMissingError), W.pyiqa_environment("fake", caches / "empty", manifest=files):
        pass


def test_timm_backbone_loads_from_hub_cache_layout_offline(caches):
    import timm
    from safetensors.torch import save_file

    reference = timm.create_model("test_vit", pretrained=False)
    wdir = caches / "w"
    snapshot = wdir / "huggingface" / "models--timm--test_vit.r160_in1k" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(snapshot / "model.safetensors"))
    files = [W.WeightFile("model.safetensors", ("fake",), "timm", "https://x", repo_id="timm/test_vit.r160_in1k")]
    assert W.check(["fake"], wdir, manifest=files) == {
        "timm/test_vit.r160_in1k/model.safetensors": snapshot / "model.safetensors"}
    with W.pyiqa_environment("fake", wdir, offline=True, manifest=files):
        loaded = timm.create_model("test_vit.r160_in1k", pretrained=True)
    for (k, a), (_, b) in zip(reference.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
