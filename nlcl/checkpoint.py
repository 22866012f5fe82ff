"""Checkpoints: full trainer state, and one loader for released or our own generator weights.

``atomic_save`` and ``file_sha256`` are the torch-side file helpers: ``nlcl`` keeps its own so it
stays importable alone, and ``baselines`` (which may import ``nlcl`` but not ``collection``) uses
them for method checkpoints; ``collection.files`` is the one home for everything else.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from .config import NLCLConfig
from .networks import Generator

TRAINER_FORMAT = "nlcl-trainer"
GENERATOR_FORMAT = "nlcl-generator"
_WHICH = {"background": "G_B", "rain": "G_R"}


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a hidden temporary file beside ``path``, then rename: an interrupted save leaves the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a weight file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _load(path: str | Path, map_location: str | torch.device) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NLCL checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt or foreign file: name it
        raise ValueError(f"NLCL checkpoint {path} could not be read: {exc}") from exc


def save_trainer_state(state: dict[str, Any], path: str | Path) -> None:
    """Write a trainer state dict, tagged with its format."""
    atomic_save({"format": TRAINER_FORMAT, "version": 1, **state}, path)


def load_trainer_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a trainer state written by :func:`save_trainer_state`."""
    state = _load(path, map_location)
    if not isinstance(state, dict) or state.get("format") != TRAINER_FORMAT:
        raise ValueError(f"NLCL checkpoint {path} is not a full trainer checkpoint (use load_generator for weights)")
    return state


def save_generator(generator: Generator, path: str | Path) -> None:
    """Write one generator with its size, loadable by :func:`load_generator`."""
    atomic_save(
        {"format": GENERATOR_FORMAT, "ngf": generator.ngf, "n_blocks": generator.n_blocks,
         "residual": generator.residual, "padding": generator.padding, "state_dict": generator.state_dict()},
        path,
    )


def _strip_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Weights saved from DataParallel / wrapped models carry a "module." prefix.
    return {k.removeprefix("module."): v for k, v in sd.items()}


def generator_from_state_dict(sd: dict[str, torch.Tensor], source: str = "state dict",
                              residual: bool = False, padding: str = "zero") -> Generator:
    """Build a Generator whose size is read from a released-layout state dict, and load it strictly.

    Released state dicts carry no padding mode: they are the authors' zero-padded architecture.
    """
    sd = _strip_prefix(sd)
    if "gen.0.weight" not in sd:
        raise ValueError(f"NLCL weights {source}: no 'gen.0.weight' key, not an NLCL generator state dict")
    ngf = int(sd["gen.0.weight"].shape[0])
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"gen\.(\d+)\.model\.", k))}
    n_blocks = len(blocks)
    generator = Generator(ngf=ngf, n_blocks=n_blocks, residual=residual, padding=padding)
    missing, unexpected = generator.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"NLCL weights {source} do not match the generator layout "
            f"(ngf={ngf}, n_blocks={n_blocks}): missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return generator


def load_generator(path: str | Path, which: str = "background", map_location: str | torch.device = "cpu") -> Generator:
    """Load G_B (``which="background"``) or G_R (``"rain"``) from any NLCL weight file, in eval mode.

    Accepts the authors' released ``latest_net_Back.pth`` / ``latest_net_Rain.pth`` (plain state
    dicts; each holds one generator, so ``which`` is not consulted), our generator files and our
    full trainer checkpoints.
    """
    if which not in _WHICH:
        raise ValueError(f"load_generator: which must be 'background' or 'rain', got {which!r}")
    obj = _load(path, map_location)
    if not isinstance(obj, dict):
        raise TypeError(f"NLCL weights {path}: expected a dict, got {type(obj).__name__}")
    fmt = obj.get("format")
    if fmt == TRAINER_FORMAT:
        cfg = NLCLConfig.from_dict(obj["config"])
        generator = Generator(cfg.ngf, cfg.n_blocks, residual=cfg.residual and which == "background",
                              padding=cfg.g_padding)
        generator.load_state_dict(obj[_WHICH[which]])
    elif fmt == GENERATOR_FORMAT:
        generator = generator_from_state_dict(obj["state_dict"], str(path), residual=bool(obj.get("residual", False)),
                                              padding=str(obj.get("padding", "zero")))
    else:
        sd = obj.get("state_dict", obj)
        generator = generator_from_state_dict(sd, str(path))
    return generator.to(map_location).eval()
