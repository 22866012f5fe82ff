"""``prenet``: the progressive recurrent deraining network (Ren et al., CVPR 2019), trainable on any pairs.

PReNet unrolls one small network over ``stages`` (6) steps. Each step sees the rainy input and the
previous estimate (6 channels), passes them through a conv, a convolutional LSTM that carries a
hidden state from step to step, five residual blocks and a conv back to 3 channels, and adds the
result to the rainy input. About 0.17M parameters (168,963 at the defaults).

Training follows the paper: negative SSIM of the final stage against the clean image (``loss=mse``
for plain MSE), Adam at 1e-3, the rate divided by 5 at 30 %, 50 % and 80 % of the budget (the
authors' epochs 30/50/80 of 100), batches of random aligned crops (18 x 100 x 100 by default).

Module names follow the authors' published code (``conv0.0``, ``res_conv1.0`` ... ``conv.0``),
so a plain state dict saved from their model (``net_latest.pth``, ``module.`` prefixes allowed)
loads with ``--weights``, as do rainbench checkpoints and ``RUN_DIR/checkpoint.pt`` files
written by :meth:`PReNet.fit`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.method import LogFn, Method
from baselines.registry import (
    MethodError,
    MethodInfo,
    build_config,
    config_fields,
    register,
)
from nlcl.checkpoint import atomic_save

logger = logging.getLogger(__name__)

TRAIN_FORMAT = "rainbench-prenet-train/1"
"""Marker of the resumable training state :meth:`PReNet.fit` writes to ``OUT/checkpoint.pt``."""

CHANNELS = 32


def _conv(in_channels: int, out_channels: int, activation: nn.Module | None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, 1, 1)]
    if activation is not None:
        layers.append(activation)
    return nn.Sequential(*layers)


class PReNetNetwork(nn.Module):
    """The PReNet generator: ``stages`` recurrent steps of conv -> conv-LSTM -> 5 ResBlocks -> conv, plus input."""

    def __init__(self, stages: int = 6) -> None:
        super().__init__()
        self.stages = stages
        self.conv0 = _conv(6, CHANNELS, nn.ReLU())
        # Five residual blocks with their own weights (PReNet; PReNet_r would share one).
        for k in range(1, 6):
            block = nn.Sequential(nn.Conv2d(CHANNELS, CHANNELS, 3, 1, 1), nn.ReLU(),
                                  nn.Conv2d(CHANNELS, CHANNELS, 3, 1, 1), nn.ReLU())
            self.add_module(f"res_conv{k}", block)
        self.conv_i = _conv(2 * CHANNELS, CHANNELS, nn.Sigmoid())
        self.conv_f = _conv(2 * CHANNELS, CHANNELS, nn.Sigmoid())
        self.conv_g = _conv(2 * CHANNELS, CHANNELS, nn.Tanh())
        self.conv_o = _conv(2 * CHANNELS, CHANNELS, nn.Sigmoid())
        self.conv = _conv(CHANNELS, 3, None)

    def forward(self, rainy: Tensor) -> Tensor:
        """The last stage's estimate of the background (N x 3 x H x W, same range as the input)."""
        return self.forward_stages(rainy)[-1]

    def forward_stages(self, rainy: Tensor) -> list[Tensor]:
        """The estimate after every stage."""
        n, _, h, w = rainy.shape
        hidden = rainy.new_zeros(n, CHANNELS, h, w)
        cell = rainy.new_zeros(n, CHANNELS, h, w)
        x = rainy
        outputs = []
        for _ in range(self.stages):
            x = self.conv0(torch.cat((rainy, x), 1))
            x = torch.cat((x, hidden), 1)
            cell = self.conv_f(x) * cell + self.conv_i(x) * self.conv_g(x)
            hidden = self.conv_o(x) * torch.tanh(cell)
            x = hidden
            for k in range(1, 6):
                x = F.relu(getattr(self, f"res_conv{k}")(x) + x)
            x = rainy + self.conv(x)
            outputs.append(x)
        return outputs


def ssim(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM of two N x C x H x W batches in [0, 1]: Gaussian window per channel, zero padding.

    The convention of the ``pytorch_ssim`` package that PReNet's training code uses.
    """
    coords = torch.arange(window, dtype=x.dtype, device=x.device) - (window - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    channels = x.shape[1]
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, window, window).contiguous()

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, padding=window // 2, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return value.mean()


def _as_sequence(pairs: Iterable[tuple[Tensor, Tensor]]) -> Sequence[tuple[Tensor, Tensor]]:
    """Index-addressable pairs: sequences stay lazy; one-shot iterables are read into a list."""
    if hasattr(pairs, "__len__") and hasattr(pairs, "__getitem__"):
        return pairs  # type: ignore[return-value]
    return list(pairs)


def _check_pair(pair: Any, index: int) -> tuple[Tensor, Tensor]:
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise MethodError(f"prenet training: pair {index} is not a (rainy, clean) tuple")
    rainy, clean = pair
    for name, t in (("rainy", rainy), ("clean", clean)):
        if not isinstance(t, Tensor) or t.dim() != 3 or t.shape[0] != 3:
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise MethodError(f"prenet training: pair {index}: {name} must be a 3 x H x W tensor, got {shape}")
    if rainy.shape != clean.shape:
        raise MethodError(
            f"prenet training: pair {index}: rainy {tuple(rainy.shape)} and clean {tuple(clean.shape)} differ in size"
        )
    return rainy.float(), clean.float()


def paired_crop(rainy: Tensor, clean: Tensor, crop: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The same random ``crop`` x ``crop`` window of both images (images smaller than it are upsampled)."""
    _, h, w = rainy.shape
    if h < crop or w < crop:
        scale = crop / min(h, w)
        size = (max(crop, math.ceil(h * scale)), max(crop, math.ceil(w * scale)))
        both = F.interpolate(torch.stack((rainy, clean)), size=size, mode="bilinear", align_corners=False)
        rainy, clean = both[0], both[1]
        _, h, w = rainy.shape
    top = int(torch.randint(0, h - crop + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - crop + 1, (1,), generator=generator))
    window = (slice(None), slice(top, top + crop), slice(left, left + crop))
    return rainy[window], clean[window]


# Options that change the budget or bookkeeping, not what a resumed run computes step by step.
_RESUME_FREE = {"iters", "checkpoint_every", "log_every", "tile"}


@register(MethodInfo(
    name="prenet",
    kind="supervised",
    paper="Ren et al., Progressive Image Deraining Networks, CVPR 2019",
    year=2019,
    code_license="MIT",
    weights_license="user-trained (authors' weights: their terms)",
    learns_from="paired",
    needs_weights=True,
    devices=("cpu", "cuda"),
    summary="Progressive recurrent network (6 stages, conv-LSTM, 5 ResBlocks, 0.17M parameters); trained on pairs.",
    tile=512,
))
class PReNet(Method):
    """PReNet: train on (rainy, clean) pairs with :meth:`fit`, or load weights from a local file."""

    @dataclass(frozen=True)
    class Config:
        """PReNet options; the training defaults are the paper's."""

        stages: int = 6
        loss: Literal["ssim", "mse"] = "ssim"
        lr: float = 1e-3
        milestones: tuple[float, ...] = (0.3, 0.5, 0.8)
        gamma: float = 0.2
        iters: int = 20000
        crop: int = 100
        batch_size: int = 18
        seed: int = 0
        checkpoint_every: int = 500
        log_every: int = 50
        tile: int = 512

        def __post_init__(self) -> None:
            if self.stages < 1:
                raise ValueError("stages must be >= 1")
            if self.crop < 8 or self.batch_size < 1 or self.iters < 0:
                raise ValueError("crop must be >= 8, batch_size >= 1 and iters >= 0")
            if any(not 0 < m <= 1 for m in self.milestones):
                raise ValueError("milestones are fractions of the budget in (0, 1]")
            if self.lr <= 0 or self.checkpoint_every < 1 or self.log_every < 1 or self.tile < 0:
                raise ValueError("lr, checkpoint_every and log_every must be positive, tile >= 0")

    def setup(self) -> None:
        """Build the network, initialised deterministically from ``seed`` (the global RNG is untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.net = PReNetNetwork(self.config.stages)
        self.tile = self.config.tile

    def networks(self) -> dict[str, nn.Module]:
        """The one network: ``net``."""
        return {"net": self.net}

    def _derain(self, batch: Tensor) -> Tensor:
        return self.net(batch)

    # ----------------------------------------------------------------- training
    def learning_rate(self, step: int, iters: int) -> float:
        """Adam's rate at ``step``: ``lr`` times ``gamma`` per milestone (fractions of ``iters``) passed."""
        passed = sum(step >= round(m * iters) for m in self.config.milestones)
        return self.config.lr * self.config.gamma**passed

    def _loss(self, output: Tensor, clean: Tensor) -> Tensor:
        if self.config.loss == "ssim":
            return -ssim(output, clean)
        return F.mse_loss(output, clean)

    def _fit(self, *, rainy: Iterable[Tensor] | None, clean: Iterable[Tensor] | None,
             pairs: Iterable[tuple[Tensor, Tensor]] | None, iters: int | None,
             out: Path | None, resume: bool, on_log: LogFn | None) -> dict[str, Any]:
        cfg = self.config
        iters = cfg.iters if iters is None else int(iters)
        if iters < 0:
            raise MethodError("prenet training: iters must be >= 0")
        data = _as_sequence(pairs if pairs is not None else [])
        if len(data) == 0:
            raise MethodError("prenet training: no (rainy, clean) pairs given")
        checkpoint = out / "checkpoint.pt" if out is not None else None
        optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        generator = torch.Generator().manual_seed(cfg.seed)
        step = 0
        if resume and checkpoint is not None and checkpoint.exists():
            step = self._restore(checkpoint, optimizer, generator)
        self.net.train()
        sums: dict[str, float] = {}
        count = 0
        start = time.perf_counter()
        last: dict[str, float] = {}
        while step < iters:
            lr = self.learning_rate(step, iters)
            for group in optimizer.param_groups:
                group["lr"] = lr
            indices = torch.randint(0, len(data), (cfg.batch_size,), generator=generator).tolist()
            crops = [paired_crop(*_check_pair(data[i], i), cfg.crop, generator) for i in indices]
            x = torch.stack([c[0] for c in crops]).to(self.device)
            y = torch.stack([c[1] for c in crops]).to(self.device)
            optimizer.zero_grad(set_to_none=True)
            output = self.net(x)
            loss = self._loss(output, y)
            loss.backward()
            optimizer.step()
            step += 1
            with torch.no_grad():
                terms = {"loss": float(loss), "mse": float(F.mse_loss(output, y)), "lr": lr}
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value
            count += 1
            # Checkpoint before logging, so an interrupt raised from ``on_log`` loses nothing.
            if checkpoint is not None and step % cfg.checkpoint_every == 0:
                self._checkpoint(checkpoint, optimizer, generator, step)
            if step % cfg.log_every == 0 or step == iters:
                last = {key: value / count for key, value in sums.items()}
                logger.info("prenet step %d/%d %s", step, iters, " ".join(f"{k}={v:.4g}" for k, v in last.items()))
                if on_log is not None:
                    on_log({"step": step, "iters": iters, **last})
                sums, count = {}, 0
        if checkpoint is not None:
            self._checkpoint(checkpoint, optimizer, generator, step)
        self.net.eval()
        return {"step": step, "losses": last, "seconds": time.perf_counter() - start,
                "checkpoint": str(checkpoint) if checkpoint is not None else None}

    def _checkpoint(self, path: Path, optimizer: torch.optim.Optimizer, generator: torch.Generator, step: int) -> None:
        """Everything a resumed run needs to continue bit-identically."""
        atomic_save({
            "format": TRAIN_FORMAT,
            "config": asdict(self.config),
            "net": self.net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": generator.get_state(),
            "step": step,
        }, path)

    def _restore(self, path: Path, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> int:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != TRAIN_FORMAT:
            raise MethodError(f"{path}: not a prenet training checkpoint")
        ours = {k: v for k, v in asdict(self.config).items() if k not in _RESUME_FREE}
        saved = {k: state["config"].get(k) for k in ours}
        saved["milestones"] = tuple(saved["milestones"] or ())
        if saved != ours:
            changed = sorted(k for k in ours if saved[k] != ours[k])
            raise MethodError(f"{path}: cannot resume with different options ({', '.join(changed)})")
        self.net.load_state_dict(state["net"])
        self.net.to(self.device)
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["rng"])
        return int(state["step"])

    def _load_native(self, path: Path, obj: Any) -> None:
        """Our ``checkpoint.pt`` training states, or a plain state dict in the authors' module naming."""
        if not isinstance(obj, dict):
            raise MethodError(f"{path}: not a PReNet weight file (expected a state dict or a rainbench checkpoint)")
        if obj.get("format") == TRAIN_FORMAT:
            # A training state carries its options; adopt them (``stages`` must match the weights),
            # except the inference-only ``tile``, which stays as the caller set it.
            fields = set(config_fields(type(self))) - {"tile"}
            saved = {k: v for k, v in (obj.get("config") or {}).items() if k in fields}
            saved["tile"] = self.config.tile
            self.config = build_config(type(self), saved)
            self.setup()
            state = obj["net"]
        else:
            state = obj.get("state_dict", obj)
            if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
                raise MethodError(f"{path}: not a PReNet state dict")
            state = {k.removeprefix("module."): v for k, v in state.items()}
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise MethodError(
                f"{path}: does not match PReNet's layout (missing {sorted(missing)[:4]}, "
                f"unexpected {sorted(unexpected)[:4]}); expected keys such as conv0.0.weight, res_conv1.0.weight, conv.0.weight"
            )
