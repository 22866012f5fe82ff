"""``cut``: contrastive unpaired translation (Park et al., ECCV 2020) as a deraining baseline.

CUT is NLCL's ablation baseline: the same background generator G_B, PatchGAN discriminator and
projection heads, trained with the adversarial loss and PatchNCE alone: no rain generator G_R, no
layer contrast, no consistency or sparsity term. Everything is built from :mod:`nlcl`'s networks,
losses and trainer (checkpointing, exact resume, schedule, data protocol); only the generator step
differs. PatchNCE locations are drawn at random as in CUT (``sampling=random``) or with NLCL's
non-local sampler (``sampling=nonlocal``, which isolates the effect of the hard negatives).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

import nlcl
from baselines.nlcl_method import NLCLMethod, method_config
from baselines.registry import MethodInfo, register
from nlcl.losses import lsgan_loss

SAMPLINGS = ("random", "nonlocal")

# The NLCLConfig fields CUT uses; the layer-contrast, consistency and sparsity ones do not apply.
CUT_FIELDS = (
    "ngf", "n_blocks", "residual", "g_padding", "ndf", "n_layers_d", "d_norm", "head_dim", "init_gain", "lambda_gan", "lambda_location",
    "nce_identity", "lambda_identity", "patch_size", "window", "num_patches", "nce_temperature", "nce_layers",
    "lr", "betas", "n_epochs", "n_epochs_decay", "decay_fraction", "amp", "checkpoint_activations",
)
LOSS_NAMES = ("D", "G_total", "G_gan", "location", "nce", "nce_idt", "identity")


class CUTTrainer(nlcl.NLCLTrainer):
    """:class:`nlcl.NLCLTrainer` with CUT's generator objective: adversarial + PatchNCE (+ identity NCE).

    G_R and the layer heads exist (the parent builds them) but receive no gradient and never change.
    """

    def __init__(self, cfg: nlcl.NLCLConfig, device: str | torch.device = "cpu", seed: int = 0,
                 sampling: str = "random") -> None:
        if sampling not in SAMPLINGS:
            raise ValueError(f"CUT sampling must be one of {SAMPLINGS}, got {sampling!r}")
        super().__init__(cfg, device=device, seed=seed)
        self.sampling = sampling

    def locations(self, first: Tensor) -> Tensor:
        """(B, n, 2) PatchNCE locations on a B x C x H x W map: random (CUT) or non-local (NLCL)."""
        c = self.cfg
        if self.sampling == "nonlocal":
            return nlcl.sample_nonlocal(first, c.num_patches, c.patch_size, c.window, generator=self.rng)
        b, _, h, w = first.shape
        n = min(c.num_patches, h * w)
        flat = torch.stack([torch.randperm(h * w, generator=self.rng)[:n] for _ in range(b)])
        return torch.stack((flat // w, flat % w), dim=-1)

    def train_step(self, rainy: Tensor, clean: Tensor) -> dict[str, float]:
        """One D step, then one step of G_B and the location heads; returns every CUT loss term."""
        c = self.cfg
        rainy, clean = rainy.to(self.device), clean.to(self.device)
        self._set_lr()
        for module in self.modules().values():
            module.train()
        with self._autocast():
            background, feats_o = self.G_B.forward_with_features(rainy, c.nce_layers)

        loss_d = self.discriminator_step(clean, background)
        with self._autocast():
            loss_gan = lsgan_loss(self.D(background), True)
            loss_location, loss_nce, loss_idt, loss_identity = self.content_losses(rainy, feats_o, background, clean)
            total = c.lambda_gan * loss_gan + c.lambda_location * loss_location + c.lambda_identity * loss_identity
        total.backward()
        self.opt_G.step()
        self.opt_F.step()
        self.D.requires_grad_(True)
        self.step += 1
        values = (loss_d, total, loss_gan, loss_location, loss_nce, loss_idt, loss_identity)
        return {name: float(v.detach()) for name, v in zip(LOSS_NAMES, values)}


@dataclass(frozen=True)
class CUTOptions:
    """CUT's own option: how PatchNCE locations are chosen."""

    sampling: Literal["random", "nonlocal"] = "random"


@register(MethodInfo(
    name="cut",
    kind="unsupervised",
    paper="Park et al., ECCV 2020 (CUT); NLCL's ablation baseline",
    year=2020,
    code_license="MIT",
    weights_license="user-trained",
    learns_from="unpaired",
    needs_weights=True,
    devices=("cpu", "cuda"),
    summary="Adversarial + PatchNCE on NLCL's generator, without the layer contrast or rain generator.",
    multiple=1,
    tile=512,
))
class CUTMethod(NLCLMethod):
    """CUT: ``fit(rainy=..., clean=...)`` with the same data protocol as ``nlcl``, then ``derain``."""

    Config = method_config("CUTMethod", CUT_FIELDS, extra=CUTOptions)

    def nlcl_config(self) -> nlcl.NLCLConfig:
        """NLCLConfig with CUT's options; the NLCL-only terms are zeroed so checkpoints say what was trained."""
        names = {f.name for f in dataclasses.fields(nlcl.NLCLConfig)}
        chosen = {k: v for k, v in dataclasses.asdict(self.config).items() if k in names}
        levels = tuple(lv for lv in nlcl.NLCLConfig.layer_levels if lv <= self.config.n_layers_d)
        return nlcl.NLCLConfig(**chosen, lambda_layer=0.0, lambda_consistency=0.0, lambda_sparsity=0.0,
                               layer_levels=levels)

    def make_trainer(self) -> CUTTrainer:
        """A CUT trainer for this method's options, on this method's device."""
        return CUTTrainer(self.nlcl_config(), device=self.device, seed=self.config.seed, sampling=self.config.sampling)

    def loss_names(self, losses: dict[str, float]) -> dict[str, float]:
        """Only CUT's terms (the shared trainer also reports NLCL's, always zero here)."""
        return {k: v for k, v in losses.items() if k in LOSS_NAMES}
