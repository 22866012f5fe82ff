"""Metric specifications: the exact convention behind every score rainbench stores.

A :class:`MetricSpec` is frozen and serialisable; its JSON goes into every results row, so a score
can always be traced back to colour space, quantisation, crop, SSIM variant, pyiqa version and the
sha256 of each weight file. Directions (``lower_better``) come from pyiqa's own metric table.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from rainbench.metrics.errors import MetricError

YCBCR = "ycbcr-bt601-limited"  # Y of MATLAB rgb2ycbcr on uint8 input, rounded to uint8
RGB = "rgb"
YIQ = "yiq"  # pyiqa's default luma (0.299, 0.587, 0.114), used by its NIQE, BRISQUE and PIQE

SSIM_OPTIONS = {"window": 11, "sigma": 1.5, "k1": 0.01, "k2": 0.03, "data_range": 255, "filter": "valid"}
PSNR_OPTIONS = {"test_y_channel": False, "data_range": 1.0, "eps": 0.0}


@dataclass(frozen=True)
class MetricSpec:
    """Everything that determines a metric's value, recorded with every score."""

    name: str
    pyiqa_name: str
    options: dict[str, Any] = field(default_factory=dict)
    color_space: str = RGB
    quantise: str = "uint8"
    crop: int = 0
    ssim_variant: str | None = None
    lower_better: bool = False
    needs_reference: bool = False
    pyiqa_version: str = ""
    weights: dict[str, str | None] = field(default_factory=dict)
    implementation: str = "pyiqa"

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of every field (JSON-safe)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """Stable JSON (sorted keys, no whitespace) for storing next to a score."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def replace(self, **changes: Any) -> MetricSpec:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


# name -> the fields that are fixed by rainbench (direction, version and weights are filled in).
_TABLE: dict[str, dict[str, Any]] = {
    "psnr": {
        "pyiqa_name": "psnr", "options": PSNR_OPTIONS, "color_space": YCBCR, "needs_reference": True,
        "implementation": "rainbench Y (MATLAB rgb2ycbcr, round half away from zero, float64) "
                          "-> pyiqa's psnr formula on the 1-channel Y (thread-independent float64 mean)",
    },
    "ssim": {
        "pyiqa_name": "ssim", "options": SSIM_OPTIONS, "color_space": YCBCR, "needs_reference": True,
        "ssim_variant": "ssim_index_2003",
        "implementation": "rainbench torch SSIM_index (pyiqa's ssim clamps the contrast term at 0 "
                          "and rounds Y in float32)",
    },
    "ssim_ds": {
        "pyiqa_name": "ssim", "options": {**SSIM_OPTIONS, "downsample": True}, "color_space": YCBCR,
        "needs_reference": True, "ssim_variant": "ssim_downsample",
        "implementation": "rainbench torch ssim.m (2009): symmetric box filter and subsampling by "
                          "round(min(H, W) / 256), then SSIM_index",
    },
    "psnr_rgb": {
        "pyiqa_name": "psnr", "options": PSNR_OPTIONS, "color_space": RGB, "needs_reference": True,
        "implementation": "pyiqa's psnr formula on uint8-quantised RGB (MSE over all channels, "
                          "thread-independent float64 mean)",
    },
    "ssim_rgb": {
        "pyiqa_name": "ssimc", "options": SSIM_OPTIONS, "color_space": RGB, "needs_reference": True,
        "ssim_variant": "ssim_index_2003",
        "implementation": "rainbench torch SSIM_index per RGB channel, averaged",
    },
    "lpips": {"pyiqa_name": "lpips", "options": {}, "color_space": RGB, "needs_reference": True},
    "niqe": {"pyiqa_name": "niqe", "options": {}, "color_space": YIQ},
    "brisque": {"pyiqa_name": "brisque", "options": {}, "color_space": YIQ},
    "piqe": {"pyiqa_name": "piqe", "options": {}, "color_space": YIQ},
    "musiq": {"pyiqa_name": "musiq", "options": {}, "color_space": RGB},
    "clipiqa": {"pyiqa_name": "clipiqa", "options": {}, "color_space": RGB},
    "maniqa": {"pyiqa_name": "maniqa", "options": {}, "color_space": RGB},
    "topiq_nr": {"pyiqa_name": "topiq_nr", "options": {}, "color_space": RGB},
}


def available_metrics() -> list[str]:
    """Names of every metric rainbench knows, in a stable order."""
    return list(_TABLE)


def pyiqa_version() -> str:
    """The installed pyiqa version (recorded in every spec)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyiqa")
    except PackageNotFoundError:  # pragma: no cover - pyiqa is a hard dependency
        return "unknown"


def pyiqa_lower_better(pyiqa_name: str) -> bool:
    """Direction as pyiqa's InferenceModel sets it (its metric table; False when absent)."""
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    if pyiqa_name not in DEFAULT_CONFIGS:
        raise MetricError(f"pyiqa {pyiqa_version()} has no metric {pyiqa_name!r}")
    return bool(DEFAULT_CONFIGS[pyiqa_name].get("lower_better", False))


def get_spec(name: str) -> MetricSpec:
    """The spec of metric ``name`` with the manifest's weight hashes (None where unknown)."""
    from rainbench.weights import manifest_for

    key = name.strip().lower()
    if key not in _TABLE:
        raise MetricError(f"unknown metric {name!r}; available: {', '.join(available_metrics())}")
    row = _TABLE[key]
    weights = {entry.key: entry.sha256 for entry in manifest_for(key)}
    return MetricSpec(name=key, pyiqa_name=row["pyiqa_name"], options=dict(row["options"]),
                      color_space=row["color_space"], ssim_variant=row.get("ssim_variant"),
                      lower_better=pyiqa_lower_better(row["pyiqa_name"]),
                      needs_reference=row.get("needs_reference", False),
                      pyiqa_version=pyiqa_version(), weights=weights,
                      implementation=row.get("implementation", "pyiqa"))
