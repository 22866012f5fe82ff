"""Do the learnable methods derain after a short CPU budget? PSNR (Y) on held-out light synthetic rain.

Every method is trained through the registry (``baselines.create(...).fit(...)``), exactly as
``rainbench train`` does. PReNet trains on (rainy, clean) pairs of the training scenes; ``nlcl``
and ``cut`` train unpaired, on rainy images of some scenes and clean images of *other* scenes.
All are scored on rainy versions of held-out scenes: PSNR on BT.601 limited-range Y of the
8-bit-quantised output against the clean image, next to the rainy input's PSNR.

    .venv/bin/python benchmarks/learnable_derains.py                    # all three, default budgets
    .venv/bin/python benchmarks/learnable_derains.py --methods prenet --prenet-iters 300
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scenes import psnr_y, scene, to_tensor

import baselines
from collection.synth import add_rain

TRAIN_SCENES = ("astronaut", "coffee", "immunohistochemistry", "gravel", "rocket", "brick")
RAINY_SCENES = ("astronaut", "coffee", "immunohistochemistry", "gravel")
CLEAN_SCENES = ("rocket", "hubble_deep_field", "retina", "brick", "grass", "moon")
TEST_SCENES = ("chelsea", "camera", "coins")

# Small budgets for a 2-core CPU; the NLCL-family networks are narrowed (ngf 16, 4 blocks) to fit.
PRESETS = {
    "prenet": {"crop": 48, "batch_size": 4, "loss": "mse", "lr": 2e-3},
    "nlcl": {"crop": 64, "batch_size": 4, "ngf": 16, "n_blocks": 4, "nce_layers": (0, 2, 4), "lr": 1e-3,
             "num_patches": 256},
    "cut": {"crop": 64, "batch_size": 4, "ngf": 16, "n_blocks": 4, "nce_layers": (0, 2, 4), "lr": 1e-3,
            "num_patches": 256},
}


def make_data(preset: str, max_side: int) -> dict[str, list]:
    """Training pairs, unpaired rainy / clean sets from disjoint scenes, and held-out test pairs."""
    pairs = []
    for i, name in enumerate(TRAIN_SCENES):
        clean = scene(name, max_side)
        pairs.append((to_tensor(add_rain(clean, preset, seed=i)[0]), to_tensor(clean)))
    rainy = [to_tensor(add_rain(scene(n, max_side), preset, seed=50 + i)[0]) for i, n in enumerate(RAINY_SCENES)]
    clean = [to_tensor(scene(n, max_side)) for n in CLEAN_SCENES]
    test = []
    for i, name in enumerate(TEST_SCENES):
        c = scene(name, max_side)
        test.append((to_tensor(add_rain(c, preset, seed=100 + i)[0]), to_tensor(c)))
    return {"pairs": pairs, "rainy": rainy, "clean": clean, "test": test}


def evaluate(method: baselines.Method, test: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float]:
    """Mean PSNR (Y) of the rainy inputs and of the method's outputs over the test pairs."""
    before, after = [], []
    for rainy, clean in test:
        out = method.derain(rainy[None])[0]
        before.append(psnr_y(rainy, clean))
        after.append(psnr_y(out, clean))
    return float(np.mean(before)), float(np.mean(after))


def main() -> None:
    """Train each method, score it, print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="prenet,nlcl,cut", help="Comma-separated method names.")
    p.add_argument("--prenet-iters", type=int, default=200)
    p.add_argument("--nlcl-iters", type=int, default=200)
    p.add_argument("--cut-iters", type=int, default=200)
    p.add_argument("--preset", default="rain100l", help="collection.synth rain preset (light rain: rain100l).")
    p.add_argument("--max-side", type=int, default=256, help="Long side of the scenes in pixels.")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared VM).")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = make_data(args.preset, args.max_side)
    rows = []
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        iters = getattr(args, f"{name}_iters")
        method = baselines.create(name, device=args.device, seed=args.seed, **PRESETS[name])
        start = time.perf_counter()
        if baselines.info(name).learns_from == "paired":
            method.fit(pairs=data["pairs"], iters=iters)
        else:
            method.fit(rainy=data["rainy"], clean=data["clean"], iters=iters)
        seconds = time.perf_counter() - start
        rainy_psnr, out_psnr = evaluate(method, data["test"])
        rows.append((name, iters, seconds, rainy_psnr, out_psnr))
        print(f"{name}: {iters} iters in {seconds:.0f} s, PSNR(Y) rainy {rainy_psnr:.2f} -> {out_psnr:.2f}", flush=True)
    print()
    print("| method | iters | seconds | rainy PSNR (Y) | output PSNR (Y) | gain |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, iters, seconds, before, after in rows:
        print(f"| {name} | {iters} | {seconds:.0f} | {before:.2f} | {after:.2f} | {after - before:+.2f} |")


if __name__ == "__main__":
    main()
