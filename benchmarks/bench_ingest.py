"""Ingest throughput against imagededup's PHash hashing, and peak memory against the number of images.

    .venv/bin/python benchmarks/bench_ingest.py [--n 200] [--workers 2] [--imagededup-python /tmp/idd/bin/python]

1. Writes ``--n`` distinct 12 MP (4000 x 3000) JPEGs with camera EXIF under ``--data`` (reused
   when already there).
2. Times ``rainbench ingest``'s library entry point on them (2 workers, fresh output): the probe
   stage (full-bitstream decode, sha256, pHash, pixel checks, EXIF, quality figures) and the whole
   run (curation, dataset build copying every byte, report).
3. Times imagededup's ``PHash().encode_images`` on the same folder in the same run, in a separate
   interpreter (imagededup is not a rainbench dependency: create it with
   ``python3 -m venv /tmp/idd && /tmp/idd/bin/pip install imagededup``).
4. Runs ingest in fresh subprocesses on growing subsets and reports each one's peak RSS
   (main process and workers), which should stay flat as the image count grows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops
from PIL.ExifTags import IFD
from PIL.TiffImagePlugin import IFDRational

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = (4000, 3000)


def make_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` distinct 12 MP JPEGs with EXIF (reused if present)."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"IMG_{i:04d}.jpg" for i in range(n)]
    if all(p.exists() for p in paths):
        return paths
    small = (SIZE[0] // 4, SIZE[1] // 4)
    bases = [np.asarray(Image.fromarray(f()).convert("RGB").resize(small, Image.Resampling.BILINEAR))
             for f in (data.astronaut, data.coffee, data.chelsea, data.rocket, data.camera, data.coins)]
    rng = np.random.default_rng(seed)
    # Sensor-like grain at full resolution (drawn once), so files weigh what camera JPEGs weigh.
    grain = Image.fromarray(rng.integers(0, 17, (SIZE[1], SIZE[0], 3), dtype=np.uint8))
    for i, path in enumerate(paths):
        if path.exists():
            continue
        base = bases[i % len(bases)]
        shift = int(rng.integers(0, small[0] // 2))
        arr = np.roll(base, (shift, shift // 3), axis=(1, 0))  # a different picture per file
        arr = np.clip(arr.astype(np.int16) + rng.integers(-40, 40, 3), 0, 255).astype(np.uint8)
        full = Image.fromarray(arr).resize(SIZE, Image.Resampling.BILINEAR)
        full = ImageChops.add(full, grain, scale=1.0, offset=-8)
        exif = Image.Exif()
        exif[0x010F], exif[0x0110] = "BenchCam", "Model 12"
        sub = exif.get_ifd(IFD.Exif)
        sub[0x9003] = f"2024:06:01 12:{(i * 7) // 60 % 60:02d}:{(i * 7) % 60:02d}"
        sub[0x829A], sub[0x829D], sub[0x8827] = IFDRational(1, 125), IFDRational(28, 10), 400
        full.save(path, quality=90, exif=exif)
    return paths


def time_imagededup(python: str, folder: Path, workers: int) -> dict:
    """Seconds spent in ``PHash().encode_images`` (measured inside the imagededup interpreter)."""
    code = (
        "import json,resource,sys,time\n"
        "from imagededup.methods import PHash\n"
        "cpu = lambda: sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)"
        " for f in ('ru_utime', 'ru_stime'))\n"
        "h = PHash(verbose=False)\n"
        "t, c = time.perf_counter(), cpu()\n"
        f"enc = h.encode_images(image_dir={str(folder)!r}, num_enc_workers={workers})\n"
        "print(json.dumps({'seconds': time.perf_counter() - t, 'cpu': cpu() - c, 'hashed': len(enc)}))\n"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (worker processes)."""
    import resource

    return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for field in ("ru_utime", "ru_stime"))


def time_ingest(folder: Path, out: Path, workers: int) -> dict:
    """Probe-stage and total seconds of one fresh ingest run."""
    from collection.ingest import IngestOptions, SourceSpec, ingest

    shutil.rmtree(out, ignore_errors=True)
    marks: dict[str, float] = {}

    def progress(stage: str, done: int, total: int | None) -> None:
        now = time.perf_counter()
        marks.setdefault(f"{stage}_start", now)
        marks[f"{stage}_end"] = now
        # Workers are reaped when probing ends, before curation starts: CPU there covers the probes.
        marks.setdefault(f"{stage}_cpu", _cpu())

    start, cpu0 = time.perf_counter(), _cpu()
    summary = ingest([SourceSpec(folder)], out, IngestOptions(workers=workers, split="train=0.8,test=0.2"), progress)
    total = time.perf_counter() - start
    return {"probe_seconds": marks["probe_end"] - marks["probe_start"], "total_seconds": total,
            "cpu": _cpu() - cpu0, "probe_cpu": marks["curate_cpu"] - marks["probe_cpu"],
            "ok": summary.status.get("ok", 0), "probed": summary.probed}


_RSS_CHILD = """
import json, resource, sys, threading, time
sys.path.insert(0, {root!r})
from collection.ingest import IngestOptions, SourceSpec, ingest

def status(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])

peak_anon = [0]
def sample():  # RssAnon: private memory; VmHWM also counts page cache mapped by Arrow's memory maps
    while True:
        peak_anon[0] = max(peak_anon[0], status("RssAnon"))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
t = time.perf_counter()
s = ingest([SourceSpec({folder!r})], __import__('pathlib').Path({out!r}), IngestOptions(workers={workers}))
time.sleep(0.05)
# VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec and would report the benchmark parent's peak.
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({{"n": s.probed, "seconds": time.perf_counter() - t, "anon_mb": peak_anon[0] / 1024,
                  "hwm_mb": status("VmHWM") / 1024, "worker_mb": child_kb / 1024}}))
"""


def peak_rss(paths: list[Path], work: Path, counts: list[int], workers: int) -> list[dict]:
    """Peak RSS of a fresh ingest subprocess (and its workers) for each image count."""
    rows = []
    for n in counts:
        folder = work / f"subset_{n}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for p in paths[:n]:
            os.link(p, folder / p.name)  # same bytes, no copy
        out = work / f"out_{n}"
        shutil.rmtree(out, ignore_errors=True)
        code = _RSS_CHILD.format(root=str(ROOT), folder=str(folder), out=str(out), workers=workers)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        shutil.rmtree(out, ignore_errors=True)
    return rows


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="number of 12 MP JPEGs")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for both tools")
    parser.add_argument("--data", type=Path, default=Path("/tmp/rainbench-bench-ingest"), help="work folder")
    parser.add_argument("--imagededup-python", default="/tmp/idd/bin/python", help="interpreter with imagededup")
    parser.add_argument("--rss-counts", default="25,50,100,200", help="image counts for the peak-RSS runs")
    args = parser.parse_args()

    paths = make_images(args.data / "images", args.n)
    folder = args.data / "images"
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    print(f"{len(paths)} JPEGs of {SIZE[0]}x{SIZE[1]} with EXIF, {megabytes:.0f} MB, {args.workers} workers")

    ours = time_ingest(folder, args.data / "out", args.workers)
    n = len(paths)
    print(f"rainbench probe stage : {ours['probe_seconds']:7.2f} s  {n / ours['probe_seconds']:6.2f} img/s  "
          f"{megabytes / ours['probe_seconds']:6.1f} MB/s  {ours['probe_cpu']:6.1f} CPU s")
    print(f"rainbench whole ingest: {ours['total_seconds']:7.2f} s  {n / ours['total_seconds']:6.2f} img/s  "
          f"{ours['cpu']:7.1f} CPU s (curation, dataset build copying {megabytes:.0f} MB, report)")
    if Path(args.imagededup_python).exists():
        theirs = time_imagededup(args.imagededup_python, folder, args.workers)
        print(f"imagededup PHash      : {theirs['seconds']:7.2f} s  {n / theirs['seconds']:6.2f} img/s  "
              f"{theirs['cpu']:7.1f} CPU s ({theirs['hashed']} hashed)")
        print(f"speed-up, probe stage vs imagededup hashing : {theirs['seconds'] / ours['probe_seconds']:.2f}x wall, "
              f"{theirs['cpu'] / ours['probe_cpu']:.2f}x CPU")
        print(f"speed-up, whole ingest vs imagededup hashing: {theirs['seconds'] / ours['total_seconds']:.2f}x wall, "
              f"{theirs['cpu'] / ours['cpu']:.2f}x CPU")
    else:
        print(f"imagededup not found at {args.imagededup_python}: skipped the comparison")

    counts = [c for c in (int(x) for x in args.rss_counts.split(",")) if c <= n]
    print("peak memory of a fresh ingest (MB): images | main private (RssAnon) | main incl. mapped files (VmHWM)"
          " | largest worker | seconds")
    for row in peak_rss(paths, args.data, counts, args.workers):
        print(f"  {row['n']:5d}  {row['anon_mb']:8.0f}  {row['hwm_mb']:8.0f}  {row['worker_mb']:8.0f}  {row['seconds']:7.1f}")


if __name__ == "__main__":
    main()
