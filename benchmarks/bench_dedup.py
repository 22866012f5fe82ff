"""Near-duplicate clustering at scale: multi-index hashing against a vectorised brute force.

Usage: .venv/bin/python benchmarks/bench_dedup.py [--sizes 10000 100000 1000000] [--radius 8]

Each size runs in a fresh subprocess so its peak RSS is its own. The data are uniform random
64-bit hashes plus planted near-duplicate families (10% of the items, families of 2-20 members,
each member 0-4 bits from the family's base, so some are exact repeats as in burst shots). For the
smallest size the pairs are also computed by brute force (all n^2/2 distances, vectorised in
blocks) and must be identical.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collection.dedup import _plan, cluster, near_duplicate_pairs
from collection.phash import hamming


def make_hashes(n: int, seed: int = 0, burst: float = 0.0, dense: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random hashes with planted families; returns hashes and the family id per item (-1: none).

    Stress tests: ``burst`` makes that fraction of the items exact copies of just 100 hashes;
    ``dense`` replaces that many items by one family, each member 4 random bits from a common centre
    (so all are within radius 8 of each other), with no planted families then.
    """
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    copies = int(n * burst)
    hashes[n - copies :] = hashes[rng.integers(0, 100, copies)]
    n -= copies
    if dense:
        bits = np.argsort(rng.random((dense, 64)), axis=1)[:, :4].astype(np.uint64)
        hashes[:dense] = hashes[0] ^ np.bitwise_or.reduce(np.uint64(1) << bits, axis=1)
        return hashes, np.where(np.arange(len(hashes)) < dense, 0, -1)
    family = np.full(len(hashes), -1, dtype=np.int64)
    sizes = []
    while sum(sizes) < n // 10:
        sizes.append(int(rng.integers(2, 21)))
    members = rng.permutation(n)[: sum(sizes)]
    start = 0
    for f, size in enumerate(sizes):
        idx = members[start : start + size]
        start += size
        base = hashes[idx[0]]
        flips = np.zeros(size, dtype=np.uint64)
        for k in range(1, size):
            for bit in rng.choice(64, int(rng.integers(0, 5)), replace=False):
                flips[k] |= np.uint64(1 << int(bit))
        hashes[idx] = base ^ flips
        family[idx] = f
    return hashes, family


def brute_force_pairs(hashes: np.ndarray, radius: int, block: int = 512) -> np.ndarray:
    """All pairs within radius by computing every distance, vectorised one block of rows at a time."""
    out = []
    for a in range(0, len(hashes), block):
        rows = hashes[a : a + block]
        d = hamming(rows[:, None], hashes[None, a:])
        i, j = np.nonzero(d <= radius)
        keep = a + i < a + j
        out.append(np.stack([a + i[keep], a + j[keep]], axis=1))
    pairs = np.concatenate(out).astype(np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def run_one(n: int, radius: int, brute: bool, burst: float, dense: int) -> dict:
    """Time clustering of one size in this process; report peak RSS of the process."""
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    hashes, family = make_hashes(n, burst=burst, dense=dense)
    t0, c0 = time.perf_counter(), time.process_time()
    labels = cluster(hashes, radius)
    t_cluster, c_cluster = time.perf_counter() - t0, time.process_time() - c0
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    planted = family >= 0
    per_family = {}
    for f, lab in zip(family[planted].tolist(), labels[planted].tolist()):
        per_family.setdefault(f, set()).add(lab)
    result = {
        "n": n,
        "radius": radius,
        "burst": burst,
        "dense": dense,
        "plan": [(c.bits, c.tolerance) for c in _plan(len(np.unique(hashes)), radius)],
        "cluster_s": round(t_cluster, 3),
        "cluster_cpu_s": round(c_cluster, 3),
        "clusters": len(np.unique(labels)),
        "families_whole": f"{sum(len(v) == 1 for v in per_family.values())}/{len(per_family)}",
        "rss_after_import_mib": round(rss_start, 1),
        "peak_rss_mib": round(rss_peak, 1),
    }
    if brute:
        t0, c0 = time.perf_counter(), time.process_time()
        pairs = near_duplicate_pairs(hashes, radius)
        result["pairs_s"], result["pairs_cpu_s"] = round(time.perf_counter() - t0, 4), time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        reference = brute_force_pairs(hashes, radius)
        result["brute_s"], result["brute_cpu_s"] = round(time.perf_counter() - t0, 4), time.process_time() - c0
        result["pairs"] = len(pairs)
        result["identical_to_brute"] = bool(np.array_equal(pairs, reference))
        result["speedup_cpu"] = round(result["brute_cpu_s"] / result["pairs_cpu_s"], 1)
        result["pairs_cpu_s"], result["brute_cpu_s"] = round(result["pairs_cpu_s"], 4), round(result["brute_cpu_s"], 4)
    return result


def main() -> None:
    """Run each size in a subprocess and print one line of figures per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="item counts")
    parser.add_argument("--radius", type=int, default=8, help="Hamming radius")
    parser.add_argument("--brute-up-to", type=int, default=10_000, help="largest size also run by brute force")
    parser.add_argument("--burst", type=float, default=0.0, help="fraction of items copying 100 hashes")
    parser.add_argument("--dense", type=int, default=0, help="size of one dense family of distinct hashes")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_one(args.child, args.radius, args.child <= args.brute_up_to, args.burst, args.dense)))
        return
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--radius", str(args.radius)]
        cmd += ["--brute-up-to", str(args.brute_up_to), "--burst", str(args.burst), "--dense", str(args.dense)]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        print(json.dumps(json.loads(line)), flush=True)


if __name__ == "__main__":
    main()
