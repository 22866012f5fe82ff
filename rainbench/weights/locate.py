"""Where weight files are: the weights directory first, then the caches pyiqa and its dependencies use."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from rainbench.weights.manifest import WeightFile, WeightsMissingError, manifest_for

ENV_VAR = "RAINBENCH_WEIGHTS_DIR"


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
