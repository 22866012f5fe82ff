"""Whole-image vs exact tiled inference of NLCL's G_B: seconds and peak memory.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_exact_tiling.py
    .venv/bin/python benchmarks/bench_exact_tiling.py --sizes 1920x1080 --modes exact --tile 512 1024
    .venv/bin/python benchmarks/bench_exact_tiling.py --device cuda --threads 4

Each (size, mode) runs in a fresh subprocess through ``Method.derain`` (``tile`` 0 = whole image,
``tile`` N = exact streaming of N-pixel tiles, maps stored on disk on the CPU and in host RAM on
CUDA), with the default NLCL size (ngf 32, 16 blocks) and random weights. Peak memory is the
process's VmHWM from /proc/self/status (every allocation of numpy, torch and the allocator
counted), next to the VmHWM before the call (interpreter, torch, weights, input image); on CUDA
also the allocator's peak. Seconds are wall and CPU of the one call after a small warm-up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time


def _hwm_gib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    raise OSError("no VmHWM in /proc/self/status")


def run_case(size: str, mode: str, tile: int, device: str, threads: int) -> dict:
    """One derain call in this process: seconds and peak memory."""
    import torch

    import baselines

    torch.set_num_threads(threads)
    w, h = (int(v) for v in size.split("x"))
    torch.manual_seed(0)
    method = baselines.create("nlcl", device=device)
    method.has_weights = True  # random weights: speed and memory do not depend on them
    method.tile = 0 if mode == "whole" else tile
    method.derain(torch.rand(1, 3, 64, 64))
    x = torch.rand(1, 3, h, w)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = _hwm_gib()
    t0, c0 = time.perf_counter(), time.process_time()
    y = method.derain(x)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert y.shape == x.shape
    gpu = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    return {"size": size, "mode": "whole image" if mode == "whole" else f"exact tiles {tile}", "device": device,
            "threads": threads, "wall_s": wall, "cpu_s": cpu, "hwm_before_gib": before, "hwm_gib": _hwm_gib(),
            "gpu_peak_gib": gpu}


def main() -> None:
    """Run every (size, mode, tile) case in its own process and print one line each."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["1920x1080", "4000x3000"], help="WIDTHxHEIGHT images")
    p.add_argument("--modes", nargs="+", default=["whole", "exact"], choices=("whole", "exact"))
    p.add_argument("--tile", type=int, nargs="+", default=[512], help="Tile sizes for exact mode")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--case", nargs=3, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        size, mode, tile = args.case
        print(json.dumps(run_case(size, mode, int(tile), args.device, args.threads)))
        return
    for size in args.sizes:
        for mode in args.modes:
            for tile in args.tile if mode == "exact" else [0]:
                cmd = [sys.executable, __file__, "--case", size, mode, str(tile), "--device", args.device,
                       "--threads", str(args.threads)]
                res = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if res.returncode != 0:
                    tail = (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1]
                    print(f"{size} {mode} {tile}: failed: {tail}", flush=True)
                    continue
                r = json.loads(res.stdout.strip().splitlines()[-1])
                gpu = f", GPU peak {r['gpu_peak_gib']:.2f} GiB" if r["gpu_peak_gib"] is not None else ""
                print(f"{r['size']} {r['mode']} [{r['device']}, {r['threads']} threads]: {r['wall_s']:.1f} s wall, "
                      f"{r['cpu_s']:.1f} CPU s, peak RSS {r['hwm_gib']:.2f} GiB (before the call "
                      f"{r['hwm_before_gib']:.2f}){gpu}", flush=True)


if __name__ == "__main__":
    main()
