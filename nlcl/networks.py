"""NLCL networks: the full-resolution generator, the blur-pool PatchGAN and the projection heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .config import D_NORMS, G_PADDINGS


class _PadConvNorm(nn.Module):
    """Zero (released) or reflection pad, 3x3 conv, InstanceNorm (no affine), optional ReLU."""

    def __init__(self, channels: int, relu: bool, padding: str = "zero") -> None:
        super().__init__()
        # Zero padding is the conv's own: the released ZeroPad2d + unpadded conv is the same
        # function, but copying every activation into a padded buffer cost 6% of a training step.
        zero = padding == "zero"
        self.pad = nn.Identity() if zero else nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1 if zero else 0)
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(self.pad(x))))


class ResidualBlock(nn.Module):
    """Two pad-conv-IN units with an identity skip (released key layout ``model.{0,1}.conv``)."""

    def __init__(self, channels: int, padding: str = "zero") -> None:
        super().__init__()
        self.model = nn.Sequential(_PadConvNorm(channels, True, padding), _PadConvNorm(channels, False, padding))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.model(x)


class _TailBlock(nn.Module):
    """conv3x3-IN-ReLU-conv3x3 without skip (released key layout ``conv.{0,3}``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.InstanceNorm2d(channels, affine=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Generator(nn.Module):
    """G_B / G_R: conv3x3(3->ngf), ``n_blocks`` residual blocks, a conv-IN-ReLU-conv block, conv3x3(ngf->3).

    Full resolution throughout, no output activation; data range [-1, 1]. Module ``gen`` keeps the
    index layout of the authors' released state dicts so their weights load unchanged. With
    ``residual`` the network's output is added to its input (same parameters, same keys).
    ``padding`` is the residual units' border mode: ``"zero"`` as released (every other conv
    zero-pads in either mode), ``"reflect"`` an option for the project's own training.
    """

    def __init__(self, ngf: int = 32, n_blocks: int = 16, in_channels: int = 3, residual: bool = False,
                 padding: str = "zero") -> None:
        super().__init__()
        if padding not in G_PADDINGS:
            raise ValueError(f"Generator padding must be one of {G_PADDINGS}, got {padding!r}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ngf, 3, padding=1)]
        layers += [ResidualBlock(ngf, padding) for _ in range(n_blocks)]
        layers += [_TailBlock(ngf), nn.Conv2d(ngf, in_channels, 3, padding=1)]
        self.gen = nn.Sequential(*layers)
        self.ngf = ngf
        self.n_blocks = n_blocks
        self.residual = residual
        self.padding = padding
        self.checkpointing = False

    def zero_last(self) -> None:
        """Zero the final conv: a residual generator then starts as the exact identity."""
        last = self.gen[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def _run(self, module: nn.Module, x: Tensor) -> Tensor:
        # Activation checkpointing trades one extra forward of a block for not storing its
        # activations: full-resolution training at batch 8 x 256^2 otherwise needs ~30 GiB.
        if self.checkpointing and torch.is_grad_enabled() and isinstance(module, ResidualBlock):
            return checkpoint(module, x, use_reentrant=False)
        return module(x)

    def forward(self, x: Tensor) -> Tensor:
        if not self.checkpointing:
            out = self.gen(x)
        else:
            out = x
            for module in self.gen:
                out = self._run(module, out)
        return x + out if self.residual else out

    def forward_with_features(self, x: Tensor, layers: Sequence[int]) -> tuple[Tensor, list[Tensor]]:
        """Full output plus the activations after each ``gen[i]`` for ``i`` in ``layers``."""
        wanted = set(layers)
        feats: dict[int, Tensor] = {}
        out = x
        for i, module in enumerate(self.gen):
            out = self._run(module, out)
            if i in wanted:
                feats[i] = out
        return (x + out if self.residual else out), [feats[i] for i in layers]

    def encode(self, x: Tensor, layers: Sequence[int]) -> list[Tensor]:
        """Activations after ``gen[i]`` for ``i`` in ``layers``, stopping at the deepest one."""
        last = max(layers)
        wanted = set(layers)
        feats: dict[int, Tensor] = {}
        for i, module in enumerate(self.gen):
            x = self._run(module, x)
            if i in wanted:
                feats[i] = x
            if i == last:
                break
        return [feats[i] for i in layers]


class BlurPool(nn.Module):
    """Anti-aliased stride-2 downsampling: reflect pad, fixed [1, 3, 3, 1]^2 blur, subsample."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = torch.tensor([1.0, 3.0, 3.0, 1.0])
        filt = a[:, None] * a[None, :]
        filt = filt / filt.sum()
        self.register_buffer("filt", filt[None, None].repeat(channels, 1, 1, 1), persistent=False)
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (1, 2, 1, 2), mode="reflect")
        return F.conv2d(x, self.filt.to(x.dtype), stride=2, groups=self.channels)


class Discriminator(nn.Module):
    """PatchGAN: ``n_layers`` blur-pool downsampling levels, InstanceNorm, LeakyReLU 0.2, 4x4 kernels.

    ``norm="none"`` drops the InstanceNorm layers (the released D has them; see NLCLConfig.d_norm).

    ``features(x)`` returns level 0 (the input itself) and the output of each downsampling level,
    which the layer contrast encodes.
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3, in_channels: int = 3, norm: str = "instance") -> None:
        super().__init__()
        if norm not in D_NORMS:
            raise ValueError(f"Discriminator norm must be one of {D_NORMS}, got {norm!r}")

        def normalise(ch: int) -> nn.Module:
            return nn.InstanceNorm2d(ch, affine=False) if norm == "instance" else nn.Identity()

        stages: list[nn.Module] = []
        prev = in_channels
        for n in range(n_layers):
            ch = ndf * min(2**n, 8)
            mods: list[nn.Module] = [nn.Conv2d(prev, ch, 4, padding=1)]
            if n > 0:
                mods.append(normalise(ch))
            mods += [nn.LeakyReLU(0.2, inplace=True), BlurPool(ch)]
            stages.append(nn.Sequential(*mods))
            prev = ch
        ch = ndf * min(2**n_layers, 8)
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(
            nn.Conv2d(prev, ch, 4, padding=1),
            normalise(ch),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ch, 1, 4, padding=1),
        )
        self.level_channels = [in_channels] + [ndf * min(2**n, 8) for n in range(n_layers)]

    def forward_with_features(self, x: Tensor, levels: Sequence[int]) -> tuple[Tensor, list[Tensor]]:
        """Patch logits plus the features at each requested level (0 = input)."""
        feats = [x]
        h = x
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return self.head(h), [feats[lv] for lv in levels]

    def features(self, x: Tensor, levels: Sequence[int]) -> list[Tensor]:
        """Features at the requested levels only, skipping the stages and head not needed."""
        last = max(levels)
        feats = [x]
        h = x
        for stage in self.stages[:last]:
            h = stage(h)
            feats.append(h)
        return [feats[lv] for lv in levels]

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for stage in self.stages:
            h = stage(h)
        return self.head(h)


class ProjectionHead(nn.Module):
    """Linear(C, dim)-ReLU-Linear(dim, dim) followed by L2 normalisation."""

    def __init__(self, in_channels: int, dim: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_channels, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.mlp(x), dim=-1, eps=1e-7)


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """Normal(0, gain) initialisation for every conv / linear weight, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
