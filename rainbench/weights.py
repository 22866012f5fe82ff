"""The weight files pyiqa metrics need: a manifest, offline resolution, fetch and verify.

pyiqa downloads weights on first use (Hugging Face Hub, torchvision, OpenAI CLIP, timm), which
fails on offline GPU nodes, halfway through a run. rainbench lists every file up front, looks for it
in a weights directory first (``--weights-dir`` or ``$RAINBENCH_WEIGHTS_DIR``) and then in the
caches pyiqa itself uses, and fails before a run starts when one is missing.

A weights directory has the layout of a torch hub dir, so it also works as ``$TORCH_HOME/hub``::

    DIR/pyiqa/<file>           pyiqa's own weights (load_file_from_url's DEFAULT_CACHE_DIR)
    DIR/checkpoints/<file>     torchvision backbones (torch.hub.load_state_dict_from_url)
    DIR/clip/<file>            OpenAI CLIP models (pyiqa.archs.clip_model.load)
    DIR/huggingface/models--timm--<name>/...   timm backbones, Hugging Face cache layout

While a metric is built, :func:`pyiqa_environment` points pyiqa, torch.hub, CLIP and the Hub client
at a private directory of symlinks to the resolved files, so pyiqa's own loading code runs unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ENV_VAR = "RAINBENCH_WEIGHTS_DIR"
PYIQA_HF_REPO = "chaofengc/IQA-PyTorch-Weights"
_HF_SUBDIR = "huggingface"


class WeightsError(RuntimeError):
    """A weights operation failed (download, bad hash, unknown metric)."""


class WeightsMissingError(WeightsError, FileNotFoundError):
    """Weight files a metric needs are not present; the message says how to fetch them."""

    def __init__(self, missing: list[tuple[WeightFile, Path]], weights_dir: Path | None):
        self.missing = missing
        self.weights_dir = weights_dir
        target = str(weights_dir) if weights_dir is not None else "DIR"
        lines = []
        for entry, expected in missing:
            lines.append(f"  {entry.key} (for {', '.join(entry.metrics)}): expected at {expected}")
        metrics = sorted({m for entry, _ in missing for m in entry.metrics})
        fetch = f"rainbench weights fetch {' '.join(metrics)} --weights-dir {target}"
        super().__init__("missing weight files:\n" + "\n".join(lines)
                         + f"\nfetch them on a connected machine with: {fetch}")


@dataclass(frozen=True)
class WeightFile:
    """One file a metric needs, where pyiqa (or torchvision, CLIP, timm) expects it."""

    filename: str
    metrics: tuple[str, ...]
    source: str  # pyiqa | torchvision | clip | timm
    url: str
    size: int | None = None
    sha256: str | None = None  # full digest where published; None where it cannot be known here
    sha256_prefix: str | None = None  # leading hex digits the publisher puts in the file name
    repo_id: str | None = None  # Hub repository for timm files

    @property
    def key(self) -> str:
        """A name unique within the manifest (timm files share a file name: prefix the repository)."""
        return f"{self.repo_id}/{self.filename}" if self.repo_id else self.filename

    @property
    def relpath(self) -> str:
        """Path under a weights directory (timm: the repository folder of the Hub cache)."""
        if self.source == "timm":
            return f"{_HF_SUBDIR}/models--{self.repo_id.replace('/', '--')}"
        folder = {"pyiqa": "pyiqa", "torchvision": "checkpoints", "clip": "clip"}[self.source]
        return f"{folder}/{self.filename}"


def _pyiqa(name: str, *metrics: str) -> WeightFile:
    return WeightFile(name, metrics, "pyiqa", f"https://huggingface.co/{PYIQA_HF_REPO}/resolve/main/{name}")


def _timm(repo_id: str, *metrics: str) -> WeightFile:
    return WeightFile("model.safetensors", metrics, "timm",
                      f"https://huggingface.co/{repo_id}/resolve/main/model.safetensors", repo_id=repo_id)


# From pyiqa 0.1.16's default_model_urls (archs/*_arch.py), torchvision's AlexNet IMAGENET1K_V1,
# pyiqa.archs.clip_model._MODELS (the URL carries the sha256) and timm's default pretrained tags.
MANIFEST: tuple[WeightFile, ...] = (
    _pyiqa("LPIPS_v0.1_alex-df73285e.pth", "lpips"),
    WeightFile("alexnet-owt-7be5be79.pth", ("lpips",), "torchvision",
               "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", sha256_prefix="7be5be79"),
    _pyiqa("niqe_modelparameters.mat", "niqe"),
    _pyiqa("brisque_svm_weights.pth", "brisque"),
    _pyiqa("musiq_koniq_ckpt-e95806b9.pth", "musiq"),
    WeightFile("RN50.pt", ("clipiqa",), "clip",
               "https://openaipublic.azureedge.net/clip/models/"
               "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
               sha256="afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762"),
    _pyiqa("ckpt_koniq10k.pt", "maniqa"),
    _timm("timm/vit_base_patch8_224.augreg2_in21k_ft_in1k", "maniqa"),
    _pyiqa("cfanet_nr_koniq_res50-9a73138b.pth", "topiq_nr"),
    _timm("timm/resnet50.a1_in1k", "topiq_nr"),
)


def manifest_for(metric: str, manifest: Iterable[WeightFile] | None = None) -> list[WeightFile]:
    """The manifest entries metric ``metric`` needs (empty for weight-free metrics)."""
    return [e for e in (MANIFEST if manifest is None else manifest) if metric in e.metrics]


def weights_dir_from_env() -> Path | None:
    """``$RAINBENCH_WEIGHTS_DIR`` as a path, or None."""
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else None


def resolve_weights_dir(weights_dir: str | os.PathLike | None = None) -> Path | None:
    """The weights directory in force: the argument, else ``$RAINBENCH_WEIGHTS_DIR``, else None."""
    return Path(weights_dir).expanduser() if weights_dir is not None else weights_dir_from_env()


def default_cache_root(source: str) -> Path:
    """Where pyiqa and its dependencies cache a source's files when left alone."""
    if source == "timm":
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    import torch.hub

    return Path(torch.hub.get_dir())


def _in_root(entry: WeightFile, root: Path, hf_layout_prefix: bool) -> Path | None:
    """The file for ``entry`` under ``root`` if present (timm: through the Hub cache's refs)."""
    if entry.source != "timm":
        path = root / entry.relpath
        return path if path.is_file() else None
    repo = root / entry.relpath if hf_layout_prefix else root / entry.relpath.split("/", 1)[1]
    ref = repo / "refs" / "main"
    revisions = [ref.read_text().strip()] if ref.is_file() else []
    revisions += sorted(p.name for p in (repo / "snapshots").glob("*") if p.name not in revisions)
    for rev in revisions:
        path = repo / "snapshots" / rev / entry.filename
        if path.is_file():
            return path
    return None


def expected_path(entry: WeightFile, weights_dir: Path | None) -> Path:
    """Where ``fetch`` puts ``entry`` (the weights dir, or pyiqa's default cache without one)."""
    if weights_dir is not None:
        return weights_dir / entry.relpath
    if entry.source == "timm":
        return default_cache_root("timm") / entry.relpath.split("/", 1)[1]
    return default_cache_root(entry.source) / entry.relpath


def locate(entry: WeightFile, weights_dir: str | os.PathLike | None = None,
           use_default_cache: bool = True) -> Path | None:
    """The file for ``entry``: the weights directory first, then pyiqa's default caches."""
    wdir = resolve_weights_dir(weights_dir)
    if wdir is not None:
        found = _in_root(entry, wdir, hf_layout_prefix=True)
        if found is not None:
            return found
    if use_default_cache:
        return _in_root(entry, default_cache_root(entry.source), hf_layout_prefix=False)
    return None


def check(metrics: Iterable[str], weights_dir: str | os.PathLike | None = None,
          manifest: Iterable[WeightFile] | None = None) -> dict[str, Path]:
    """Resolve every file the metrics need -> {key: path}; raise WeightsMissingError naming the gaps."""
    wdir = resolve_weights_dir(weights_dir)
    entries = {e.key: e for m in metrics for e in manifest_for(m, manifest)}
    found: dict[str, Path] = {}
    missing: list[tuple[WeightFile, Path]] = []
    for entry in entries.values():
        path = locate(entry, wdir)
        if path is None:
            missing.append((entry, expected_path(entry, wdir)))
        else:
            found[entry.key] = path
    if missing:
        raise WeightsMissingError(missing, wdir)
    return found


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (memoised by path, size and mtime: large checkpoints are hashed once)."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking one manifest entry."""

    entry: WeightFile
    path: Path | None
    status: str  # ok | unverified | missing | bad-size | bad-sha256
    sha256: str | None = None
    detail: str = ""


def verify_file(entry: WeightFile, path: Path | None) -> VerifyResult:
    """Check one present file's size and sha256 (or published sha256 prefix) against the manifest."""
    if path is None or not path.is_file():
        return VerifyResult(entry, path, "missing")
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        return VerifyResult(entry, path, "bad-size", None, f"{size} bytes, expected {entry.size}")
    digest = sha256_file(path)
    if entry.sha256 is not None and digest != entry.sha256:
        return VerifyResult(entry, path, "bad-sha256", digest, f"sha256 {digest}, expected {entry.sha256}")
    if entry.sha256_prefix is not None and not digest.startswith(entry.sha256_prefix):
        return VerifyResult(entry, path, "bad-sha256", digest,
                            f"sha256 {digest[:16]}..., expected prefix {entry.sha256_prefix}")
    known = entry.sha256 is not None or entry.sha256_prefix is not None or entry.size is not None
    return VerifyResult(entry, path, "ok" if known else "unverified", digest,
                        "" if known else "no published size or sha256 to compare with")


def verify(metrics: Iterable[str] | None = None, weights_dir: str | os.PathLike | None = None,
           manifest: Iterable[WeightFile] | None = None) -> list[VerifyResult]:
    """Verify every manifest entry of ``metrics`` (all when None) that is present."""
    entries = list(MANIFEST if manifest is None else manifest)
    if metrics is not None:
        wanted = set(metrics)
        entries = [e for e in entries if wanted & set(e.metrics)]
    return [verify_file(e, locate(e, weights_dir)) for e in entries]


def fetch(metrics: Iterable[str], weights_dir: str | os.PathLike,
          manifest: Iterable[WeightFile] | None = None,
          on_file: Callable[[WeightFile, Path], None] | None = None) -> list[Path]:
    """Download the files ``metrics`` need into ``weights_dir`` (skipping present ones) and verify them."""
    import torch.hub

    wdir = Path(weights_dir).expanduser()
    entries = {e.key: e for m in metrics for e in manifest_for(m, manifest)}
    paths = []
    for entry in entries.values():
        path = _in_root(entry, wdir, hf_layout_prefix=True)
        if path is None:
            try:
                if entry.source == "timm":
                    from huggingface_hub import hf_hub_download

                    path = Path(hf_hub_download(entry.repo_id, entry.filename, cache_dir=wdir / _HF_SUBDIR))
                else:
                    path = wdir / entry.relpath
                    path.parent.mkdir(parents=True, exist_ok=True)
                    torch.hub.download_url_to_file(entry.url, str(path), progress=False)
            except Exception as exc:
                raise WeightsError(f"{entry.filename}: download from {entry.url} failed: {exc}") from exc
        result = verify_file(entry, path)
        if result.status.startswith("bad"):
            raise WeightsError(f"{path}: {result.detail}")
        if on_file is not None:
            on_file(entry, path)
        paths.append(path)
    return paths


def _stage(files: dict[WeightFile, Path], root: Path) -> None:
    """Symlink resolved files into ``root`` in the layout pyiqa, torch.hub, CLIP and timm read."""
    for entry, path in files.items():
        if entry.source == "timm":
            repo = root / entry.relpath
            (repo / "refs").mkdir(parents=True, exist_ok=True)
            (repo / "refs" / "main").write_text("rainbench")
            target = repo / "snapshots" / "rainbench" / entry.filename
        else:
            target = root / entry.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(path.resolve())
        except OSError:  # file systems without symlinks
            shutil.copyfile(path, target)


def _refuse_download(*args, **kwargs):
    raise WeightsError("offline: refusing to download a weight file (run `rainbench weights fetch` first)")


@contextlib.contextmanager
def pyiqa_environment(metric: str, weights_dir: str | os.PathLike | None = None, offline: bool = True,
                      manifest: Iterable[WeightFile] | None = None) -> Iterator[dict[str, Path]]:
    """While building ``metric``, make pyiqa load its weights from the resolved files.

    With ``offline`` (the default) every file must resolve (WeightsMissingError otherwise) and all
    download paths raise. Without it, missing files are downloaded into the weights directory (or
    pyiqa's default cache when there is none).
    """
    import huggingface_hub.constants as hf_constants
    import pyiqa.utils.download_util as pyiqa_download
    import torch.hub

    wdir = resolve_weights_dir(weights_dir)
    entries = manifest_for(metric, manifest)
    try:
        resolved = check([metric], wdir, manifest)
    except WeightsMissingError:
        if offline:
            raise
        resolved = None
    staging = None
    if resolved is not None and entries:
        staging = Path(tempfile.mkdtemp(prefix="rainbench-weights-"))
        _stage({e: resolved[e.key] for e in entries}, staging)
        root = staging
    else:
        root = wdir
    patches: list[tuple[object, str, object]] = []

    def patch(obj: object, attr: str, value: object) -> None:
        patches.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    try:
        if root is not None:
            # torch.hub.set_dir cannot be undone (None means "follow $TORCH_HOME"), so swap the
            # module attribute set_dir writes and put the original back afterwards.
            patch(torch.hub, "_hub_dir", str(root))
            patch(pyiqa_download, "DEFAULT_CACHE_DIR", str(root / "pyiqa"))
            patch(hf_constants, "HF_HUB_CACHE", str(root / _HF_SUBDIR))
        if offline:
            patch(hf_constants, "HF_HUB_OFFLINE", True)
            patch(pyiqa_download, "download_url_to_file", _refuse_download)
            patch(torch.hub, "download_url_to_file", _refuse_download)
        yield resolved or {}
    finally:
        for obj, attr, value in reversed(patches):
            setattr(obj, attr, value)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
