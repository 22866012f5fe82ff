"""Probe throughput on 12 MP camera JPEGs, in this process: the cost of the strict corrupt-data checks.

    .venv/bin/python benchmarks/bench_probe.py [--n 20] [--rounds 3] [--code DIR]

Writes ``--n`` distinct 4000 x 3000 JPEGs with EXIF (``bench_ingest.make_images``, reused when
present), then runs ``collection.probe.probe`` on each of them ``--rounds`` times in this process
(no worker pool, so the figure is the probe itself) and prints CPU ms and wall ms per image and
MB/s, the best round. ``--code DIR`` imports ``collection`` from another checkout, e.g. one made
with ``git archive`` of an older commit, to compare before and after on the same files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Time the probe and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="number of 12 MP JPEGs")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the files (best is kept)")
    parser.add_argument("--data", type=Path, default=Path("/tmp/rainbench-bench-ingest"), help="image folder")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose collection package is timed")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_ingest import (
        make_images,  # puts this checkout first on sys.path: --code goes before it
    )

    sys.path.insert(0, str(args.code.resolve()))
    import collection
    from collection.probe import ProbeTask, probe

    paths = make_images(args.data, args.n)
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    best = None
    for _ in range(args.rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        for path in paths:
            record = probe(ProbeTask(key=str(path), file=str(path)))
            assert record["status"] == "ok", record["detail"]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if best is None or cpu < best[0]:
            best = (cpu, wall)
    cpu, wall = best
    print(json.dumps({
        "code": str(Path(collection.__file__).parent.parent), "images": len(paths), "MB": round(megabytes, 1),
        "cpu_ms_per_image": round(1000 * cpu / len(paths), 1), "wall_ms_per_image": round(1000 * wall / len(paths), 1),
        "images_per_cpu_s": round(len(paths) / cpu, 2), "MB_per_cpu_s": round(megabytes / cpu, 1),
    }))


if __name__ == "__main__":
    main()
