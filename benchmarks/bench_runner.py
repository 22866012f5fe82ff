"""Runner overhead: `run_benchmark` wall time vs a bare loop that calls the metrics directly (goal <= 1.1x).

Both sides score the same images (a paired split saved with `datasets`: PNG crops of skimage's
sample photographs, 240 x 160 by default, `--height 321 --width 481` for Rain100L-sized ones) with
the same metrics (psnr, ssim) on the rainy input (the identity method), on CPU. Both decode every
image with `collection.images.decode` and build their metrics inside the timed region. Two bare
loops are timed:

- `pyiqa`: `pyiqa.create_metric('psnr', test_y_channel=True, color_space='ycbcr')` and
  `pyiqa.create_metric('ssim', color_space='ycbcr')` (the issue's baseline; pyiqa's own SSIM, which
  is not bit-identical to rainbench's MATLAB-convention SSIM);
- `rainbench.metrics`: `create_metric('psnr'/'ssim')` called in a plain loop: the same numbers as
  the runner, so the ratio is the runner's own overhead (identity call, uint8 quantisation, result
  rows, Parquet flushes, run.json, consolidation).

Inputs of the bare loops are made contiguous (`to_tensor` returns a permuted view, on which the
metrics' convolutions run about 2x slower; the runner stacks batches, which are contiguous).
Runs alternate between the variants; the median of the rounds is reported, as wall time and as
CPU time (this process plus its joined decode workers), the steadier figure on a shared machine.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_dataset(root: Path, count: int, height: int = 160, width: int = 240) -> Path:
    """A paired test split of ``count`` rainy/clean PNGs cut from skimage's sample photographs."""
    import datasets
    from PIL import Image
    from skimage import data as skdata

    sources = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket(), skdata.hubble_deep_field()]
    rng = np.random.default_rng(0)
    rows = {"id": [], "rainy": [], "clean": [], "width": [], "height": [], "sha256": [], "source": [], "rain_kind": []}
    for i in range(count):
        src = sources[i % len(sources)]
        y0 = int(rng.integers(0, max(1, src.shape[0] - height)))
        x0 = int(rng.integers(0, max(1, src.shape[1] - width)))
        clean = np.ascontiguousarray(np.resize(src[y0:y0 + height, x0:x0 + width], (height, width, 3)))
        streaks = (rng.random((height, width)) > 0.995).astype(np.float32)
        streaks = np.maximum(streaks, np.roll(streaks, 1, 0))
        rainy = np.clip(clean + 150 * streaks[..., None], 0, 255).astype(np.uint8)
        encoded = []
        for arr in (rainy, clean):
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG")
            encoded.append(buf.getvalue())
        digest = hashlib.sha256(encoded[0]).hexdigest()
        for key, value in (("id", digest[:16]), ("rainy", {"bytes": encoded[0], "path": None}),
                           ("clean", {"bytes": encoded[1], "path": None}), ("width", width), ("height", height),
                           ("sha256", digest), ("source", "bench"), ("rain_kind", "light")):
            rows[key].append(value)
    features = datasets.Features({"id": datasets.Value("string"), "rainy": datasets.Image(), "clean": datasets.Image(),
                                  "width": datasets.Value("int32"), "height": datasets.Value("int32"),
                                  "sha256": datasets.Value("string"), "source": datasets.Value("string"),
                                  "rain_kind": datasets.Value("string")})
    out = root / "data"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows, features=features)}).save_to_disk(str(out))
    return out


def _images(data: Path):
    """Yield (rainy, clean) uint8 arrays, decoded with the project's loader."""
    import datasets

    from collection.images import decode

    split = datasets.load_from_disk(str(data))["test"]
    split = split.cast_column("rainy", datasets.Image(decode=False)).cast_column("clean", datasets.Image(decode=False))
    for row in split:
        yield (np.asarray(decode(row["rainy"]["bytes"], name=row["id"]).image),
               np.asarray(decode(row["clean"]["bytes"], name=row["id"]).image))


def bare_pyiqa(data: Path) -> float:
    """Decode, then pyiqa psnr and ssim (Y of YCbCr) per image; returns the mean psnr."""
    import pyiqa

    from collection.images import to_tensor

    psnr = pyiqa.create_metric("psnr", test_y_channel=True, color_space="ycbcr", device="cpu")
    ssim = pyiqa.create_metric("ssim", color_space="ycbcr", device="cpu")
    values = []
    for rainy, clean in _images(data):
        x, y = to_tensor(rainy).contiguous(), to_tensor(clean).contiguous()
        values.append(float(psnr(x, y)))
        float(ssim(x, y))
    return float(np.mean(values))


def bare_rainbench(data: Path) -> float:
    """Decode, then rainbench's psnr and ssim per image; returns the mean psnr."""
    from collection.images import to_tensor
    from rainbench.metrics import create_metric

    psnr, ssim = create_metric("psnr"), create_metric("ssim")
    values = []
    for rainy, clean in _images(data):
        x, y = to_tensor(rainy).contiguous(), to_tensor(clean).contiguous()
        values.append(float(psnr(x, y)[0]))
        float(ssim(x, y)[0])
    return float(np.mean(values))


def runner(data: Path, out: Path, workers: int) -> float:
    """The full runner (identity method, fresh run directory); returns the mean psnr."""
    from rainbench.runner import run_benchmark

    shutil.rmtree(out, ignore_errors=True)
    summary = run_benchmark(data, [], ["psnr", "ssim"], out, device="cpu", workers=workers)
    table = summary.table.set_index("metric")
    return float(table.loc["psnr", "mean"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10, help="Images in the split.")
    parser.add_argument("--height", type=int, default=160, help="Image height.")
    parser.add_argument("--width", type=int, default=240, help="Image width.")
    parser.add_argument("--rounds", type=int, default=5, help="Timed rounds per variant (median reported).")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: a 2-thread pool on a shared 2-core VM stalls whenever a core is taken).")
    args = parser.parse_args()

    import pyiqa  # noqa: F401 - imports happen before timing, on both sides
    import torch

    import rainbench.metrics
    import rainbench.runner  # noqa: F401

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="rainbench-bench-runner-"))
    data = make_dataset(work, args.count, args.height, args.width)
    variants = {
        "bare loop, pyiqa psnr+ssim": lambda: bare_pyiqa(data),
        "bare loop, rainbench.metrics": lambda: bare_rainbench(data),
        "runner, workers=0": lambda: runner(data, work / "run0", 0),
        "runner, workers=1": lambda: runner(data, work / "run1", 1),
    }
    for fn in variants.values():  # warm-up: caches, lazy imports, first-call allocations
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    means: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            # CPU seconds include decode workers (children are joined when a DataLoader finishes);
            # on a shared machine they are steadier than wall time.
            before, start = os.times(), time.perf_counter()
            means[name] = fn()
            after = os.times()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(sum(after[:4]) - sum(before[:4]))
    wall = {name: statistics.median(t) for name, t in times.items()}
    cpus = {name: statistics.median(t) for name, t in cpu.items()}
    print(f"{args.count} images {args.width}x{args.height}, psnr+ssim, CPU, torch threads {torch.get_num_threads()}, "
          f"median of {args.rounds} rounds")
    for name in variants:
        print(f"  {name:32s} wall {wall[name]:7.2f} s ({args.count / wall[name]:5.2f} img/s)  cpu {cpus[name]:7.2f} s"
              f"  mean psnr {means[name]:.4f}")
    for base in ("bare loop, pyiqa psnr+ssim", "bare loop, rainbench.metrics"):
        for name in ("runner, workers=0", "runner, workers=1"):
            print(f"  ratio {name} / {base}: wall {wall[name] / wall[base]:.3f}x, cpu {cpus[name] / cpus[base]:.3f}x")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
