"""Writing the Hub tree of a curated dataset: throughput and peak memory as the dataset grows.

Usage: .venv/bin/python benchmarks/bench_publish.py [--rows 50 200] [--shard-size 100MB] [--megapixels 6]

For each row count one subprocess saves a paired DatasetDict (``save_to_disk``, like
``rainbench ingest``) whose rows hold camera-sized JPEGs (half of them with GPS and a serial
number in their EXIF, so scrubbing runs), and a second, fresh subprocess runs
``collection.publish.dry_run`` on it. It prints the dataset size, the seconds and MB/s of the dry
run, the shards written, that process's anonymous memory after imports and at its peak during
the dry run (sampled every 20 ms), and its peak RSS (which also counts memory-mapped Arrow pages).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _jpeg(seed: int, megapixels: float, gps: bool) -> bytes:
    import numpy as np
    from PIL import Image

    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    rng = np.random.default_rng(seed)
    # Smooth gradients plus noise: compresses like a photograph (a few MB at quality 92).
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * (1 + seed % 3) + y) % 256, (y * 2 + seed) % 256, (x + y * 3) % 256], -1)
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "RainCam", "X1"
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 30.0, 0.0), 3: "E", 4: (13.0, 24.0, 0.0)}
        exif[0x8769] = {0xA431: "SN-0042"}
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=92, exif=exif)
    return buf.getvalue()


def _build(src: Path, rows: int, megapixels: float) -> None:
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar

    from collection.build import features

    disable_progress_bar()
    distinct = [_jpeg(seed, megapixels, gps=seed % 2 == 0) for seed in range(8)]

    def generate(n: int, offset: int):
        for i in range(n):
            row = {name: None for name in features(True)}
            row.update(id=f"{offset + i:016x}", rainy={"bytes": distinct[(i + offset) % 8], "path": None},
                       clean={"bytes": distinct[(i + offset + 3) % 8], "path": None}, role="pair",
                       source="bench", layout="paired", path=f"{i}.jpg", width=1, height=1, format="JPEG",
                       sha256="0" * 64, phash="0" * 16)
            yield row

    parts = {}
    for split, n, offset in (("train", rows * 4 // 5, 0), ("test", rows - rows * 4 // 5, 10**6)):
        parts[split] = Dataset.from_generator(generate, features=features(True), writer_batch_size=8,
                                              gen_kwargs={"n": n, "offset": offset},
                                              cache_dir=str(src.parent / "gen-cache"))
    DatasetDict(parts).save_to_disk(str(src))


def _run(src: Path, shard_size: str) -> dict:
    from datasets.utils.logging import disable_progress_bar

    from collection.publish import dry_run

    disable_progress_bar()
    size = sum(p.stat().st_size for p in src.rglob("*.arrow"))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    anon_base, anon_peak, running = _rss_anon(), [0.0], [True]

    def sample() -> None:  # peak anonymous memory: ru_maxrss also counts memory-mapped Arrow pages
        while running[0]:
            anon_peak[0] = max(anon_peak[0], _rss_anon())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start, cpu0 = time.perf_counter(), time.process_time()
    tree = dry_run(src, src.parent / "tree", repo_id="bench/rain", shard_size=shard_size)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    running[0] = False
    sampler.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rows": sum(tree.rows.values()), "dataset_mb": size / 1e6, "seconds": seconds, "cpu_s": cpu,
            "mb_per_s": size / 1e6 / seconds, "shards": len(tree.shards), "scrubbed": tree.scrubbed_images,
            "rss_base_mib": base / 1024, "rss_peak_mib": peak / 1024, "anon_base_mib": anon_base,
            "anon_peak_mib": anon_peak[0]}


def _rss_anon() -> float:
    """Resident anonymous memory of this process in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    """Run each size in its own process and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--shard-size", default="100MB")
    parser.add_argument("--megapixels", type=float, default=6.0)
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        _build(args.build, args.rows[0], args.megapixels)
        return
    if args.run:
        print(json.dumps(_run(args.run, args.shard_size)))
        return
    print("| rows (pairs) | dataset MB | dry run s | CPU s | MB/s | shards | images scrubbed | "
          "anon MiB after imports | anon MiB peak | peak RSS MiB (incl. mmap) |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rows in args.rows:
        with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
            src = Path(tmp) / "ds"
            subprocess.run([sys.executable, __file__, "--build", str(src), "--rows", str(rows),
                            "--megapixels", str(args.megapixels)], check=True, capture_output=True)
            out = subprocess.run([sys.executable, __file__, "--run", str(src), "--shard-size", args.shard_size],
                                 check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"| {r['rows']} | {r['dataset_mb']:.0f} | {r['seconds']:.1f} | {r['cpu_s']:.1f} | {r['mb_per_s']:.0f} | "
              f"{r['shards']} | {r['scrubbed']} | {r['anon_base_mib']:.0f} | {r['anon_peak_mib']:.0f} | "
              f"{r['rss_peak_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
