"""Learnable methods (prenet, nlcl, cut): determinism, exact resume, exact save/load, weight formats.

Networks are shrunk (PReNet 2 stages, NLCL/CUT 8 channels and 2 blocks) and crops are tiny so the
whole file runs in seconds; that the full-size methods actually derain is measured by
``benchmarks/learnable_derains.py`` (figures in benchmarks/README.md). One test checks that a
short PReNet run beats the rainy input, and a brightness offset, on held-out pairs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import baselines
import nlcl
from baselines.cut import CUTTrainer
from baselines.prenet import PReNetNetwork, ssim
from collection.synth import add_rain

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "prenet": {"stages": 2, "crop": 24, "batch_size": 2, "loss": "mse"},
    "nlcl": {"ngf": 8, "n_blocks": 2, "ndf": 8, "n_layers_d": 2, "head_dim": 16, "nce_layers": (0, 1, 2),
             "layer_levels": (0, 1, 2), "num_patches": 32, "k_neg": 16, "crop": 40, "batch_size": 2},
    "cut": {"ngf": 8, "n_blocks": 2, "ndf": 8, "n_layers_d": 2, "head_dim": 16, "nce_layers": (0, 1, 2),
            "num_patches": 32, "crop": 40, "batch_size": 2},
}


def scenes(count: int, size: int, seed: int) -> list[np.ndarray]:
    """Smooth random colour scenes with a few hard-edged rectangles (uint8 H x W x 3)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        coarse = torch.from_numpy(rng.random((1, 3, 6, 6), dtype=np.float32))
        img = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0] * 0.6 + 0.1
        for _ in range(3):
            y, x = rng.integers(0, size - 8, 2)
            img[:, y : y + 8, x : x + 12] = torch.from_numpy(rng.random((3, 1, 1), dtype=np.float32)) * 0.7
        out.append((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    return out


def tensor(im: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(im).permute(2, 0, 1).float() / 255.0


def rainy_pairs(count: int, size: int, seed: int, density: float = 4.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    pairs = []
    for i, clean in enumerate(scenes(count, size, seed)):
        rainy = add_rain(clean, "rain100l", seed=seed * 100 + i, density=density)[0]
        pairs.append((tensor(rainy), tensor(clean)))
    return pairs


def psnr_y(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of BT.601 limited-range Y of 8-bit-quantised images (3 x H x W in [0, 1])."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64)[:, None, None]
    ya = ((a.double() * 255).round() / 255 * w).sum(0) + 16
    yb = ((b.double() * 255).round() / 255 * w).sum(0) + 16
    return float(10 * torch.log10(255.0**2 / ((ya - yb) ** 2).mean()))


def fit(name: str, iters: int, seed: int = 0, out=None, resume: bool = False, on_log=None, **options):
    method = baselines.create(name, seed=seed, **{**TINY[name], **options})
    if name == "prenet":
        method.fit(pairs=rainy_pairs(3, 32, 1), iters=iters, out=out, resume=resume, on_log=on_log)
    else:
        rainy = [p[0] for p in rainy_pairs(2, 48, 2)]
        clean = [tensor(c) for c in scenes(2, 48, 3)]  # other scenes: truly unpaired
        method.fit(rainy=rainy, clean=clean, iters=iters, out=out, resume=resume, on_log=on_log)
    return method


def weights_of(method) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v for n, net in method.networks().items() for k, v in net.state_dict().items()}


def same_weights(a, b) -> bool:
    wa, wb = weights_of(a), weights_of(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


PROBE = torch.rand(1, 3, 36, 44, generator=torch.Generator().manual_seed(5))


# ----------------------------------------------------------------------------- shared properties
@pytest.mark.parametrize("name", ["prenet", "nlcl", "cut"])
def test_training_is_deterministic_for_a_seed(name):
    a, b, c = fit(name, 3, seed=0), fit(name, 3, seed=0), fit(name, 3, seed=1)
    assert same_weights(a, b)
    assert torch.equal(a.derain(PROBE), b.derain(PROBE))
    assert not same_weights(a, c)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("name", ["prenet", "nlcl", "cut"])
def test_interrupted_training_resumes_bit_identically(name, tmp_path):
    straight = fit(name, 5, checkpoint_every=2, log_every=3)

    def stop_at_3(values):
        if values["step"] == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(name, 5, out=tmp_path, on_log=stop_at_3, checkpoint_every=2, log_every=3)
    steps = []
    resumed = fit(name, 5, out=tmp_path, resume=True, on_log=lambda v: steps.append(v["step"]),
                  checkpoint_every=2, log_every=3)
    assert steps == [3, 5]  # continued from the step-2 checkpoint, not from scratch
    assert same_weights(straight, resumed)


@pytest.mark.parametrize("name", ["prenet", "nlcl", "cut"])
def test_save_load_reproduces_outputs_exactly(name, tmp_path):
    trained = fit(name, 2, out=tmp_path)
    expected = trained.derain(PROBE)
    trained.save(tmp_path / "weights.pt")
    for path in (tmp_path / "weights.pt", tmp_path / "checkpoint.pt"):
        loaded = baselines.create(name, weights=path)  # options come from the file
        assert torch.equal(loaded.derain(PROBE), expected), path
    assert baselines.create(name, weights=tmp_path / "weights.pt").config_hash == \
        baselines.create(name, weights=tmp_path / "weights.pt").config_hash


@pytest.mark.parametrize("name", ["prenet", "nlcl", "cut"])
def test_untrained_method_asks_for_weights(name):
    with pytest.raises(baselines.MethodError, match="needs weights"):
        baselines.create(name, **TINY[name]).derain(PROBE)


@pytest.mark.parametrize("name", ["prenet", "nlcl", "cut"])
def test_large_inputs_go_through_the_tiler(name, monkeypatch):
    method = fit(name, 1, tile=32)
    big = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(0))
    reads = []  # the spatial size of every convolution's input, whichever executor runs the network
    conv2d = F.conv2d

    def recording(x, *args, **kwargs):
        reads.append(tuple(x.shape[-2:]))
        return conv2d(x, *args, **kwargs)

    monkeypatch.setattr(F, "conv2d", recording)
    tiled = method.derain(big)
    tiled_reads = list(reads)
    reads.clear()
    method.tile = 0  # the same weights, whole image
    untiled = method.derain(big)
    # Tiled, no convolution ever sees more than a 32-pixel tile and its few pixels of halo...
    assert tiled_reads and max(max(size) for size in tiled_reads) <= 32 + 8
    # ...while the whole-image run convolves the whole (padded) 70 x 90 image.
    assert max(h for h, _ in reads) >= 70 and max(w for _, w in reads) >= 90
    assert tiled.shape == big.shape
    if name == "prenet":
        # Blended tiles: only the tiles' borders differ (padding sees a smaller image).
        assert not torch.equal(tiled, untiled)
        assert (tiled - untiled).abs().max() < 0.01
    else:
        # InstanceNorm generators are streamed exactly: tiling does not change the function.
        assert (tiled - untiled).abs().max() < 1e-5


# ----------------------------------------------------------------------------- PReNet
def test_prenet_has_the_published_size():
    net = baselines.create("prenet").networks()["net"]
    assert 0.16e6 < sum(p.numel() for p in net.parameters()) < 0.18e6  # "about 0.17M"


def test_prenet_training_improves_held_out_psnr():
    """A short run beats the rainy input on held-out pairs, and by more than undoing the rain's
    brightness would (the best global offset, chosen with the clean image): it removes streaks."""
    method = baselines.create("prenet", seed=0, **{**TINY["prenet"], "lr": 3e-3})
    method.fit(pairs=rainy_pairs(3, 32, 1, density=1.0), iters=100)
    test = rainy_pairs(2, 40, 9, density=1.0)
    rainy = np.mean([psnr_y(r, c) for r, c in test])
    offset = np.mean([psnr_y((r - (r - c).mean()).clamp(0, 1), c) for r, c in test])
    trained = np.mean([psnr_y(method.derain(r[None])[0], c) for r, c in test])
    assert trained > rainy + 4 and trained > offset + 1, (rainy, offset, trained)


def test_prenet_loads_authors_module_naming(tmp_path):
    torch.manual_seed(0)
    reference = PReNetNetwork(6)
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}  # saved from nn.DataParallel
    assert "module.conv0.0.weight" in state and "module.res_conv5.2.weight" in state and "module.conv.0.weight" in state
    torch.save(state, tmp_path / "net_latest.pth")
    method = baselines.create("prenet", weights=tmp_path / "net_latest.pth")
    with torch.no_grad():
        expected = reference(PROBE).clamp(0, 1)
    assert torch.equal(method.derain(PROBE), expected)

    del state["module.conv_i.0.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(baselines.MethodError, match="broken.pth.*conv_i.0.weight"):
        baselines.create("prenet", weights=tmp_path / "broken.pth")


def test_prenet_refuses_to_resume_with_other_options(tmp_path):
    fit("prenet", 2, out=tmp_path)
    with pytest.raises(baselines.MethodError, match="crop"):
        fit("prenet", 4, out=tmp_path, resume=True, crop=16)


def test_ssim_is_one_for_equal_images_and_falls_with_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    noisier = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert ssim(x, noisy) > ssim(x, noisier)
    assert ssim(x, noisy).item() == pytest.approx(ssim(noisy, x).item(), abs=1e-6)


# ----------------------------------------------------------------------------- NLCL and CUT
def test_nlcl_loads_the_released_generator_layout(tmp_path):
    torch.manual_seed(0)
    generator = nlcl.Generator(ngf=8, n_blocks=3)
    torch.save(generator.state_dict(), tmp_path / "latest_net_Back.pth")  # plain state dict, gen.* keys
    method = baselines.create("nlcl", weights=tmp_path / "latest_net_Back.pth")
    assert (method.config.ngf, method.config.n_blocks) == (8, 3)  # size read from the file
    assert torch.equal(method.derain(PROBE), nlcl.derain(generator.eval(), PROBE))


def test_nlcl_variant_is_an_option():
    assert baselines.create("nlcl", variant="asymmetric").nlcl_config().variant == "asymmetric"
    assert baselines.create("nlcl").nlcl_config().variant == "symmetric"
    with pytest.raises(baselines.MethodError, match="variant"):
        baselines.create("nlcl", variant="sideways")
    with pytest.raises(baselines.MethodError, match="lambda_layer"):
        baselines.create("cut", lambda_layer=1.0)  # not a CUT option: CUT has no layer contrast


def test_nlcl_logs_every_loss_term_and_cut_only_its_own():
    logs = {}
    for name in ("nlcl", "cut"):
        seen = []
        fit(name, 2, log_every=1, on_log=seen.append)
        logs[name] = set(seen[-1]) - {"step", "iters"}
    assert {"D", "G_gan", "layer", "location", "consistency", "sparsity"} <= logs["nlcl"]
    assert {"D", "G_gan", "location", "nce", "nce_idt"} <= logs["cut"]
    assert not {"layer", "consistency", "sparsity"} & logs["cut"]


@pytest.mark.parametrize("sampling", ["random", "nonlocal"])
def test_cut_trains_g_b_and_location_heads_only(sampling):
    method = baselines.create("cut", **TINY["cut"], sampling=sampling)
    trainer = method.make_trainer()
    assert isinstance(trainer, CUTTrainer) and trainer.cfg.lambda_layer == 0
    trainer.schedule = type(trainer.schedule)(constant=10, decay=0)  # fit() sets the schedule; a full rate here
    before = {name: [p.detach().clone() for p in m.parameters()] for name, m in trainer.modules().items()}
    g = torch.Generator().manual_seed(0)
    rainy, clean = torch.rand(2, 3, 40, 40, generator=g) * 2 - 1, torch.rand(2, 3, 40, 40, generator=g) * 2 - 1
    losses = trainer.train_step(rainy, clean)
    assert all(np.isfinite(v) for v in losses.values())
    changed = {name: any(not torch.equal(p, q) for p, q in zip(before[name], m.parameters()))
               for name, m in trainer.modules().items()}
    assert changed == {"G_B": True, "D": True, "location_heads": True, "G_R": False, "layer_heads": False}


def test_cut_random_locations_are_distinct_and_inside_the_map():
    trainer = baselines.create("cut", **TINY["cut"]).make_trainer()
    ids = trainer.locations(torch.zeros(3, 8, 20, 30))
    assert ids.shape == (3, 32, 2)
    assert ids[..., 0].max() < 20 and ids[..., 1].max() < 30 and ids.min() >= 0
    flat = ids[..., 0] * 30 + ids[..., 1]
    assert all(len(set(row.tolist())) == 32 for row in flat)


@pytest.mark.parametrize(("name", "option"), [("prenet", "crop"), ("nlcl", "head_dim")])
def test_training_checkpoint_options_are_adopted_but_not_inference_ones(name, option, tmp_path):
    fit(name, 1, out=tmp_path, tile=0)
    loaded = baselines.create(name, weights=tmp_path / "checkpoint.pt", tile=48)
    assert loaded.tile == 48 and loaded.config.tile == 48
    # a training option not visible in the weights, read from the checkpoint
    assert getattr(loaded.config, option) == TINY[name][option] != getattr(baselines.create(name).config, option)
