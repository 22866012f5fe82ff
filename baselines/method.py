"""The base class every deraining method derives from.

A method subclass declares a ``Config`` dataclass (its options, with defaults), is decorated with
:func:`baselines.registry.register`, and implements :meth:`Method._derain` on a batch already on
``self.device``, padded to ``info.multiple``. Everything else is shared here: input validation,
``torch.no_grad``, tiling of large inputs (exact layer-wise streaming,
:func:`baselines.exact_tiling.stream_apply`, for networks with InstanceNorm; blended tiles,
:func:`baselines.tiling.tile_apply`, for the rest), clamping, the config hash, checkpoints
(``save``/``load``) and the ``fit`` protocol.

Learnable methods additionally implement :meth:`Method.networks` (the ``nn.Module`` s whose
state is saved) and :meth:`Method._fit`; methods with released weights in another format
override :meth:`Method._load_native`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

import torch

from baselines.exact_tiling import (
    NotStreamable,
    Streamable,
    check_streamable,
    has_instance_norm,
    stream_apply,
    whole_image_fits,
)
from baselines.spec import MethodError, MethodInfo, build_config, config_fields
from baselines.spec import config_hash as hash_config
from baselines.tiling import pad_to_multiple, tile_apply
from nlcl.checkpoint import atomic_save, file_sha256

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "rainbench-method/1"
"""Marker stored in every checkpoint written by :meth:`Method.save`."""

LogFn = Callable[[dict[str, Any]], None]


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """Options of a method that has none."""


def _read_checkpoint(path: Path) -> Any:
    """The object in a torch file (tensors and plain containers only), or None if it is not one."""
    if not path.is_file():
        raise MethodError(f"{path}: weights file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not a safe torch file: the method's native loader decides
        return None


def _is_rainbench_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT


def read_checkpoint_config(path: str | os.PathLike, method: str) -> dict[str, Any] | None:
    """The config saved in a rainbench checkpoint for ``method``; None for other (native) formats."""
    path = Path(path)
    obj = _read_checkpoint(path)
    if not _is_rainbench_checkpoint(obj):
        return None
    if obj.get("method") != method:
        raise MethodError(f"{path}: checkpoint is for method {obj.get('method')!r}, not {method!r}")
    return dict(obj.get("config") or {})


def _digest_state(state: Any, digest: hashlib._Hash) -> None:
    if isinstance(state, dict):
        for key in sorted(state, key=str):
            digest.update(str(key).encode())
            _digest_state(state[key], digest)
    elif isinstance(state, (list, tuple)):
        for item in state:
            _digest_state(item, digest)
    elif isinstance(state, torch.Tensor):
        tensor = state.detach().cpu().contiguous()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    else:
        digest.update(repr(state).encode())





class Method:
    """A deraining method: ``derain(batch) -> batch`` on float N x 3 x H x W tensors in [0, 1]."""

    info: ClassVar[MethodInfo]
    Config: ClassVar[type] = NoConfig
    overlap: int = 32
    """Tile overlap in pixels when large inputs are tiled (a quarter of it is each tile's discarded border)."""

    def __init__(self, config: Any = None, device: torch.device | str = "cpu"):
        if not isinstance(getattr(type(self), "info", None), MethodInfo):
            raise MethodError(f"{type(self).__name__} is not registered: decorate it with @baselines.register(MethodInfo(...))")
        if config is None:
            config = self.Config()
        elif isinstance(config, dict):
            config = build_config(type(self), config)
        elif not isinstance(config, self.Config):
            raise MethodError(f"method {self.info.name!r}: config must be a {self.Config.__name__} or a dict")
        self.config = config
        self.device = torch.device(device)
        self.tile: int | None = self.info.tile
        """None: the default (see :meth:`derain`); 0: never tile; N: tile images larger than N pixels."""
        self.has_weights: bool = not self.info.needs_weights
        self.weights_sha256: str | None = None
        self._fitted = False
        self.setup()
        self.to(self.device)

    # ----------------------------------------------------------------- hooks for subclasses
    def setup(self) -> None:
        """Build whatever depends on the config (networks, priors); called again when ``load`` changes the config."""

    def networks(self) -> dict[str, torch.nn.Module]:
        """The modules whose parameters make up the method's weights (none for prior methods)."""
        return {}

    def streamable_network(self) -> Streamable | None:
        """The network from the [0, 1] input to the output, for exact streaming of large inputs; None if none.

        Methods whose network normalises with whole-image statistics (InstanceNorm) return it so that
        tiled inference computes the same function as whole-image inference.
        """
        return None

    def _derain(self, batch: torch.Tensor) -> torch.Tensor:
        """Derain a validated batch on ``self.device`` whose size is a multiple of ``info.multiple``."""
        raise NotImplementedError(f"method {self.info.name!r} does not implement _derain")

    def _fit(self, *, rainy: Iterable[torch.Tensor] | None, clean: Iterable[torch.Tensor] | None,
             pairs: Iterable[tuple[torch.Tensor, torch.Tensor]] | None, iters: int | None,
             out: Path | None, resume: bool, on_log: LogFn | None) -> dict[str, Any]:
        """Learn the weights; learnable methods implement it and return a summary dict."""
        raise NotImplementedError(f"method {self.info.name!r} does not implement _fit")

    def _load_native(self, path: Path, obj: Any) -> None:
        """Load a file in the method's own (released) format; ``obj`` is its safe torch.load or None."""
        raise MethodError(f"{path}: not a rainbench checkpoint and {self.info.name!r} reads no other weight format")

    def state_dict(self) -> dict[str, Any]:
        """The method's learnable state: each network's ``state_dict`` by name."""
        return {name: net.state_dict() for name, net in self.networks().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; MethodError on missing or unexpected parts."""
        nets = self.networks()
        if set(state) != set(nets):
            raise MethodError(f"method {self.info.name!r}: weights hold {sorted(state)}, expected {sorted(nets)}")
        for name, net in nets.items():
            try:
                net.load_state_dict(state[name])
            except RuntimeError as exc:
                raise MethodError(f"method {self.info.name!r}: weights do not fit network {name!r}: {exc}") from None

    # ----------------------------------------------------------------- public interface
    def to(self, device: torch.device | str) -> Method:
        """Move the method (its networks) to ``device``; returns self."""
        self.device = torch.device(device)
        for net in self.networks().values():
            net.to(self.device)
        return self

    @property
    def config_hash(self) -> str:
        """16 hex digits identifying name, options and weights: recorded with every output."""
        weights = self.weights_sha256
        if weights is None and self._fitted:
            digest = hashlib.sha256()
            _digest_state(self.state_dict(), digest)
            weights = digest.hexdigest()
        payload = {"method": self.info.name, "config": dataclasses.asdict(self.config), "weights": weights}
        return hash_config(payload)

    def derain(self, batch: torch.Tensor) -> torch.Tensor:
        """Derain ``batch`` (float N x 3 x H x W in [0, 1]); returns the same shape, dtype and device."""
        self._check_input(batch)
        if not self.has_weights:
            name = self.info.name
            raise MethodError(
                f"method {name!r} needs weights: pass --weights FILE (weights= in baselines.create), "
                f"or train them with `rainbench train --method {name}`"
            )
        for net in self.networks().values():
            net.eval()
        h, w = batch.shape[-2:]
        with torch.no_grad():
            how, size, stream = self._tiling(batch)
            if how == "exact":
                assert stream is not None
                padded, _ = pad_to_multiple(batch, self.info.multiple)
                out = stream_apply(stream.network, padded, tile=size, device=self.device, amp=stream.amp)
                out = out[..., :h, :w].to(batch.device)
            elif how == "blend":
                overlap = min(self.overlap, size // 2)
                out = tile_apply(self._derain, batch, tile=size, overlap=overlap,
                                 multiple=self.info.multiple, device=self.device)
            else:
                padded, _ = pad_to_multiple(batch.to(self.device), self.info.multiple)
                out = self._derain(padded)
                if not isinstance(out, torch.Tensor) or out.shape != padded.shape:
                    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                    raise MethodError(f"method {self.info.name!r} returned {got} for input {tuple(padded.shape)}")
                out = out[..., :h, :w].to(batch.device)
            if not torch.isfinite(out).all():
                raise MethodError(f"method {self.info.name!r} produced NaN or infinite values")
            return out.to(batch.dtype).clamp_(0.0, 1.0)

    def _tiling(self, batch: torch.Tensor) -> tuple[str, int, Streamable | None]:
        """How to run ``batch``: ("whole" | "blend" | "exact", tile size, the streamable network).

        Networks with InstanceNorm are never blended (that changes the function): with ``tile``
        None they run whole when that fits in free memory, else in exact tiles of ``info.tile``
        pixels; ``tile`` N forces exact tiles of N; a network the executor cannot stream runs whole,
        or raises when tiles were asked for. Other methods tile (blended) above ``tile`` pixels,
        ``info.tile`` when ``tile`` is None.
        """
        h, w = batch.shape[-2:]
        stream = self.streamable_network()
        normed = stream is not None or any(has_instance_norm(net) for net in self.networks().values())
        if not normed:
            size = self.info.tile if self.tile is None else self.tile
            return ("blend", size, None) if size and (h > size or w > size) else ("whole", 0, None)
        if self.tile == 0:
            return "whole", 0, None
        reason = "it exposes no streamable_network()"
        if stream is not None:
            try:
                check_streamable(stream.network)
            except NotStreamable as exc:
                stream, reason = None, str(exc)
        if stream is None:
            if self.tile is None:
                return "whole", 0, None
            raise MethodError(
                f"method {self.info.name!r} normalises with whole-image statistics (InstanceNorm) and cannot "
                f"be tiled exactly ({reason}); tiles would change its output: use tile 0 (whole image)")
        size = self.tile
        if size is None:
            padded = (batch.shape[0], batch.shape[1], h + (-h) % self.info.multiple, w + (-w) % self.info.multiple)
            if whole_image_fits(stream.network, padded, self.device):
                return "whole", 0, None
            size = self.info.tile or 512
            logger.info("method %s: %d x %d does not fit in free memory whole; exact tiles of %d",
                        self.info.name, w, h, size)
        if h <= size and w <= size:
            return "whole", 0, None
        return "exact", size, stream

    def fit(self, *, rainy: Iterable[torch.Tensor] | None = None, clean: Iterable[torch.Tensor] | None = None,
            pairs: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None, iters: int | None = None,
            out: str | os.PathLike | None = None, resume: bool = False, on_log: LogFn | None = None) -> dict[str, Any]:
        """Learn from data (3 x H x W float tensors in [0, 1]); a no-op returning {} for methods that learn nothing.

        Paired methods take ``pairs`` (or ``rainy`` and ``clean`` zipped in order); unpaired ones take
        ``rainy`` and ``clean``. ``out`` is a directory for checkpoints, ``resume`` continues from the
        last one there, ``on_log`` receives progress dicts.
        """
        learns = self.info.learns_from
        if learns == "none":
            return {}
        if learns == "paired" and pairs is None:
            if rainy is None or clean is None:
                raise MethodError(f"method {self.info.name!r} learns from paired data: pass pairs= (or rainy= and clean=)")
            pairs = zip(rainy, clean)
        if learns == "unpaired" and (rainy is None or clean is None):
            raise MethodError(f"method {self.info.name!r} learns from unpaired data: pass rainy= and clean=")
        summary = self._fit(rainy=rainy, clean=clean, pairs=pairs, iters=iters,
                            out=Path(out) if out is not None else None, resume=resume, on_log=on_log)
        self.has_weights = True
        self.weights_sha256 = None
        self._fitted = True
        return summary or {}

    def save(self, path: str | os.PathLike) -> Path:
        """Write weights and config to ``path`` atomically (a rainbench checkpoint); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": CHECKPOINT_FORMAT,
            "method": self.info.name,
            "config": dataclasses.asdict(self.config),
            "state": self.state_dict(),
        }
        atomic_save(payload, path)
        self.weights_sha256 = file_sha256(path)
        return path

    def load(self, path: str | os.PathLike, *, keep_config: set[str] | None = None) -> Method:
        """Load weights (and the saved config, except the options named in ``keep_config``) from ``path``.

        Accepts rainbench checkpoints and, through :meth:`_load_native`, the method's released format.
        """
        path = Path(path)
        obj = _read_checkpoint(path)
        if _is_rainbench_checkpoint(obj):
            if obj.get("method") != self.info.name:
                raise MethodError(f"{path}: checkpoint is for method {obj.get('method')!r}, not {self.info.name!r}")
            fields = config_fields(type(self))
            saved = {k: v for k, v in (obj.get("config") or {}).items() if k in fields}
            ignored = set(obj.get("config") or {}) - set(fields)
            if ignored:
                logger.warning("%s: ignoring unknown saved options %s", path, sorted(ignored))
            for key in keep_config or ():
                saved[key] = getattr(self.config, key)
            new_config = build_config(type(self), saved)
            if new_config != self.config:
                self.config = new_config
                self.setup()
                self.to(self.device)
            self.load_state_dict(obj.get("state") or {})
        else:
            self._load_native(path, obj)
            self.to(self.device)
        self.has_weights = True
        self.weights_sha256 = file_sha256(path)
        self._fitted = False
        return self

    def _check_input(self, batch: Any) -> None:
        name = self.info.name
        if not isinstance(batch, torch.Tensor):
            raise MethodError(f"method {name!r}: expected a torch.Tensor, got {type(batch).__name__}")
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise MethodError(f"method {name!r}: expected an N x 3 x H x W batch, got shape {tuple(batch.shape)}")
        if not batch.is_floating_point():
            raise MethodError(f"method {name!r}: expected float values in [0, 1], got dtype {batch.dtype}")
        if batch.numel() == 0:
            raise MethodError(f"method {name!r}: empty batch of shape {tuple(batch.shape)}")
        low, high = batch.min().item(), batch.max().item()
        if not (low >= -1e-6 and high <= 1 + 1e-6):  # also catches NaN
            raise MethodError(f"method {name!r}: values must lie in [0, 1], got [{low:.4g}, {high:.4g}]")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.info.name!r} {self.config} on {self.device}>"
