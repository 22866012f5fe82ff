"""``gmm``: rain streak removal with Gaussian mixture layer priors (Li et al., CVPR 2016).

The rainy luma ``O`` is split into a background ``B`` and a rain layer ``R`` by minimising

    ||O - B - R||^2 + lambda_B sum_i -log G_B(P_i B) + lambda_R sum_i -log G_R(P_i R),
    0 <= B <= O,  0 <= R <= O

where ``P_i`` extracts the i-th patch, ``G_B`` is a patch GMM of natural images and ``G_R`` a
patch GMM of rain streaks. As in the paper the background prior is learnt from clean natural
images (here: scikit-image's sample images, fitted once and cached; see
:mod:`baselines.patch_gmm`) and the rain prior from the input itself: from the patches of its
rain-like detail layer (bright, achromatic, oriented detail, :mod:`baselines.guided`), where the
paper asked the user for a rain-only region. The problem is solved by half-quadratic splitting
with an increasing penalty ``beta``: each patch is replaced by its EPLL-style Wiener estimate
under its layer's GMM at noise variance ``1 / beta``, then ``B`` and ``R`` are solved pointwise in
closed form (patch averaging makes the quadratic diagonal) and projected on the constraints.

Rain is white and additive, so it is estimated on the luma and removed equally from R, G and B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from baselines.guided import GuidedFilter, luma
from baselines.method import Method
from baselines.patch_gmm import (
    PatchGMM,
    background_gmm,
    extract_patches,
    fit_gmm,
    remove_dc,
)
from baselines.registry import MethodError, MethodInfo, register


@register(MethodInfo(
    name="gmm",
    kind="prior",
    paper="Li et al., Rain Streak Removal Using Layer Priors, CVPR 2016",
    year=2016,
    code_license="MIT",
    weights_license=None,
    learns_from="none",
    needs_weights=False,
    devices=("cpu", "cuda"),
    summary="Background and rain patch GMM priors (natural-image prior + rain prior fitted on the input), HQS.",
    tile=512,
))
class GMMLayerPriors(Method):
    """Li et al.'s GMM layer priors: EPLL-style half-quadratic splitting on luma."""

    @dataclass(frozen=True)
    class Config:
        """Options of the GMM layer-prior method."""

        patch: int = 6
        """Patch side for both priors."""
        stride: int = 2
        """Patch stride in the HQS steps (1 = every patch, slower)."""
        components: int = 20
        """Background GMM components."""
        rain_components: int = 3
        """Rain GMM components (fitted on the input)."""
        rain_patches: int = 3000
        """Most rain-like patches of the input used to fit the rain GMM."""
        train_patches: int = 40000
        """Clean patches used to fit the background GMM (once; cached)."""
        em_iters: int = 25
        """EM iterations for the background GMM."""
        lambda_b: float = 1.0
        """Weight of the background prior (relative to ``lambda_r``)."""
        lambda_r: float = 1.0
        """Weight of the rain prior: the share of what neither prior explains that goes to rain."""
        sigma: float = 0.1
        """Initial HQS noise level (in [0, 1] units), divided by 2 each of ``iters`` steps."""
        iters: int = 5
        """Half-quadratic splitting steps."""
        seed: int = 0
        """Seed for the background prior's EM (and hence every output)."""

        def __post_init__(self) -> None:
            if self.patch < 2 or not 1 <= self.stride <= self.patch:
                raise ValueError("patch must be >= 2 and 1 <= stride <= patch")
            if min(self.components, self.rain_components, self.iters, self.em_iters) < 1:
                raise ValueError("components, rain_components, iters and em_iters must be >= 1")
            if self.sigma <= 0 or self.lambda_b <= 0 or self.lambda_r <= 0:
                raise ValueError("sigma, lambda_b and lambda_r must be positive")
            if self.rain_patches < 4 * self.rain_components or self.train_patches < 4 * self.components:
                raise ValueError("rain_patches and train_patches must be at least 4 per component")

    overlap = 32

    def setup(self) -> None:
        self._background: PatchGMM | None = None
        self._detail = GuidedFilter({"passes": 3})

    def background(self) -> PatchGMM:
        """The natural-image patch prior (fitted and cached at first use)."""
        if self._background is None:
            cfg = self.config
            self._background = background_gmm(cfg.patch, cfg.components, cfg.train_patches, cfg.em_iters, cfg.seed)
        return self._background

    def state_dict(self) -> dict[str, Any]:
        return {"background": self.background().state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            gmm = PatchGMM.from_state(state["background"])
        except (KeyError, ValueError) as exc:
            raise MethodError(f"method 'gmm': weights hold no usable background prior ({exc})") from None
        if gmm.size != self.config.patch:
            raise MethodError(f"method 'gmm': prior is for {gmm.size}x{gmm.size} patches, config says {self.config.patch}")
        self._background = gmm

    def _derain(self, batch: torch.Tensor) -> torch.Tensor:
        observed = luma(batch)
        initial = (observed - luma(self._detail._derain(batch))).clamp(min=0.0)
        rain = torch.cat([self._separate(observed[i : i + 1], initial[i : i + 1]) for i in range(batch.shape[0])])
        return batch - rain

    def _separate(self, observed: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
        """The rain layer (1 x 1 x H x W) of one luma image, starting from a rain estimate."""
        cfg = self.config
        rain_prior = self._rain_prior(initial)
        if rain_prior is None:  # nothing rain-like at all: leave the image as it is
            return torch.zeros_like(observed)
        back_prior = self.background().to(observed.device)
        padded, (h, w) = self._pad(observed)
        back = padded - self._pad(initial)[0]
        # The data term is kept exact (B + R = O): synthetic and real rain are noise-free up to
        # quantisation, so the HQS B/R step only splits what the two patch estimates leave over.
        share = cfg.lambda_r / (cfg.lambda_b + cfg.lambda_r)
        sigma = cfg.sigma
        for _ in range(cfg.iters):
            back_hat = self._estimate(back, back_prior, sigma**2)
            rain_hat = self._estimate(padded - back, rain_prior, sigma**2)
            back = back_hat + share * (padded - back_hat - rain_hat)
            back = torch.minimum(back.clamp(min=0.0), padded)
            sigma /= 2
        return (padded - back)[..., :h, :w]

    def _pad(self, image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Reflect-pad so the patch grid at the stride covers every pixel."""
        cfg = self.config
        h, w = image.shape[-2:]
        ph = (-(h - cfg.patch)) % cfg.stride
        pw = (-(w - cfg.patch)) % cfg.stride
        mode = "reflect" if ph < h and pw < w else "replicate"
        return F.pad(image, (0, pw, 0, ph), mode=mode), (h, w)

    def _estimate(self, layer: torch.Tensor, prior: PatchGMM, noise_var: float) -> torch.Tensor:
        """Patch-averaged Wiener estimate of a layer under its prior (the HQS patch step)."""
        cfg = self.config
        patches, mean = remove_dc(extract_patches(layer, cfg.patch, cfg.stride))
        estimate = prior.wiener(patches, noise_var) + mean
        h, w = layer.shape[-2:]
        cols = estimate.reshape(1, -1, cfg.patch * cfg.patch).transpose(1, 2)
        summed = F.fold(cols, (h, w), cfg.patch, stride=cfg.stride)
        counts = F.fold(torch.ones_like(cols), (h, w), cfg.patch, stride=cfg.stride)
        return summed / counts

    def _rain_prior(self, rain: torch.Tensor) -> PatchGMM | None:
        """A rain patch GMM fitted on the most rain-like patches of the initial rain layer."""
        cfg = self.config
        patches = remove_dc(extract_patches(rain, cfg.patch, max(1, cfg.stride)))[0]
        energy = patches.pow(2).sum(1)
        keep = min(cfg.rain_patches, int((energy > 1e-6).sum()))
        if keep < 4 * cfg.rain_components:
            return None
        # Ties broken by position (stable sort), so the choice is deterministic.
        order = torch.sort(energy, descending=True, stable=True).indices[:keep]
        return fit_gmm(patches[order].cpu(), cfg.patch, cfg.rain_components, 10, cfg.seed).to(rain.device)
