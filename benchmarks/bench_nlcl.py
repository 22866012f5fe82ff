"""NLCL benchmarks: sampler vs a naive loop, training step time, inference time and peak memory.

    .venv/bin/python benchmarks/bench_nlcl.py                      # everything, CPU
    .venv/bin/python benchmarks/bench_nlcl.py --only sampler
    .venv/bin/python benchmarks/bench_nlcl.py --only train --batches 1 8 --steps 2
    .venv/bin/python benchmarks/bench_nlcl.py --only infer --sizes 1920x1080 4000x3000

Inference runs each case in a fresh subprocess so its peak resident memory is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from nlcl import Generator, NLCLConfig, NLCLTrainer, derain
from nlcl.sampler import random_centres, sample_nonlocal


def naive_sampler(x: torch.Tensor, centres: torch.Tensor, k: int, patch: int = 16, window: int = 40) -> torch.Tensor:
    """Reference: a Python loop over images and candidate patches, as the released code does."""
    out = []
    half = patch // 2
    for b in range(x.shape[0]):
        cy, cx = centres[b].tolist()
        ref = x[b, :, cy - half : cy - half + patch, cx - half : cx - half + patch]
        cands = []
        for dy in range(-(window // 2), window - window // 2):
            for dx in range(-(window // 2), window - window // 2):
                y, xx = cy + dy, cx + dx
                if y - half < 0 or xx - half < 0 or y - half + patch > x.shape[2] or xx - half + patch > x.shape[3]:
                    continue
                p = x[b, :, y - half : y - half + patch, xx - half : xx - half + patch]
                cands.append((float(((p - ref) ** 2).sum()), y, xx))
        cands.sort(key=lambda t: t[0])
        out.append([(y, xx) for _, y, xx in cands[:k]])
    return torch.tensor(out)


def _best_of(fn, repeats: int) -> float:
    """Least CPU seconds over ``repeats`` calls (CPU time, not wall: the VM is shared)."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def bench_sampler(device: str, repeats: int) -> None:
    """Vectorised sampler vs the naive loop on image-like and feature-like maps."""
    gen = torch.Generator().manual_seed(0)
    for shape, k in (((1, 3, 256, 256), 128), ((8, 3, 256, 256), 128), ((1, 32, 256, 256), 256)):
        x = torch.rand(*shape, generator=gen).to(device)
        centres = random_centres(shape[0], shape[2], shape[3], 16, gen)
        fast = _best_of(lambda x=x, k=k, c=centres: sample_nonlocal(x, k, centres=c), repeats)
        slow = _best_of(lambda x=x, k=k, c=centres: naive_sampler(x, c, k), 1)
        same = torch.equal(sample_nonlocal(x, k, centres=centres).cpu(), naive_sampler(x, centres, k))
        print(f"sampler {tuple(shape)} k={k} [{device}]: vectorised {fast * 1e3:.1f} ms, naive loop "
              f"{slow * 1e3:.0f} ms (CPU time), speed-up {slow / fast:.0f}x, identical={same}", flush=True)


def bench_train(device: str, batches: list[int], crop: int, steps: int, variant: str, ckpt_from: int,
                amp: bool = True) -> None:
    """Seconds per full training step (D step + joint G step, all five losses) at the released config.

    Batches of ``ckpt_from`` and more use activation checkpointing (memory, not speed).
    """
    for batch in batches:
        cfg = NLCLConfig(variant=variant, checkpoint_activations=batch >= ckpt_from, amp=amp)
        trainer = NLCLTrainer(cfg, device=device, seed=0)
        rainy = torch.rand(batch, 3, crop, crop) * 2 - 1
        clean = torch.rand(batch, 3, crop, crop) * 2 - 1
        trainer.train_step(rainy, clean)  # warm-up (allocator, lazy imports, cuDNN autotune)
        with FlopCounterMode(display=False) as counter:
            trainer.train_step(rainy, clean)
        gflop = counter.get_total_flops() / 1e9
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            trainer.train_step(rainy, clean)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / steps
        cpu = (time.process_time() - c0) / steps
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"train step {crop}x{crop} batch {batch} [{device}, {torch.get_num_threads()} threads, "
              f"amp={amp and device.startswith('cuda')}, checkpointing={cfg.checkpoint_activations}, peak RSS so far {peak:.1f} GiB]: "
              f"{dt:.2f} s/step wall, {cpu:.2f} CPU s/step ({batch / dt:.2f} crops/s wall); {gflop:.1f} GFLOP/step, "
              f"{gflop / dt:.1f} GFLOP/s wall against a plain-conv ceiling of {conv_ceiling(device):.1f}", flush=True)


def conv_ceiling(device: str, repeats: int = 8) -> float:
    """GFLOP/s of a plain 3x3 conv (32 -> 32 channels, 256 x 256) forward + backward, best memory format."""
    best = 0.0
    for fmt in (torch.contiguous_format, torch.channels_last):
        conv = torch.nn.Conv2d(32, 32, 3, padding=1).to(device=device, memory_format=fmt)
        x = torch.randn(1, 32, 256, 256, device=device).to(memory_format=fmt).requires_grad_()
        with FlopCounterMode(display=False) as counter:
            conv(x).sum().backward()
        flops = counter.get_total_flops()
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            conv(x).sum().backward()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = max(best, flops / 1e9 / (time.perf_counter() - t0))
    return best


def infer_case(size: str, device: str, tiled: bool) -> dict[str, float | str]:
    """One inference run: seconds and peak memory (RSS on CPU, allocator peak on CUDA)."""
    w, h = (int(v) for v in size.split("x"))
    g = Generator().to(device).eval()
    x = torch.rand(1, 3, h, w)
    if tiled:
        from baselines.tiling import tile_apply

        fn = lambda t: tile_apply(lambda tt: derain(g, tt), t, tile=512, overlap=32, multiple=4,
                                  batch_tiles=4, device=device)
    else:
        fn = lambda t: derain(g, t)
    fn(torch.rand(1, 3, 64, 64))
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    y = fn(x)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    assert y.shape == x.shape
    peak = (torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return {"size": size, "device": device, "mode": "tiled 512/32" if tiled else "whole image",
            "seconds": dt, "cpu_seconds": cpu, "peak_gib": peak}


def bench_infer(device: str, sizes: list[str], modes: list[str]) -> None:
    """Run every (size, mode) case in its own process."""
    for size in sizes:
        for mode in modes:
            cmd = [sys.executable, __file__, "--infer-case", size, "--device", device] + (["--tiled"] if mode == "tiled" else [])
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                print(f"inference {size} {mode} [{device}]: failed: {res.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"inference {r['size']} {r['mode']} [{device}]: {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} CPU s, peak "
                  f"{'GPU' if device.startswith('cuda') else 'RSS'} {r['peak_gib']:.2f} GiB", flush=True)


def main() -> None:
    """Parse options and run the selected benchmarks."""
    p = argparse.ArgumentParser(description="NLCL benchmarks")
    p.add_argument("--only", choices=("sampler", "train", "infer"), action="append")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--variant", default="symmetric")
    p.add_argument("--checkpoint-from", type=int, default=4,
                   help="Use activation checkpointing for batches of this size and more (24 GiB RAM).")
    p.add_argument("--amp", choices=("on", "off"), default="on", help="bf16 autocast in training (CUDA only).")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sizes", nargs="+", default=["1920x1080", "4000x3000"])
    p.add_argument("--modes", nargs="+", default=["whole", "tiled"], choices=("whole", "tiled"))
    p.add_argument("--infer-case", default=None, help=argparse.SUPPRESS)
    p.add_argument("--tiled", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.infer_case:
        print(json.dumps(infer_case(args.infer_case, args.device, args.tiled)))
        return
    only = set(args.only or ("sampler", "train", "infer"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}", flush=True)
    if "sampler" in only:
        bench_sampler(args.device, args.repeats)
    if "train" in only:
        bench_train(args.device, args.batches, args.crop, args.steps, args.variant, args.checkpoint_from,
                    amp=args.amp == "on")
    if "infer" in only:
        bench_infer(args.device, args.sizes, args.modes)


if __name__ == "__main__":
    main()
