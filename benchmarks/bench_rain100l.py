"""Published-vs-rainbench rows on the public Rain100L test set: PSNR/SSIM (Y) of methods against the input.

The pairs are read from a local folder (never committed, never downloaded by this script): any
``rain-NNN.png`` with a ``norain-NNN.png`` of the same number anywhere under ``--data`` (the
PReNet/JORDER naming; ``rainy/`` and ``norain/`` subfolders or one folder alike). Scores are
rainbench's own ``psnr`` and ``ssim`` metrics (Y of BT.601 limited range, uint8-quantised, as
MATLAB ``rgb2ycbcr`` + ``psnr``/``ssim``), so they compare with the published Rain100L tables.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_rain100l.py --data /work/data/Rain100L
[--limit 20] [--methods identity gmm gmm_plus] [--weights prenet=FILE] [--config gmm:iters=5]``
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
import torch

import baselines
from collection.images import load_image, to_tensor

# Rows the field quotes for Rain100L (Y PSNR / SSIM): GMM as reported by Yang et al. (JORDER,
# CVPR 2017) running Li et al.'s code, PReNet from Ren et al. (CVPR 2019) with its released weights.
PUBLISHED = {"identity": (26.90, 0.838), "gmm": (28.66, 0.865), "prenet": (37.48, 0.979)}

_NUMBER = re.compile(r"^(no)?rain-(\d+)\.png$", re.IGNORECASE)


def pairs(root: Path, limit: int | None = None) -> list[tuple[Path, Path]]:
    """(rainy, clean) paths under ``root`` paired by number, in number order; ValueError if none."""
    rainy, clean = {}, {}
    for path in sorted(root.rglob("*.png")):
        match = _NUMBER.match(path.name)
        if match:
            (clean if match.group(1) else rainy).setdefault(int(match.group(2)), path)
    numbers = sorted(set(rainy) & set(clean))
    if not numbers:
        raise ValueError(f"{root}: no rain-NNN.png / norain-NNN.png pairs found")
    return [(rainy[n], clean[n]) for n in numbers[:limit]]


def parse_options(items: list[str], flag: str) -> dict[str, dict[str, str]]:
    """``METHOD:key=value`` (or ``METHOD=value`` for --weights) items grouped by method."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        if flag == "weights":
            name, _, value = item.partition("=")
            out.setdefault(name, {})["weights"] = value
        else:
            name, _, rest = item.partition(":")
            key, _, value = rest.partition("=")
            if not key or not value:
                raise SystemExit(f"--config {item!r}: expected METHOD:key=value")
            out.setdefault(name, {})[key] = value
    return out


def score(names: list[str], data: list[tuple[Path, Path]], device: str, configs: dict, weights: dict) -> list[dict]:
    """Mean PSNR/SSIM (Y) and seconds per image of each method over ``data``."""
    from rainbench.metrics import create_metric

    psnr, ssim = create_metric("psnr"), create_metric("ssim")
    rows = []
    for name in names:
        method = baselines.create(name, device=device, weights=weights.get(name, {}).get("weights"),
                                  **configs.get(name, {}))
        values, seconds = [], 0.0
        for rainy_path, clean_path in data:
            rainy, clean = to_tensor(load_image(rainy_path)), to_tensor(load_image(clean_path))
            start = time.perf_counter()
            out = method.derain(rainy.to(device)).cpu()
            seconds += time.perf_counter() - start
            values.append((float(psnr(out, clean)[0]), float(ssim(out, clean)[0])))
            print(f"  {name} {rainy_path.name}: {values[-1][0]:.2f} dB {values[-1][1]:.4f}", flush=True)
        arr = np.array(values)
        rows.append({"method": name, "psnr": arr[:, 0].mean(), "ssim": arr[:, 1].mean(),
                     "seconds": seconds / len(data), "config": method.config_hash})
    return rows


def main() -> None:
    """Parse options, score the methods, print the published-vs-rainbench table in Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder holding the Rain100L test pairs")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N pairs (by number)")
    parser.add_argument("--methods", nargs="*", default=["identity", "gmm", "gmm_plus"], help="methods to score")
    parser.add_argument("--weights", nargs="*", default=[], help="METHOD=FILE weights (e.g. prenet=net_latest.pth)")
    parser.add_argument("--config", nargs="*", default=[], help="METHOD:key=value method options")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = pairs(args.data, args.limit)
    rows = score(args.methods, data, args.device, parse_options(args.config, "config"),
                 parse_options(args.weights, "weights"))
    base = next((r for r in rows if r["method"] == "identity"), None)
    print(f"\n## Rain100L test, {len(data)} pairs ({data[0][0].name} .. {data[-1][0].name}), Y PSNR/SSIM\n")
    print("| method | published PSNR / SSIM | rainbench PSNR / SSIM | difference (dB) | margin over input: "
          "published / rainbench (dB) | s/image |\n|---|---|---|---:|---|---:|")
    for row in rows:
        pub = PUBLISHED.get(row["method"])
        pub_text = f"{pub[0]:.2f} / {pub[1]:.3f}" if pub else "-"
        diff = f"{row['psnr'] - pub[0]:+.2f}" if pub else "-"
        margin = "-"
        if base is not None and row is not base:
            ours = row["psnr"] - base["psnr"]
            margin = (f"{pub[0] - PUBLISHED['identity'][0]:+.2f} / " if pub else "- / ") + f"{ours:+.2f}"
        print(f"| {row['method']} | {pub_text} | {row['psnr']:.2f} / {row['ssim']:.4f} | {diff} | {margin} | "
              f"{row['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
