"""Public benchmark sets ingest whole: repeats flagged from the clean images, leakage removed on the training side.

Two synthetic "benchmarks" in the Rain100L layout (``rain/rain-N.png`` + ``norain/norain-N.png``)
share their backgrounds: a light-rain one with two backgrounds used twice, and a heavy-rain one over
the same backgrounds. Rain is rainbench's own synthesis over crops of skimage photographs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from collection.ingest import IngestOptions, SourceSpec, ingest
from collection.layouts import survey
from collection.phash import hamming, phash64
from collection.synth import add_rain

SIDE = 96
PHOTOS = (data.astronaut, data.coffee, data.chelsea, data.rocket, data.camera, data.coins, data.moon, data.page)
REPEATED = (0, 1)  # backgrounds the light set uses twice, with other rain


def backgrounds() -> list[np.ndarray]:
    out = []
    for photo in PHOTOS:
        img = Image.fromarray(photo()).convert("RGB")
        side = min(img.size)
        out.append(np.asarray(img.crop((0, 0, side, side)).resize((SIDE, SIDE), Image.Resampling.LANCZOS)))
    return out


def write_set(root: Path, clean: list[np.ndarray], preset: str, seed: int) -> None:
    (root / "rain").mkdir(parents=True)
    (root / "norain").mkdir()
    for n, background in enumerate(clean, 1):
        rainy, _, _ = add_rain(background, preset, seed=seed + n, return_layer=False)
        Image.fromarray(rainy).save(root / "rain" / f"rain-{n}.png")
        Image.fromarray(background).save(root / "norain" / f"norain-{n}.png")


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    clean = backgrounds()
    light = clean + [clean[k] for k in REPEATED]
    write_set(root / "light" / "test", light, "rain100l", seed=0)
    write_set(root / "heavy" / "train", clean, "rain100h", seed=100)
    write_set(root / "light_flat", light, "rain100l", seed=0)  # the same set with no split folder
    return root


def manifest_of(out: Path) -> pd.DataFrame:
    rows = pd.read_parquet(out / "manifest.parquet")
    return rows[rows["side"] == "rainy"]


def test_rain100l_layout_is_read_as_pairs(sets):
    found = survey(sets / "light_flat", "auto", "light", {}, None, 1.0)
    assert {item.role for item in found.items} == {"pair"}
    assert len(found.items) == len(PHOTOS) + len(REPEATED)


def test_single_split_benchmark_keeps_every_pair_and_flags_repeats(sets, tmp_path):
    summary = ingest([SourceSpec(sets / "light_flat", name="light")], tmp_path / "out",
                     IngestOptions(min_side=1, split="test=1", workers=0))
    assert summary.splits == {"test": len(PHOTOS) + len(REPEATED)}
    rows = manifest_of(tmp_path / "out").set_index("path")
    assert (rows["status"] == "ok").all()
    flagged = rows[rows["duplicate_of"].notna()]
    assert len(flagged) == len(REPEATED)  # found from the clean images
    for k in REPEATED:
        repeat = rows.loc[f"rain/rain-{len(PHOTOS) + 1 + REPEATED.index(k)}.png"]
        original = rows.loc[f"rain/rain-{k + 1}.png"]
        assert repeat["dup_group"] == original["dup_group"]
    report = json.loads((tmp_path / "out" / "report" / "report.json").read_text())
    assert report["leakage"]["cells"] == [{"cell": "light/test", "rows": 10, "clusters": 8, "repeats": 2}]
    import datasets

    ds = datasets.load_from_disk(str(tmp_path / "out"))["test"]
    assert sum(v is not None for v in ds["duplicate_of"]) == len(REPEATED)


def test_drop_policy_removes_repeats_on_request(sets, tmp_path):
    summary = ingest([SourceSpec(sets / "light_flat", name="light")], tmp_path / "out",
                     IngestOptions(min_side=1, split="test=1", workers=0, duplicates="drop"))
    assert summary.splits == {"test": len(PHOTOS)}
    assert summary.status["duplicate"] == len(REPEATED)


def test_shared_backgrounds_remove_the_training_copies(sets, tmp_path):
    out = tmp_path / "out"
    ingest([SourceSpec(sets / "light", name="light"), SourceSpec(sets / "heavy", name="heavy")], out,
           IngestOptions(min_side=1, workers=0))
    rows = manifest_of(out)
    light, heavy = rows[rows["source"] == "light"], rows[rows["source"] == "heavy"]
    # Every row of the fixed test split survives; every training-side copy of its scenes goes.
    assert len(light) == len(PHOTOS) + len(REPEATED)
    assert (light["status"] == "ok").all() and (light["split"] == "test").all()
    assert (heavy["status"] == "duplicate").all() and (heavy["reason"] == "leak").all()
    assert set(heavy["duplicate_of"]) <= set(light["id"])
    report = json.loads((out / "report" / "report.json").read_text())
    pairs = {(p["a"], p["b"]): p for p in report["leakage"]["pairs"]}
    assert pairs[("heavy/train", "light/test")]["rows"] == len(PHOTOS)  # all linked, by the clean images
    assert pairs[("heavy/train", "light/test")]["removed"] == len(PHOTOS)
    assert pairs[("light/test", "heavy/train")]["removed"] == 0
    thumbnails = [p["thumbnails"] for p in report["leakage"]["pairs"] if p.get("thumbnails")]
    assert thumbnails and all((out / "report" / t).is_file() for t in thumbnails)
    assert "## Leakage and repeats" in (out / "report" / "report.md").read_text()


def test_heavy_rain_hides_backgrounds_from_the_rainy_hash(sets):
    # Why the clean image is the identity: heavy rain moves the rainy hash further from its background.
    def gap(folder: Path) -> float:
        return float(np.mean([hamming(phash64(Image.open(folder / "rain" / f"rain-{n}.png")),
                                      phash64(Image.open(folder / "norain" / f"norain-{n}.png"))) for n in range(1, 9)]))

    assert gap(sets / "heavy" / "train") > gap(sets / "light" / "test")
