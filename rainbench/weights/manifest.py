"""The manifest of weight files pyiqa metrics need, and the weights errors.

From pyiqa 0.1.16's default_model_urls (archs/*_arch.py), torchvision's AlexNet IMAGENET1K_V1,
pyiqa.archs.clip_model._MODELS (the URL carries the sha256) and timm's default pretrained tags.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PYIQA_HF_REPO = "chaofengc/IQA-PyTorch-Weights"
HF_SUBDIR = "huggingface"


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
        fetch = f"rainbench metric-weights fetch {' '.join(metrics)} --metric-weights {target}"
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
            return f"{HF_SUBDIR}/models--{self.repo_id.replace('/', '--')}"
        folder = {"pyiqa": "pyiqa", "torchvision": "checkpoints", "clip": "clip"}[self.source]
        return f"{folder}/{self.filename}"


def _pyiqa(name: str, *metrics: str) -> WeightFile:
    return WeightFile(name, metrics, "pyiqa", f"https://huggingface.co/{PYIQA_HF_REPO}/resolve/main/{name}")


def _timm(repo_id: str, *metrics: str) -> WeightFile:
    return WeightFile("model.safetensors", metrics, "timm",
                      f"https://huggingface.co/{repo_id}/resolve/main/model.safetensors", repo_id=repo_id)


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


def all_entries(manifest: Iterable[WeightFile] | None = None) -> list[WeightFile]:
    """Every entry of ``manifest`` (the module's :data:`MANIFEST`, read at call time, when None)."""
    return list(MANIFEST if manifest is None else manifest)


def manifest_for(metric: str, manifest: Iterable[WeightFile] | None = None) -> list[WeightFile]:
    """The manifest entries metric ``metric`` needs (empty for weight-free metrics)."""
    return [e for e in (MANIFEST if manifest is None else manifest) if metric in e.metrics]


