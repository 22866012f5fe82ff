"""The method registry: names -> method classes with metadata, built-ins and third-party plugins.

Built-in methods are the modules of this package; each registers its class with
:func:`register` when imported. Third-party packages register without editing rainbench through
the ``rainbench.methods`` entry point group: each entry point names a module (importing it runs
its ``@register`` decorators) or a :class:`~baselines.method.Method` subclass. Both are
discovered lazily, on the first :func:`available`, :func:`info` or :func:`create`, so
``import baselines`` stays cheap.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
import pkgutil
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from baselines.method import Method

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "rainbench.methods"
"""Entry point group through which installed packages register methods."""

KINDS = ("reference", "prior", "supervised", "unsupervised")
LEARNS_FROM = ("none", "paired", "unpaired")

# Modules of this package that hold infrastructure, not methods.
_NOT_METHODS = frozenset({"registry", "method", "tiling"})

C = TypeVar("C", bound=type)


class MethodError(ValueError):
    """A method name, configuration, input or weight file is not usable; the message says why."""


@dataclass(frozen=True)
class MethodInfo:
    """What the registry knows about a method before it is created."""

    name: str
    kind: str  # reference | prior | supervised | unsupervised
    paper: str
    year: int | None
    code_license: str
    weights_license: str | None
    learns_from: str  # none | paired | unpaired
    needs_weights: bool
    devices: tuple[str, ...] = ("cpu", "cuda")
    summary: str = ""
    multiple: int = 1  # input height and width must be a multiple of this (inputs are padded)
    tile: int = 0  # default tile size for large inputs; 0 = always process whole

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "_").replace("_", "a").isalnum():
            raise MethodError(f"method name {self.name!r} must be non-empty letters, digits, '-' or '_'")
        if self.kind not in KINDS:
            raise MethodError(f"method {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.learns_from not in LEARNS_FROM:
            raise MethodError(f"method {self.name!r}: learns_from {self.learns_from!r} is not one of {', '.join(LEARNS_FROM)}")
        if self.multiple < 1 or self.tile < 0:
            raise MethodError(f"method {self.name!r}: multiple must be >= 1 and tile >= 0")

    def to_dict(self) -> dict[str, Any]:
        """The metadata as a JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["devices"] = list(self.devices)
        return out


_REGISTRY: dict[str, type[Method]] = {}
_FAILED: dict[str, str] = {}  # plugin or module name -> why it could not be loaded
_DISCOVERED = {"builtins": False, "entry_points": False}


def register(method_info: MethodInfo) -> Callable[[C], C]:
    """Class decorator: register a :class:`~baselines.method.Method` subclass under ``method_info.name``."""

    def decorate(cls: C) -> C:
        from baselines.method import Method

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
        from baselines.method import read_checkpoint_config

        fields = config_fields(cls)
        saved = read_checkpoint_config(weights, name) or {}
        config = {**{k: v for k, v in saved.items() if k in fields}, **explicit}
    method = cls(build_config(cls, config), device=device)
    if weights is not None:
        method.load(weights, keep_config=set(explicit))
    return method


def config_fields(cls: type[Method]) -> dict[str, Any]:
    """Option name -> resolved type for a method class's Config dataclass."""
    try:
        hints = typing.get_type_hints(cls.Config)
    except Exception:  # noqa: BLE001 - an unresolvable annotation leaves that option unchecked
        hints = {f.name: f.type for f in dataclasses.fields(cls.Config) if not isinstance(f.type, str)}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls.Config) if f.init}


def describe_fields(cls: type[Method]) -> str:
    """Human-readable ``name: type = default`` list of a method's options."""
    parts = []
    for f in dataclasses.fields(cls.Config):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else "..."
        parts.append(f"{f.name}: {_type_name(config_fields(cls)[f.name])} = {default!r}")
    return ", ".join(parts) or "(no options)"


def build_config(cls: type[Method], config: dict[str, Any]) -> Any:
    """Validate ``config`` against ``cls.Config`` and return a Config instance."""
    name = cls.info.name
    fields = config_fields(cls)
    values = {}
    for key, value in config.items():
        if key not in fields:
            raise MethodError(f"method {name!r} has no option {key!r}; valid options: {describe_fields(cls)}")
        try:
            values[key] = coerce(value, fields[key])
        except (TypeError, ValueError) as exc:
            raise MethodError(
                f"method {name!r}: option {key}={value!r}: {exc}; valid options: {describe_fields(cls)}"
            ) from None
    try:
        return cls.Config(**values)
    except (TypeError, ValueError) as exc:
        raise MethodError(f"method {name!r}: invalid options: {exc}; valid options: {describe_fields(cls)}") from None


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def coerce(value: Any, annotation: Any) -> Any:
    """Check ``value`` against a type annotation, converting strings (as given on a command line)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() == "none")):
            return None
        for arg in [a for a in args if a is not type(None)]:
            try:
                return coerce(value, arg)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"expected {_type_name(annotation)}")
    if origin is typing.Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise ValueError(f"expected one of {', '.join(map(repr, args))}")
    if origin in (tuple, list):
        items = [v for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ValueError(f"expected {_type_name(annotation)}")
        item_type = args[0] if args else Any
        return origin(coerce(v.strip() if isinstance(v, str) else v, item_type) for v in items)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError("expected bool (true/false)")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        raise ValueError("expected int")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError("expected float")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ValueError("expected str")
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ValueError(f"expected {annotation.__name__}")
    return value


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
