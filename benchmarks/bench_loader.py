"""Loader decode throughput vs plain PIL on 12 MP JPEGs (goal: within a few percent).

Both sides fully decode the file: PIL is the bare minimum, `Image.open(p)` + `load()` (the files are
RGB already, so no conversion); rainbench's `collection.images.decode` adds the pixel-limit check,
EXIF orientation and mode handling on top. Runs
alternate between the two so machine noise hits both equally; the median of the rounds is used.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from make_photos import make_photos

from collection.images import decode


def plain_pil(path: Path) -> None:
    with Image.open(path) as img:
        img.load()


def ours(path: Path) -> None:
    decode(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=Path, default=Path("/tmp/rainbench-bench/photos12mp"))
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    paths = make_photos(args.photos, args.count)
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    times = {"PIL": [], "rainbench": []}
    for _ in range(args.rounds):
        for name, fn in (("PIL", plain_pil), ("rainbench", ours)):
            start = time.perf_counter()
            for path in paths:
                fn(path)
            times[name].append(time.perf_counter() - start)
    print(f"{len(paths)} JPEGs 4000x3000 ({megabytes:.0f} MB), median of {args.rounds} rounds")
    for name, series in times.items():
        med = statistics.median(series)
        print(f"  {name:10s} {len(paths) / med:6.2f} images/s  {megabytes / med:6.1f} MB/s")
    ratio = statistics.median(times["rainbench"]) / statistics.median(times["PIL"])
    print(f"  time ratio rainbench / PIL = {ratio:.3f}")


if __name__ == "__main__":
    main()
