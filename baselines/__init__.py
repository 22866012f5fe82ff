"""Deraining methods behind one interface: the registry, the comparison methods, the shared tiler."""

from baselines.method import Method
from baselines.registry import (
    ENTRY_POINT_GROUP,
    MethodError,
    MethodInfo,
    available,
    clear_entry_point_cache,
    create,
    info,
    load_errors,
    register,
)
from baselines.tiling import tile_apply

__all__ = [
    "ENTRY_POINT_GROUP",
    "Method",
    "MethodError",
    "MethodInfo",
    "available",
    "clear_entry_point_cache",
    "create",
    "info",
    "load_errors",
    "register",
    "tile_apply",
]
