"""Do the learnable methods derain after a short CPU budget? PSNR (Y) on held-out light synthetic rain.

Every method is trained through the registry (``baselines.create(...).fit(...)``), exactly as
``rainbench train`` does. PReNet trains on (rainy, clean) pairs of the training scenes; ``nlcl``
and ``cut`` train unpaired (``--protocol``: by default each photograph is halved, one half rainy,
the other clean). All are scored on rainy versions of held-out scenes: PSNR on BT.601
limited-range Y of the 8-bit-quantised output against the clean image, next to the rainy input's
PSNR, and the correlation of what the method removed (input - output) with the true rain layer.

    .venv/bin/python benchmarks/learnable_derains.py                    # all three, default budgets
    .venv/bin/python benchmarks/learnable_derains.py --methods prenet --prenet-iters 300
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scenes import psnr_y, scene, to_tensor

import baselines
from collection.synth import add_rain, unpaired_halves

TRAIN_SCENES = ("astronaut", "coffee", "immunohistochemistry", "gravel", "rocket", "brick")
RAINY_SCENES = ("astronaut", "coffee", "immunohistochemistry", "gravel")
CLEAN_SCENES = ("rocket", "hubble_deep_field", "retina", "brick", "grass", "moon")
TEST_SCENES = ("chelsea", "camera", "coins")

# Small budgets for a 2-core CPU. NLCL and CUT use the short-budget recipe (docs/nlcl.md): a
# narrow network, G_B starting from the identity, D without InstanceNorm, the released lr 2e-4,
# plus NLCL's sparsity term at 2 / CUT with CycleGAN's identity term. `--set` restores the
# released options (e.g. nlcl.residual=false nlcl.d_norm='"instance"').
SHORT_BUDGET = {"crop": 64, "batch_size": 4, "ngf": 16, "n_blocks": 4, "nce_layers": (0, 2, 4), "num_patches": 256,
                "residual": True, "d_norm": "none", "g_padding": "reflect"}
PRESETS = {
    "prenet": {"crop": 48, "batch_size": 4, "loss": "mse", "lr": 2e-3},
    "nlcl": {**SHORT_BUDGET, "lambda_sparsity": 2.0},
    "cut": {**SHORT_BUDGET, "lambda_identity": 1.0},
}


PROTOCOLS = ("scenes", "regions", "shuffled")


def unpaired_sets(preset: str, max_side: int, protocol: str) -> tuple[list, list]:
    """Unpaired (rainy, clean) training sets; no training pixel is ever seen rainy and clean in one crop.

    ``scenes``: rainy and clean sets are different photographs (their brightness and colour differ
    too, which a discriminator can learn instead of rain). ``regions``: each photograph of both
    lists is halved, one half rainy, the other clean. ``shuffled``: every photograph appears rainy
    and clean, cropped independently: how unpaired methods are trained on paired synthetic sets.
    """
    if protocol == "scenes":
        rainy = [to_tensor(add_rain(scene(n, max_side), preset, seed=50 + i)[0]) for i, n in enumerate(RAINY_SCENES)]
        return rainy, [to_tensor(scene(n, max_side)) for n in CLEAN_SCENES]
    rainy, clean = [], []
    for i, name in enumerate(RAINY_SCENES + CLEAN_SCENES):
        im = scene(name, max_side)
        a, b = im, im
        if protocol == "regions":
            a, b = unpaired_halves(im, swap=i % 2 == 1)
        rainy.append(to_tensor(add_rain(a, preset, seed=50 + i)[0]))
        clean.append(to_tensor(b))
    return rainy, clean


def make_data(preset: str, max_side: int, protocol: str = "regions") -> dict[str, list]:
    """Training pairs, unpaired rainy / clean sets (see :func:`unpaired_sets`), and held-out test pairs."""
    pairs = []
    for i, name in enumerate(TRAIN_SCENES):
        clean = scene(name, max_side)
        pairs.append((to_tensor(add_rain(clean, preset, seed=i)[0]), to_tensor(clean)))
    rainy, clean = unpaired_sets(preset, max_side, protocol)
    test = []
    for i, name in enumerate(TEST_SCENES):
        c = scene(name, max_side)
        test.append((to_tensor(add_rain(c, preset, seed=100 + i)[0]), to_tensor(c)))
    return {"pairs": pairs, "rainy": rainy, "clean": clean, "test": test}


def evaluate(method: baselines.Method, test: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Mean PSNR (Y) of the rainy inputs and outputs, the worst per-image gain, and the rain-layer correlation."""
    before, after, corr = [], [], []
    for rainy, clean in test:
        with torch.no_grad():
            out = method.derain(rainy[None])[0]
        before.append(psnr_y(rainy, clean))
        after.append(psnr_y(out, clean))
        removed, rain = (rainy - out).mean(0).flatten(), (rainy - clean).mean(0).flatten()
        corr.append(float(torch.corrcoef(torch.stack([removed, rain]))[0, 1]))
    gains = np.array(after) - np.array(before)
    return {"before": float(np.mean(before)), "after": float(np.mean(after)), "worst": float(gains.min()),
            "corr": float(np.nanmean(corr))}


def main() -> None:
    """Train each method, score it, print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="prenet,nlcl,cut", help="Comma-separated method names.")
    p.add_argument("--prenet-iters", type=int, default=200)
    p.add_argument("--nlcl-iters", type=int, default=300)
    p.add_argument("--cut-iters", type=int, default=300)
    p.add_argument("--preset", default="rain100l", help="collection.synth rain preset (light rain: rain100l).")
    p.add_argument("--max-side", type=int, default=256, help="Long side of the scenes in pixels.")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared VM).")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--protocol", default="regions", choices=PROTOCOLS,
                   help="How the unpaired sets are drawn: scenes, regions or shuffled (see unpaired_sets).")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.KEY=JSON",
                   help="Override one method option, e.g. nlcl.residual=true or cut.d_norm='\"none\"' (repeatable).")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = make_data(args.preset, args.max_side, args.protocol)
    presets = {name: dict(options) for name, options in PRESETS.items()}
    for item in args.overrides:
        key, value = item.split("=", 1)
        name, option = key.split(".", 1)
        presets[name][option] = json.loads(value)
    rows = []
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        iters = getattr(args, f"{name}_iters")
        method = baselines.create(name, device=args.device, seed=args.seed, **presets[name])
        start = time.perf_counter()
        if baselines.info(name).learns_from == "paired":
            method.fit(pairs=data["pairs"], iters=iters)
        else:
            method.fit(rainy=data["rainy"], clean=data["clean"], iters=iters)
        seconds = time.perf_counter() - start
        scores = evaluate(method, data["test"])
        rows.append((name, iters, seconds, scores))
        print(f"{name}: {iters} iters in {seconds:.0f} s, PSNR(Y) rainy {scores['before']:.2f} -> {scores['after']:.2f}",
              flush=True)
    print()
    print("| method | protocol | iters | seconds | rainy PSNR (Y) | output PSNR (Y) | gain | worst image | rain corr |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, iters, seconds, sc in rows:
        protocol = "paired" if baselines.info(name).learns_from == "paired" else args.protocol
        print(f"| {name} | {protocol} | {iters} | {seconds:.0f} | {sc['before']:.2f} | {sc['after']:.2f} "
              f"| {sc['after'] - sc['before']:+.2f} | {sc['worst']:+.2f} | {sc['corr']:.2f} |")


if __name__ == "__main__":
    main()
