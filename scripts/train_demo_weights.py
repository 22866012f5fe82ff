"""Train the weights `rainbench demo` ships (rainbench/demo_weights/) and write their record.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_demo_weights.py --work /tmp/demo-weights

Runs the demo's own commands, printed as it goes: writes the default demo's data, ingests it
(``rainbench ingest``), trains every learnable method with ``rainbench train`` on the
``rainbench.demo.SHIPPED`` budget, and once more on the short budget that
tests/test_demo_weights.py reruns; scores every run on the demo's test split (``rainbench run``,
PSNR-Y and SSIM-Y, with identity and guided as the lines to beat); then copies each ``weights.pt``
into rainbench/demo_weights/ and writes ``weights.json``. One torch thread (OMP_NUM_THREADS=1)
makes a run reproducible on this machine's kind of CPU; weights.json records the threads used.
Under two hours on one core; finished runs are reused when the script is rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import torch

import rainbench
from collection.files import atomic_write, sha256_file
from rainbench.cli import cli
from rainbench.demo import (FAST, SHIPPED, SHIPPED_DIR, data_fingerprint, ingest_command, learnable_methods,
                            make_demo_data, shipped_record, train_command)
from rainbench.results import read_results

SEED = 0
SHORT_ITERS = {"nlcl": 300, "cut": 300, "prenet": 100}
"""The budget tests/test_demo_weights.py reruns each recorded command for."""


def rainbench_cli(args: list[str]) -> None:
    """Run one rainbench command line in this process, printing it first; stop on failure."""
    print("$ rainbench " + shlex.join(args), flush=True)
    code = cli.main(args=[*args, "-q"], prog_name="rainbench", standalone_mode=False)
    if isinstance(code, int) and code != 0:
        sys.exit(f"failed (exit {code}): rainbench {shlex.join(args)}")


def scores(run_dir: Path) -> dict[str, dict[str, float]]:
    """Mean of each metric per method over the test split, from a finished ``rainbench run``."""
    frame = read_results(run_dir)
    return frame.groupby(["method", "metric"])["value"].mean().round(4).unstack().to_dict("index")


def main() -> None:
    """Train, score, copy the weights into the package and write weights.json."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/rainbench-demo-weights"), help="Work folder.")
    p.add_argument("--methods", default=None, help="Comma-separated learnable methods (default: all).")
    args = p.parse_args()
    work = args.work
    index = make_demo_data(work / "data", size=FAST.size, seed=SEED)
    dataset = work / "dataset"
    if not (dataset / "dataset_dict.json").exists():
        rainbench_cli(ingest_command(work / "data", dataset, SEED))
    wanted = args.methods.split(",") if args.methods else None
    record = {"size": FAST.size, "seed": SEED, "data_fingerprint": data_fingerprint(index),
              "methods": shipped_record().get("methods", {})}  # --methods retrains some, keeps the others
    for name, learns_from in learnable_methods():
        if wanted and name not in wanted:
            continue
        entry = {}
        for label, iters in (("short", SHORT_ITERS[name]), ("shipped", SHIPPED.iters[name])):
            run_dir = work / "train" / f"{name}-{iters}"
            command = train_command(name, learns_from, Path("DATASET"), Path("OUT"), SHIPPED, SEED)
            command[command.index("--iters") + 1] = str(iters)
            concrete = [str(dataset) if a == "DATASET" else str(run_dir) if a == "OUT" else a for a in command]
            if not (run_dir / "weights.pt").exists():
                rainbench_cli([*concrete, "--device", "cpu"])
            runs = work / "runs" / f"{name}-{iters}"
            if not (runs / "results.parquet").exists() and not list(runs.glob("*.parquet")):
                rainbench_cli(["run", "--method", f"identity,guided,{name}", "--weights", f"{name}={run_dir / 'weights.pt'}",
                               "--dataset", str(dataset), "--split", "test", "--metric", "psnr,ssim", "--out", str(runs),
                               "--device", "cpu", "--seed", str(SEED)])
            got = scores(runs)
            entry[label] = {"iters": iters, "command": "rainbench " + shlex.join(command), **got[name]}
            record["baselines"] = {m: got[m] for m in ("identity", "guided")}
        target = SHIPPED_DIR / f"{name}.pt"
        shutil.copyfile(work / "train" / f"{name}-{SHIPPED.iters[name]}" / "weights.pt", target)
        entry["file"] = target.name
        entry["sha256"] = sha256_file(target)
        record["methods"][name] = entry
        print(f"{name}: {entry}", flush=True)
    record["trained_with"] = {"rainbench": rainbench.__version__, "torch": torch.__version__,
                              "threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    atomic_write(SHIPPED_DIR / "weights.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"wrote {SHIPPED_DIR / 'weights.json'}")


if __name__ == "__main__":
    main()
