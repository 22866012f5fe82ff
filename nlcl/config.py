"""One configuration object holding every NLCL hyper-parameter, with the released defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

VARIANTS = ("symmetric", "asymmetric")
D_NORMS = ("instance", "none")
G_PADDINGS = ("zero", "reflect")


@dataclass(frozen=True)
class NLCLConfig:
    """Every weight, temperature, sampler size, feature level and optimiser setting of NLCL.

    Defaults follow the released CVPR 2022 code; ``variant="asymmetric"`` switches the layer
    contrast to the TPAMI-style asymmetric form with the temperatures ``tau_b`` / ``tau_r``.
    """

    variant: str = "symmetric"
    # networks
    ngf: int = 32
    n_blocks: int = 16
    ndf: int = 64
    n_layers_d: int = 3
    # "instance" as released. InstanceNorm normalises away each crop's feature statistics: trained
    # alone for 300 steps it did not tell held-out light-rain images from clean ones, "none" did.
    d_norm: Literal["instance", "none"] = "instance"
    # "zero" as released: the authors' residual units are Conv2dBlock(pad_type="zero"), and their
    # weights reproduce their outputs only with it. "reflect" avoids dark borders at crop edges
    # in the project's own training; a checkpoint that does not say is zero-padded.
    g_padding: Literal["zero", "reflect"] = "zero"
    head_dim: int = 256
    init_gain: float = 0.02
    # Off in the released code. On, G_B predicts a correction (B = O + G_B(O)) whose last conv
    # starts at zero, so training starts from the rainy input instead of from noise: what makes
    # short CPU budgets derain. Released G_B weights are direct predictors: residual=False.
    residual: bool = False
    # loss weights (total = gan + location + layer + consistency + 0.1 sparsity)
    lambda_gan: float = 1.0
    lambda_location: float = 1.0
    lambda_layer: float = 1.0
    lambda_consistency: float = 1.0
    lambda_sparsity: float = 0.1
    nce_identity: bool = True
    # Not in the released code (0 = off): CycleGAN's identity term, weight of |G_B(clean) - clean|.
    # It forbids G_B global colour and tone shifts, so the GAN can only teach it to remove rain.
    lambda_identity: float = 0.0
    # non-local sampler
    patch_size: int = 16
    window: int = 40
    k_pos: int = 8
    k_neg: int = 128
    num_patches: int = 256
    # layer contrast (supervised contrastive over D features)
    tau: float = 0.07
    base_temperature: float = 0.07
    tau_b: float = 0.07
    tau_r: float = 0.035
    weight_b: float = 1.0
    weight_r: float = 1.0
    layer_levels: tuple[int, ...] = (0, 1, 2, 3)
    # location contrast (PatchNCE over G_B features)
    nce_temperature: float = 0.07
    nce_layers: tuple[int, ...] = (0, 2, 4, 8, 12)
    # optimisation
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    n_epochs: int = 200
    n_epochs_decay: int = 10
    decay_fraction: float | None = None
    bug_compat_heads: bool = False
    amp: bool = True
    checkpoint_activations: bool = False

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"NLCLConfig.variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.d_norm not in D_NORMS:
            raise ValueError(f"NLCLConfig.d_norm must be one of {D_NORMS}, got {self.d_norm!r}")
        if self.g_padding not in G_PADDINGS:
            raise ValueError(f"NLCLConfig.g_padding must be one of {G_PADDINGS}, got {self.g_padding!r}")
        if self.k_pos < 2 or self.k_neg < 2:
            raise ValueError("NLCLConfig: k_pos and k_neg must be >= 2 (each layer needs a positive)")
        if any(lv < 0 or lv > self.n_layers_d for lv in self.layer_levels):
            raise ValueError(f"NLCLConfig.layer_levels must lie in [0, {self.n_layers_d}]")
        if any(lv < 0 or lv > self.n_blocks + 2 for lv in self.nce_layers):
            raise ValueError(f"NLCLConfig.nce_layers must lie in [0, {self.n_blocks + 2}]")
        for name in ("tau", "tau_b", "tau_r", "base_temperature", "nce_temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"NLCLConfig.{name} must be > 0")
        # tuples may arrive as lists from JSON / YAML
        object.__setattr__(self, "layer_levels", tuple(self.layer_levels))
        object.__setattr__(self, "nce_layers", tuple(self.nce_layers))
        object.__setattr__(self, "betas", tuple(self.betas))

    @property
    def temperatures(self) -> tuple[float, float]:
        """(background-anchor, rain-anchor) temperatures actually used by the layer contrast."""
        if self.variant == "symmetric":
            return self.tau, self.tau
        return self.tau_b, self.tau_r

    @property
    def anchor_weights(self) -> tuple[float, float]:
        """(background, rain) anchor weights of the layer contrast; (1, 1) when symmetric."""
        if self.variant == "symmetric":
            return 1.0, 1.0
        return self.weight_b, self.weight_r

    def decay_iters(self, total_iters: int) -> int:
        """Iterations of linear learning-rate decay at the end of a ``total_iters`` budget."""
        frac = self.decay_fraction
        if frac is None:
            frac = self.n_epochs_decay / max(1, self.n_epochs + self.n_epochs_decay)
        return round(total_iters * frac)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary of every field."""
        d = dataclasses.asdict(self)
        d["layer_levels"] = list(self.layer_levels)
        d["nce_layers"] = list(self.nce_layers)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NLCLConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise a clear error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"NLCLConfig.from_dict: unknown keys {unknown}")
        return cls(**d)
