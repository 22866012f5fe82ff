"""The generator is the authors' released architecture: pinned by an independent functional forward.

The authors' ``ResBlock`` is two ``Conv2dBlock(..., pad_type="zero")`` units (ZeroPad2d(1), 3x3 conv,
InstanceNorm without affine, ReLU on the first only) plus the skip; the tail block is conv-IN-ReLU-conv
without skip; every other conv uses ``padding=1``. The forward below is written from that description
with ``torch.nn.functional`` only, so a padding or ordering change in ``nlcl.networks`` fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_nlcl_checkpoint import released_state_dict

from nlcl import Generator, NLCLConfig, NLCLTrainer, load_generator, save_generator


def functional_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, n_blocks: int = 16) -> torch.Tensor:
    """The released generator, from its state dict, with zero padding everywhere."""

    def conv(h: torch.Tensor, key: str) -> torch.Tensor:
        return F.conv2d(h, sd[f"{key}.weight"], sd[f"{key}.bias"], padding=1)

    def inorm(h: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(h, eps=1e-5)

    h = conv(x, "gen.0")
    for i in range(1, n_blocks + 1):
        r = F.relu(inorm(conv(h, f"gen.{i}.model.0.conv")))
        r = inorm(conv(r, f"gen.{i}.model.1.conv"))
        h = h + r
    t = n_blocks + 1
    h = conv(F.relu(inorm(conv(h, f"gen.{t}.conv.0"))), f"gen.{t}.conv.3")
    return conv(h, f"gen.{t + 1}")


def test_generator_equals_the_released_architecture_on_an_odd_non_square_input(tmp_path: Path) -> None:
    sd = released_state_dict(seed=3)
    path = tmp_path / "latest_net_Back.pth"
    torch.save(sd, path)
    g = load_generator(path)
    assert g.padding == "zero"
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        ours, ref = g(x), functional_forward(sd, x)
    assert (ours - ref).abs().max().item() < 1e-6
    # the reflection option is a different function at the borders, so the check above can fail
    reflect = Generator(padding="reflect")
    reflect.load_state_dict(sd)
    with torch.no_grad():
        assert (reflect.eval()(x) - ref).abs().max().item() > 1e-3


def test_padding_mode_is_stored_in_checkpoints_and_defaults_to_zero(tmp_path: Path) -> None:
    g = Generator(ngf=8, n_blocks=2, padding="reflect")
    save_generator(g, tmp_path / "reflect.pt")
    assert load_generator(tmp_path / "reflect.pt").padding == "reflect"
    # a generator file written before the option existed says nothing: zero-padded
    legacy = {"format": "nlcl-generator", "ngf": 8, "n_blocks": 2, "residual": False, "state_dict": g.state_dict()}
    torch.save(legacy, tmp_path / "legacy.pt")
    assert load_generator(tmp_path / "legacy.pt").padding == "zero"
    cfg = NLCLConfig(ngf=8, n_blocks=2, nce_layers=(0, 2), g_padding="reflect")
    trainer = NLCLTrainer(cfg)
    assert trainer.G_B.padding == trainer.G_R.padding == "reflect"
    assert NLCLConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "g_padding"}).g_padding == "zero"
    with pytest.raises(ValueError, match="g_padding"):
        NLCLConfig(g_padding="circular")
