"""Write realistic 12 MP JPEG 'camera photos' with EXIF for the benchmarks (shared by several scripts).

Upscaled scikit-image photographs with sensor-like noise and a camera's EXIF block, so decoding
costs what a real camera file costs (entropy, size) without shipping data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def make_photos(out: Path, count: int, size: tuple[int, int] = (4000, 3000), seed: int = 0) -> list[Path]:
    """Write ``count`` JPEGs of ``size`` (w, h) under ``out`` (reused when already there)."""
    from skimage import data

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bases = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    paths = []
    for i in range(count):
        path = out / f"IMG_{i:04d}.jpg"
        paths.append(path)
        if path.exists():
            continue
        base = Image.fromarray(bases[i % len(bases)]).resize(size, Image.Resampling.BICUBIC)
        arr = np.asarray(base).astype(np.int16)
        arr = np.clip(arr + rng.normal(0, 4, arr.shape).astype(np.int16), 0, 255).astype(np.uint8)
        exif = Image.Exif()
        exif[0x010F], exif[0x0110], exif[0x0112] = "BenchCam", f"Model {i % 3}", 1
        sub = exif.get_ifd(0x8769)
        sub[0x9003] = f"2026:11:{1 + i % 28:02d} 10:{i % 60:02d}:00"
        sub[0x829A], sub[0x829D], sub[0x8827], sub[0x920A] = 1 / 250, 2.8, 400, 24.0
        Image.fromarray(arr).save(path, quality=92, exif=exif)
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    print(len(make_photos(args.out, args.count)), "photos in", args.out)
