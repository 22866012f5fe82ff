"""Intrinsic-dimension estimators recover known dimensions; non-local background vs rain patches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nlcl import estimate_intrinsic_dim, levina_bickel, two_nn


@pytest.mark.parametrize("dim", [2, 6])
def test_estimators_recover_the_dimension_of_a_linear_manifold(dim: int) -> None:
    gen = torch.Generator().manual_seed(dim)
    latent = torch.rand(3, 800, dim, generator=gen)
    basis = torch.linalg.qr(torch.randn(40, dim, generator=gen)).Q.T  # dim x 40, orthonormal rows
    points = latent @ basis
    for est in (levina_bickel(points, k=10), two_nn(points)):
        assert est.shape == (3,)
        assert torch.all((est > 0.75 * dim) & (est < 1.25 * dim)), est


def test_background_texture_has_higher_id_than_streaks() -> None:
    gen = torch.Generator().manual_seed(0)
    # background: smooth random texture; rain: parallel thin bright streaks
    bg = F.avg_pool2d(torch.rand(1, 3, 100, 100, generator=gen), 5, 1, 2)[0]
    rain = torch.zeros(100, 100)
    for _ in range(60):
        x, y, length = (int(v) for v in torch.randint(0, 100, (3,), generator=gen))
        rain[y : y + 10 + length // 5, x] = 0.5
    rainy = (bg + rain).clamp(0, 1)
    rep = estimate_intrinsic_dim(rainy, rain_layers=rainy - bg, groups_per_image=6, group_size=96)
    assert rep.decomposition == "given"
    assert rep.background_id > rep.rain_id
    low = estimate_intrinsic_dim(rainy, groups_per_image=4, group_size=64)
    assert low.decomposition == "lowpass" and low.n_background_groups > 0


def test_bad_estimator_is_rejected() -> None:
    with pytest.raises(ValueError, match="estimator"):
        estimate_intrinsic_dim(torch.rand(3, 40, 40), estimator="pca")
