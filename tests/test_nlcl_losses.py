"""Layer contrast (supervised contrastive) and location contrast (PatchNCE) vs direct loop references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nlcl import NLCLConfig
from nlcl.losses import patch_nce, supervised_contrastive


def supcon_reference(z, labels, temps, weights, base):
    """Khosla et al. L_out written out with loops, per-class anchor temperature and weight."""
    total = 0.0
    for b in range(z.shape[0]):
        num, den = 0.0, 0.0
        for i in range(z.shape[1]):
            tau = temps[labels[i]]
            sims = [float(z[b, i] @ z[b, a]) / tau for a in range(z.shape[1])]
            denom = sum(math.exp(s) for a, s in enumerate(sims) if a != i)
            pos = [a for a in range(z.shape[1]) if a != i and labels[a] == labels[i]]
            li = -sum(sims[p] - math.log(denom) for p in pos) / len(pos) * (tau / base)
            num += weights[labels[i]] * li
            den += weights[labels[i]]
        total += num / den
    return total / z.shape[0]


def patch_nce_reference(q, k, tau):
    """Cross-entropy of each query against all keys of its image, the positive being the same index."""
    total, count = 0.0, 0
    for b in range(q.shape[0]):
        for i in range(q.shape[1]):
            logits = [float(q[b, i] @ k[b, j]) / tau for j in range(k.shape[1])]
            total += -(logits[i] - math.log(sum(math.exp(v) for v in logits)))
            count += 1
    return total / count


@pytest.mark.parametrize("temps,weights", [((0.07, 0.07), (1.0, 1.0)), ((0.1, 0.04), (2.0, 0.5))])
def test_supervised_contrastive_matches_reference(temps, weights) -> None:
    gen = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(2, 9, 6, generator=gen, dtype=torch.float64), dim=-1)
    labels = [0, 0, 0, 1, 1, 1, 1, 1, 1]
    got = supervised_contrastive(z, torch.tensor(labels), temps, weights, base_temperature=0.07)
    want = supcon_reference(z, labels, temps, weights, 0.07)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_patch_nce_matches_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(2, 7, 5, generator=gen), dim=-1)
    k = F.normalize(torch.randn(2, 7, 5, generator=gen), dim=-1)
    got = patch_nce(q, k, 0.07)
    assert float(got) == pytest.approx(patch_nce_reference(q.double(), k.double(), 0.07), rel=1e-5)


def test_patch_nce_keys_get_no_gradient() -> None:
    q = F.normalize(torch.randn(1, 5, 4), dim=-1).requires_grad_()
    k = F.normalize(torch.randn(1, 5, 4), dim=-1).requires_grad_()
    patch_nce(q, k).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None


def test_asymmetric_with_equal_temperatures_is_symmetric() -> None:
    sym = NLCLConfig(variant="symmetric")
    asym = NLCLConfig(variant="asymmetric", tau_b=sym.tau, tau_r=sym.tau)
    assert asym.temperatures == sym.temperatures and asym.anchor_weights == sym.anchor_weights
    z = F.normalize(torch.randn(3, 10, 8), dim=-1)
    labels = torch.tensor([0, 0, 1, 1, 1, 1, 1, 1, 1, 1])
    a = supervised_contrastive(z, labels, asym.temperatures, asym.anchor_weights, asym.base_temperature)
    s = supervised_contrastive(z, labels, sym.temperatures, sym.anchor_weights, sym.base_temperature)
    assert torch.equal(a, s)


def test_asymmetric_defaults_pull_rain_tighter() -> None:
    tau_b, tau_r = NLCLConfig(variant="asymmetric").temperatures
    assert tau_r < tau_b


def test_config_round_trip_and_validation() -> None:
    cfg = NLCLConfig(variant="asymmetric", k_neg=64, nce_layers=(0, 4))
    assert NLCLConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="variant"):
        NLCLConfig(variant="nope")
    with pytest.raises(ValueError, match="unknown keys"):
        NLCLConfig.from_dict({"bogus": 1})
