"""Exact tiled inference: streamed InstanceNorm networks equal whole-image inference."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import baselines
import nlcl
from baselines import MethodError, MethodInfo, exact_tiling, register
from baselines.exact_tiling import (
    NotStreamable,
    Streamable,
    stream_apply,
    whole_image_bytes,
)
from baselines.method import Method
from baselines.registry import unregister

pytestmark = pytest.mark.usefixtures("one_thread")

TOLERANCE = 1e-4  # max abs difference in [0, 1], the acceptance bound


def generator(padding: str, residual: bool, ngf: int = 8, n_blocks: int = 2, seed: int = 0) -> nn.Module:
    """A random-weight generator; its last conv is randomised too, so a residual one is not the identity."""
    torch.manual_seed(seed)
    g = nlcl.Generator(ngf, n_blocks, residual=residual, padding=padding).eval()
    nn.init.normal_(g.gen[-1].weight, 0.0, 0.05)
    return g


def image(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def whole(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return network(x)


@pytest.mark.parametrize("padding", ["zero", "reflect"])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("store", ["memory", "disk"])
def test_streamed_generator_equals_whole_image(padding, residual, store, tmp_path):
    net = nlcl.UnitRange(generator(padding, residual))
    x = image(2, 3, 97, 131)  # batch 2, odd sizes, 32-pixel tiles that do not divide them
    out = stream_apply(net, x, tile=32, store=store, scratch_dir=tmp_path)
    ref = whole(net, x)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < TOLERANCE
    assert list(tmp_path.iterdir()) == []  # scratch maps are deleted


def test_blended_tiles_would_change_the_function():
    # Why the executor exists: the old tiler on the same network is off by far more than 1e-4.
    net = nlcl.UnitRange(generator("zero", True))
    x = image(1, 3, 97, 131)
    blended = baselines.tile_apply(net, x, tile=48, overlap=16)
    assert (blended - whole(net, x)).abs().max() > 10 * TOLERANCE


def test_default_size_generator_streams_exactly():
    net = nlcl.UnitRange(generator("zero", False, ngf=32, n_blocks=16))
    x = image(1, 3, 75, 140)
    assert (stream_apply(net, x, tile=40) - whole(net, x)).abs().max() < TOLERANCE


@pytest.mark.parametrize(("name", "padding"), [("nlcl", "zero"), ("cut", "reflect")])
def test_methods_tile_a_2000_by_1500_image_exactly(name, padding):
    method = baselines.create(name, ngf=4, n_blocks=2, nce_layers=(0, 2), residual=True, g_padding=padding)
    method.has_weights = True  # random weights
    nn.init.normal_(method.generator.gen[-1].weight, 0.0, 0.05)
    x = image(1, 3, 1500, 2000)
    method.tile = 0
    untiled = method.derain(x)
    method.tile = 512
    assert method._tiling(x)[:2] == ("exact", 512)
    tiled = method.derain(x)
    assert tiled.shape == x.shape
    assert (tiled - untiled).abs().max() < TOLERANCE
    assert (untiled - x).abs().mean() > 0.01  # the network does something


def test_tiles_on_the_device_are_bounded_by_the_tile(monkeypatch):
    sizes = []
    conv2d = F.conv2d

    def spy(values, *args, **kwargs):
        sizes.append(tuple(values.shape[-2:]))
        return conv2d(values, *args, **kwargs)

    monkeypatch.setattr(exact_tiling.F, "conv2d", spy)
    net = nlcl.UnitRange(generator("reflect", True))
    stream_apply(net, image(1, 3, 120, 150), tile=32)
    # A tile plus the halo of the convs since the last stored map: at most two (the tail's two
    # convs after its InstanceNorm), one pixel each side each.
    assert sizes and max(h for h, _ in sizes) == 32 + 4 and max(w for _, w in sizes) == 32 + 4


def test_a_general_norm_network_streams_exactly():
    torch.manual_seed(3)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 5, padding=2, padding_mode="reflect"),
        nn.InstanceNorm2d(6, affine=True),
        nn.LeakyReLU(0.2, inplace=True),
        nn.ReplicationPad2d(1),
        nn.Conv2d(6, 6, 3, groups=2),
        nn.InstanceNorm2d(6),
        nn.Tanh(),
        nn.Conv2d(6, 2, 3, padding=1),
    ).eval()
    nn.init.normal_(net[1].weight, 1.0, 0.3)
    nn.init.normal_(net[1].bias, 0.0, 0.3)
    x = image(3, 3, 45, 61)
    assert (stream_apply(net, x, tile=16) - whole(net, x)).abs().max() < TOLERANCE


class _Strided(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 3, 3, stride=2, padding=1)
        self.norm = nn.InstanceNorm2d(3)

    def forward(self, x):
        return self.norm(self.down(x))


@pytest.mark.parametrize(("network", "message"), [
    (_Strided(), "down: only stride-1"),
    (nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.GroupNorm(1, 3)), "GroupNorm does not stream"),
    (nn.Sequential(nn.Conv2d(3, 3, 3)), "changes the map size"),
    (nn.Sequential(nn.ReflectionPad2d(2), nn.Conv2d(3, 3, 3)), "changes the size"),
])
def test_unstreamable_networks_are_refused_naming_the_layer(network, message):
    with pytest.raises(NotStreamable, match=message):
        stream_apply(network, image(1, 3, 20, 20), tile=8)


@dataclass(frozen=True)
class _NoOptions:
    pass


def _register(name: str, network: nn.Module, streamable: bool):
    @register(MethodInfo(name=name, kind="prior", paper="test", year=None, code_license="MIT", weights_license=None,
                         learns_from="none", needs_weights=False, summary="test", tile=16))
    class _Net(Method):
        Config = _NoOptions

        def setup(self):
            self.net = network

        def networks(self):
            return {"net": self.net}

        def streamable_network(self):
            return Streamable(self.net) if streamable else None

        def _derain(self, batch):
            return self.net(batch)

    return baselines.create(name)


def test_an_unstreamable_norm_network_runs_whole_or_refuses_tiles():
    net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.GroupNorm(1, 3), nn.Sigmoid()).eval()
    x = image(1, 3, 40, 40)
    for name, streamable in (("test-unstreamable", True), ("test-nohook", False)):
        try:
            method = _register(name, net, streamable)
            method.tile = None  # default: whole, never silently tiled
            assert torch.allclose(method.derain(x), whole(net, x), atol=1e-6)
            method.tile = 16
            with pytest.raises(MethodError, match="cannot be tiled exactly"):
                method.derain(x)
        finally:
            unregister(name)


def test_default_runs_whole_when_it_fits_else_exact_tiles(monkeypatch):
    method = baselines.create("nlcl", ngf=4, n_blocks=1, nce_layers=(0, 2))
    method.has_weights = True
    assert method.tile is None and method.info.multiple == 1
    x = image(1, 3, 40, 50)
    monkeypatch.setattr(exact_tiling, "free_memory", lambda device: 10**12)
    assert method._tiling(x)[:2] == ("whole", 0)
    monkeypatch.setattr(exact_tiling, "free_memory", lambda device: whole_image_bytes(method.generator, x.shape) // 2)
    assert method._tiling(x)[:2] == ("whole", 0)  # not larger than one 512 tile
    big = image(1, 3, 40, 600)
    assert method._tiling(big)[:2] == ("exact", 512)
    method.tile = 0
    assert method._tiling(big)[:2] == ("whole", 0)
    method.tile = 32
    assert method._tiling(x)[:2] == ("exact", 32)


def test_whole_image_estimate_follows_the_widest_layer_and_the_pixels():
    small, wide = nlcl.Generator(8, 1), nlcl.Generator(32, 1)
    assert whole_image_bytes(wide, (1, 3, 100, 100)) == 4 * whole_image_bytes(small, (1, 3, 100, 100))
    assert whole_image_bytes(small, (2, 3, 200, 100)) == 4 * whole_image_bytes(small, (1, 3, 100, 100))
    assert exact_tiling.free_memory("cpu") > 0


def test_tile_option_reaches_the_method_and_help_says_the_default():
    from click.testing import CliRunner

    from rainbench.cli import cli
    from rainbench.runner import MethodRequest, prepare_method

    prepared = prepare_method(MethodRequest("guided", tile=7), "cpu")
    assert prepared.model.tile == 7 and prepared.request["tile"] == 7
    assert prepare_method(MethodRequest("guided"), "cpu").model.tile == baselines.info("guided").tile
    for verb in ("derain", "run"):
        text = " ".join(CliRunner().invoke(cli, [verb, "--help"]).output.split())
        assert "run the whole image when its activations fit in free RAM / VRAM" in text, verb
