"""What a method is before it is built: its metadata, its error type, and its options.

:class:`MethodInfo` (the registry's metadata), :class:`MethodError`, and the building of a
method's ``Config`` dataclass from keyword or command-line values (:func:`build_config`,
:func:`coerce`) live here, apart from the registry and the base class, so that
``baselines.method`` and ``baselines.registry`` both import this module and neither imports the
other back (timm keeps its ``_registry.py`` free of models for the same reason).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from baselines.method import Method

KINDS = ("reference", "prior", "supervised", "unsupervised")
LEARNS_FROM = ("none", "paired", "unpaired")


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


CONFIG_HASH_DIGITS = 16
"""Hex digits of a method config hash (the ``method_config_hash`` of every result row)."""


def config_hash(payload: Any) -> str:
    """The hash identifying a method's name, options and weights: sha256 of its sorted JSON, 16 hex digits."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:CONFIG_HASH_DIGITS]
