"""Deraining methods: seconds per megapixel on CPU (or CUDA), and PSNR/SSIM (Y) on light synthetic rain.

Speed: every registered method derains a synthetic image of ``--size``; methods that need weights
run with their random initial weights (speed does not depend on the values). Wall and CPU seconds
are both reported, because the benchmark machine may be shared.

Quality: ``--images`` crops (481 x 321, Rain100L's size) of scikit-image's colour photographs
(astronaut, coffee, rocket, chelsea; none of them is used to fit the gmm background prior) get
rain with `collection.synth.add_rain(preset="rain100l")`, and each non-learning method is scored
with rainbench's ``psnr`` and ``ssim`` metrics (Y of BT.601 limited range, uint8-quantised).

Run: ``.venv/bin/python benchmarks/bench_methods.py [--device cpu] [--size 640x480] [--images 10]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import baselines
from collection.synth import add_rain

PHOTOS = (("astronaut", 3), ("coffee", 3), ("rocket", 3), ("chelsea", 1))


def crops(count: int) -> list[tuple[str, np.ndarray]]:
    """Up to ``count`` 481 x 321 crops (top-left, bottom-right, centre) of the colour sample photographs."""
    import skimage.data

    out = []
    for name, n in PHOTOS:
        image = getattr(skimage.data, name)()
        height, width = image.shape[:2]
        h, w = min(321, height), min(481, width)
        for y, x in [(0, 0), (height - h, width - w), ((height - h) // 2, (width - w) // 2)][:n]:
            out.append((name, np.ascontiguousarray(image[y : y + h, x : x + w])))
    return out[:count]


def to_batch(image: np.ndarray) -> torch.Tensor:
    """uint8 H x W x 3 -> float 1 x 3 x H x W in [0, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0


def speed(names: list[str], size: tuple[int, int], device: str, repeat: int) -> list[dict]:
    """Seconds per megapixel of each method on one rainy image of ``size`` (width, height)."""
    import skimage.data

    width, height = size
    photo = skimage.data.astronaut()
    reps = (-(-height // photo.shape[0]), -(-width // photo.shape[1]), 1)
    clean = np.ascontiguousarray(np.tile(photo, reps)[:height, :width])
    x = to_batch(add_rain(clean, preset="rain100l", seed=0)[0]).to(device)
    rows = []
    for name in names:
        method = baselines.create(name, device=device)
        note = ""
        if not method.has_weights:
            method.has_weights = True  # random initial weights: speed only
            note = "random weights"
        start = time.perf_counter()
        method.derain(x[..., :64, :64])  # warm-up (fits the gmm prior at first use, allocators, ...)
        warm = time.perf_counter() - start
        walls, cpus = [], []
        for _ in range(repeat):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            wall, cpu = time.perf_counter(), time.process_time()
            method.derain(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        mp = width * height / 1e6
        rows.append({"method": name, "wall_s_per_mp": min(walls) / mp, "cpu_s_per_mp": min(cpus) / mp,
                     "warmup_s": warm, "tile": method.tile, "note": note})
    return rows


def quality(names: list[str], count: int, device: str) -> list[dict]:
    """Mean PSNR/SSIM (Y) of each method's output against the clean crops, and of the rainy input."""
    from rainbench.metrics import create_metric

    psnr, ssim = create_metric("psnr"), create_metric("ssim")
    data = [(clean, add_rain(clean, preset="rain100l", seed=i)[0]) for i, (_, clean) in enumerate(crops(count))]
    rows = []
    for name in names:
        method = baselines.create(name, device=device)
        scores, seconds = [], 0.0
        for clean, rainy in data:
            start = time.perf_counter()
            out = method.derain(to_batch(rainy).to(device)).cpu()
            seconds += time.perf_counter() - start
            ref = to_batch(clean)
            scores.append((float(psnr(out, ref)[0]), float(ssim(out, ref)[0])))
        values = np.array(scores)
        rows.append({"method": name, "psnr": values[:, 0].mean(), "ssim": values[:, 1].mean(),
                     "psnr_min_gain": None, "seconds_per_image": seconds / len(data), "per_image": values})
    base = next((r for r in rows if r["method"] == "identity"), None)
    if base is not None:
        for row in rows:
            row["psnr_min_gain"] = float((row["per_image"][:, 0] - base["per_image"][:, 0]).min())
    return rows


def main() -> None:
    """Parse options, run the benchmarks, print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--size", default="640x480", help="speed image size WIDTHxHEIGHT")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per method (best is kept)")
    parser.add_argument("--images", type=int, default=10, help="crops for the quality table (0 = skip)")
    parser.add_argument("--methods", nargs="*", default=None, help="methods to time (default: all registered)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.methods or baselines.available()
    width, height = (int(v) for v in args.size.lower().split("x"))

    print(f"## speed: {width}x{height}, device {args.device}, torch threads {torch.get_num_threads()}\n")
    print("| method | wall s/MP | CPU s/MP | tile | warm-up s | note |\n|---|---:|---:|---:|---:|---|")
    for row in speed(names, (width, height), args.device, args.repeat):
        print(f"| {row['method']} | {row['wall_s_per_mp']:.3f} | {row['cpu_s_per_mp']:.3f} | {row['tile']} | "
              f"{row['warmup_s']:.1f} | {row['note']} |", flush=True)

    if args.images:
        prior = [n for n in names if baselines.info(n).learns_from == "none"]
        print(f"\n## quality: {args.images} crops 481x321, rain100l preset, Y PSNR/SSIM\n")
        print("| method | PSNR (Y) | SSIM (Y) | worst per-image PSNR gain | s/image |\n|---|---:|---:|---:|---:|")
        for row in quality(prior, args.images, args.device):
            gain = "" if row["psnr_min_gain"] is None else f"{row['psnr_min_gain']:+.2f}"
            label = "rainy input (identity)" if row["method"] == "identity" else row["method"]
            print(f"| {label} | {row['psnr']:.2f} | {row['ssim']:.4f} | {gain} | {row['seconds_per_image']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
