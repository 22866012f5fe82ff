"""Zero-mean Gaussian mixture models of image patches: EM fitting, EPLL-style Wiener estimates, caching.

A patch prior in the sense of EPLL (Zoran and Weiss, ICCV 2011): patches have their mean (DC)
removed and are modelled by a mixture of zero-mean Gaussians with full covariances. Given a noisy
patch, the most likely component is picked and the patch is Wiener-filtered under it. Everything
is batched over patches and components in torch, so it runs on CPU and GPU alike.

The background prior of ``gmm`` is fitted once from clean natural images that ship with
scikit-image (no download) and cached under the user cache directory; see :func:`background_gmm`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nlcl.checkpoint import atomic_save

logger = logging.getLogger(__name__)

# Clean, natural-looking greyscale content in skimage.data (photographs and textures). The colour
# photographs (astronaut, coffee, chelsea, rocket) are kept out so they can serve as test images.
TRAINING_IMAGES = ("camera", "coins", "moon", "grass", "gravel", "brick", "clock", "page", "text")

PRIOR_VERSION = 1
"""Bumped whenever the fitting changes, so stale cached priors are not reused."""

_CHUNK = 8192  # patches per batched step: bounds memory at chunk x components x dim floats


@dataclass
class PatchGMM:
    """A zero-mean GMM over flattened ``size x size`` patches, stored by its eigen-decomposition."""

    size: int
    log_weights: torch.Tensor  # K
    eigvecs: torch.Tensor  # K x d x d (columns)
    eigvals: torch.Tensor  # K x d

    @property
    def components(self) -> int:
        """Number of mixture components."""
        return self.log_weights.shape[0]

    def to(self, device: torch.device | str) -> PatchGMM:
        """The same mixture on ``device``."""
        return PatchGMM(self.size, self.log_weights.to(device), self.eigvecs.to(device), self.eigvals.to(device))

    def state(self) -> dict[str, torch.Tensor]:
        """Tensors for a checkpoint (inverse of :meth:`from_state`)."""
        return {"size": torch.tensor(self.size), "log_weights": self.log_weights.cpu(),
                "eigvecs": self.eigvecs.cpu(), "eigvals": self.eigvals.cpu()}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> PatchGMM:
        """Rebuild a mixture from :meth:`state` output; ValueError if it is inconsistent."""
        size = int(state["size"])
        vecs, vals, logw = state["eigvecs"].float(), state["eigvals"].float(), state["log_weights"].float()
        d = size * size
        if vecs.shape[1:] != (d, d) or vals.shape[1:] != (d,) or logw.shape != vals.shape[:1] != vecs.shape[:1]:
            raise ValueError(f"inconsistent patch GMM shapes for {size}x{size} patches")
        return cls(size, logw, vecs, vals)

    @classmethod
    def from_covariances(cls, size: int, weights: torch.Tensor, covs: torch.Tensor) -> PatchGMM:
        """A mixture from component weights (K) and covariances (K x d x d)."""
        vals, vecs = torch.linalg.eigh(0.5 * (covs + covs.transpose(1, 2)))
        return cls(size, torch.log(weights.clamp(min=1e-12)), vecs, vals.clamp(min=1e-8))

    def wiener(self, patches: torch.Tensor, noise_var: float) -> torch.Tensor:
        """MAP-component Wiener estimate of zero-mean ``patches`` (N x d) under noise of variance ``noise_var``."""
        out = torch.empty_like(patches)
        vecs, vals = self.eigvecs.to(patches.dtype), self.eigvals.to(patches.dtype)
        std = (vals + noise_var).sqrt()
        # Projections on the whitened eigenbasis give the likelihood in one matmul; the estimate's
        # coefficients are the same projections scaled by vals / std.
        whiten = vecs / std[:, None, :]
        const = self.log_weights.to(patches.dtype) - torch.log(std).sum(1)
        gain = vals / std
        for start in range(0, patches.shape[0], _CHUNK):
            x = patches[start : start + _CHUNK]
            proj = torch.matmul(x.unsqueeze(0), whiten)  # K x n x d
            best = (const[:, None] - 0.5 * proj.pow(2).sum(-1)).argmax(0)  # n
            chunk = out[start : start + _CHUNK]
            # One matmul per component used, rather than a gathered n x d x d basis.
            for k in best.unique().tolist():
                rows = (best == k).nonzero().squeeze(1)
                chunk[rows] = (proj[k, rows] * gain[k]) @ vecs[k].T
        return out


def extract_patches(image: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """Patches (L x d, N*L rows for a batch) of an N x 1 x H x W image at ``stride``."""
    cols = F.unfold(image, size, stride=stride)  # N x d x L
    return cols.transpose(1, 2).reshape(-1, size * size)


def fit_gmm(patches: torch.Tensor, size: int, components: int, iters: int, seed: int,
            reg: float = 1e-6) -> PatchGMM:
    """Fit a zero-mean GMM to DC-removed ``patches`` (N x d) by EM; deterministic for a seed.

    Initialised by assigning each patch to the random exemplar it is most collinear with (sign
    ignored, as zero-mean Gaussians are symmetric), which separates structure directions at once.
    Both steps run over chunks of patches, so memory stays at chunk x components x dim.
    """
    x = patches.double()
    n, d = x.shape
    if n < components * 4:
        raise ValueError(f"too few patches ({n}) to fit {components} components")
    generator = torch.Generator().manual_seed(seed)
    exemplars = x[torch.randperm(n, generator=generator)[:components].to(x.device)]
    exemplars = exemplars / (exemplars.norm(dim=1, keepdim=True) + 1e-12)
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    chunks = [slice(start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK)]

    def initial(rows: slice) -> torch.Tensor:
        part = x[rows]
        cosine = ((part / (part.norm(dim=1, keepdim=True) + 1e-12)) @ exemplars.T).abs()
        return F.one_hot(cosine.argmax(1), components).double()

    def m_step(responsibility) -> tuple[torch.Tensor, torch.Tensor]:
        counts = torch.zeros(components, dtype=x.dtype, device=x.device)
        scatter = torch.zeros(components, d, d, dtype=x.dtype, device=x.device)
        for rows in chunks:
            resp, part = responsibility(rows), x[rows]
            counts += resp.sum(0)
            scatter += torch.matmul((resp.T.unsqueeze(-1) * part.unsqueeze(0)).transpose(1, 2), part)
        counts = counts + 1e-9
        return counts, scatter / counts[:, None, None] + reg * eye

    counts, covs = m_step(initial)
    for _ in range(iters):
        weights = counts / n
        chol = torch.linalg.cholesky(covs)
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)

        def posterior(rows: slice, chol=chol, logdet=logdet, weights=weights) -> torch.Tensor:
            part = x[rows].T.unsqueeze(0).expand(components, d, -1)
            z = torch.linalg.solve_triangular(chol, part, upper=False)
            loglik = torch.log(weights)[:, None] - 0.5 * (logdet[:, None] + (z * z).sum(1))  # K x n
            return torch.softmax(loglik, dim=0).T

        counts, covs = m_step(posterior)
    return PatchGMM.from_covariances(size, (counts / n).float(), covs.float())


def remove_dc(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split patches into their zero-mean part and their mean (N x 1)."""
    mean = patches.mean(1, keepdim=True)
    return patches - mean, mean


def cache_dir() -> Path:
    """Where fitted priors are cached: $RAINBENCH_CACHE, else $XDG_CACHE_HOME/rainbench, else ~/.cache/rainbench."""
    root = os.environ.get("RAINBENCH_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "rainbench"


def training_patches(size: int, count: int, seed: int) -> torch.Tensor:
    """``count`` DC-removed patches sampled from the clean skimage.data images, deterministic for a seed."""
    try:
        import skimage.data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the gmm background prior is fitted from scikit-image's sample images: "
                           "pip install scikit-image (or pass a fitted prior with --weights)") from exc
    rng = np.random.default_rng(seed)
    images = [np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0 for name in TRAINING_IMAGES]
    per_image = -(-count // len(images))
    rows = []
    for image in images:
        h, w = image.shape[:2]
        ys = rng.integers(0, h - size + 1, per_image)
        xs = rng.integers(0, w - size + 1, per_image)
        offsets = np.arange(size)
        block = image[ys[:, None, None] + offsets[None, :, None], xs[:, None, None] + offsets[None, None, :]]
        rows.append(block.reshape(per_image, size * size))
    patches = torch.from_numpy(np.concatenate(rows)[:count])
    return remove_dc(patches)[0]


def background_gmm(size: int, components: int, count: int, iters: int, seed: int) -> PatchGMM:
    """The natural-image patch prior, fitted at first use and cached (keyed by every option)."""
    key = hashlib.sha256(f"v{PRIOR_VERSION}/{size}/{components}/{count}/{iters}/{seed}/{TRAINING_IMAGES}".encode()).hexdigest()[:12]
    path = cache_dir() / "gmm" / f"background-{size}x{size}-k{components}-{key}.pt"
    if path.is_file():
        try:
            return PatchGMM.from_state(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:  # noqa: BLE001 - a corrupt cache entry is refitted, not fatal
            logger.warning("%s: unreadable cached prior (%s); refitting", path, exc)
    logger.info("fitting the gmm background prior (%d components, %d patches); cached at %s", components, count, path)
    gmm = fit_gmm(training_patches(size, count, seed), size, components, iters, seed)
    atomic_save(gmm.state(), path)
    return gmm
