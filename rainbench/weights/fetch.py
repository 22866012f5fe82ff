"""Fetching weight files into a weights directory and verifying them against the manifest."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from collection.files import sha256_file
from rainbench.weights.locate import _in_root, locate
from rainbench.weights.manifest import (
    HF_SUBDIR,
    WeightFile,
    WeightsError,
    all_entries,
    manifest_for,
)


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
    digest = sha256_file(path, memo=True)
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
    entries = all_entries(manifest)
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

                    path = Path(hf_hub_download(entry.repo_id, entry.filename, cache_dir=wdir / HF_SUBDIR))
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
