"""The authors' released NLCL weights against the authors' released outputs, image by image.

The NLCL repository ships its G_B weights (``checkpoints/RealRain/latest_net_Back.pth``), seven
example rainy images (``datasets/RealRain/trainA/Eg*.png``) and its own outputs for them
(``results/RealRain/test_latest/images/pred_B/Eg*.png``). Bring them onto the machine (never into
this repository), then:

    .venv/bin/python benchmarks/bench_released_nlcl.py --weights latest_net_Back.pth \\
        --inputs trainA --reference pred_B [--tile 0]

Prints the PSNR (RGB, 8-bit) between rainbench's output and the authors' for each image: float
rounding and GPU kernels leave about 50 dB; a different architecture leaves 15-25 dB.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import baselines
from collection.images import open_image, quantise, to_tensor


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two uint8 RGB arrays over all channels."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def main() -> None:
    """Derain each input with the released weights and compare it with the authors' output."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, required=True, help="the released latest_net_Back.pth")
    p.add_argument("--inputs", type=Path, required=True, help="folder of the example rainy images")
    p.add_argument("--reference", type=Path, required=True, help="folder of the authors' outputs (same names)")
    p.add_argument("--tile", type=int, default=None, help="tile size (default: the method's automatic choice)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    method = baselines.create("nlcl", **({"tile": args.tile} if args.tile is not None else {}))
    method.load(args.weights)
    rows = []
    for path in sorted(args.inputs.glob("*.png")):
        ref = args.reference / path.name
        if not ref.exists():
            continue
        with torch.no_grad():
            out = method.derain(to_tensor(open_image(path)))[0]
        ours = quantise(out).permute(1, 2, 0).numpy().astype(np.uint8)
        theirs = np.asarray(open_image(ref).convert("RGB"))
        rows.append((path.name, psnr8(ours, theirs), int(np.abs(ours.astype(int) - theirs).max())))
        print(f"{path.name}: {rows[-1][1]:.2f} dB, max abs difference {rows[-1][2]} grey levels", flush=True)
    if rows:
        print(f"min {min(r[1] for r in rows):.2f} dB, max {max(r[1] for r in rows):.2f} dB over {len(rows)} images")


if __name__ == "__main__":
    main()
