"""End-to-end ingest: duplicates, scenes, splits, the saved dataset, re-runs, SIGKILL resume, the CLI."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from PIL.ExifTags import IFD
from skimage import data

from collection.ingest import IngestOptions, SourceSpec, ingest

MIN_SIDE = 64
SPLIT = "train=0.5,test=0.5"
ROW_COLUMNS = [  # docs/ARCHITECTURE.md, "Dataset rows" (without the opt-in GPS columns)
    "id", "rainy", "clean", "role", "source", "layout", "path", "clean_path", "width", "height", "format",
    "sha256", "phash", "dup_group", "duplicate_of", "scene", "rain_kind", "camera_make", "camera_model", "lens_model",
    "datetime_original", "exposure_time", "f_number", "focal_length_mm", "iso", "orientation",
    "sharpness", "brightness", "contrast", "noise",
]


def rgb(arr: np.ndarray, side: int = 256) -> Image.Image:
    img = Image.fromarray(arr).convert("RGB")
    img.thumbnail((side, side))
    return img


def with_exif(img: Image.Image, path: Path, make: str, model: str, when: str) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    exif.get_ifd(IFD.Exif)[0x9003] = when
    img.save(path, quality=92, exif=exif)


def rainy(img: Image.Image, seed: int) -> Image.Image:
    arr = np.asarray(img).astype(np.int16)
    rng = np.random.default_rng(seed)
    for _ in range(60):  # thin bright streaks
        x, y = rng.integers(0, arr.shape[1] - 3), rng.integers(0, arr.shape[0] - 20)
        arr[y:y + 18, x:x + 1] += 70
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_sources(root: Path) -> dict[str, Path]:
    plain, paired, ddn = root / "photos", root / "paired", root / "ddn"
    for d in (plain, paired / "rain", paired / "norain", ddn / "ground_truth", ddn / "rainy_image"):
        d.mkdir(parents=True)
    astronaut, coffee, chelsea, rocket = (rgb(f()) for f in (data.astronaut, data.coffee, data.chelsea, data.rocket))
    astronaut.save(plain / "astronaut.jpg", quality=95)
    astronaut.save(plain / "astronaut_q40.jpg", quality=40)  # re-encoded copy
    coffee.save(plain / "coffee.jpg", quality=92)
    coffee.resize((coffee.width // 2, coffee.height // 2), Image.Resampling.LANCZOS).save(plain / "coffee_half.jpg")
    chelsea.save(plain / "chelsea.jpg", quality=92)
    w, h = chelsea.size
    chelsea.crop((4, 3, w - 4, h - 3)).save(plain / "chelsea_crop.jpg", quality=92)  # lightly cropped copy
    rocket.save(plain / "rocket.png")
    rocket.save(plain / "rocket.tif")  # same pixels, other container
    rgb(data.camera()).save(plain / "camera.jpg", quality=92)
    # a capture session (same camera, 20 s apart) and a later shot of the same camera
    with_exif(rgb(data.moon()), plain / "s1.jpg", "Canon", "EOS R6", "2024:03:01 10:00:00")
    with_exif(rgb(data.clock()), plain / "s2.jpg", "Canon", "EOS R6", "2024:03:01 10:00:20")
    with_exif(rgb(data.page()), plain / "later.jpg", "Canon", "EOS R6", "2024:03:01 11:30:00")
    for k, f in enumerate((data.brick, data.grass, data.gravel, data.coins), 1):
        clean = rgb(f())
        clean.save(paired / "norain" / f"{k}.png")
        rainy(clean, k).save(paired / "rain" / f"{k}.png")
    for n, f in ((1, data.retina), (2, data.hubble_deep_field)):
        clean = rgb(f())
        clean.save(ddn / "ground_truth" / f"{n}.jpg", quality=92)
        for v in (1, 2):
            rainy(clean, 10 * n + v).save(ddn / "rainy_image" / f"{n}_{v}.jpg", quality=92)
    return {"photos": plain, "paired": paired, "ddn": ddn}


def options(**kw) -> IngestOptions:
    return IngestOptions(min_side=MIN_SIDE, split=SPLIT, workers=kw.pop("workers", 2), **kw)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ingest")
    sources = make_sources(root / "src")
    out = root / "out"
    specs = [SourceSpec(p) for p in sources.values()]
    summary = ingest(specs, out, options())
    manifest = pd.read_parquet(out / "manifest.parquet")
    return sources, specs, out, summary, manifest


def by_path(manifest: pd.DataFrame, source: str) -> pd.DataFrame:
    part = manifest[(manifest["source"] == source) & (manifest["side"] != "clean")]
    return part.set_index("path")


def test_copies_cluster_with_their_original(run):
    *_, manifest = run
    rows = by_path(manifest, "photos")
    for copy, original, kind in (("astronaut_q40.jpg", "astronaut.jpg", "near"),
                                 ("coffee_half.jpg", "coffee.jpg", "near"),
                                 ("chelsea_crop.jpg", "chelsea.jpg", "near")):
        assert rows.loc[copy, "status"] == "duplicate", copy
        assert rows.loc[copy, "duplicate_of"] == rows.loc[original, "id"], copy
        assert rows.loc[copy, "reason"] == kind
        assert rows.loc[original, "status"] == "ok"
    tif, png = rows.loc["rocket.tif"], rows.loc["rocket.png"]
    assert {tif["status"], png["status"]} == {"ok", "duplicate"}
    assert "exact" in (tif["reason"], png["reason"])  # same pixels, different bytes


def test_representative_is_the_largest_copy(run):
    *_, manifest = run
    rows = by_path(manifest, "photos")
    assert rows.loc["coffee.jpg", "width"] > rows.loc["coffee_half.jpg", "width"]
    assert rows.loc["coffee.jpg", "status"] == "ok"


def test_different_scenes_are_not_duplicates(run):
    *_, manifest = run
    ok = manifest[(manifest["status"] == "ok") & (manifest["side"] != "clean")]
    distinct = {"astronaut.jpg", "coffee.jpg", "chelsea.jpg", "camera.jpg", "s1.jpg", "s2.jpg", "later.jpg"}
    assert distinct <= set(ok["path"])
    assert ok[ok["layout"] != "ddn"]["dup_group"].is_unique


def test_clean_shared_by_rain_variants_is_not_a_duplicate(run):
    *_, manifest = run
    ddn = manifest[manifest["source"] == "ddn"]
    rainy = ddn[ddn["side"] == "rainy"].set_index("path")
    assert (rainy["status"] == "ok").all(), rainy[["status", "reason"]]
    # the variants do look alike (one cluster), yet all stay rows
    assert rainy.loc["rainy_image/1_1.jpg", "dup_group"] == rainy.loc["rainy_image/1_2.jpg", "dup_group"]
    assert (ddn[ddn["side"] == "clean"]["status"] == "ok").all()


def test_no_cluster_or_scene_or_shared_clean_straddles_splits(run):
    *_, manifest = run
    rows = manifest[manifest["split"].notna() & (manifest["side"] != "clean")]
    assert set(rows["split"]) == {"train", "test"}
    for column in ("dup_group", "scene"):
        spread = rows.groupby(column)["split"].nunique()
        assert (spread == 1).all(), f"{column} straddles splits: {spread[spread > 1]}"
    pairs = rows[rows["clean_path"].notna()]
    assert (pairs.groupby(["source", "clean_path"])["split"].nunique() == 1).all()


def test_capture_sessions_from_exif(run):
    *_, manifest = run
    rows = by_path(manifest, "photos")
    assert rows.loc["s1.jpg", "scene"] == rows.loc["s2.jpg", "scene"]
    assert rows.loc["later.jpg", "scene"] != rows.loc["s1.jpg", "scene"]
    assert rows.loc["camera.jpg", "scene"] != rows.loc["s1.jpg", "scene"]


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_saved_dataset_schema_pairs_and_original_bytes(run):
    from datasets import load_from_disk

    _, _, out, summary, manifest = run
    dd = load_from_disk(str(out))
    assert set(dd) == {"train", "test"}
    files = manifest.set_index("key")
    for split, ds in dd.items():
        assert list(ds.features) == ROW_COLUMNS
        assert len(ds) == summary.splits[split]
        plain = ds.cast_column("rainy", type(ds.features["rainy"])(decode=False))
        plain = plain.cast_column("clean", type(ds.features["clean"])(decode=False))
        assert list(plain["id"]) == sorted(plain["id"])  # deterministic row order
        for row in plain:
            assert row["id"] == row["sha256"][:16]
            if row["role"] == "pair":
                assert row["rainy"] and row["clean"], "paired rows carry both images"
                clean_file = files.loc[f"{row['source']}/{row['clean_path']}", "file"]
                assert sha(row["clean"]["bytes"]) == sha(Path(clean_file).read_bytes())
            file = files.loc[f"{row['source']}/{row['path']}", "file"]
            stored = row["rainy"]["bytes"] if row["role"] != "clean" else row["clean"]["bytes"]
            assert sha(stored) == row["sha256"] == sha(Path(file).read_bytes()), "bytes never re-encoded"
    roles = {r for ds in dd.values() for r in ds["role"]}
    assert roles == {"pair", "rainy"}


def snapshot(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("*")
            if p.is_file() and ".cache" not in p.parts}


def test_rerun_is_a_no_op(run):
    _, specs, out, summary, _ = run
    before = snapshot(out)
    again = ingest(specs, out, options())
    assert again.probed == 0 and again.cached == summary.probed
    assert again.fingerprint == summary.fingerprint and not again.rebuilt
    assert snapshot(out) == before, "nothing under the output folder is rewritten"


def test_new_file_is_probed_alone(run, tmp_path):
    sources, *_ = run
    plain = tmp_path / "photos"
    shutil.copytree(sources["photos"], plain)
    out = tmp_path / "out"
    first = ingest([SourceSpec(plain)], out, options(workers=0))
    rgb(data.coins()).save(plain / "coins_new.jpg", quality=90)
    second = ingest([SourceSpec(plain)], out, options(workers=0))
    assert second.probed == 1 and second.rebuilt
    assert second.status["ok"] == first.status["ok"] + 1


def dataset_content(out: Path) -> dict[str, tuple[str, str, str | None]]:
    from datasets import Image as HFImage
    from datasets import load_from_disk

    content = {}
    for split, ds in load_from_disk(str(out)).items():
        ds = ds.cast_column("rainy", HFImage(decode=False)).cast_column("clean", HFImage(decode=False))
        for row in ds:
            content[row["id"]] = (split, sha(row["rainy"]["bytes"]) if row["rainy"] else None,
                                  sha(row["clean"]["bytes"]) if row["clean"] else None)
    return content


def test_sigkill_mid_run_resumes_to_the_same_dataset(run, tmp_path):
    sources, specs, out_ref, summary, _ = run
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rainbench", "ingest", *map(str, sources.values()), "--out", str(out),
           "--min-side", str(MIN_SIDE), "--split", SPLIT, "--workers", "1", "-q"]
    env = {**os.environ, "RAINBENCH_PROBE_DELAY": "0.4"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 90
    try:
        while not list(out.glob(".cache/probe/*/shard-*.jsonl")):
            assert proc.poll() is None, "the run ended before it could be interrupted"
            assert time.monotonic() < deadline, "no cache shard appeared"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its probe worker, mid-run
        proc.wait()
    assert not (out / "dataset_dict.json").exists()
    resumed = ingest(specs, out, options())
    assert 0 < resumed.cached < summary.probed, "the resumed run reuses the finished probes"
    assert resumed.fingerprint == summary.fingerprint
    assert dataset_content(out) == dataset_content(out_ref)


def test_cli_end_to_end_with_named_source(run, tmp_path):
    from datasets import load_from_disk

    from rainbench.cli import main

    sources, *_ = run
    out = tmp_path / "cli_out"
    rc = main(["ingest", f"rainsrc={sources['paired']}", str(sources["photos"]), "--out", str(out),
               "--min-side", str(MIN_SIDE), "--tag", "rain_kind=real", "--workers", "0", "-q"])
    assert rc == 0
    dd = load_from_disk(str(out))
    rows = [r for ds in dd.values() for r in ds.remove_columns(["rainy", "clean"])]
    assert {r["source"] for r in rows} == {"rainsrc", "photos"}
    assert {r["rain_kind"] for r in rows} == {"real"}
    assert {r["layout"] for r in rows} == {"paired", "plain"}
    assert (out / "report" / "report.md").exists() and (out / "report" / "report.json").exists()
    assert main(["ingest", str(sources["photos"]), "--out", str(out), "--filter", "beauty>1", "-q"]) != 0
