"""Probing and quarantine: every bad-input class gets its reason, good odd formats are accepted."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from collection.ingest import IngestOptions, SourceSpec, ingest
from collection.manifest import ProbeCache
from collection.probe import ProbeOptions, ProbeTask, probe, probe_all

MIN_SIDE = 64


def small(arr: np.ndarray, side: int = 128) -> Image.Image:
    img = Image.fromarray(arr)
    img.thumbnail((side, side))
    return img


def heic_supported() -> bool:
    try:
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buffer, format="HEIF")
        return True
    except Exception:  # noqa: BLE001 - no HEIF encoder in this build of pillow-heif
        return False


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad") / "photos"
    root.mkdir()
    expected = {}  # file name -> (status, reason)
    small(data.astronaut()).save(root / "good.jpg", quality=90)
    expected["good.jpg"] = ("ok", None)
    (root / "corrupt.jpg").write_bytes(os.urandom(3000))
    expected["corrupt.jpg"] = ("quarantined", "corrupt")
    big = Image.fromarray(np.asarray(Image.fromarray(data.rocket()).resize((2100, 1500))))
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=90)
    (root / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 6 // 10])
    expected["truncated.jpg"] = ("quarantined", "truncated")
    small(data.coins(), 20).convert("RGB").save(root / "tiny.png")
    expected["tiny.png"] = ("quarantined", "too_small")
    Image.new("RGB", (2500, 2100), (10, 200, 30)).save(root / "huge.png")
    expected["huge.png"] = ("quarantined", "too_large")
    (root / "notes.txt").write_text("not an image")
    expected["notes.txt"] = ("quarantined", "unsupported")
    (root / "layers.psd").write_bytes(b"8BPS\x00\x01" + bytes(100))
    expected["layers.psd"] = ("quarantined", "unsupported")
    (root / "empty.jpg").write_bytes(b"")
    expected["empty.jpg"] = ("quarantined", "empty")
    deep = (data.camera().astype(np.uint16) * 257)[:128, :160]
    Image.fromarray(deep).save(root / "deep16.png")
    expected["deep16.png"] = ("ok", None)
    small(data.coffee()).convert("CMYK").save(root / "cmyk.jpg", quality=90)
    expected["cmyk.jpg"] = ("ok", None)
    small(data.chelsea()).convert("L").save(root / "gray.jpg", quality=90)
    expected["gray.jpg"] = ("ok", None)
    if heic_supported():
        small(data.hubble_deep_field()).save(root / "phone.heic", format="HEIF")
        expected["phone.heic"] = ("ok", None)
    locked = root / "locked.jpg"
    small(data.immunohistochemistry()).save(locked, quality=90)
    os.chmod(locked, 0)
    if os.access(locked, os.R_OK):  # running as root: permissions do not stop reads
        expected["locked.jpg"] = ("ok", None)
    else:
        expected["locked.jpg"] = ("quarantined", "unreadable")
    out = root.parent / "out"
    options = IngestOptions(min_side=MIN_SIDE, max_pixels=5_000_000, workers=2, split="train=1.0")
    summary = ingest([SourceSpec(root)], out, options)
    os.chmod(locked, 0o644)
    manifest = pd.read_parquet(out / "manifest.parquet")
    return expected, summary, manifest


def test_each_bad_input_class_has_its_reason(bad_inputs):
    expected, _, manifest = bad_inputs
    by_name = {Path(p).name: row for p, row in zip(manifest["path"], manifest.itertuples())}
    assert set(by_name) == set(expected), "every file seen must have a manifest row"
    for name, (status, reason) in expected.items():
        row = by_name[name]
        assert row.status == status, f"{name}: {row.status} ({row.reason}: {row.detail})"
        if reason:
            assert row.reason == reason, f"{name}: {row.reason} ({row.detail})"
            assert name in str(row.detail), "the detail names the file"


def test_quarantine_counts_in_summary(bad_inputs):
    expected, summary, _ = bad_inputs
    want: dict[str, int] = {}
    for status, reason in expected.values():
        if status == "quarantined":
            want[reason] = want.get(reason, 0) + 1
    assert summary.reasons == want
    assert summary.status["quarantined"] == sum(want.values())
    assert summary.status["ok"] == sum(1 for s, _ in expected.values() if s == "ok")
    assert summary.splits == {"train": summary.status["ok"]}


def test_odd_formats_are_recorded_truthfully(bad_inputs):
    _, _, manifest = bad_inputs
    rows = manifest.set_index(manifest["path"].map(lambda p: Path(p).name))
    assert rows.loc["deep16.png", "mode"].startswith("I")
    assert rows.loc["cmyk.jpg", "mode"] == "CMYK"
    assert rows.loc["gray.jpg", "mode"] == "L"
    assert rows.loc["good.jpg", "format"] == "JPEG"


def test_probe_in_workers_matches_in_process(tmp_path):
    files = []
    for name, arr in (("a.jpg", data.astronaut()), ("b.png", data.coffee()), ("c.jpg", data.chelsea())):
        small(arr).save(tmp_path / name)
        files.append(ProbeTask(key=name, file=str(tmp_path / name)))
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}
    serial = {t.key: strip(r) for t, r in probe_all(files, workers=0)}
    parallel = {t.key: strip(r) for t, r in probe_all(files, workers=2, chunk_size=1)}
    assert serial == parallel
    assert serial["b.png"]["pixel_hash"] is not None  # lossless files get an exact pixel hash


def test_probe_hashes_the_file_bytes(tmp_path):
    path = tmp_path / "x.jpg"
    small(data.rocket()).save(path, quality=80)
    import hashlib

    record = probe(ProbeTask(key="x", file=str(path)), ProbeOptions())
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(record["phash"]) == 16


def test_cache_survives_reopen_ignores_partial_writes_and_compacts(tmp_path):
    cache = ProbeCache(tmp_path, "sig", batch_size=2)
    for i in range(5):
        cache.put(f"k{i}", {"n": i})
    # 4 records flushed in two shards; the fifth is still buffered (a crash now loses only it)
    assert len(ProbeCache(tmp_path, "sig")) == 4
    (cache.dir / ".tmp-half-written").write_text('["k9", {"n"')  # a write interrupted by SIGKILL
    cache.flush()
    reopened = ProbeCache(tmp_path, "sig")
    assert {f"k{i}" for i in range(5)} <= set(reopened._records) and reopened.get("k4") == {"n": 4}
    many = ProbeCache(tmp_path, "many", batch_size=1)
    for i in range(70):
        many.put(f"k{i}", {"n": i})
    merged = ProbeCache(tmp_path, "many")
    assert len(list(merged.dir.glob("shard-*.jsonl"))) == 1
    assert len(merged) == 70


def write_video(path: Path, seconds: int = 2, rate: int = 5, size=(96, 64)) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(seconds * rate):
            arr = np.zeros((size[1], size[0], 3), np.uint8)
            arr[:, : (i * 7) % size[0] + 8] = (200, 60 + 20 * i, 30)  # a bar that grows frame to frame
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_crops_and_video_frames_are_stored_as_png_of_their_pixels(tmp_path):
    import hashlib

    from datasets import Image as HFImage
    from datasets import load_from_disk

    from collection.images import decode

    rain800 = tmp_path / "Rain800" / "training"
    rain800.mkdir(parents=True)
    clean = np.asarray(small(data.astronaut()))
    noisy = np.clip(clean.astype(int) + 60, 0, 255).astype(np.uint8)
    Image.fromarray(np.concatenate([clean, noisy], axis=1)).save(rain800 / "1.png")  # clean | rainy
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "clip.mp4")
    out = tmp_path / "out"
    summary = ingest([SourceSpec(tmp_path / "Rain800"), SourceSpec(videos)], out,
                     IngestOptions(min_side=32, workers=0, split="train=1.0", radius=0))
    assert summary.status.get("quarantined", 0) == 0
    rows = []
    for ds in load_from_disk(str(out)).values():
        ds = ds.cast_column("rainy", HFImage(decode=False)).cast_column("clean", HFImage(decode=False))
        rows += list(ds)
    pair = next(r for r in rows if r["layout"] == "rain800")
    for side, expected in (("rainy", noisy), ("clean", clean)):
        stored = pair[side]["bytes"]
        assert stored.startswith(b"\x89PNG")
        assert np.array_equal(np.asarray(decode(stored).image), expected), side
    assert hashlib.sha256(pair["rainy"]["bytes"]).hexdigest() == pair["sha256"]
    frames = [r for r in rows if r["layout"] == "video"]
    assert frames and all("#t=" in r["path"] for r in frames)
    for r in frames:
        assert r["rainy"]["bytes"].startswith(b"\x89PNG")
        assert hashlib.sha256(r["rainy"]["bytes"]).hexdigest() == r["sha256"]
    assert len({r["scene"] for r in frames}) == 1, "a video is one scene"


def test_all_quarantined_source_still_gives_manifest_report_and_empty_dataset(tmp_path):
    from datasets import load_from_disk

    root = tmp_path / "junk"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"not a jpeg at all")
    (root / "b.txt").write_text("text")
    out = tmp_path / "out"
    summary = ingest([SourceSpec(root)], out, IngestOptions(min_side=8, workers=0))
    assert summary.status == {"quarantined": 2}
    assert sum(len(ds) for ds in load_from_disk(str(out)).values()) == 0
    assert len(pd.read_parquet(out / "manifest.parquet")) == 2
    assert (out / "report" / "report.md").exists()


def distinct_images():
    for f in (data.astronaut, data.coffee, data.chelsea, data.rocket, data.camera, data.coins, data.moon, data.page):
        yield small(f()).convert("RGB")


def test_layout_splits_are_kept_and_split_file_pins_rows(tmp_path):
    import json

    root = tmp_path / "RealRain-1k"
    images = distinct_images()
    for split, names in (("train", ("a", "b", "c")), ("test", ("d", "e"))):
        for name in names:
            img = next(images)
            for folder in ("input", "target"):
                (root / split / folder).mkdir(parents=True, exist_ok=True)
            img.save(root / split / "target" / f"{name}.png")
            Image.fromarray(np.clip(np.asarray(img).astype(int) + 50, 0, 255).astype(np.uint8)).save(
                root / split / "input" / f"{name}.png")
    out = tmp_path / "out"
    summary = ingest([SourceSpec(root)], out, IngestOptions(min_side=32, workers=0))
    assert summary.splits == {"test": 2, "train": 3}
    manifest = pd.read_parquet(out / "manifest.parquet")
    rainy = manifest[manifest["side"] == "rainy"]
    assert all(path.split("/")[0] == split for path, split in zip(rainy["path"], rainy["split"]))
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["rows_by_split"] == summary.splits and report["status"] == summary.status

    plain = tmp_path / "plain"
    plain.mkdir()
    for k, img in enumerate(distinct_images()):
        img.save(plain / f"{k}.png")
    pins = tmp_path / "pins.csv"
    pins.write_text("path,split\n0.png,val\n1.png,val\n")
    out2 = tmp_path / "out2"
    ingest([SourceSpec(plain)], out2, IngestOptions(min_side=32, workers=0, split="train=1.0", split_file=pins))
    rows = pd.read_parquet(out2 / "manifest.parquet").set_index("path")
    assert rows.loc["0.png", "split"] == rows.loc["1.png", "split"] == "val"
    assert set(rows.drop(index=["0.png", "1.png"])["split"]) == {"train"}


def test_rain_kind_strata_are_each_split_by_the_ratios(tmp_path):
    sources = []
    images = list(distinct_images())
    for kind, part in (("heavy", images[:4]), ("light", images[4:])):
        folder = tmp_path / kind
        folder.mkdir()
        for k, img in enumerate(part):
            img.save(folder / f"{k}.png")
        sources.append(SourceSpec(folder, tags={"rain_kind": kind}))
    out = tmp_path / "out"
    ingest(sources, out, IngestOptions(min_side=32, workers=0, split="train=0.5,test=0.5"))
    rows = pd.read_parquet(out / "manifest.parquet")
    counts = rows.groupby(["rain_kind", "split"]).size().to_dict()
    assert counts == {("heavy", "test"): 2, ("heavy", "train"): 2, ("light", "test"): 2, ("light", "train"): 2}
