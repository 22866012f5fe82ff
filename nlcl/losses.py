"""NLCL losses: LSGAN, consistency, sparsity, layer contrast (supervised contrastive) and PatchNCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def lsgan_loss(pred: Tensor, target_is_real: bool) -> Tensor:
    """Least-squares GAN loss: mean squared distance of the patch logits to 1 (real) or 0 (fake)."""
    target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
    return F.mse_loss(pred.float(), target.float())


def consistency_loss(background: Tensor, rain: Tensor, rainy: Tensor) -> Tensor:
    """MSE between the recomposed image B + R and the rainy input O."""
    return F.mse_loss((background + rain).float(), rainy.float())


def sparsity_loss(background: Tensor, rainy: Tensor) -> Tensor:
    """Mean absolute rain residual |O - B|, which keeps the rain layer sparse."""
    return (rainy.float() - background.float()).abs().mean()


def supervised_contrastive(
    z: Tensor,
    labels: Tensor,
    temperatures: tuple[float, float] = (0.07, 0.07),
    anchor_weights: tuple[float, float] = (1.0, 1.0),
    base_temperature: float = 0.07,
) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out) with per-class anchor temperature and weight.

    ``z``: (B, N, D) L2-normalised embeddings; ``labels``: (N,) or (B, N) integer classes 0 / 1
    (0 = background, 1 = rain). Every anchor i is pulled towards the other samples of its class
    and pushed from the rest, with logits z_i . z_j / tau_{y_i}; its loss is scaled by
    tau_{y_i} / base_temperature as in the reference formulation. Anchors are averaged with weight
    w_{y_i}, then over the batch. Equal temperatures and weights give the symmetric (CVPR) loss.
    """
    z = z.float()
    b, n, _ = z.shape
    if labels.dim() == 1:
        labels = labels[None].expand(b, n)
    labels = labels.to(z.device).long()
    temps = torch.tensor(temperatures, dtype=z.dtype, device=z.device)[labels]  # B x N
    weights = torch.tensor(anchor_weights, dtype=z.dtype, device=z.device)[labels]
    logits = torch.bmm(z, z.transpose(1, 2)) / temps[..., None]
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)[None]
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=2, keepdim=True)
    pos = (labels[:, :, None] == labels[:, None, :]) & ~self_mask
    n_pos = pos.sum(2).clamp(min=1)
    mean_log_pos = log_prob.masked_fill(~pos, 0.0).sum(2) / n_pos
    per_anchor = -(temps / base_temperature) * mean_log_pos  # B x N
    return ((per_anchor * weights).sum(1) / weights.sum(1)).mean()


def patch_nce(query: Tensor, key: Tensor, temperature: float = 0.07) -> Tensor:
    """PatchNCE: query i's positive is key i, its negatives the other keys of the same image.

    ``query``, ``key``: (B, N, D) L2-normalised; keys are detached. Returns the mean cross-entropy
    over the B x N queries.
    """
    query = query.float()
    key = key.detach().float()
    logits = torch.bmm(query, key.transpose(1, 2)) / temperature  # B x N x N, positives on the diagonal
    b, n, _ = logits.shape
    target = torch.arange(n, device=logits.device).expand(b, n)
    return F.cross_entropy(logits.reshape(b * n, n), target.reshape(-1))
