"""`rainbench train`: sources (folders, files, ingested datasets), run directory, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import baselines
from collection.images import load_image, save_image, to_tensor
from rainbench.cli import cli

pytestmark = pytest.mark.usefixtures("one_thread")

PRENET = ["-c", "stages=2", "-c", "crop=16", "-c", "batch_size=2", "-c", "log_every=1"]
NLCL = ["-c", "ngf=8", "-c", "n_blocks=2", "-c", "ndf=8", "-c", "n_layers_d=2", "-c", "head_dim=16",
        "-c", "nce_layers=0,1,2", "-c", "layer_levels=0,1,2", "-c", "num_patches=16", "-c", "k_neg=16",
        "-c", "crop=36", "-c", "batch_size=1", "-c", "log_every=1"]
CUT = [arg for pair in zip(NLCL[::2], NLCL[1::2]) if not pair[1].startswith(("layer_levels", "k_neg")) for arg in pair]


def image(seed: int, size: tuple[int, int] = (36, 40)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((*size, 3)) * 255).astype(np.uint8)


@pytest.fixture
def paired_folder(tmp_path):
    """A rainy/ + clean/ folder of three pairs (the rainy side brighter, like added rain)."""
    root = tmp_path / "pairs"
    for i in range(3):
        clean = image(i)
        save_image(clean, root / "clean" / f"{i:03d}.png")
        save_image(np.clip(clean.astype(int) + 40, 0, 255).astype(np.uint8), root / "rainy" / f"{i:03d}.png")
    return root


def train(*args: str):
    result = CliRunner().invoke(cli, ["train", *args, "--device", "cpu", "-q"], catch_exceptions=False)
    return result


def test_prenet_from_a_paired_folder_writes_a_usable_run(paired_folder, tmp_path):
    run = tmp_path / "run"
    result = train("--method", "prenet", "--pairs", str(paired_folder), "--out", str(run), "--iters", "3", *PRENET)
    assert result.exit_code == 0, result.output
    record = json.loads((run / "train.json").read_text())
    assert record["counts"] == {"pairs": 3} and record["summary"]["step"] == 3
    assert (run / "checkpoint.pt").is_file()

    # The CLI trains exactly what the API trains on the same pairs (seed 0 by default).
    pairs = [(to_tensor(load_image(paired_folder / "rainy" / f"{i:03d}.png"))[0],
              to_tensor(load_image(paired_folder / "clean" / f"{i:03d}.png"))[0]) for i in range(3)]
    api = baselines.create("prenet", stages=2, crop=16, batch_size=2, seed=0)
    api.fit(pairs=pairs, iters=3)
    probe = pairs[0][0][None]
    from_cli = baselines.create("prenet", weights=run / "weights.pt")
    assert torch.equal(from_cli.derain(probe), api.derain(probe))
    assert record["config_hash"] == from_cli.config_hash


def test_existing_run_needs_resume_and_resume_continues(paired_folder, tmp_path):
    run = tmp_path / "run"
    args = ["--method", "prenet", "--pairs", str(paired_folder), "--out", str(run)]
    assert train(*args, "--iters", "2", *PRENET).exit_code == 0
    again = train(*args, "--iters", "2", *PRENET)
    assert again.exit_code == 2 and "--resume" in again.output
    # --resume reads the saved options: none need repeating.
    resumed = train(*args, "--iters", "4", "--resume")
    assert resumed.exit_code == 0, resumed.output
    record = json.loads((run / "train.json").read_text())
    assert record["summary"]["step"] == 4 and record["config"]["stages"] == 2


def _nlcl_options() -> dict[str, str]:
    return dict(value.split("=", 1) for flag, value in zip(NLCL[::2], NLCL[1::2]))


def test_nlcl_unpaired_from_folders_and_files_with_variant(tmp_path):
    for i in range(2):
        save_image(image(10 + i), tmp_path / "rainy" / f"r{i}.png")
        save_image(image(20 + i, (40, 44)), tmp_path / "clean" / f"c{i}.jpg")
    save_image(image(30), tmp_path / "extra.png")
    run = tmp_path / "run"
    result = train("--method", "nlcl", "--rainy", str(tmp_path / "rainy"), "--rainy", str(tmp_path / "extra.png"),
                   "--clean", str(tmp_path / "clean"), "--out", str(run), "--epochs", "1", "--variant", "asymmetric",
                   "--config", "d_norm=none lambda_sparsity=2", *NLCL)  # several options in one value
    assert result.exit_code == 0, result.output
    record = json.loads((run / "train.json").read_text())
    assert record["counts"] == {"rainy": 3, "clean": 2}
    assert record["summary"]["step"] == 3  # the trainer ran one epoch: 3 rainy images at batch 1

    # The CLI trains what the API trains with those images and options (seed 0 by default): the
    # folder and the extra file, the variant, and both options of the one --config value.
    def load(path):
        return to_tensor(load_image(path))[0]

    rainy = [load(tmp_path / "rainy" / "r0.png"), load(tmp_path / "rainy" / "r1.png"), load(tmp_path / "extra.png")]
    clean = [load(tmp_path / "clean" / f"c{i}.jpg") for i in range(2)]

    def api(**changes):
        options = {**_nlcl_options(), "variant": "asymmetric", "d_norm": "none", "lambda_sparsity": "2", "seed": 0}
        method = baselines.create("nlcl", **{**options, **changes})
        method.fit(rainy=rainy, clean=clean, iters=3)
        return method

    probe = rainy[0][None]
    from_cli = baselines.create("nlcl", weights=run / "weights.pt")
    expected = api().derain(probe)
    assert torch.equal(from_cli.derain(probe), expected)
    # ...and each of those inputs changes what is trained, so the equality above could not hold without it
    for changes in ({"variant": "symmetric"}, {"d_norm": "instance"}, {"lambda_sparsity": "1"}):
        assert not torch.equal(api(**changes).derain(probe), expected), changes


def test_dataset_rows_by_role(tmp_path):
    pytest.importorskip("datasets")
    from datasets import Dataset, DatasetDict, Features, Image, Value

    def png(seed: int, path) -> str:
        save_image(image(seed), path)
        return str(path)

    rows = {"id": [], "rainy": [], "clean": [], "role": []}
    for i, role in enumerate(["pair", "pair", "rainy", "clean", "pair"]):
        rows["id"].append(f"row{i}")
        rows["role"].append(role)
        rows["rainy"].append(None if role == "clean" else {"path": png(i, tmp_path / f"r{i}.png"), "bytes": None})
        rows["clean"].append(None if role == "rainy" else {"path": png(50 + i, tmp_path / f"c{i}.png"), "bytes": None})
    features = Features({"id": Value("string"), "rainy": Image(), "clean": Image(), "role": Value("string")})
    DatasetDict({"train": Dataset.from_dict(rows, features=features)}).save_to_disk(str(tmp_path / "ds"))

    run = tmp_path / "run"
    result = train("--method", "prenet", "--pairs", str(tmp_path / "ds"), "--out", str(run), "--iters", "1", *PRENET)
    assert result.exit_code == 0, result.output
    assert json.loads((run / "train.json").read_text())["counts"] == {"pairs": 3}

    run2 = tmp_path / "run2"
    result = train("--method", "cut", "--rainy", str(tmp_path / "ds"), "--clean", str(tmp_path / "ds"),
                   "--out", str(run2), "--iters", "1", *CUT)
    assert result.exit_code == 0, result.output
    assert json.loads((run2 / "train.json").read_text())["counts"] == {"rainy": 4, "clean": 4}

    missing = train("--method", "prenet", "--pairs", str(tmp_path / "ds"), "--split", "test",
                    "--out", str(tmp_path / "run3"), *PRENET)
    assert missing.exit_code == 2 and "no split 'test'" in missing.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "nosuch", "--pairs", "x"], "available:"),
        (["--method", "identity", "--pairs", "x"], "learns nothing"),
        (["--method", "prenet", "--rainy", "x", "--clean", "y"], "--pairs"),
        (["--method", "nlcl", "--pairs", "x"], "--rainy and --clean"),
        (["--method", "prenet", "--pairs", "x", "--variant", "asymmetric"], "no variants"),
        (["--method", "prenet", "--pairs", "x", "-c", "stages=many"], "stages"),
        (["--method", "prenet", "--pairs", "/no/such/folder"], "no such file or folder"),
        (["--method", "prenet", "--pairs", "x", "--iters", "2", "--epochs", "1"], "exclude"),
    ],
)
def test_bad_invocations_are_usage_errors(args, message, tmp_path, paired_folder):
    args = [str(paired_folder) if a == "x" else a for a in args]
    result = train(*args, "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert message in result.output


def test_demo_fast_budget_uses_the_short_budget_recipe() -> None:
    from rainbench.demo import FAST, FULL, train_command

    def options(name: str, learns_from: str, budget) -> dict[str, str]:
        cmd = train_command(name, learns_from, Path("ds"), Path("out"), budget, 0)
        return dict(cmd[i + 1].split("=", 1) for i, arg in enumerate(cmd) if arg == "--config")

    for name in ("nlcl", "cut"):
        fast = options(name, "unpaired", FAST)
        assert fast["residual"] == "true"
        method = baselines.create(name, **fast)  # every option parses and takes effect
        assert method.generator.residual and method.generator.ngf == 16
        assert method.nlcl_config().d_norm == "none"
        assert "residual" not in options(name, "unpaired", FULL)  # the full budget keeps the released G_B
    assert options("nlcl", "unpaired", FAST)["lambda_sparsity"] == "2"
    assert "residual" not in options("prenet", "paired", FAST)
