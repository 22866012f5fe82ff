"""Does NLCL derain? Unpaired training on synthetic rain, held-out PSNR (Y), rain-layer correlation, ID.

Rainy training images, clean training images and held-out test images come from disjoint
skimage scenes, so training is truly unpaired. Rain is ``collection.synth.add_rain``.

    .venv/bin/python benchmarks/nlcl_derains.py --iters 300 --crop 96 --device cpu
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scenes import psnr_y, scene, to_tensor

from collection.synth import add_rain
from nlcl import NLCLConfig, NLCLTrainer, derain, estimate_intrinsic_dim

RAINY_SCENES = ("astronaut", "coffee", "immunohistochemistry", "gravel")
CLEAN_SCENES = ("rocket", "hubble_deep_field", "retina", "brick", "grass", "moon")
TEST_SCENES = ("chelsea", "camera", "coins")


def make_data(preset: str, seed: int, protocol: str = "scenes") -> dict[str, list]:
    """Rainy training set, clean training set, and held-out (rainy, clean, rain layer) triples.

    ``scenes``: rainy and clean training images are different photographs. ``regions``: every
    training photograph is cut in two halves, one goes to the rainy set (with rain), the other to
    the clean set, alternating sides, so both sets share scene statistics but no pixel is ever
    seen both rainy and clean.
    """
    if protocol == "scenes":
        rainy = [to_tensor(add_rain(scene(n), preset, seed + i)[0]) for i, n in enumerate(RAINY_SCENES)]
        clean = [to_tensor(scene(n)) for n in CLEAN_SCENES]
    else:
        rainy, clean = [], []
        for i, n in enumerate(RAINY_SCENES + CLEAN_SCENES):
            im = scene(n)
            half = im.shape[1] // 2
            a, b = (im[:, :half], im[:, half:]) if i % 2 == 0 else (im[:, half:], im[:, :half])
            rainy.append(to_tensor(add_rain(np.ascontiguousarray(a), preset, seed + i)[0]))
            clean.append(to_tensor(np.ascontiguousarray(b)))
    test = []
    for i, n in enumerate(TEST_SCENES):
        c = scene(n)
        r, layer, _ = add_rain(c, preset, seed + 100 + i)
        test.append((to_tensor(r), to_tensor(c), torch.from_numpy(layer)))
    return {"rainy": rainy, "clean": clean, "test": test}


def main() -> None:
    """Train, evaluate and print the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--variant", default="symmetric", choices=("symmetric", "asymmetric"))
    p.add_argument("--preset", default="rain100h")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--blocks", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--protocol", default="scenes", choices=("scenes", "regions"),
                   help="scenes: rainy and clean sets are different photographs; regions: disjoint halves of the same photographs.")
    p.add_argument("--residual", action="store_true", help="G_B predicts a correction to its input (B = O + G_B(O)).")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="Override any NLCLConfig float field, e.g. lambda_sparsity=1.0 (repeatable).")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    data = make_data(args.preset, args.seed, args.protocol)
    nce_layers = tuple(i for i in (0, 2, 4, 8, 12) if i <= args.blocks)
    cfg = NLCLConfig(variant=args.variant, lr=args.lr, residual=args.residual, ngf=args.ngf, n_blocks=args.blocks, nce_layers=nce_layers,
                     num_patches=min(256, (args.crop // 3) ** 2),
                     **{k: float(v) for k, v in (o.split("=", 1) for o in args.overrides)})
    trainer = NLCLTrainer(cfg, device=args.device, seed=args.seed)
    t0 = time.perf_counter()
    out = trainer.fit(data["rainy"], data["clean"], iters=args.iters, crop=args.crop, batch_size=args.batch,
                      log_every=max(1, args.iters // 5),
                      on_log=lambda s, d: print(f"step {s}: " + " ".join(f"{k}={v:.3f}" for k, v in d.items()), flush=True))
    train_s = time.perf_counter() - t0
    g = trainer.background_generator()
    rows = []
    for rainy, clean, layer in data["test"]:
        b = derain(g, rainy[None])[0].cpu()
        pred_rain = (rainy - b).mean(0)
        corr = float(np.corrcoef(pred_rain.flatten().numpy(), layer.flatten().numpy())[0, 1])
        rows.append((psnr_y(rainy, clean), psnr_y(b, clean), corr))
    rows_np = np.array(rows)
    rainy_t = [t[0] for t in data["test"]]
    id_gt = estimate_intrinsic_dim(rainy_t, rain_layers=[(t[0] - t[1]) for t in data["test"]])
    id_model = estimate_intrinsic_dim(rainy_t, generator=g)
    print(f"config: iters={args.iters} crop={args.crop} batch={args.batch} device={args.device} "
          f"variant={args.variant} preset={args.preset} protocol={args.protocol} residual={args.residual} ngf={args.ngf} blocks={args.blocks} lr={args.lr} "
          f"overrides={args.overrides}")
    print(f"train seconds: {train_s:.1f} ({train_s / max(1, out['step']):.2f} s/step)")
    for name, (pr, pd, c) in zip(TEST_SCENES, rows):
        print(f"  {name:10s} rainy PSNR-Y {pr:6.2f}  derained {pd:6.2f}  rain corr {c:.3f}")
    print(f"mean: rainy PSNR-Y {rows_np[:, 0].mean():.2f}  derained PSNR-Y {rows_np[:, 1].mean():.2f}  "
          f"rain-layer corr {rows_np[:, 2].mean():.3f}")
    for label, rep in (("true layers", id_gt), ("model layers", id_model)):
        print(f"ID ({label}, {rep.estimator}, k={rep.neighbours}): background {rep.background_id:.2f} "
              f"+- {rep.background_std:.2f}, rain {rep.rain_id:.2f} +- {rep.rain_std:.2f} "
              f"({rep.n_background_groups}/{rep.n_rain_groups} groups)")


if __name__ == "__main__":
    main()
