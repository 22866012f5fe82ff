"""The built-in demo: the whole rainbench journey on sample images that ship with scikit-image.

No data and no network needed. The demo makes its data, then runs the very commands a user types
(``rainbench ingest``, ``train``, ``run``, ``leaderboard``), so its log doubles as a tutorial.
Every stage skips work that is already complete, so an interrupted demo resumes.

By default the learnable methods use weights shipped inside the package (``demo_weights/``),
trained with the demo's own ``rainbench train`` commands on the demo's own data for the
:data:`SHIPPED` budget; ``weights.json`` beside them records those commands, the data they saw and
their scores. They are used only when the demo's data is byte-identical to what they were trained
on (same size, seed and synthesis): otherwise their training scenes could be test scenes, and the
demo trains instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from collection.files import sha256_file

# Clean natural photographs bundled inside scikit-image's wheel (no download). Paired scenes get
# synthetic rain with their clean twin. Each unpaired scene is cut in two halves, one rainy
# (trainA), the other clean (trainB), so both sides share the scenes' colour and brightness while
# no pixel is ever seen both rainy and clean: a discriminator can only tell them apart by rain.
PAIRED_SCENES = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg")
UNPAIRED_SCENES = ("motorcycle_right.png", "camera.png", "brick.png", "grass.png", "gravel.png", "coins.png")

Run = Callable[[Sequence[str]], None]
"""Runs one rainbench command line (the CLI passes a function that echoes and executes it)."""


@dataclass(frozen=True)
class Budget:
    """How much the demo trains and how large its images are."""

    size: int = 160
    """Short side of every demo image, in pixels."""
    iters: dict[str, int] = field(default_factory=lambda: {"nlcl": 40, "cut": 40, "prenet": 150})
    """Training iterations per learnable method (others use ``default_iters``)."""
    default_iters: int = 40
    crop: int = 64
    batch_size: int = 4
    config: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Extra ``--config k=v`` options per learnable method."""


# The short-budget recipe of benchmarks/README.md ("Learnable methods"): G_B starts from the identity
# (residual), D has no InstanceNorm (it then learns rain streaks within the budget), and the
# networks are narrow; NLCL's sparsity term at 2, and for CUT (which has none) CycleGAN's identity
# term, keep the correction on the streaks. The full budget keeps the released configuration.
SHORT_BUDGET = ("residual=true", "d_norm=none", "g_padding=reflect", "ngf=16", "n_blocks=4", "nce_layers=0,2,4")
FAST = Budget(iters={"nlcl": 300, "cut": 300, "prenet": 150},
              config={"nlcl": (*SHORT_BUDGET, "lambda_sparsity=2"), "cut": (*SHORT_BUDGET, "lambda_identity=1")})
# What the shipped weights were trained with (scripts/train_demo_weights.py reruns it): the
# short-budget recipe for longer, at a constant learning rate, so that a shorter run of the same
# command is the first part of the shipped one (tests/test_demo_weights.py reruns it so).
SHIPPED = Budget(iters={"nlcl": 3000, "cut": 3000, "prenet": 1000},
                 config={"nlcl": (*FAST.config["nlcl"], "decay_fraction=0"),
                         "cut": (*FAST.config["cut"], "decay_fraction=0")})
FULL = Budget(size=384, iters={"nlcl": 3000, "cut": 3000, "prenet": 4000}, default_iters=2000, crop=128, batch_size=4)


SHIPPED_DIR = Path(__file__).with_name("demo_weights")
"""The shipped weights and their record, ``weights.json``."""


@dataclass
class DemoResult:
    """Where the demo wrote things, the command lines it ran and where each method's weights came from."""

    out: Path
    commands: list[str] = field(default_factory=list)
    weights: dict[str, str] = field(default_factory=dict)
    """Learnable method -> "shipped" or "trained"."""
    shipped_unused: str | None = None
    """Why the shipped weights were not used, when they were not (None: used, or --train asked)."""


def shipped_record() -> dict:
    """The record of the shipped weights (``demo_weights/weights.json``); {} when none ship."""
    path = SHIPPED_DIR / "weights.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def data_fingerprint(index_path: Path) -> str:
    """sha256 over the demo data's file digests (``index.json``): equal data, equal fingerprint."""
    files = json.loads(Path(index_path).read_text())["files"]
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def usable_shipped(index_path: Path, seed: int) -> tuple[dict[str, Path], str | None]:
    """The shipped weight files usable on this demo data and seed, or ({}, why not)."""
    record = shipped_record()
    if not record:
        return {}, f"no weights ship in {SHIPPED_DIR}"
    if record["seed"] != seed or data_fingerprint(index_path) != record["data_fingerprint"]:
        return {}, (f"they were trained on the demo data of --size {record['size']} --seed {record['seed']}; "
                    "on other data their training scenes could be test scenes")
    files = {}
    for name, entry in record["methods"].items():
        path = SHIPPED_DIR / entry["file"]
        if not path.is_file() or sha256_file(path) != entry["sha256"]:
            return {}, f"{path} is missing or does not match its sha256 in weights.json"
        files[name] = path
    return files, None


def sample_dir() -> Path:
    """The folder of clean sample photographs shipped inside scikit-image."""
    import skimage.data

    root = Path(os.path.dirname(skimage.data.__file__))
    if not (root / PAIRED_SCENES[0]).exists():
        raise FileNotFoundError(f"{root}: scikit-image's bundled sample images are missing (reinstall scikit-image)")
    return root


def _resized(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    from collection.images import open_image

    img = open_image(path)
    scale = size / min(img.size)
    return np.asarray(img.resize((max(size, round(img.size[0] * scale)), max(size, round(img.size[1] * scale))),
                                 Image.Resampling.LANCZOS))


def make_demo_data(out: Path, size: int = FAST.size, seed: int = 0) -> Path:
    """Write the demo's sources under ``out``: ``paired/`` (synth layout) and ``unpaired/`` (trainA/trainB).

    Also writes ``out/index.json`` (every file with its sha256), the small file a pipeline can
    depend on instead of hashing image folders. Returns the index path.
    """
    from collection.images import save_image
    from collection.synth import add_rain, image_seed, unpaired_halves, write_pair

    root = sample_dir()
    out = Path(out)
    paired_names = []
    for name in PAIRED_SCENES:
        stem = Path(name).stem
        paired_names.append(stem)
        if (out / "paired" / "params" / f"{stem}.json").exists():
            continue
        write_pair(_resized(root / name, size), out / "paired", stem, preset="rain100l", seed=seed)
    for k, name in enumerate(UNPAIRED_SCENES):
        stem = Path(name).stem
        rainy_target = out / "unpaired" / "trainA" / f"{stem}.png"
        clean_target = out / "unpaired" / "trainB" / f"{stem}.png"
        if rainy_target.exists() and clean_target.exists():
            continue
        image = _resized(root / name, size * 2)  # each half keeps a short side of about `size`
        rainy_half, clean_half = unpaired_halves(image, swap=k % 2 == 1)
        save_image(add_rain(rainy_half, "rain100l", image_seed(seed, stem), return_layer=False)[0], rainy_target)
        save_image(clean_half, clean_target)
    index = {str(p.relative_to(out)): sha256_file(p)
             for p in sorted(out.rglob("*")) if p.is_file() and p.name != "index.json"}
    index_path = out / "index.json"
    index_path.write_text(json.dumps({"size": size, "seed": seed, "files": index}, indent=2, sort_keys=True))
    return index_path


def learnable_methods() -> list[tuple[str, str]]:
    """(name, learns_from) of every registered method that learns."""
    import baselines

    return [(name, baselines.info(name).learns_from) for name in baselines.available()
            if baselines.info(name).learns_from != "none"]


def ingest_command(data: Path, dataset: Path, seed: int) -> list[str]:
    """The ``rainbench ingest`` command line that turns the demo data into the demo dataset."""
    return ["ingest", str(data / "paired"), str(data / "unpaired"), "--out", str(dataset), "--min-side", "64",
            "--split-ratios", "train=0.5,test=0.5", "--seed", str(seed)]


def train_command(name: str, learns_from: str, dataset: Path, out: Path, budget: Budget, seed: int) -> list[str]:
    """The ``rainbench train`` command line for one learnable method on the demo dataset."""
    iters = budget.iters.get(name, budget.default_iters)
    data = ["--pairs", str(dataset)] if learns_from == "paired" else ["--rainy", str(dataset), "--clean", str(dataset)]
    return ["train", "--method", name, *data, "--iters", str(iters), "--config", f"crop={budget.crop}",
            "--config", f"batch_size={budget.batch_size}",
            *[arg for option in budget.config.get(name, ()) for arg in ("--config", option)],
            "--out", str(out), "--seed", str(seed)]


def run_demo(out: Path, run: Run, seed: int = 0, full: bool = False, device: str = "auto",
             size: int | None = None, train: bool = False) -> DemoResult:
    """Run the whole journey under ``out``; ``run`` executes each rainbench command line.

    Learnable methods use the shipped weights where :func:`usable_shipped` allows, unless ``train``
    or ``full`` asks to train them here.
    """
    import dataclasses

    import baselines

    budget = FULL if full else FAST
    if size is not None:
        budget = dataclasses.replace(budget, size=size)
    out = Path(out)
    result = DemoResult(out)

    def step(args: list[str]) -> None:
        result.commands.append("rainbench " + shlex.join(args))
        run(args)

    data = out / "data"
    index = make_demo_data(data, size=budget.size, seed=seed)
    shipped: dict[str, Path] = {}
    if not (train or full):
        shipped, result.shipped_unused = usable_shipped(index, seed)
    dataset = out / "dataset"
    step(ingest_command(data, dataset, seed))
    niqe_model = out / "niqe_demo.mat"
    if not niqe_model.exists():
        step(["metric-weights", "fit-niqe", str(data / "unpaired" / "trainB"), "--out", str(niqe_model)])
    weights = []
    for name, learns_from in learnable_methods():
        if name in shipped:
            result.weights[name] = "shipped"
            weights += ["--weights", f"{name}={shipped[name]}"]
            continue
        result.weights[name] = "trained"
        run_dir = out / "train" / name
        if not (run_dir / "weights.pt").exists():
            step([*train_command(name, learns_from, dataset, run_dir, budget, seed), "--device", device])
        weights += ["--weights", f"{name}={run_dir / 'weights.pt'}"]
    methods = ["--method", ",".join(baselines.available())]
    # Shipped and freshly trained weights score into different run folders: a run folder resumes,
    # and it must not mix two sets of weights under one method name.
    runs = out / "runs" / ("demo-shipped" if shipped else "demo")
    step(["run", *methods, *weights, "--dataset", str(dataset), "--split", "test", "--metric", "psnr,ssim,piqe,niqe",
          "--niqe-model", str(niqe_model), "--save-outputs", "--out", str(runs), "--device", device, "--seed", str(seed),
          "--allow-failures"])  # failures are data: the leaderboard shows them in their own column
    step(["leaderboard", str(runs), "--out", str(out / "report"), "--by", "source"])
    return result
