"""Ray engine overhead and scaling (issue 18): the CLI on ``--engine local`` against ``--engine ray``.

    .venv/bin/python benchmarks/bench_engine.py [--photos 200] [--pairs 100] [--methods guided,gmm_plus]

Every figure is one ``rainbench`` command run as a subprocess into a fresh output folder:

1. Overhead, ingest: ``rainbench ingest PHOTOS --out OUT --min-side 64 -q`` on ``--photos`` 12 MP
   camera JPEGs (``make_photos.py``, written once under ``--work`` and reused), local vs ray.
2. Overhead, run: ``rainbench run --method METHODS --dataset DS --out RUN -q`` on ``--pairs`` paired
   480 x 320 images (distinct crops/flips of scikit-image photographs through ``rainbench synth``,
   ingested with ``--split-ratios test=1``), local vs ray; the two runs' ``value`` columns (sorted by
   image, method, metric) are compared for equality.
3. Scaling: the same commands with 1 and 2 workers (ingest ``--workers``, local and ray; run
   ``--replicas`` on ray), and run on local with ``OMP_NUM_THREADS=1`` (one torch thread, as each
   Ray actor has), whose scores should equal ray's bit for bit.
4. Ray's fixed start-up cost: a 2-image ingest (640 x 480) on ray minus the same on local, and
   ``ray.init()`` + ``ray.shutdown()`` alone in a fresh interpreter.

Wall seconds (``time.perf_counter``) are the figure. "child CPU s" is ``RUSAGE_CHILDREN`` of this
script across the command: the CLI process and the local workers it reaps; Ray's daemons and actors
are not reaped by it, so on ray it misses most of the work. "machine CPU s" is the busy time of all
CPUs from /proc/stat over the command (every process on the machine, other users' included).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

RAINBENCH = [str(Path(sys.executable).parent / "rainbench")]  # the venv's console script


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (user, nice, system, irq, softirq, steal)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:3]) + sum(fields[5:8])) / os.sysconf("SC_CLK_TCK")


def timed(cmd: list[str], out: Path | None = None, env: dict | None = None) -> dict:
    """Run ``cmd`` (``out`` removed first, ``env`` added); wall, child CPU and machine CPU seconds, or the error."""
    if out is not None:
        shutil.rmtree(out, ignore_errors=True)
    wall, cpu, busy = time.perf_counter(), child_cpu(), machine_cpu()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env={**os.environ, **(env or {})})
    row = {"wall": time.perf_counter() - wall, "cpu": child_cpu() - cpu, "busy": machine_cpu() - busy,
           "rc": proc.returncode, "cmd": " ".join(cmd), "stdout": proc.stdout.strip()}
    if proc.returncode != 0:
        print(f"FAILED (rc {proc.returncode}): {row['cmd']}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}",
              file=sys.stderr, flush=True)
    return row


def linked_subset(paths: list[Path], folder: Path) -> Path:
    """``folder`` holding hard links to ``paths`` only (the cache may hold more files)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for p in paths:
        os.link(p, folder / p.name)
    return folder


def make_clean(folder: Path, count: int, size: tuple[int, int] = (480, 320), seed: int = 0) -> Path:
    """``count`` distinct clean PNGs: random crops (scale, position, flip) of scikit-image photographs."""
    from PIL import Image, ImageOps
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.png"))) == count:
        return folder
    names = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
             "camera", "coins", "brick", "grass", "gravel", "cell", "moon", "clock", "colorwheel")
    bases = [Image.fromarray(getattr(data, n)()).convert("RGB") for n in names]
    rng = np.random.default_rng(seed)
    for i in range(count):
        base = bases[i % len(bases)]
        scale = rng.uniform(0.45, 0.9)
        w = int(min(base.width, base.height * size[0] / size[1]) * scale)
        h = int(w * size[1] / size[0])
        x, y = int(rng.integers(0, base.width - w + 1)), int(rng.integers(0, base.height - h + 1))
        img = base.crop((x, y, x + w, y + h)).resize(size, Image.Resampling.BICUBIC)
        if rng.random() < 0.5:
            img = ImageOps.mirror(img)
        if rng.random() < 0.3:
            img = ImageOps.flip(img)
        img.save(folder / f"clean_{i:04d}.png")
    return folder


def same_values(a: Path, b: Path) -> str:
    """Whether two run folders hold identical ``value`` columns (sorted by image, method, metric)."""
    from rainbench.results import read_results

    try:
        fa, fb = (read_results(p).sort_values(["image_id", "method", "metric"]).reset_index(drop=True)
                  for p in (a, b))
    except Exception as exc:  # noqa: BLE001 - a failed run has no results
        return f"cannot compare ({exc})"
    keys = ["image_id", "method", "metric"]
    if len(fa) != len(fb) or not fa[keys].equals(fb[keys]):
        return f"different rows ({len(fa)} vs {len(fb)})"
    va, vb = fa["value"].to_numpy(float), fb["value"].to_numpy(float)
    if np.array_equal(va, vb, equal_nan=True):
        return f"identical ({len(fa)} values)"
    differ = ~np.isclose(va, vb, rtol=0, atol=0, equal_nan=True)
    which = sorted({f"{m}/{k}" for m, k in fa.loc[differ, ["method", "metric"]].itertuples(index=False)})
    return (f"DIFFERENT ({int(differ.sum())} of {len(va)}, in {', '.join(which)}; "
            f"max |diff| {np.nanmax(np.abs(va - vb)):.3g})")


def method_seconds(run_dir: Path) -> str:
    """Mean seconds per image of each method, as the run recorded them (derain only, metrics apart)."""
    from rainbench.results import read_results

    try:
        frame = read_results(run_dir).drop_duplicates(["image_id", "method"])
    except Exception:  # noqa: BLE001 - a failed run has no results
        return "no results"
    return ", ".join(f"{m} {v:.2f}" for m, v in frame.groupby("method")["seconds"].mean().items())


def ray_init_alone() -> dict:
    code = ("import logging, time; t = time.perf_counter(); import ray; i = time.perf_counter();"
            "ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR);"
            "s = time.perf_counter(); ray.shutdown();"
            "print(f'import {i - t:.2f} s, init {s - i:.2f} s, shutdown {time.perf_counter() - s:.2f} s')")
    return timed([sys.executable, "-c", code])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=200, help="12 MP JPEGs for the ingest figures")
    parser.add_argument("--pairs", type=int, default=100, help="paired images for the run figures")
    parser.add_argument("--methods", default="guided,gmm_plus", help="--method of run (identity is always added)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rainbench-bench-engine"), help="work folder (cache)")
    args = parser.parse_args()
    from make_photos import make_photos

    work = args.work
    photos = linked_subset(make_photos(work / "photos-cache", args.photos), work / f"photos-{args.photos}")
    tiny = make_photos(work / "tiny", 2, size=(640, 480))[0].parent
    megabytes = sum(p.stat().st_size for p in photos.iterdir()) / 1e6
    clean = make_clean(work / f"clean-{args.pairs}", args.pairs)
    pairs, ds = work / f"pairs-{args.pairs}", work / f"ds-{args.pairs}"
    if not (ds / "manifest.parquet").exists():
        for cmd in ([*RAINBENCH, "synth", str(clean), "-o", str(pairs), "-q"],
                    [*RAINBENCH, "ingest", str(pairs), "--out", str(ds), "--min-side", "64",
                     "--split-ratios", "test=1", "--duplicates", "flag", "-q"]):
            if timed(cmd)["rc"]:
                sys.exit("could not build the paired dataset")
    load = os.getloadavg()[0]
    print(f"{args.photos} JPEGs 4000x3000 ({megabytes:.0f} MB); {args.pairs} pairs 480x320; methods "
          f"{args.methods} + identity; nproc {os.cpu_count()}; load average {load:.1f} at start", flush=True)

    def ingest(folder: Path, engine: str, *extra: str) -> dict:
        out = work / "out-ingest"
        return timed([*RAINBENCH, "ingest", str(folder), "--out", str(out), "--min-side", "64", "-q",
                      "--engine", engine, *extra], out)

    def run(engine: str, name: str, *extra: str, env: dict | None = None) -> dict:
        out = work / f"run-{name}"
        return timed([*RAINBENCH, "run", "--method", args.methods, "--dataset", str(ds), "--out", str(out), "-q",
                      "--engine", engine, *extra], out, env)

    # Warm-up (page cache of the images and of the venv, the gmm prior on disk): not timed.
    ingest(tiny, "local")
    rows: list[tuple[str, str, dict]] = []

    def add(section: str, label: str, row: dict) -> dict:
        rows.append((section, label, row))
        status = "" if row["rc"] == 0 else f"  FAILED rc {row['rc']}"
        print(f"  {label:<44} {row['wall']:8.1f} s wall  {row['cpu']:7.1f} child CPU s  "
              f"{row['busy']:7.1f} machine CPU s{status}", flush=True)
        return row

    print("start-up", flush=True)
    add("start-up", "`ray.init()` + `ray.shutdown()` alone", init := ray_init_alone())
    print("   ", init["stdout"])
    t_local = add("start-up", "ingest 2 small JPEGs, local", ingest(tiny, "local"))
    t_ray = add("start-up", "ingest 2 small JPEGs, ray", ingest(tiny, "ray"))
    print("overhead, ingest", flush=True)
    i_local = add("ingest", f"ingest {args.photos} x 12 MP, local (default workers)", ingest(photos, "local"))
    i_ray = add("ingest", f"ingest {args.photos} x 12 MP, ray (default workers)", ingest(photos, "ray"))
    print("overhead, run", flush=True)
    r_local = add("run", f"run {args.pairs} pairs, local", run("local", "local"))
    r_ray = add("run", f"run {args.pairs} pairs, ray (default replicas)", run("ray", "ray"))
    print("scaling", flush=True)
    for engine in ("local", "ray"):
        for n in (1, 2):
            add("scaling", f"ingest, {engine} --workers {n}", ingest(photos, engine, "--workers", str(n)))
    for n in (1, 2):
        add("scaling", f"run, ray --replicas {n}", run("ray", f"ray-r{n}", "--replicas", str(n)))
    # A Ray actor computes with one torch thread; the local run with the whole CPU budget as threads.
    add("scaling", "run, local, OMP_NUM_THREADS=1", run("local", "local-t1", env={"OMP_NUM_THREADS": "1"}))

    match = same_values(work / "run-local", work / "run-ray")
    print(f"\nresults.parquet values, local vs ray: {match}")
    print(f"  local vs ray --replicas 2: {same_values(work / 'run-local', work / 'run-ray-r2')}")
    print(f"  local OMP_NUM_THREADS=1 vs ray: {same_values(work / 'run-local-t1', work / 'run-ray')}")
    for name in ("local", "ray", "ray-r1", "ray-r2", "local-t1"):
        print(f"  derain s/image, run-{name}: {method_seconds(work / f'run-{name}')}")
    print("\n| section | command | wall s | child CPU s | machine CPU s |\n|---|---|---:|---:|---:|")
    for section, label, row in rows:
        fail = "" if row["rc"] == 0 else " (FAILED)"
        print(f"| {section} | {label}{fail} | {row['wall']:.1f} | {row['cpu']:.1f} | {row['busy']:.1f} |")
    fixed = t_ray["wall"] - t_local["wall"]
    print(f"\nRay fixed cost (2-image ingest, ray - local): {fixed:.1f} s")
    for name, lo, ra, n in (("ingest", i_local, i_ray, args.photos), ("run", r_local, r_ray, args.pairs)):
        per_item = (ra["wall"] - lo["wall"] - fixed) / n
        print(f"{name}: ray / local = {ra['wall'] / lo['wall']:.2f}x ({ra['wall']:.1f} s vs {lo['wall']:.1f} s); "
              f"beyond the fixed cost {per_item * 1000:+.0f} ms per item")


if __name__ == "__main__":
    main()
