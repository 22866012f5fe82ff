"""Weights: the authors' released layout and our own files load with one call; derain's contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nlcl import NLCLConfig, NLCLTrainer, derain, load_generator, save_generator


def released_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with exactly the released key layout and shapes, written out by hand."""
    gen = torch.Generator().manual_seed(seed)

    def conv(cin: int, cout: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(cout, cin, 3, 3, generator=gen) * 0.05, torch.randn(cout, generator=gen) * 0.01

    sd: dict[str, torch.Tensor] = {}
    sd["gen.0.weight"], sd["gen.0.bias"] = conv(3, 32)
    for i in range(1, 17):
        for u in (0, 1):
            sd[f"gen.{i}.model.{u}.conv.weight"], sd[f"gen.{i}.model.{u}.conv.bias"] = conv(32, 32)
    for u in (0, 3):
        sd[f"gen.17.conv.{u}.weight"], sd[f"gen.17.conv.{u}.bias"] = conv(32, 32)
    sd["gen.18.weight"], sd["gen.18.bias"] = conv(32, 3)
    return sd


def test_released_checkpoint_loads_and_round_trips(tmp_path: Path) -> None:
    sd = released_state_dict()
    assert len(sd) == 2 + 16 * 4 + 4 + 2
    path = tmp_path / "latest_net_Back.pth"
    torch.save(sd, path)
    g = load_generator(path)
    assert not g.training
    assert sum(p.numel() for p in g.parameters()) == 316195  # "about 316k parameters"
    loaded = g.state_dict()
    assert set(loaded) == set(sd)
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)
    ours = tmp_path / "ours.pt"
    save_generator(g, ours)
    again = load_generator(ours)
    x = torch.rand(1, 3, 24, 20)
    assert torch.equal(derain(g, x), derain(again, x))
    # DataParallel-style prefix from a wrapped model
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "wrapped.pth")
    assert torch.equal(load_generator(tmp_path / "wrapped.pth").gen[18].weight, sd["gen.18.weight"])


def test_foreign_or_mismatched_weights_are_named(tmp_path: Path) -> None:
    sd = released_state_dict()
    del sd["gen.17.conv.3.bias"]
    bad = tmp_path / "broken.pth"
    torch.save(sd, bad)
    with pytest.raises(ValueError, match="broken.pth"):
        load_generator(bad)
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="other.pth"):
        load_generator(other)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_generator(tmp_path / "missing.pth")


def test_trainer_checkpoint_gives_either_generator(tmp_path: Path) -> None:
    cfg = NLCLConfig(ngf=8, n_blocks=2, nce_layers=(0, 2))
    trainer = NLCLTrainer(cfg, seed=0)
    path = tmp_path / "state.pt"
    trainer.save(path)
    for which, module in (("background", trainer.G_B), ("rain", trainer.G_R)):
        g = load_generator(path, which=which)
        assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), module.state_dict().values()))
    with pytest.raises(ValueError, match="which"):
        load_generator(path, which="both")


def test_derain_shape_range_padding_and_8bit_convention() -> None:
    sd = released_state_dict(1)
    from nlcl.checkpoint import generator_from_state_dict

    g = generator_from_state_dict(sd).eval()
    seen: list[tuple[int, int]] = []
    g.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape[-2:])))
    x = torch.rand(2, 3, 37, 53)
    assert derain(g, x).shape == x.shape and seen == [(37, 53)]  # full resolution: no padding by default
    seen.clear()
    y = derain(g, x, multiple=4)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert seen == [(40, 56)]
    with torch.no_grad():
        ref = g(F.pad(x * 2 - 1, (0, 3, 0, 3), mode="reflect"))[..., :37, :53]
    assert torch.allclose(y, ((ref + 1) / 2).clamp(0, 1), atol=1e-6)
    eight_bit = torch.round(torch.clamp((ref + 1) / 2 * 255, 0, 255))
    assert torch.equal(torch.round(y * 255), eight_bit)
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        derain(g, torch.rand(3, 10, 10))


def test_residual_generator_starts_as_identity_and_round_trips(tmp_path: Path) -> None:
    cfg = NLCLConfig(ngf=8, n_blocks=2, nce_layers=(0, 2), residual=True)
    trainer = NLCLTrainer(cfg, seed=0)
    x = torch.rand(2, 3, 30, 26)
    # zero-initialised last conv: B_hat = O exactly before training, G_R is untouched
    assert torch.equal(derain(trainer.G_B, x), x)
    assert not trainer.G_R.residual
    assert not torch.equal(derain(trainer.G_R, x), x)
    torch.nn.init.normal_(trainer.G_B.gen[-1].weight, 0.0, 0.05)
    out = derain(trainer.G_B, x)
    direct = derain(trainer.G_B.gen, x)  # the same weights without the skip
    assert not torch.equal(out, x)
    assert torch.allclose(out, (x + direct - 0.5).clamp(0, 1), atol=1e-5)  # B = O + G(O) in [-1, 1]
    state, weights = tmp_path / "state.pt", tmp_path / "g.pt"
    trainer.save(state)
    save_generator(trainer.G_B, weights)
    for g in (load_generator(state), load_generator(weights)):
        assert g.residual
        assert torch.equal(derain(g, x), out)
    assert not load_generator(state, which="rain").residual
