"""The method registry and the Method base class: names, configs, weights, checkpoints, tiling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest
import torch

import baselines
from baselines import Method, MethodError, MethodInfo, register
from baselines.registry import unregister


def _info(name: str, **kw) -> MethodInfo:
    base = dict(name=name, kind="supervised", paper="test", year=2024, code_license="MIT", weights_license=None,
                learns_from="paired", needs_weights=True, devices=("cpu",), summary="test method")
    base.update(kw)
    return MethodInfo(**base)


class _Scale(Method):
    """A learnable per-channel gain and bias; ``width`` changes the network's shape."""

    @dataclass(frozen=True)
    class Config:
        width: int = 3
        lr: float = 0.1
        seed: int = 0

    def setup(self) -> None:
        torch.manual_seed(self.config.seed)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, self.config.width, 1), torch.nn.Conv2d(self.config.width, 3, 1))

    def networks(self):
        return {"net": self.net}

    def _derain(self, batch):
        return self.net(batch)

    def _fit(self, *, rainy, clean, pairs, iters, out, resume, on_log):
        self.net.train()
        pairs = list(pairs)
        for step in range(iters or 20):
            r, c = pairs[step % len(pairs)]
            loss = (self.net(r[None]) - c[None]).pow(2).mean()
            self.net.zero_grad()
            loss.backward()
            with torch.no_grad():  # plain SGD (torch.optim's first import is slow)
                for p in self.net.parameters():
                    p -= self.config.lr * p.grad
            if on_log:
                on_log({"step": step, "loss": loss.item()})
        return {"loss": loss.item()}


@pytest.fixture
def scale_method():
    cls = register(_info("test-scale"))(type("ScaleMethod", (_Scale,), {}))
    yield cls
    unregister("test-scale")


def _pairs(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = [torch.rand(3, 16, 16, generator=g) * 0.8 for _ in range(n)]
    return [((c + 0.2).clamp(0, 1), c) for c in clean]


def test_builtins_registered_with_metadata():
    names = baselines.available()
    assert {"identity", "guided", "gmm"} <= set(names)
    assert names == sorted(names)
    info = baselines.info("gmm")
    assert info.kind == "prior" and info.learns_from == "none" and not info.needs_weights
    assert info.year == 2016 and "cpu" in info.devices
    assert baselines.info("identity").kind == "reference"


def test_unknown_name_lists_valid_names():
    with pytest.raises(MethodError) as err:
        baselines.create("no-such-method")
    assert "no-such-method" in str(err.value)
    for name in ("identity", "guided", "gmm"):
        assert name in str(err.value)


def test_bad_config_key_names_it_and_lists_valid_options():
    with pytest.raises(MethodError) as err:
        baselines.create("guided", radiuss=3)
    message = str(err.value)
    assert "radiuss" in message and "radius: int" in message and "eps: float" in message


def test_config_values_are_type_checked_and_cli_strings_coerced():
    m = baselines.create("guided", radius="5", eps="0.05", strength=1)
    assert m.config.radius == 5 and m.config.eps == 0.05 and isinstance(m.config.strength, float)
    for bad in ({"radius": 1.5}, {"radius": "five"}, {"radius": True}, {"eps": "x"}, {"radius": -1}):
        with pytest.raises(MethodError, match="valid options"):
            baselines.create("guided", **bad)


def test_duplicate_registration_is_refused(scale_method):
    with pytest.raises(MethodError, match="already registered"):
        register(_info("test-scale"))(type("Other", (_Scale,), {}))


def test_register_requires_a_method_with_a_dataclass_config():
    with pytest.raises(MethodError):
        register(_info("test-not-a-method"))(type("Plain", (), {}))
    assert "test-not-a-method" not in baselines.available()


def test_invalid_metadata_is_refused():
    with pytest.raises(MethodError, match="kind"):
        _info("x", kind="magic")
    with pytest.raises(MethodError, match="learns_from"):
        _info("x", learns_from="everything")


def test_missing_weights_fail_at_derain_not_create(scale_method):
    m = baselines.create("test-scale")
    with pytest.raises(MethodError) as err:
        m.derain(torch.rand(1, 3, 8, 8))
    assert "--weights" in str(err.value) and "rainbench train --method test-scale" in str(err.value)

    # After fit, derain runs what was learnt: the training pairs' rainy side is 0.2 brighter, and
    # held-out rainy images come out with that brightness removed.
    logs = []
    m = baselines.create("test-scale", lr=0.5)
    summary = m.fit(pairs=_pairs(), iters=100, on_log=logs.append)
    assert len(logs) == 100 and summary["loss"] < logs[0]["loss"] / 10
    held_out = _pairs(n=3, seed=7)
    rainy, clean = torch.stack([r for r, _ in held_out]), torch.stack([c for _, c in held_out])
    out = m.derain(rainy)
    assert out.shape == rainy.shape
    assert (rainy - clean).mean() > 0.19 and (out - clean).mean().abs() < 0.02
    assert (out - clean).pow(2).mean() < (rainy - clean).pow(2).mean() / 5


def test_fit_is_a_noop_for_prior_methods():
    m = baselines.create("guided")
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    before, hash_before = m.derain(x), m.config_hash
    assert m.fit(rainy=[torch.rand(3, 24, 24)], clean=[torch.rand(3, 24, 24)], iters=5) == {}
    assert m.config_hash == hash_before and torch.equal(m.derain(x), before)


def test_fit_checks_the_kind_of_data(scale_method):
    m = baselines.create("test-scale")
    with pytest.raises(MethodError, match="paired"):
        m.fit(rainy=[torch.rand(3, 8, 8)])


def test_save_load_roundtrip_restores_outputs_config_and_hash(scale_method, tmp_path):
    m = baselines.create("test-scale", width=5)
    m.fit(pairs=_pairs(), iters=10)
    x = torch.rand(1, 3, 12, 12)
    expected = m.derain(x)
    path = m.save(tmp_path / "w" / "scale.pt")
    # A fresh method with default width picks up the saved width from the checkpoint.
    loaded = baselines.create("test-scale", weights=path)
    assert loaded.config.width == 5
    assert torch.equal(loaded.derain(x), expected)
    assert loaded.config_hash == m.config_hash
    # Different weights, same config -> different hash.
    other = baselines.create("test-scale", width=5)
    other.fit(pairs=_pairs(seed=1), iters=3)
    assert other.config_hash != loaded.config_hash
    # An explicitly given option wins over the saved one (and then the weights do not fit).
    with pytest.raises(MethodError, match="do not fit"):
        baselines.create("test-scale", weights=path, width=7)


def test_load_rejects_other_methods_and_foreign_files(scale_method, tmp_path):
    path = baselines.create("guided").save(tmp_path / "guided.pt")
    with pytest.raises(MethodError, match="for method 'guided'"):
        baselines.create("test-scale", weights=path)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MethodError, match="junk.bin"):
        baselines.create("test-scale", weights=junk)
    with pytest.raises(MethodError, match="not found"):
        baselines.create("test-scale", weights=tmp_path / "missing.pt")


def test_config_hash_depends_on_name_and_config_only():
    a, b = baselines.create("guided"), baselines.create("guided")
    assert a.config_hash == b.config_hash and len(a.config_hash) == 16
    assert baselines.create("guided", radius=4).config_hash != a.config_hash
    assert baselines.create("identity").config_hash != a.config_hash


def test_derain_validates_its_input():
    m = baselines.create("identity")
    for bad in (torch.rand(3, 8, 8), torch.rand(1, 1, 8, 8), torch.rand(1, 3, 8, 8) * 2,
                torch.full((1, 3, 8, 8), float("nan")), torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "image"):
        with pytest.raises(MethodError):
            m.derain(bad)


def test_derain_tiles_large_inputs_and_pads_to_the_multiple():
    seen = []

    @dataclass(frozen=True)
    class NoOptions:
        pass

    @register(_info("test-tiled", kind="prior", learns_from="none", needs_weights=False, multiple=8, tile=32))
    class Tiled(Method):
        Config = NoOptions

        def _derain(self, batch):
            seen.append(tuple(batch.shape[-2:]))
            return 1.0 - batch

    try:
        m = baselines.create("test-tiled")
        x = torch.rand(2, 3, 70, 45)
        out = m.derain(x)
        assert out.shape == x.shape and torch.allclose(out, 1.0 - x, atol=1e-6)
        assert len(seen) > 1 and all(h <= 32 and w <= 32 and h % 8 == 0 and w % 8 == 0 for h, w in seen)
        seen.clear()
        m.tile = 0  # never tile: one call on the padded image
        assert torch.allclose(m.derain(x), 1.0 - x, atol=1e-6)
        assert seen == [(72, 48)]
    finally:
        unregister("test-tiled")


@pytest.fixture
def overshoot():
    """A method that returns float32 values far outside [0, 1], recording the device it ran on."""
    seen = []

    @register(_info("test-overshoot", kind="prior", learns_from="none", needs_weights=False))
    class Overshoot(Method):
        def _derain(self, batch):
            seen.append(batch.device)
            return batch.float() * 3 - 1

    yield seen
    unregister("test-overshoot")


def test_outputs_are_clamped_and_keep_dtype(overshoot):
    x = torch.rand(1, 3, 24, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    raw = x.float() * 3 - 1
    assert raw.min() < -0.5 and raw.max() > 1.5  # the method really overshoots
    out = baselines.create("test-overshoot").derain(x)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, raw.double().clamp(0, 1))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_method_on_cuda_returns_outputs_on_the_inputs_device(overshoot):
    x = torch.rand(2, 3, 24, 24)
    out = baselines.create("test-overshoot", device="cuda").derain(x)
    assert [d.type for d in overshoot] == ["cuda"] and out.device == x.device
    torch.testing.assert_close(out, (x * 3 - 1).clamp(0, 1))


def test_cli_strings_coerce_to_bool_literal_optional_and_tuple_fields():
    @dataclass(frozen=True)
    class Rich:
        flag: bool = False
        mode: Literal["fast", "slow"] = "fast"
        limit: int | None = None
        sizes: tuple[int, ...] = (1, 2)

    @register(_info("test-rich", kind="prior", learns_from="none", needs_weights=False))
    class RichMethod(Method):
        Config = Rich

        def _derain(self, batch):
            return batch

    try:
        m = baselines.create("test-rich", flag="yes", mode="slow", limit="none", sizes="3,4")
        assert m.config == Rich(flag=True, mode="slow", limit=None, sizes=(3, 4))
        assert baselines.create("test-rich", limit="7").config.limit == 7
        for bad in ({"flag": "maybe"}, {"mode": "medium"}, {"limit": "lots"}, {"sizes": "3,x"}):
            with pytest.raises(MethodError, match=next(iter(bad))):
                baselines.create("test-rich", **bad)
    finally:
        unregister("test-rich")
