"""Trainer: every parameter group learns, the bug-compatible flag freezes the heads, resume is exact."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from nlcl import NLCLConfig, NLCLTrainer

# A small network with the method's full structure (all losses, heads and levels), so steps are cheap.
SMALL = NLCLConfig(ngf=8, n_blocks=4, ndf=16, head_dim=32, k_neg=32, num_patches=64, nce_layers=(0, 2, 4))


def images(seed: int, n: int, size: tuple[int, int]) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(3, *size, generator=gen) for _ in range(n)]


def snapshot(trainer: NLCLTrainer) -> dict[str, dict[str, torch.Tensor]]:
    return {name: {k: v.detach().clone() for k, v in m.state_dict().items()} for name, m in trainer.modules().items()}


def one_step(cfg: NLCLConfig) -> tuple[NLCLTrainer, dict, dict]:
    trainer = NLCLTrainer(cfg, seed=3)
    before = snapshot(trainer)
    out = trainer.fit(images(0, 2, (50, 60)), images(1, 2, (44, 70)), iters=1, crop=40, batch_size=2)
    return trainer, before, out


def test_one_step_updates_every_group_and_head() -> None:
    trainer, before, out = one_step(SMALL)
    assert set(out["losses"]) >= {"D", "G_gan", "layer", "location", "nce", "nce_idt", "consistency", "sparsity"}
    after = snapshot(trainer)
    for name, module in trainer.modules().items():
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name
        changed = [not torch.equal(before[name][k], after[name][k]) for k in before[name]]
        assert any(changed), name
    for name in ("location_heads", "layer_heads"):
        # every head tensor has its own gradient and moved
        for k in before[name]:
            assert not torch.equal(before[name][k], after[name][k]), f"{name}.{k}"
        assert all(float(p.grad.abs().sum()) > 0 for p in trainer.modules()[name].parameters()), name


def test_bug_compatible_flag_leaves_heads_untouched() -> None:
    trainer, before, _ = one_step(dataclasses.replace(SMALL, bug_compat_heads=True))
    after = snapshot(trainer)
    for name in ("location_heads", "layer_heads"):
        assert all(torch.equal(before[name][k], after[name][k]) for k in before[name]), name
    assert any(not torch.equal(before["G_B"][k], after["G_B"][k]) for k in before["G_B"])


def test_asymmetric_equal_temperatures_trains_like_symmetric() -> None:
    asym = dataclasses.replace(SMALL, variant="asymmetric", tau_b=SMALL.tau, tau_r=SMALL.tau)
    t_sym, _, out_sym = one_step(SMALL)
    t_asym, _, out_asym = one_step(asym)
    assert out_sym["losses"] == out_asym["losses"]
    assert all(torch.equal(a, b) for a, b in zip(t_sym.G_B.parameters(), t_asym.G_B.parameters()))


def test_asymmetric_default_changes_the_layer_loss() -> None:
    _, _, out_sym = one_step(SMALL)
    _, _, out_asym = one_step(dataclasses.replace(SMALL, variant="asymmetric"))
    assert out_sym["losses"]["layer"] != out_asym["losses"]["layer"]
    assert out_sym["losses"]["consistency"] == out_asym["losses"]["consistency"]


class Interrupt(Exception):
    pass


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    rainy, clean = images(0, 3, (48, 52)), images(1, 2, (60, 40))
    kw = {"iters": 4, "crop": 40, "batch_size": 2, "log_every": 1}
    straight = NLCLTrainer(SMALL, seed=5)
    logs_straight: dict[int, dict] = {}
    straight.fit(rainy, clean, on_log=lambda s, d: logs_straight.__setitem__(s, d), **kw)

    ckpt = tmp_path / "run" / "state.pt"
    def crash(step: int, _: dict) -> None:
        if step == 2:
            raise Interrupt
    first = NLCLTrainer(SMALL, seed=5)
    with pytest.raises(Interrupt):
        first.fit(rainy, clean, checkpoint_path=ckpt, checkpoint_every=2, on_log=crash, **kw)
    torch.manual_seed(1234)  # resuming must not depend on the global RNG at restart
    resumed = NLCLTrainer(SMALL, seed=99)
    logs_resumed: dict[int, dict] = {}
    resumed.fit(rainy, clean, checkpoint_path=ckpt, resume=True, on_log=lambda s, d: logs_resumed.__setitem__(s, d), **kw)
    assert resumed.step == 4
    assert logs_resumed[3] == logs_straight[3] and logs_resumed[4] == logs_straight[4]
    a, b = snapshot(straight), snapshot(resumed)
    for name in a:
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), f"{name}.{k}"
    for (n, o1), o2 in zip(straight.optimizers().items(), resumed.optimizers().values()):
        s1, s2 = o1.state_dict()["state"], o2.state_dict()["state"]
        assert all(torch.equal(s1[i]["exp_avg"], s2[i]["exp_avg"]) for i in s1), n


def test_small_images_are_upsampled_and_bad_input_is_named() -> None:
    trainer = NLCLTrainer(SMALL, seed=0)
    trainer.fit(images(0, 1, (20, 30)), images(1, 1, (41, 12)), iters=1, crop=40)
    assert trainer.step == 1
    with pytest.raises(ValueError, match="rainy"):
        NLCLTrainer(SMALL).fit([torch.rand(1, 40, 40)], images(1, 1, (40, 40)), iters=1, crop=40)


def test_activation_checkpointing_gives_the_same_step() -> None:
    plain, _, out_plain = one_step(SMALL)
    ckpt, _, out_ckpt = one_step(dataclasses.replace(SMALL, checkpoint_activations=True))
    assert out_ckpt["losses"] == pytest.approx(out_plain["losses"], rel=1e-5)
    for a, b in zip(plain.G_B.parameters(), ckpt.G_B.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_identity_term_keeps_clean_images_unchanged() -> None:
    """lambda_identity penalises |G_B(clean) - clean|: trained with it, a residual G_B drifts far less from identity."""
    clean = images(1, 2, (44, 70))
    probe = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(9)) * 2 - 1

    def drift(weight: float) -> tuple[float, dict[str, float]]:
        cfg = dataclasses.replace(SMALL, nce_identity=False, lambda_identity=weight, lr=2e-3, residual=True)
        trainer = NLCLTrainer(cfg, seed=3)
        out = trainer.fit(images(0, 2, (50, 60)), clean, iters=12, crop=40, batch_size=2, log_every=12)
        with torch.no_grad():
            return float((trainer.G_B.eval()(probe) - probe).abs().mean()), out["losses"]

    free, losses_free = drift(0.0)
    held, losses_held = drift(10.0)
    assert losses_free["identity"] == 0.0 and losses_held["identity"] > 0.0
    assert held < 0.5 * free


def test_discriminator_without_norm_has_the_released_keys_and_no_instance_norm() -> None:
    """d_norm='none' drops InstanceNorm only: same parameters (IN has none), so D states load either way."""
    plain = NLCLTrainer(dataclasses.replace(SMALL, d_norm="none"), seed=0).D
    released = NLCLTrainer(SMALL, seed=0).D
    assert not any(isinstance(m, torch.nn.InstanceNorm2d) for m in plain.modules())
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in released.modules())
    plain.load_state_dict(released.state_dict())
    with pytest.raises(ValueError, match="d_norm"):
        NLCLConfig(d_norm="batch")
