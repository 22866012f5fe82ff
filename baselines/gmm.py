"""``gmm`` (Li et al., CVPR 2016, as published) and ``gmm_plus`` (rainbench's stronger variant).

Both split the rainy luma ``O`` into a background ``B`` and a rain layer ``R`` with two zero-mean
patch GMMs (EPLL-style, :mod:`baselines.patch_gmm`): ``G_B`` of natural images (fitted once on
scikit-image's sample images and cached) and ``G_R`` of rain streaks, fitted on the input itself.

``gmm`` follows the paper (Eq. 5 and Algorithm 1, CVPR 2016 p. 2738-2740)::

    min ||O - B - R||^2 + alpha ||grad B||_1 + beta ||R||^2
        - gamma sum_i (log G_B(P_i B) + log G_R(P_i R)),   0 <= B, R <= O

with alpha = 0.05 (on 0-255 intensities; 0.05 / 255 here, on [0, 1]), beta = 0.01, 8 x 8 patches,
20 rain components fitted by EM on the patches of the least-variance 100 x 100 window of the input
(the paper's automatic choice of a flat region that holds rain and little texture), B = O and R = 0
at the start, and half-quadratic splitting with a penalty omega doubled each step: each patch
Wiener-filtered under its most likely component at noise variance gamma / (2 omega), then
H = shrink(grad B, alpha / (2 omega)), then the {B, R} quadratic. The paper gives gamma (0.01) but
neither the image scale nor its initial omega, which fix the data term's weight against the priors
only together; here the data term is kept exact (B = O - R, the paper's objective in the limit of
a data weight that dominates the priors), which makes the {B, R} step one FFT solve for R with the
box constraints 0 <= R <= O applied by projection, and gamma = 2e-4, omega = 0.002 (a first patch
step at sigma = 0.22, halving each step) with 12 steps, measured on the Rain100L test set
(docs/methods.md). Two further approximations keep it fast: the overlapping-patch sum is replaced
by the patch-averaged image (as EPLL does), and the background prior is a 20-component fit on
scikit-image's photographs rather than Zoran and Weiss's 200-component prior.

``gmm_plus`` is rainbench's earlier, stronger default, kept as its own method: it starts from the
rain-like detail layer of ``guided`` (bright, achromatic, oriented detail), fits G_R on that
layer's highest-energy patches instead of a flat window, and keeps the data term exact (B + R = O).

Rain is white and additive: both estimate it on the luma and subtract it from R, G and B equally,
which is what deraining Y and converting back from YUV does.
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
from baselines.tiling import pad_to_multiple


def _check_patch_options(cfg: Any) -> None:
    """The checks both GMM methods' Configs share: patch geometry, component and iteration counts."""
    if cfg.patch < 2 or not 1 <= cfg.stride <= cfg.patch:
        raise ValueError("patch must be >= 2 and 1 <= stride <= patch")
    if min(cfg.components, cfg.rain_components, cfg.iters, cfg.em_iters, cfg.rain_em_iters) < 1:
        raise ValueError("components, rain_components, iters, em_iters and rain_em_iters must be >= 1")


class _PatchPriorMethod(Method):
    """What both GMM methods share: the cached background prior, its checkpoint, patch estimates."""

    overlap = 32

    def setup(self) -> None:
        self._background: PatchGMM | None = None

    def background(self) -> PatchGMM:
        """The natural-image patch prior (fitted and cached at first use)."""
        if self._background is None:
            cfg = self.config
            self._background = background_gmm(cfg.patch, cfg.components, cfg.train_patches, cfg.em_iters, cfg.seed)
        return self._background

    def state_dict(self) -> dict[str, Any]:
        return {"background": self.background().state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        name = self.info.name
        try:
            gmm = PatchGMM.from_state(state["background"])
        except (KeyError, ValueError) as exc:
            raise MethodError(f"method {name!r}: weights hold no usable background prior ({exc})") from None
        if gmm.size != self.config.patch:
            raise MethodError(f"method {name!r}: prior is for {gmm.size}x{gmm.size} patches, config says {self.config.patch}")
        self._background = gmm

    def _derain(self, batch: torch.Tensor) -> torch.Tensor:
        observed = luma(batch)
        rain = torch.cat([self._separate(observed[i : i + 1], batch[i : i + 1]) for i in range(batch.shape[0])])
        return batch - rain

    def _separate(self, observed: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """The luma removed from one image (1 x 1 x H x W), given its luma and RGB."""
        raise NotImplementedError

    def _pad(self, image: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Reflect-pad so the patch grid at the stride covers every pixel."""
        return pad_to_multiple(image, self.config.stride, offset=self.config.patch)

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

    def _fit_rain(self, patches: torch.Tensor, device: torch.device) -> PatchGMM | None:
        """A rain GMM on DC-removed ``patches``, or None when they hold (almost) no signal."""
        cfg = self.config
        if patches.shape[0] < 4 * cfg.rain_components or float(patches.pow(2).sum(1).max()) < 1e-6:
            return None
        return fit_gmm(patches.cpu(), cfg.patch, cfg.rain_components, cfg.rain_em_iters, cfg.seed).to(device)


def _gradient(image: torch.Tensor) -> torch.Tensor:
    """Forward differences (periodic), 1 x 2 x H x W."""
    return torch.cat([torch.roll(image, -1, -1) - image, torch.roll(image, -1, -2) - image], 1)


def _divergence_adjoint(field: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`_gradient` applied to a 1 x 2 x H x W field."""
    gx, gy = field[:, :1], field[:, 1:]
    return (torch.roll(gx, 1, -1) - gx) + (torch.roll(gy, 1, -2) - gy)


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
    summary="Li et al.'s layer priors as published: background + rain patch GMMs (rain GMM from the "
            "flattest 100x100 window), TV and ||R||^2 terms, HQS from B = O.",
    tile=512,
))
class GMMLayerPriors(_PatchPriorMethod):
    """Li et al.'s GMM layer priors with the paper's objective, settings and initialisation."""

    @dataclass(frozen=True)
    class Config:
        """Options of the GMM layer-prior method (defaults: the paper's values where it gives them)."""

        patch: int = 8
        """Patch side for both priors (paper: 8)."""
        stride: int = 2
        """Patch stride in the HQS patch steps (the paper uses every patch, 1; 2 is 4x faster)."""
        components: int = 20
        """Background GMM components (the paper's EPLL prior has 200)."""
        rain_components: int = 20
        """Rain GMM components (paper: 20)."""
        region: int = 100
        """Side of the least-variance window whose patches fit the rain GMM (paper: 100)."""
        train_patches: int = 40000
        """Clean patches used to fit the background GMM (once; cached)."""
        em_iters: int = 25
        """EM iterations for the background GMM."""
        rain_em_iters: int = 10
        """EM iterations for the rain GMM."""
        alpha: float = 0.05 / 255
        """Weight of ||grad B||_1: the paper's 0.05 on 0-255 intensities, i.e. 0.05 / 255 on [0, 1] images."""
        beta: float = 0.01
        """Weight of ||R||^2 (paper: 0.01)."""
        gamma: float = 2e-4
        """Weight of both patch priors; the Wiener noise variance is gamma / (2 omega) (see docs/methods.md)."""
        omega: float = 0.002
        """Initial HQS penalty, doubled each step (the paper does not state it)."""
        iters: int = 12
        """Half-quadratic splitting steps (paper: 5 for its timing, up to 20; converged by 12 on Rain100L)."""
        seed: int = 0
        """Seed for the EM fits (and hence every output)."""

        def __post_init__(self) -> None:
            _check_patch_options(self)
            if self.region < self.patch:
                raise ValueError("region must be at least one patch")
            if self.omega <= 0 or self.gamma <= 0 or self.alpha < 0 or self.beta < 0:
                raise ValueError("omega and gamma must be positive, alpha and beta non-negative")
            if self.train_patches < 4 * self.components:
                raise ValueError("train_patches must be at least 4 per component")

    def _rain_prior(self, observed: torch.Tensor) -> PatchGMM | None:
        """The rain GMM, fitted on every patch of the input's least-variance window."""
        cfg = self.config
        h, w = observed.shape[-2:]
        side = min(cfg.region, h, w)
        mean = F.avg_pool2d(observed, side, stride=1)
        var = F.avg_pool2d(observed * observed, side, stride=1) - mean * mean
        # Ties broken by position (argmin returns the first), so the choice is deterministic.
        y, x = divmod(int(var.flatten().argmin()), var.shape[-1])
        window = observed[..., y : y + side, x : x + side]
        return self._fit_rain(remove_dc(extract_patches(window, cfg.patch, 1))[0], observed.device)

    def _separate(self, observed: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        rain_prior = self._rain_prior(observed)
        if rain_prior is None:  # a flat window without any signal: nothing to learn rain from
            return torch.zeros_like(observed)
        back_prior = self.background().to(observed.device)
        padded, (h, w) = self._pad(observed)
        rain = torch.zeros_like(padded)
        # The paper sums its patch terms over every (stride-1) patch, patch**2 of which cover a pixel.
        cover = float(cfg.patch**2)
        fy = torch.fft.fftfreq(padded.shape[-2], device=padded.device).view(-1, 1)
        fx = torch.fft.fftfreq(padded.shape[-1], device=padded.device).view(1, -1)
        laplacian = (2 - 2 * torch.cos(2 * torch.pi * fy)) + (2 - 2 * torch.cos(2 * torch.pi * fx))
        laplacian = laplacian[..., : padded.shape[-1] // 2 + 1]
        observed_grad = _gradient(padded)
        omega = cfg.omega
        for step in range(cfg.iters):
            # Each step: the patch estimates g_B, g_R of the current layers (B = O, R = 0 at the start;
            # Algorithm 1 never initialises them for its first {B, R} step), then H, then R.
            noise_var = cfg.gamma / (2 * omega)
            back_hat = self._estimate(padded - rain, back_prior, noise_var)
            rain_hat = self._estimate(rain, rain_prior, noise_var) if step else rain  # R = 0 at the start
            grad = observed_grad - _gradient(rain)  # grad B
            shrunk = torch.sign(grad) * (grad.abs() - cfg.alpha / (2 * omega)).clamp(min=0.0)
            weight = omega * cover
            # The data term is kept exact (B = O - R), so the step is one quadratic in R, solved by FFT:
            # (2 weight + beta + omega grad^T grad) R = weight (O - g_B) + weight g_R + omega grad^T (grad O - H).
            rhs = weight * (padded - back_hat + rain_hat) + omega * _divergence_adjoint(observed_grad - shrunk)
            denominator = 2 * weight + cfg.beta + omega * laplacian
            rain = torch.fft.irfft2(torch.fft.rfft2(rhs) / denominator, s=rhs.shape[-2:])
            rain = torch.minimum(rain.clamp(min=0.0), padded)  # 0 <= R <= O, hence 0 <= B <= O
            omega *= 2
        return rain[..., :h, :w]


@register(MethodInfo(
    name="gmm_plus",
    kind="prior",
    paper="rainbench variant of Li et al., CVPR 2016 (guided rain-detail start and rain prior, exact data term)",
    year=None,
    code_license="MIT",
    weights_license=None,
    learns_from="none",
    needs_weights=False,
    devices=("cpu", "cuda"),
    summary="GMM layer priors started from guided's rain-detail layer, rain GMM on its strongest patches; "
            "stronger than the paper on light rain.",
    tile=512,
))
class GMMPlus(_PatchPriorMethod):
    """GMM layer priors seeded by ``guided``'s rain-detail layer (rainbench's stronger variant)."""

    @dataclass(frozen=True)
    class Config:
        """Options of the guided-seeded GMM layer-prior variant."""

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
        rain_em_iters: int = 10
        """EM iterations for the rain GMM."""
        lambda_b: float = 1.0
        """Weight of the background prior (relative to ``lambda_r``)."""
        lambda_r: float = 1.0
        """Weight of the rain prior: the share of what neither prior explains that goes to rain."""
        sigma: float = 0.1
        """Initial HQS noise level (in [0, 1] units), divided by 2 each of ``iters`` steps."""
        iters: int = 5
        """Half-quadratic splitting steps."""
        seed: int = 0
        """Seed for the EM fits (and hence every output)."""

        def __post_init__(self) -> None:
            _check_patch_options(self)
            if self.sigma <= 0 or self.lambda_b <= 0 or self.lambda_r <= 0:
                raise ValueError("sigma, lambda_b and lambda_r must be positive")
            if self.rain_patches < 4 * self.rain_components or self.train_patches < 4 * self.components:
                raise ValueError("rain_patches and train_patches must be at least 4 per component")

    def setup(self) -> None:
        super().setup()
        self._detail = GuidedFilter({"passes": 3})

    def _separate(self, observed: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        initial = (observed - luma(self._detail._derain(rgb))).clamp(min=0.0)
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
        return self._fit_rain(patches[order], rain.device)
