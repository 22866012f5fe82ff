"""Turning the user's ``--device`` choice into a torch device, the same way in every command."""

from __future__ import annotations

import re

_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


class DeviceError(ValueError):
    """The requested device is malformed or not present on this machine."""


def worker_device(device) -> str:
    """The device name a worker elsewhere is given: ``cuda`` (whichever GPU its scheduler assigned) or ``cpu``."""
    return "cuda" if device.type == "cuda" else "cpu"


def resolve_device(spec: str = "auto"):
    """Return the ``torch.device`` for ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (auto prefers CUDA)."""
    import torch

    text = (spec or "auto").strip().lower()
    if not _PATTERN.match(text):
        raise DeviceError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N")
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {spec}: no CUDA device is available on this machine (use --device cpu)")
    device = torch.device(text)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
    return device
