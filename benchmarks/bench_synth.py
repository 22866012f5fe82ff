"""Rain synthesis speed (images/s) and peak memory at 1080p and 12 MP, per preset.

Peak memory is what numpy allocates during one call (tracemalloc, which numpy reports to), the
output image included: it shows that memory is the image plus one strip, not several
full-resolution float planes.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from collection.synth import add_rain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = {"1080p": (1080, 1920), "12MP": (3000, 4000)}
    print(f"{'size':6s} {'preset':9s} {'images/s':>9s} {'image MB':>9s} {'peak alloc MB':>14s}")
    for label, (h, w) in sizes.items():
        img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        for preset in ("rain100l", "rain100h"):
            add_rain(img, preset, seed=0, return_layer=False)
            start = time.perf_counter()
            for seed in range(args.repeats):
                add_rain(img, preset, seed=seed, return_layer=False)
            rate = args.repeats / (time.perf_counter() - start)
            tracemalloc.start()
            add_rain(img, preset, seed=0, return_layer=False)
            extra = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
            print(f"{label:6s} {preset:9s} {rate:9.2f} {h * w * 3 / 1e6:9.1f} {extra:14.1f}")


if __name__ == "__main__":
    main()
