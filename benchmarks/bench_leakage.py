"""Two synthetic benchmark sets that share backgrounds: what ingest keeps, flags and removes, and why hashing the clean image matters.

Builds, in the Rain100L layout, a light-rain test set (30 backgrounds, 5 of them used twice with
other rain: 35 pairs) and a heavy-rain training set over the same 30 backgrounds, ingests both with
``rainbench ingest``, and prints the leakage section of the curation report, then counts the
cross-set links a perceptual hash finds from the rainy images against the clean ones.

    .venv/bin/python benchmarks/bench_leakage.py [--work /tmp/rainbench-leakage]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from collection.phash import hamming, phash64
from collection.synth import add_rain

PHOTOS = (data.astronaut, data.coffee, data.chelsea, data.rocket, data.immunohistochemistry, data.retina)
REPEATED = (0, 3, 7, 12, 20)


def backgrounds() -> list[np.ndarray]:
    """Thirty 160 x 200 backgrounds: five disjoint crops of each of six photographs."""
    out = []
    for photo in PHOTOS:
        img = Image.fromarray(photo()).convert("RGB")
        w, h = img.size
        for k in range(5):
            x0 = (w // 5) * k
            out.append(np.asarray(img.crop((x0, 0, x0 + w // 5, h // 2)).resize((160, 200), Image.Resampling.LANCZOS)))
    return out


def write_set(root: Path, clean: list[np.ndarray], preset: str, seed: int) -> None:
    """``root/rain/rain-N.png`` and ``root/norain/norain-N.png`` with rainbench's rain synthesis."""
    (root / "rain").mkdir(parents=True)
    (root / "norain").mkdir()
    for n, background in enumerate(clean, 1):
        rainy = add_rain(background, preset, seed=seed + n, return_layer=False)[0]
        Image.fromarray(rainy).save(root / "rain" / f"rain-{n}.png")
        Image.fromarray(background).save(root / "norain" / f"norain-{n}.png")


def links(a: Path, b: Path, radius: int) -> int:
    """Images of folder ``b`` within ``radius`` bits (perceptual hash) of some image of folder ``a``."""
    def hashes(folder: Path) -> list[int]:
        return [phash64(np.asarray(Image.open(p).convert("RGB"))) for p in sorted(folder.glob("*.png"))]

    ha = hashes(a)
    return sum(any(hamming(h, x) <= radius for x in ha) for h in hashes(b))


def main() -> None:
    """Write the two sets, ingest them, print the leakage section and the hash comparison."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/rainbench-leakage"))
    p.add_argument("--radius", type=int, default=8, help="near-duplicate radius in bits (ingest's default)")
    args = p.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    clean = backgrounds()
    light, heavy = args.work / "sets" / "lightbench" / "test", args.work / "sets" / "heavybench" / "train"
    write_set(light, clean + [clean[k] for k in REPEATED], "rain100l", 0)
    write_set(heavy, clean, "rain100h", 1000)
    out = args.work / "dataset"
    subprocess.run([sys.executable, "-m", "rainbench", "ingest", "-q", f"lightbench={light.parent}",
                    f"heavybench={heavy.parent}", "--out", str(out), "--min-side", "64"], check=True)
    report = (out / "report" / "report.md").read_text()
    start = report.index("## Leakage")
    print(report[start:report.index("\n## ", start + 3)])
    for side in ("rain", "norain"):
        n = links(light / side, heavy / side, args.radius)
        print(f"heavy-set rows linked to the light set by the {'rainy' if side == 'rain' else 'clean'} images' hash: "
              f"{n} of {len(clean)}")


if __name__ == "__main__":
    main()
