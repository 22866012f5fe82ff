"""Metric cost and convention gaps: rainbench's metrics vs the nearest pyiqa calls, same images.

Run: .venv/bin/python benchmarks/bench_metrics.py [--size 720x1280] [--images 2]
Prints seconds per image for each metric and how far pyiqa's own settings land from the MATLAB
convention (the "why is my PSNR lower than the paper" gap). Synthetic rain over tiled skimage photos.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def make_pairs(height: int, width: int, n: int):
    from skimage import data
    from test_metrics_data import add_rain

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        reps = (-(-height // src.shape[0]), -(-width // src.shape[1]), 1)
        clean = np.ascontiguousarray(np.tile(src, reps)[:height, :width])
        rainy = add_rain(clean, seed=i, streaks=int(height * width / 400))
        to = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255.0
        out.append((to(rainy), to(clean)))
    return out


def timed(fn, pairs, ref: bool):
    values, start = [], time.perf_counter()
    for rainy, clean in pairs:
        values.append(float(fn(rainy, clean) if ref else fn(rainy)))
    return (time.perf_counter() - start) / len(pairs), values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="720x1280", help="HxW of the test images")
    parser.add_argument("--images", type=int, default=2, help="number of image pairs")
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    import pyiqa

    from rainbench.metrics import create_metric, fit_niqe

    pairs = make_pairs(h, w, args.images)
    print(f"{args.images} pairs of {h}x{w}, torch threads {torch.get_num_threads()}, pyiqa {pyiqa.__version__}")
    rows = [
        ("psnr", create_metric("psnr"), pyiqa.create_metric("psnr", test_y_channel=True, color_space="ycbcr",
                                                            device="cpu"), True),
        ("ssim", create_metric("ssim"), pyiqa.create_metric("ssim", color_space="ycbcr", device="cpu"), True),
        ("ssim_ds", create_metric("ssim_ds"), pyiqa.create_metric("ssim", color_space="ycbcr", downsample=True,
                                                                  device="cpu"), True),
        ("psnr_rgb", create_metric("psnr_rgb"), pyiqa.create_metric("psnr", device="cpu"), True),
        ("piqe", create_metric("piqe"), pyiqa.create_metric("piqe", device="cpu"), False),
    ]
    niqe_path = Path("/tmp/bench_niqe.mat")
    fit_start = time.perf_counter()
    fit_niqe([(c[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for _, c in pairs], niqe_path)
    print(f"fit_niqe on {args.images} clean images: {time.perf_counter() - fit_start:.2f} s")
    rows.append(("niqe (fitted)", create_metric("niqe", niqe_model=niqe_path),
                 pyiqa.create_metric("niqe", pretrained_model_path=str(niqe_path), device="cpu"), False))
    print(f"{'metric':14s} {'rainbench s/img':>16s} {'pyiqa s/img':>12s} {'mean rainbench':>15s} {'mean pyiqa':>11s}")
    for name, ours, theirs, ref in rows:
        t_ours, v_ours = timed(ours, pairs, ref)
        t_theirs, v_theirs = timed(theirs, pairs, ref)
        print(f"{name:14s} {t_ours:16.3f} {t_theirs:12.3f} {np.mean(v_ours):15.5f} {np.mean(v_theirs):11.5f}")
    yiq = pyiqa.create_metric("psnry", device="cpu")
    _, v = timed(yiq, pairs, True)
    print(f"pyiqa psnry (YIQ luma, its default Y): mean {np.mean(v):.5f}")


if __name__ == "__main__":
    main()
