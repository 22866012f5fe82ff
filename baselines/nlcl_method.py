"""``nlcl``: the registry's adapter over :mod:`nlcl` (unsupervised non-local contrastive deraining).

Training is delegated to :class:`nlcl.NLCLTrainer` (unpaired rainy and clean sets, independent
random crops); inference runs the background generator G_B through :func:`nlcl.derain` on the whole
image, or (for images too large for free memory, or with ``tile`` set) in exact tiles of the
streaming executor (:mod:`baselines.exact_tiling`): G_B has InstanceNorm, so blended tiles would
change its output. No padding: G_B keeps full resolution (``multiple`` 1). Every :class:`nlcl.NLCLConfig` field is an option of the
method (``variant=asymmetric``, ``lambda_layer=0.5``, ...), next to the adapter's own budget and
bookkeeping options (``iters``, ``crop``, ``batch_size``, ``tile``, ``seed``, ...).

Weights: rainbench checkpoints (``weights.pt``), NLCL trainer checkpoints (``checkpoint.pt``) and
the authors' released ``latest_net_Back.pth`` all load with ``--weights``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import nlcl
from baselines.exact_tiling import Streamable
from baselines.method import LogFn, Method
from baselines.registry import MethodError, MethodInfo, register

TRAINER_FORMAT = "nlcl-trainer"
"""The ``format`` tag of :class:`nlcl.NLCLTrainer` checkpoints."""

INFERENCE_OPTIONS = frozenset({"tile", "amp"})
"""Options that only affect inference: kept as the caller set them when a checkpoint is loaded."""


@dataclasses.dataclass(frozen=True)
class AdapterOptions:
    """The adapter's own options: training budget, data protocol, inference tiling, bookkeeping."""

    iters: int = 20000
    crop: int = 256
    batch_size: int = 1
    tile: int | None = None  # None: whole image when it fits in free memory, else exact 512 tiles
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 50


def method_config(name: str, nlcl_fields: Iterable[str] | None = None, extra: type | None = None,
                  defaults: dict[str, Any] | None = None) -> type:
    """A frozen Config dataclass: :class:`AdapterOptions`, ``extra``'s fields and the chosen NLCLConfig fields.

    ``nlcl_fields`` (all by default) keep NLCLConfig's types and defaults unless ``defaults``
    overrides them, so the options stay in step with :mod:`nlcl` without being restated here.
    """
    hints = typing.get_type_hints(nlcl.NLCLConfig)
    chosen = set(nlcl_fields) if nlcl_fields is not None else None
    specs: list[tuple[str, Any, Any]] = []
    for source in (AdapterOptions, extra, nlcl.NLCLConfig):
        if source is None:
            continue
        source_hints = typing.get_type_hints(source)
        for f in dataclasses.fields(source):
            if source is nlcl.NLCLConfig and chosen is not None and f.name not in chosen:
                continue
            if any(f.name == s[0] for s in specs):
                continue
            default = (defaults or {}).get(f.name, f.default)
            specs.append((f.name, hints.get(f.name) if source is nlcl.NLCLConfig else source_hints[f.name],
                          dataclasses.field(default=default)))
    cls = dataclasses.make_dataclass("Config", specs, frozen=True)
    cls.__module__ = __name__
    cls.__qualname__ = f"{name}.Config"
    cls.__doc__ = f"Options of {name}: training budget and tiling, plus NLCLConfig fields."
    return cls


@register(MethodInfo(
    name="nlcl",
    kind="unsupervised",
    paper="Ye et al., CVPR 2022 (NLCL); asymmetric variant: Chang et al., TPAMI 2024",
    year=2022,
    code_license="MIT",
    weights_license="user-trained (released weights: no license stated)",
    learns_from="unpaired",
    needs_weights=True,
    devices=("cpu", "cuda"),
    summary="Non-local contrastive learning of background and rain layers from unpaired rainy and clean images.",
    multiple=1,
    tile=512,
))
class NLCLMethod(Method):
    """NLCL behind the registry interface: ``fit(rainy=..., clean=...)`` then ``derain``."""

    Config = method_config("NLCLMethod")

    def nlcl_config(self) -> nlcl.NLCLConfig:
        """The :class:`nlcl.NLCLConfig` part of this method's options."""
        names = {f.name for f in dataclasses.fields(nlcl.NLCLConfig)}
        return nlcl.NLCLConfig(**{k: v for k, v in dataclasses.asdict(self.config).items() if k in names})

    def setup(self) -> None:
        """Build G_B at the configured size (weights come from ``fit`` or ``load``)."""
        try:
            cfg = self.nlcl_config()
        except ValueError as exc:
            raise MethodError(f"method {self.info.name!r}: {exc}") from None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.generator = nlcl.Generator(cfg.ngf, cfg.n_blocks, residual=cfg.residual, padding=cfg.g_padding)
        self.tile = self.config.tile

    def networks(self) -> dict[str, nn.Module]:
        """The background generator ``G_B``, the only network inference needs."""
        return {"G_B": self.generator}

    def streamable_network(self) -> Streamable:
        """G_B from [0, 1] to [0, 1]: the exact tiler streams its InstanceNorm layers."""
        return Streamable(nlcl.UnitRange(self.generator), amp=self.config.amp)

    def _derain(self, batch: Tensor) -> Tensor:
        return nlcl.derain(self.generator, batch, multiple=self.info.multiple, amp=self.config.amp)

    def make_trainer(self) -> nlcl.NLCLTrainer:
        """A fresh trainer for this method's options, on this method's device."""
        return nlcl.NLCLTrainer(self.nlcl_config(), device=self.device, seed=self.config.seed)

    def loss_names(self, losses: dict[str, float]) -> dict[str, float]:
        """The loss terms worth reporting (all of NLCL's)."""
        return losses

    def _fit(self, *, rainy: Iterable[Tensor] | None, clean: Iterable[Tensor] | None,
             pairs: Iterable[tuple[Tensor, Tensor]] | None, iters: int | None,
             out: Path | None, resume: bool, on_log: LogFn | None) -> dict[str, Any]:
        cfg = self.config
        iters = cfg.iters if iters is None else int(iters)
        rainy, clean = _reiterable(rainy), _reiterable(clean)
        for name, images in (("rainy", rainy), ("clean", clean)):
            if len(images) == 0:
                raise MethodError(f"method {self.info.name!r}: no {name} images given")
        trainer = self.make_trainer()
        checkpoint = out / "checkpoint.pt" if out is not None else None

        def relay(step: int, losses: dict[str, float]) -> None:
            if on_log is not None:
                on_log({"step": step, "iters": iters, **self.loss_names(losses)})

        try:
            summary = trainer.fit(rainy, clean, iters, crop=cfg.crop, batch_size=cfg.batch_size,
                                  checkpoint_path=checkpoint, checkpoint_every=cfg.checkpoint_every,
                                  resume=resume, log_every=cfg.log_every, on_log=relay)
        except ValueError as exc:  # bad data or a checkpoint from other options: say which method
            raise MethodError(f"method {self.info.name!r}: {exc}") from exc
        self.generator.load_state_dict(trainer.G_B.state_dict())
        self.generator.eval()
        return {**summary, "losses": self.loss_names(summary.get("losses") or {}),
                "checkpoint": str(checkpoint) if checkpoint is not None else None}

    def _load_native(self, path: Path, obj: Any) -> None:
        """NLCL trainer checkpoints (their options are adopted) and released or saved generator files."""
        if isinstance(obj, dict) and obj.get("format") == TRAINER_FORMAT:
            # Adopt the training options (they describe the weights), not the inference-only ones.
            names = set(dataclasses.asdict(self.config)) - INFERENCE_OPTIONS
            saved = {k: v for k, v in (obj.get("config") or {}).items() if k in names}
            self.config = dataclasses.replace(self.config, **_coerce_saved(self.config, saved))
            self.setup()
        try:
            generator = nlcl.load_generator(path, which="background")
        except (ValueError, FileNotFoundError, KeyError) as exc:
            raise MethodError(f"{path}: not usable as {self.info.name!r} weights: {exc}") from None
        shape = (generator.ngf, generator.n_blocks, generator.residual)
        if shape != (self.config.ngf, self.config.n_blocks, self.config.residual):
            # Feature levels only matter in training; keep those that exist in the smaller network.
            levels = tuple(lv for lv in self.config.nce_layers if lv <= generator.n_blocks + 2) or (0,)
            self.config = dataclasses.replace(self.config, ngf=generator.ngf, n_blocks=generator.n_blocks,
                                              residual=generator.residual, nce_layers=levels)
            self.setup()
        self.generator.load_state_dict(generator.state_dict())


def _coerce_saved(config: Any, saved: dict[str, Any]) -> dict[str, Any]:
    """Saved JSON values (lists) back to the Config's field types (tuples)."""
    current = dataclasses.asdict(config)
    return {k: tuple(v) if isinstance(current.get(k), tuple) and isinstance(v, list) else v for k, v in saved.items()}


def _reiterable(images: Iterable[Tensor] | None) -> Any:
    """Collections the trainer can cycle over: sized ones stay lazy, one-shot iterables become lists."""
    if images is None:
        return []
    if hasattr(images, "__len__") and hasattr(images, "__getitem__"):
        return images
    return list(images)
