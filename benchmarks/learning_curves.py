"""Learning curves: where do the learnable methods overtake the priors? Held-out scores vs training minutes.

Each learnable method trains in one run through the registry (``baselines.create(...).fit``, what
``rainbench train`` does), resumed from its checkpoint to each budget of ``--budgets``, and is scored
on held-out test scenes after each: PSNR and SSIM on Y (MATLAB convention, rainbench's metrics) and
PIQE (no reference, needs no weights). NLCL (symmetric and asymmetric) and CUT train truly unpaired:
the rainy and the clean training sets are different photographs, and the test photographs are in
neither. PReNet trains on (rainy, clean) pairs of the rainy set's photographs, as the supervised
reference. ``gmm``, ``guided`` and ``identity`` need no training: they are horizontal lines.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/learning_curves.py --preset rain100h --minutes 15
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/learning_curves.py --preset rain100l --methods nlcl,cut

Writes ``OUT/curves-PRESET.jsonl`` (one line per scored checkpoint) and ``OUT/curves-PRESET.png``.
A rerun with a larger ``--minutes`` continues each curve from its last line and checkpoint.
The unpaired runs use a constant learning rate (``decay_fraction=0``) so that every checkpoint of one
run is a point of the same curve.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scenes import scene, to_tensor

import baselines
from collection.synth import add_rain
from rainbench.metrics import create_metric

# Disjoint photographs, matched so that a discriminator cannot tell the sets apart by anything but
# rain: three colour and two grey photographs on each side, mean grey levels 114 (rainy) and 106 (clean).
RAINY_SCENES = ("astronaut", "rocket", "immunohistochemistry", "brick", "grass")
CLEAN_SCENES = ("coffee", "stereo_motorcycle", "retina", "gravel", "moon")
TEST_SCENES = ("chelsea", "camera", "coins")
PRIORS = ("identity", "guided", "gmm")

# The project's short-budget recipe (docs/nlcl.md), at a constant learning rate.
SHORT_BUDGET = {"crop": 64, "batch_size": 4, "ngf": 16, "n_blocks": 4, "nce_layers": (0, 2, 4), "residual": True,
                "d_norm": "none", "g_padding": "reflect", "decay_fraction": 0.0, "checkpoint_every": 50, "log_every": 50}
RECIPES: dict[str, tuple[str, dict]] = {
    "nlcl": ("nlcl", {**SHORT_BUDGET, "lambda_sparsity": 2.0}),
    "nlcl_asym": ("nlcl", {**SHORT_BUDGET, "lambda_sparsity": 2.0, "variant": "asymmetric"}),
    "cut": ("cut", {**SHORT_BUDGET, "lambda_identity": 1.0}),
    "prenet": ("prenet", {"crop": 48, "batch_size": 4, "loss": "mse", "lr": 2e-3, "checkpoint_every": 50,
                          "log_every": 50}),
}


def make_data(preset: str, max_side: int) -> dict[str, list]:
    """Rainy training images (and their clean twins, for PReNet), other clean photographs, test pairs."""
    rainy, pairs = [], []
    for i, name in enumerate(RAINY_SCENES):
        clean = scene(name, max_side)
        wet = to_tensor(add_rain(clean, preset, seed=10 + i)[0])
        rainy.append(wet)
        pairs.append((wet, to_tensor(clean)))
    clean = [to_tensor(scene(name, max_side)) for name in CLEAN_SCENES]
    test = []
    for i, name in enumerate(TEST_SCENES):
        c = scene(name, max_side)
        test.append((to_tensor(add_rain(c, preset, seed=100 + i)[0]), to_tensor(c)))
    return {"rainy": rainy, "clean": clean, "pairs": pairs, "test": test}


class Scorer:
    """Mean PSNR-Y, SSIM-Y and PIQE of a method's outputs on the test pairs."""

    def __init__(self, test: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.test = test
        self.metrics = {name: create_metric(name) for name in ("psnr", "ssim", "piqe")}

    def __call__(self, method: baselines.Method) -> dict[str, float]:
        sums = dict.fromkeys(self.metrics, 0.0)
        for rainy, clean in self.test:
            with torch.no_grad():
                out = method.derain(rainy[None])
            for name, metric in self.metrics.items():
                sums[name] += float(metric(out, clean[None]))
        return {name: total / len(self.test) for name, total in sums.items()}


def curve(label: str, preset: str, data: dict[str, list], scorer: Scorer, budgets: list[int], minutes: float,
          out: Path, device: str, seed: int, log, last: dict | None = None) -> None:
    """Train one recipe through growing budgets (resuming its checkpoint) and score each.

    ``last`` is the recipe's last scored row, when its curve was begun by an earlier call: the curve
    continues from there, its checkpoint and its training minutes.
    """
    name, options = RECIPES[label]
    method = baselines.create(name, device=device, seed=seed, **options)
    run_dir = out / f"run-{label}-{preset}"
    trained = last["train_minutes"] * 60 if last else 0.0
    if trained / 60 >= minutes:
        return
    for iters in [b for b in budgets if b > (last["iters"] if last else 0)]:
        start = time.perf_counter()
        if baselines.info(name).learns_from == "paired":
            method.fit(pairs=data["pairs"], iters=iters, out=run_dir, resume=True)
        else:
            method.fit(rainy=data["rainy"], clean=data["clean"], iters=iters, out=run_dir, resume=True)
        trained += time.perf_counter() - start
        log({"method": label, "iters": iters, "train_minutes": trained / 60, **scorer(method)})
        if trained / 60 >= minutes:
            break


def plot(rows: list[dict], preset: str, path: Path) -> None:
    """One panel per metric: a line per learnable method vs training minutes, priors as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, metric, title in zip(axes, ("psnr", "ssim", "piqe"), ("PSNR-Y (dB)", "SSIM-Y", "PIQE (lower is better)")):
        for label in dict.fromkeys(r["method"] for r in rows if r["method"] not in PRIORS):
            pts = [r for r in rows if r["method"] == label]
            ax.plot([r["train_minutes"] for r in pts], [r[metric] for r in pts], marker="o", label=label)
        for k, prior in enumerate(PRIORS):
            for r in rows:
                if r["method"] == prior:
                    ax.axhline(r[metric], linestyle="--", color=f"C{k + 5}", label=prior)
        ax.set_xlabel("training wall minutes (2-core VM, 1 torch thread)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Held-out {', '.join(TEST_SCENES)} with {preset} synthetic rain; unpaired sets from disjoint photographs")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    """Score the priors, train each recipe along its budgets, write the JSON lines and the plot."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="rain100h", help="collection.synth rain preset: rain100h (heavy) or rain100l.")
    p.add_argument("--methods", default="nlcl,nlcl_asym,cut,prenet", help=f"Comma-separated recipes of {sorted(RECIPES)}.")
    p.add_argument("--budgets", default="50,100,200,400,600,800,1000,1300,1600,2000,2500,3000", help="Iterations at which to score.")
    p.add_argument("--minutes", type=float, default=15.0,
                   help="Stop a recipe after this many training minutes; a rerun with more continues its curve.")
    p.add_argument("--max-side", type=int, default=256, help="Long side of every scene in pixels.")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("/tmp/rainbench-curves"), help="Work and output folder.")
    p.add_argument("--plot-only", action="store_true", help="Redraw the plot from the JSON lines already written.")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = args.out / f"curves-{args.preset}.jsonl"
    if not args.plot_only:
        data = make_data(args.preset, args.max_side)
        scorer = Scorer(data["test"])
        brightness = {k: float(np.mean([t.mean().item() for t in data[k]])) for k in ("rainy", "clean")}
        print(f"mean brightness: rainy set {brightness['rainy']:.3f}, clean set {brightness['clean']:.3f}", flush=True)

        def log(row: dict) -> None:
            row = {"preset": args.preset, **row}
            with lines.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)

        last = {row["method"]: row for row in map(json.loads, lines.read_text().splitlines())} if lines.exists() else {}
        for prior in PRIORS:
            if prior not in last:
                log({"method": prior, "iters": 0, "train_minutes": 0.0, **scorer(baselines.create(prior, device=args.device))})
        budgets = [int(b) for b in args.budgets.split(",")]
        for label in [m.strip() for m in args.methods.split(",") if m.strip()]:
            curve(label, args.preset, data, scorer, budgets, args.minutes, args.out, args.device, args.seed, log,
                  last.get(label))
    rows = [json.loads(x) for x in lines.read_text().splitlines()]
    plot(rows, args.preset, args.out / f"curves-{args.preset}.png")
    print(f"plot: {args.out / f'curves-{args.preset}.png'}")


if __name__ == "__main__":
    main()
