"""NLCLTrainer: unpaired training of G_B, G_R, D and the projection heads, with exact resume."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint import load_trainer_state, save_trainer_state
from .config import NLCLConfig
from .data import CyclingSource, crop_batch
from .losses import (
    consistency_loss,
    lsgan_loss,
    patch_nce,
    sparsity_loss,
    supervised_contrastive,
)
from .networks import Discriminator, Generator, ProjectionHead, init_weights
from .sampler import gather_at, sample_nonlocal

log = logging.getLogger(__name__)

LOSS_NAMES = (
    "D", "G_total", "G_gan", "layer", "location", "nce", "nce_idt", "identity", "consistency", "sparsity",
)


class LinearDecay:
    """Learning-rate factor: 1 for ``constant`` iterations, then linear decay to 0 over ``decay``."""

    def __init__(self, constant: int = 0, decay: int = 0) -> None:
        self.constant = constant
        self.decay = decay

    def __call__(self, step: int) -> float:
        return 1.0 - max(0, step - self.constant + 1) / (self.decay + 1)

    def state_dict(self) -> dict[str, int]:
        """Both boundaries, for checkpoints."""
        return {"constant": self.constant, "decay": self.decay}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore the boundaries."""
        self.constant, self.decay = int(state["constant"]), int(state["decay"])


class NLCLTrainer:
    """Builds G_B, G_R, the PatchGAN D, the projection heads, optimisers and schedule; trains unpaired."""

    def __init__(self, cfg: NLCLConfig | None = None, device: str | torch.device = "cpu", seed: int = 0) -> None:
        self.cfg = cfg or NLCLConfig()
        self.device = torch.device(device)
        self.seed = seed
        c = self.cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.G_B = Generator(c.ngf, c.n_blocks, residual=c.residual, padding=c.g_padding)
            self.G_R = Generator(c.ngf, c.n_blocks, padding=c.g_padding)
            self.D = Discriminator(c.ndf, c.n_layers_d, norm=c.d_norm)
            self.location_heads = nn.ModuleList(ProjectionHead(c.ngf, c.head_dim) for _ in c.nce_layers)
            self.layer_heads = nn.ModuleList(
                ProjectionHead(self.D.level_channels[lv], c.head_dim) for lv in c.layer_levels
            )
            for m in (self.G_B, self.G_R, self.D, self.location_heads, self.layer_heads):
                init_weights(m, c.init_gain)
            if c.residual:
                self.G_B.zero_last()
        for m in self.modules().values():
            m.to(self.device)
        self.G_B.checkpointing = self.G_R.checkpointing = c.checkpoint_activations
        kw = {"lr": c.lr, "betas": c.betas}
        self.opt_G = torch.optim.Adam([*self.G_B.parameters(), *self.G_R.parameters()], **kw)
        self.opt_D = torch.optim.Adam(self.D.parameters(), **kw)
        self.opt_F = torch.optim.Adam([*self.location_heads.parameters(), *self.layer_heads.parameters()], **kw)
        self.schedule = LinearDecay()
        self.step = 0
        self.rng = torch.Generator().manual_seed(seed)
        self.consumed = {"rainy": 0, "clean": 0}

    def modules(self) -> dict[str, nn.Module]:
        """Every trained module by checkpoint name."""
        return {
            "G_B": self.G_B, "G_R": self.G_R, "D": self.D,
            "location_heads": self.location_heads, "layer_heads": self.layer_heads,
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser by checkpoint name."""
        return {"opt_G": self.opt_G, "opt_D": self.opt_D, "opt_F": self.opt_F}

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.cfg.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _set_lr(self) -> None:
        factor = self.schedule(self.step)
        for opt in self.optimizers().values():
            for group in opt.param_groups:
                group["lr"] = self.cfg.lr * factor

    def locations(self, first: Tensor) -> Tensor:
        """(B, n, 2) PatchNCE locations on G_B's first-conv features: non-local hard negatives."""
        c = self.cfg
        return sample_nonlocal(first, c.num_patches, c.patch_size, c.window, generator=self.rng)

    def _location_contrast(self, source: Tensor, source_feats: list[Tensor], output: Tensor) -> Tensor:
        """PatchNCE between G_B(output) features (queries) and the source's features (keys)."""
        c = self.cfg
        first = source_feats[c.nce_layers.index(0)] if 0 in c.nce_layers else self.G_B.gen[0](source)
        ids = self.locations(first.detach())
        size = tuple(source.shape[-2:])
        query_feats = self.G_B.encode(output, c.nce_layers)
        losses = []
        for head, fq, fk in zip(self.location_heads, query_feats, source_feats):
            q = head(gather_at(fq, ids, size))
            k = head(gather_at(fk.detach(), ids, size))
            losses.append(patch_nce(q, k, c.nce_temperature))
        return torch.stack(losses).mean()

    def content_losses(self, rainy: Tensor, feats_o: list[Tensor], background: Tensor,
                       clean: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The terms tying G_B's output to its input: (location term, PatchNCE on O -> B_hat,
        identity PatchNCE on clean crops, mean |G_B(clean) - clean|); each zero when off."""
        c = self.cfg
        zero = torch.zeros((), device=self.device)
        # G_B runs on the clean crops before the contrasts: another order sums gradients in another
        # order, and a short GAN run amplifies that into a different result.
        clean_pass = None
        if c.nce_identity or c.lambda_identity > 0:
            clean_pass = self.G_B.forward_with_features(clean, c.nce_layers)
        loss_nce = self._location_contrast(rainy, feats_o, background)
        if clean_pass is None:
            return loss_nce, loss_nce, zero, zero
        identity, feats_c = clean_pass
        loss_l1 = (identity.float() - clean.float()).abs().mean() if c.lambda_identity > 0 else zero
        if not c.nce_identity:
            return loss_nce, loss_nce, zero, loss_l1
        loss_idt = self._location_contrast(clean, feats_c, identity)
        return 0.5 * (loss_nce + loss_idt), loss_nce, loss_idt, loss_l1

    def _layer_contrast(self, background: Tensor, rain: Tensor, d_feats_b: list[Tensor]) -> Tensor:
        """Supervised contrast of non-local background samples vs rain samples on D's features."""
        c = self.cfg
        size = tuple(background.shape[-2:])
        pos = sample_nonlocal(background, c.k_pos, c.patch_size, c.window, generator=self.rng)
        neg = sample_nonlocal(rain, c.k_neg, c.patch_size, c.window, generator=self.rng)
        d_feats_r = self.D.features(rain, c.layer_levels)
        labels = torch.cat([torch.zeros(c.k_pos), torch.ones(c.k_neg)]).long()
        losses = []
        for head, fb, fr in zip(self.layer_heads, d_feats_b, d_feats_r):
            z = torch.cat([head(gather_at(fb, pos, size)), head(gather_at(fr, neg, size))], dim=1)
            losses.append(
                supervised_contrastive(z, labels, c.temperatures, c.anchor_weights, c.base_temperature)
            )
        return torch.stack(losses).mean()

    def discriminator_step(self, clean: Tensor, background: Tensor) -> Tensor:
        """One LSGAN step of D (clean crops -> 1, B_hat -> 0), then D frozen and the G / head grads cleared."""
        self.D.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        with self._autocast():
            loss_d = 0.5 * (lsgan_loss(self.D(clean), True) + lsgan_loss(self.D(background.detach()), False))
        loss_d.backward()
        self.opt_D.step()
        # D stays frozen in the generator step but passes gradients through to its inputs.
        self.D.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        self.opt_F.zero_grad(set_to_none=True)
        return loss_d

    def train_step(self, rainy: Tensor, clean: Tensor) -> dict[str, float]:
        """One D step then one joint generator + heads step on batches in [-1, 1]; returns every loss term."""
        c = self.cfg
        rainy = rainy.to(self.device)
        clean = clean.to(self.device)
        self._set_lr()
        for m in self.modules().values():
            m.train()
        with self._autocast():
            background, feats_o = self.G_B.forward_with_features(rainy, c.nce_layers)
            rain = self.G_R(rainy)

        loss_d = self.discriminator_step(clean, background)
        with self._autocast():
            pred, d_feats_b = self.D.forward_with_features(background, c.layer_levels)
            loss_gan = lsgan_loss(pred, True)
            loss_layer = self._layer_contrast(background, rain, d_feats_b)
            loss_location, loss_nce, loss_nce_idt, loss_identity = self.content_losses(rainy, feats_o, background, clean)
            loss_cons = consistency_loss(background, rain, rainy)
            loss_sparse = sparsity_loss(background, rainy)
            total = (
                c.lambda_gan * loss_gan
                + c.lambda_location * loss_location
                + c.lambda_identity * loss_identity
                + c.lambda_layer * loss_layer
                + c.lambda_consistency * loss_cons
                + c.lambda_sparsity * loss_sparse
            )
        total.backward()
        self.opt_G.step()
        if not c.bug_compat_heads:
            # The released code never steps the heads (zero_grad in place of step, and an
            # optimiser over the wrong head); bug_compat_heads reproduces that for ablation.
            self.opt_F.step()
        self.D.requires_grad_(True)
        self.step += 1
        values = (loss_d, total, loss_gan, loss_layer, loss_location, loss_nce, loss_nce_idt, loss_identity,
                  loss_cons, loss_sparse)
        return {name: float(v.detach()) for name, v in zip(LOSS_NAMES, values)}

    def fit(
        self,
        rainy: Iterable[Tensor],
        clean: Iterable[Tensor],
        iters: int,
        crop: int | tuple[int, int] = 256,
        batch_size: int = 1,
        checkpoint_path: str | Path | None = None,
        checkpoint_every: int = 1000,
        resume: bool = False,
        log_every: int = 50,
        on_log: Callable[[int, dict[str, float]], None] | None = None,
    ) -> dict[str, Any]:
        """Train until ``self.step == iters`` on independent random crops of unpaired rainy / clean images.

        Images are 3 x H x W floats in [0, 1]; both collections are cycled, so they must be
        re-iterable. With ``resume`` and an existing ``checkpoint_path`` the full state is loaded
        first and training continues exactly. Returns the step, the last logged mean losses and
        the seconds spent.
        """
        if iters < 0 or batch_size < 1:
            raise ValueError("NLCLTrainer.fit: iters must be >= 0 and batch_size >= 1")
        if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
            self.load(checkpoint_path)
        decay = self.cfg.decay_iters(iters)
        self.schedule = LinearDecay(iters - decay, decay)
        sources = {
            name: CyclingSource(images, name, self.consumed[name])
            for name, images in (("rainy", rainy), ("clean", clean))
        }
        sums = dict.fromkeys(LOSS_NAMES, 0.0)
        count = 0
        last: dict[str, float] = {}
        start = time.perf_counter()
        while self.step < iters:
            o = crop_batch(sources["rainy"], batch_size, crop, self.rng)
            b = crop_batch(sources["clean"], batch_size, crop, self.rng)
            self.consumed = {name: s.consumed for name, s in sources.items()}
            losses = self.train_step(o, b)
            for name, value in losses.items():
                sums[name] += value
            count += 1
            if checkpoint_path is not None and self.step % checkpoint_every == 0:
                self.save(checkpoint_path)
            if self.step % log_every == 0 or self.step == iters:
                last = {name: total / count for name, total in sums.items()}
                log.info("step %d %s", self.step, " ".join(f"{k}={v:.4f}" for k, v in last.items()))
                if on_log is not None:
                    on_log(self.step, last)
                sums = dict.fromkeys(LOSS_NAMES, 0.0)
                count = 0
        if checkpoint_path is not None:
            self.save(checkpoint_path)
        return {"step": self.step, "losses": last, "seconds": time.perf_counter() - start}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: networks, heads, optimisers, schedule, step, RNG states, data position."""
        state: dict[str, Any] = {name: m.state_dict() for name, m in self.modules().items()}
        state.update({name: o.state_dict() for name, o in self.optimizers().items()})
        state.update(
            config=self.cfg.to_dict(),
            schedule=self.schedule.state_dict(),
            step=self.step,
            seed=self.seed,
            rng=self.rng.get_state(),
            torch_rng=torch.get_rng_state(),
            consumed=dict(self.consumed),
        )
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the configuration must match this trainer's."""
        saved = NLCLConfig.from_dict(state["config"])
        if saved != self.cfg:
            raise ValueError("NLCLTrainer.load: the checkpoint was trained with a different NLCLConfig")
        for name, m in self.modules().items():
            m.load_state_dict(state[name])
        for name, o in self.optimizers().items():
            o.load_state_dict(state[name])
        self.schedule.load_state_dict(state["schedule"])
        self.step = int(state["step"])
        self.rng.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.consumed = {k: int(v) for k, v in state["consumed"].items()}

    def save(self, path: str | Path) -> None:
        """Write the full training state to ``path`` (atomically)."""
        save_trainer_state(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        """Load the full training state written by :meth:`save`."""
        self.load_state_dict(load_trainer_state(path, map_location=self.device))

    def background_generator(self) -> Generator:
        """G_B in eval mode, ready for :func:`nlcl.derain`."""
        return self.G_B.eval()

    def rain_generator(self) -> Generator:
        """G_R in eval mode."""
        return self.G_R.eval()
