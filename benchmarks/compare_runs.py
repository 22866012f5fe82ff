"""Largest per-(method, metric) difference of mean scores between two `rainbench run` directories.

    .venv/bin/python benchmarks/compare_runs.py RUN_A RUN_B [--tolerance 0.01]

Exits 1 when a mean PSNR differs by more than ``--tolerance`` dB (what benchmarks/gpu.sh checks for
AMP against full precision).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def means(run: Path) -> pd.Series:
    """Mean finite score per (method, metric) of a run directory's results.parquet."""
    frame = pd.read_parquet(run / "results.parquet")
    frame = frame[frame["error"].isna()] if "error" in frame else frame
    return frame.groupby(["method", "metric"])["value"].mean()


def main() -> None:
    """Print every (method, metric) pair with both means and their difference."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--tolerance", type=float, default=0.01, help="largest allowed PSNR difference in dB")
    args = p.parse_args()
    a, b = means(args.a), means(args.b)
    both = pd.concat({"a": a, "b": b}, axis=1).dropna()
    both["diff"] = (both["a"] - both["b"]).abs()
    print(both.to_string(float_format=lambda v: f"{v:.4f}"))
    psnr = both.xs("psnr", level="metric")["diff"] if "psnr" in both.index.get_level_values("metric") else pd.Series()
    worst = float(psnr.max()) if len(psnr) else 0.0
    print(f"largest PSNR difference: {worst:.4f} dB (tolerance {args.tolerance})")
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
