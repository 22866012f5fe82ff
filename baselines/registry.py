"""The method registry: names -> method classes with metadata, built-ins and third-party plugins.

Built-in methods are the modules of this package; each registers its class with
:func:`register` when imported. Third-party packages register without editing rainbench through
the ``rainbench.methods`` entry point group: each entry point names a module (importing it runs
its ``@register`` decorators) or a :class:`~baselines.method.Method` subclass. Both are
discovered lazily, on the first :func:`available`, :func:`info` or :func:`create`: importing
``baselines`` imports torch (the base class needs it) but no method module and no plugin.

The metadata, error type and option building the registry uses live in :mod:`baselines.spec`.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
import pkgutil
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from baselines.method import Method, read_checkpoint_config
from baselines.spec import MethodError, MethodInfo, build_config, config_fields

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "rainbench.methods"
"""Entry point group through which installed packages register methods."""

# Modules of this package that hold infrastructure, not methods.
_NOT_METHODS = frozenset({"registry", "method", "spec", "tiling", "exact_tiling"})

C = TypeVar("C", bound=type)


_REGISTRY: dict[str, type[Method]] = {}
_FAILED: dict[str, str] = {}  # plugin or module name -> why it could not be loaded
_DISCOVERED = {"builtins": False, "entry_points": False}


def register(method_info: MethodInfo) -> Callable[[C], C]:
    """Class decorator: register a :class:`~baselines.method.Method` subclass under ``method_info.name``."""

    def decorate(cls: C) -> C:
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise MethodError(f"@register({method_info.name!r}) must decorate a subclass of baselines.Method")
        if not (isinstance(getattr(cls, "Config", None), type) and dataclasses.is_dataclass(cls.Config)):
            raise MethodError(f"method {method_info.name!r}: {cls.__name__}.Config must be a dataclass")
        existing = _REGISTRY.get(method_info.name)
        if existing is not None and existing is not cls:
            raise MethodError(
                f"method name {method_info.name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        cls.info = method_info
        _REGISTRY[method_info.name] = cls
        return cls

    return decorate


def unregister(name: str) -> None:
    """Remove a method from the registry (for tests and plugin reloading)."""
    _REGISTRY.pop(name, None)


def clear_entry_point_cache() -> None:
    """Forget that entry points were scanned, so the next lookup scans them again."""
    _DISCOVERED["entry_points"] = False
    for key in [k for k in _FAILED if k.startswith("entry point ")]:
        del _FAILED[key]


def _discover_builtins() -> None:
    if _DISCOVERED["builtins"]:
        return
    _DISCOVERED["builtins"] = True
    package = Path(__file__).parent
    for module in sorted(pkgutil.iter_modules([str(package)]), key=lambda m: m.name):
        if module.name in _NOT_METHODS or module.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"baselines.{module.name}")
        except Exception as exc:  # noqa: BLE001 - one broken method must not hide the others
            _FAILED[f"module baselines.{module.name}"] = f"{type(exc).__name__}: {exc}"
            logger.warning("could not import baselines.%s: %s", module.name, exc)


def _discover_entry_points() -> None:
    if _DISCOVERED["entry_points"]:
        return
    _DISCOVERED["entry_points"] = True
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the others
            _FAILED[f"entry point {entry.name}"] = f"{entry.value}: {type(exc).__name__}: {exc}"
            logger.warning("could not load method plugin %s (%s): %s", entry.name, entry.value, exc)
            continue
        if isinstance(target, types.ModuleType):
            continue  # importing it ran its @register decorators
        cls_info = getattr(target, "info", None)
        if isinstance(cls_info, MethodInfo) and _REGISTRY.get(cls_info.name) is target:
            continue
        _FAILED[f"entry point {entry.name}"] = f"{entry.value} is neither a module nor a @register-ed Method class"
        logger.warning("method plugin %s (%s) registered nothing", entry.name, entry.value)


def _discover() -> None:
    _discover_builtins()
    _discover_entry_points()


def available() -> list[str]:
    """Names of every registered method (built-in and plugins), sorted."""
    _discover()
    return sorted(_REGISTRY)


def load_errors() -> dict[str, str]:
    """Modules and plugins that failed to load, with the reason (empty when all is well)."""
    _discover()
    return dict(_FAILED)


def get_class(name: str) -> type[Method]:
    """The registered class for ``name``; MethodError listing the valid names otherwise."""
    _discover()
    cls = _REGISTRY.get(name)
    if cls is None:
        hint = f"; plugins that failed to load: {', '.join(_FAILED)}" if _FAILED else ""
        raise MethodError(f"unknown method {name!r}; available: {', '.join(sorted(_REGISTRY)) or '(none)'}{hint}")
    return cls


def info(name: str) -> MethodInfo:
    """Metadata of the method registered as ``name``."""
    return get_class(name).info


def create(name: str, *, weights: str | Path | None = None, device: Any = "cpu", **config: Any) -> Method:
    """A ready method: ``config`` is validated (and CLI strings coerced) against the method's Config.

    With ``weights`` the file is loaded (rainbench checkpoints restore their saved config, then the
    explicitly given options are applied on top). A method that needs weights and gets none can
    still ``fit``; ``derain`` then raises a MethodError saying how to obtain weights.
    """
    cls = get_class(name)
    explicit = dict(config)
    if weights is not None:
        fields = config_fields(cls)
        saved = read_checkpoint_config(weights, name) or {}
        config = {**{k: v for k, v in saved.items() if k in fields}, **explicit}
    method = cls(build_config(cls, config), device=device)
    if weights is not None:
        method.load(weights, keep_config=set(explicit))
    return method
