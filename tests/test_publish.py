"""`rainbench publish`: the Hub tree (Parquet shards + card), privacy scrubbing, the card's YAML, the CLI dry run.

Datasets are built here with the row schema of docs/ARCHITECTURE.md (tiny PNG/JPEG images, some
rows with GPS values and a JPEG with GPS and a serial number in its EXIF), saved with
``save_to_disk`` like ``rainbench ingest`` does.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from collection.build import features as row_features
from collection.privacy import PersonalDataError, personal_columns, strip_personal_exif
from collection.publish import PublishError, dry_run, parse_size

GPS = {1: "N", 2: (52.0, 30.0, 0.0), 3: "E", 4: (13.0, 24.0, 0.0)}


def png(seed: int, size: tuple[int, int] = (24, 16)) -> bytes:
    """A small PNG of random pixels (distinct per seed)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def jpeg_with_gps(seed: int, fmt: str = "JPEG") -> bytes:
    """A small JPEG (or PNG) whose EXIF holds camera, orientation, GPS and a body serial number."""
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "RainCam", "X1", 6
    exif[0x8825] = GPS
    exif[0x8769] = {0xA431: "SN-0042", 0x829A: (1, 250)}
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, exif=exif)
    return buf.getvalue()


def _row(rid: str, rainy: bytes | None, clean: bytes | None, source: str, layout: str, gps: bool) -> dict:
    role = "pair" if rainy and clean else ("rainy" if rainy else "clean")
    main = rainy or clean
    return {
        "id": rid, "rainy": {"bytes": rainy, "path": None} if rainy else None,
        "clean": {"bytes": clean, "path": None} if clean else None, "role": role, "source": source,
        "layout": layout, "path": f"{rid}.png", "clean_path": f"gt/{rid}.png" if role == "pair" else None,
        "width": 24, "height": 16, "format": "JPEG" if main[:2] == b"\xff\xd8" else "PNG",
        "sha256": hashlib.sha256(main).hexdigest(), "phash": "0" * 16, "dup_group": rid, "duplicate_of": None,
        "scene": f"s{rid}",
        "rain_kind": "heavy" if int(rid[-1], 16) % 2 else None, "camera_make": "RainCam" if gps else None,
        "camera_model": "X1" if gps else None, "lens_model": None, "datetime_original": None,
        "exposure_time": 0.004 if gps else None, "f_number": None, "focal_length_mm": None, "iso": 100,
        "orientation": 1, "gps_latitude": 52.5 if gps else None, "gps_longitude": 13.4 if gps else None,
        "gps_altitude": 34.0 if gps else None, "sharpness": 1.5, "brightness": 0.5, "contrast": 0.2, "noise": 0.01,
    }


def make_dataset(root: Path, kind: str = "paired", report: bool = True) -> Path:
    """Save a small DatasetDict like `rainbench ingest --keep-gps` writes it; returns its folder."""
    from datasets import Dataset, DatasetDict

    feats = row_features(keep_gps=True)
    if kind == "paired":
        splits = {
            "train": [_row("a001", jpeg_with_gps(1), png(2), "Rain100L", "rain100", gps=True),
                      _row("a002", png(3), png(4), "Rain100L", "rain100", gps=False),
                      _row("a003", png(5), png(6), "mine", "paired", gps=True)],
            "test": [_row("b001", png(7), png(8), "Rain100L", "rain100", gps=False),
                     _row("b002", png(9), png(10), "mine", "paired", gps=True)],
        }
    else:
        splits = {
            "train": [_row("c001", jpeg_with_gps(11), None, "phone", "unpaired", gps=True),
                      _row("c002", png(12), None, "phone", "unpaired", gps=False),
                      _row("c003", None, png(13), "phone", "unpaired", gps=False),
                      _row("c004", None, jpeg_with_gps(14, "PNG"), "phone", "unpaired", gps=True)],
            "test": [_row("d001", png(15), None, "phone", "plain", gps=True)],
        }
    out = root / f"ds-{kind}"
    DatasetDict({s: Dataset.from_list(rows, features=feats) for s, rows in splits.items()}).save_to_disk(str(out))
    if report:
        (out / "report").mkdir()
        (out / "report" / "report.json").write_text(json.dumps({
            "fingerprint": "f" * 64, "files": 12, "status": {"duplicate": 1, "ok": 10, "quarantined": 1},
            "quarantine_reasons": {"too_small": 1}, "duplicate_reasons": {"near": 1},
            "clusters": {"count": 1, "largest": []}, "scenes": 5}))
    return out


def load_tree(tree: Path, cache: Path):
    import datasets

    return datasets.load_dataset(str(tree), cache_dir=str(cache))


def rows_by_id(ds) -> dict:
    """id -> row with undecoded images."""
    from datasets import Image as ImageFeature

    for column in ("rainy", "clean"):
        ds = ds.cast_column(column, ImageFeature(decode=False))
    return {row["id"]: row for row in ds}


def _bytes(cell) -> bytes | None:
    return None if cell is None else cell["bytes"]


def _has_gps(data: bytes) -> bool:
    return bool(Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825))


@pytest.mark.parametrize("kind", ["paired", "unpaired"])
def test_dry_run_round_trip(tmp_path, kind):
    import datasets

    src_dir = make_dataset(tmp_path, kind)
    tree = dry_run(src_dir, tmp_path / "tree", repo_id="org/rain", shard_size=300)
    source = datasets.load_from_disk(str(src_dir))
    loaded = load_tree(tree.out, tmp_path / "cache")
    assert sorted(loaded) == sorted(source)
    for split in source:
        assert loaded[split].num_rows == source[split].num_rows
        expected = {k: v for k, v in source[split].features.items() if not k.startswith("gps_")}
        assert loaded[split].features == datasets.Features(expected)
        got, want = rows_by_id(loaded[split]), rows_by_id(source[split])
        assert set(got) == set(want)
        for rid, row in want.items():
            for column in ("rainy", "clean"):
                before, after = _bytes(row[column]), _bytes(got[rid][column])
                assert (before is None) == (after is None), (rid, column)  # pairs stay pairs, unpaired stay unpaired
                if before is None:
                    continue
                if _has_gps(before):
                    assert not _has_gps(after)
                    assert np.array_equal(np.asarray(Image.open(io.BytesIO(after))),
                                          np.asarray(Image.open(io.BytesIO(before))))
                else:
                    assert after == before, (rid, column)
            assert got[rid]["role"] == row["role"] and got[rid]["source"] == row["source"]
    assert tree.scrubbed_images == 1 + (kind == "unpaired")
    assert tree.dropped_columns == ["gps_altitude", "gps_latitude", "gps_longitude"]


def test_shards_are_named_and_sized(tmp_path):
    src_dir = make_dataset(tmp_path)
    tree = dry_run(src_dir, tmp_path / "tree", repo_id="org/rain", shard_size=300)
    files = sorted(p.relative_to(tree.out).as_posix() for p in (tree.out / "data").iterdir())
    assert files == sorted(s.path for s in tree.shards)
    for split, rows in (("train", 3), ("test", 2)):
        names = [f for f in files if f.startswith(f"data/{split}-")]
        assert len(names) == rows  # 300 bytes is smaller than any row: one row per shard
        assert all(re.fullmatch(rf"data/{split}-\d{{5}}-of-{rows:05d}\.parquet", n) for n in names)
    big = dry_run(src_dir, tmp_path / "tree", repo_id="org/rain", shard_size="1GB")
    assert [s.path for s in big.shards] == ["data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"]
    assert sorted(p.name for p in (tmp_path / "tree" / "data").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet"]  # the older shards are gone


def test_keep_gps_publishes_everything_as_is(tmp_path):
    import datasets

    src_dir = make_dataset(tmp_path)
    tree = dry_run(src_dir, tmp_path / "tree", repo_id="org/rain", keep_gps=True)
    loaded = load_tree(tree.out, tmp_path / "cache")["train"]
    source = datasets.load_from_disk(str(src_dir))["train"]
    assert {"gps_latitude", "gps_longitude", "gps_altitude"} <= set(loaded.column_names)
    got, want = rows_by_id(loaded), rows_by_id(source)
    assert got["a001"]["gps_latitude"] == pytest.approx(52.5)
    assert _bytes(got["a001"]["rainy"]) == _bytes(want["a001"]["rainy"]) and _has_gps(_bytes(got["a001"]["rainy"]))
    assert tree.scrubbed_images == 0 and tree.dropped_columns == []


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_strip_personal_exif_keeps_pixels_and_camera(fmt):
    data = jpeg_with_gps(3, fmt)
    out = strip_personal_exif(data)
    exif = Image.open(io.BytesIO(out)).getexif()
    assert not exif.get_ifd(0x8825)
    assert 0xA431 not in exif.get_ifd(0x8769)  # body serial number
    assert exif.get_ifd(0x8769)[0x829A] == (1, 250)  # exposure time survives
    assert (exif[0x010F], exif[0x0110], exif[0x0112]) == ("RainCam", "X1", 6)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out))), np.asarray(Image.open(io.BytesIO(data))))
    if fmt == "JPEG":  # the entropy-coded scan is copied, not re-encoded
        assert out[out.index(b"\xff\xda"):] == data[data.index(b"\xff\xda"):]


def test_strip_personal_exif_leaves_clean_files_untouched():
    data = png(1)
    assert strip_personal_exif(data) is data
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "RainCam"
    Image.new("RGB", (8, 8)).save(buf, "JPEG", exif=exif)
    assert strip_personal_exif(buf.getvalue()) == buf.getvalue()


def test_strip_refuses_gps_it_cannot_remove():
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x8825] = GPS
    Image.new("RGB", (8, 8)).save(buf, "TIFF", exif=exif.tobytes())  # TIFF: the EXIF is the file's own IFDs
    with pytest.raises(PersonalDataError, match="row x.*0x8825.*TIFF.*--keep-gps"):
        strip_personal_exif(buf.getvalue(), name="row x")
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "WEBP", xmp=b'<x:xmpmeta><rdf:Description exif:GPSLatitude="52,30N"/></x:xmpmeta>')
    with pytest.raises(PersonalDataError, match="row y.*WEBP.*GPS in its XMP.*--keep-gps"):
        strip_personal_exif(buf.getvalue(), name="row y")


@pytest.mark.parametrize("fmt", ["WEBP", "HEIF"])
@pytest.mark.parametrize("gps", [False, True], ids=["serial-only", "serial-and-gps"])
def test_strip_personal_exif_scrubs_webp_and_heif(fmt, gps):
    """A serial number (with or without GPS) leaves WebP/HEIF EXIF; the container and pixels stay as they were."""
    pixels = np.random.default_rng(5).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "RainCam", "X1"
    exif[0x8769] = {0xA431: "SN-0042", 0xA435: "LENS-77", 0x927C: b"maker-note-SN-0042", 0x829A: (1, 250)}
    if gps:
        exif[0x8825] = GPS
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, exif=exif, **({"lossless": True} if fmt == "WEBP" else {}))
    data = buf.getvalue()
    out = strip_personal_exif(data, name="row h")
    assert b"SN-0042" not in out and b"LENS-77" not in out  # values zeroed, not just unlinked
    assert len(out) == len(data)  # same-length rewrite: no chunk size or box offset moved
    with Image.open(io.BytesIO(out)) as image:
        got = image.getexif()
        assert image.format == fmt
        assert not got.get_ifd(0x8825)
        assert got.get_ifd(0x8769) == {0x829A: (1, 250)}
        assert (got[0x010F], got[0x0110]) == ("RainCam", "X1")
        assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    assert strip_personal_exif(out) is out  # nothing left to remove


def test_parse_size_and_personal_columns():
    assert parse_size("500MB") == 500_000_000
    assert parse_size("2GiB") == 2 * 1024**3
    assert parse_size("1.5kb") == 1500 and parse_size(42) == 42
    with pytest.raises(ValueError, match="not a size"):
        parse_size("big")
    names = ["id", "gps_latitude", "camera_serial", "owner_name", "camera_make"]
    assert personal_columns(names) == ["gps_latitude", "camera_serial", "owner_name"]
    assert personal_columns(names, keep_gps=True) == []


def test_not_a_dataset(tmp_path):
    with pytest.raises(PublishError, match="no dataset_dict.json"):
        dry_run(tmp_path, tmp_path / "tree", repo_id="org/rain")


# ----------------------------------------------------------------------------- the card


def test_card_yaml_validates_and_points_at_the_shards(tmp_path):
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    tree = dry_run(make_dataset(tmp_path), tmp_path / "tree", repo_id="org/rain", shard_size=300)
    card = DatasetCard.load(tree.card)
    data = card.data.to_dict()
    assert data["task_categories"] == ["image-to-image"]
    assert {"image-deraining", "rain-removal"} <= set(data["tags"])
    assert data["size_categories"] == ["n<1K"] and data["pretty_name"] == "rain"
    assert data["license"] == "other" and data["license_link"] == "README.md"  # Rain100L is not ours to licence
    assert DatasetCardData(**data).to_dict() == data
    configs = MetadataConfigs.from_dataset_card_data(card.data)
    files = {p.relative_to(tree.out).as_posix() for p in (tree.out / "data").iterdir()}
    for entry in configs["default"]["data_files"]:
        matched = {f for f in files if Path(f).match(entry["path"])}
        assert matched == {s.path for s in tree.shards if s.split == entry["split"]}
    info = data["dataset_info"]
    assert {s["name"]: s["num_examples"] for s in info["splits"]} == tree.rows
    assert info["download_size"] == sum((tree.out / s.path).stat().st_size for s in tree.shards)
    assert {f["name"] for f in info["features"]} == set(tree_columns(tree))
    text = card.text
    assert 'datasets.load_dataset("org/rain")' in text
    assert "yang2017rain100" in text and "ye2022nlcl" in text and "chang2024nlcl" in text
    assert "| mine | paired | 2 |" in text and "RainCam X1" in text
    assert "too_small" in text  # curation counts come from the report


def tree_columns(tree) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_schema(tree.out / tree.shards[0].path).names


def test_card_of_own_photos_uses_the_given_licence_and_survives_no_report(tmp_path):
    from huggingface_hub import DatasetCard

    tree = dry_run(make_dataset(tmp_path, "unpaired", report=False), tmp_path / "tree", repo_id="me/street-rain",
                   license="cc-by-nc-4.0", pretty_name="Street rain")
    card = DatasetCard.load(tree.card)
    assert card.data.license == "cc-by-nc-4.0" and card.data.pretty_name == "Street rain"
    assert "unpaired" in card.data.tags
    assert "yang2017rain100" not in card.text and "ye2022nlcl" in card.text
    assert "No curation report" in card.text


# ----------------------------------------------------------------------------- the CLI


def test_cli_dry_run(tmp_path, capsys):
    from rainbench.cli import main

    src_dir = make_dataset(tmp_path)
    out = tmp_path / "tree"
    code = main(["publish", str(src_dir), "--repo-id", "org/rain", "--dry-run", str(out), "--shard-size", "1MB", "-q"])
    assert code == 0
    assert (out / "README.md").is_file()
    assert sorted(p.name for p in (out / "data").iterdir()) == ["test-00000-of-00001.parquet",
                                                                 "train-00000-of-00001.parquet"]
    assert "dry run: nothing uploaded" in capsys.readouterr().out


def test_cli_rejects_bad_options(tmp_path, capsys):
    from rainbench.cli import main

    src_dir = make_dataset(tmp_path)
    assert main(["publish", str(src_dir), "--repo-id", "no-slash", "--dry-run", str(tmp_path / "t")]) == 2
    assert main(["publish", str(src_dir), "--repo-id", "o/n", "--shard-size", "huge", "--dry-run", str(tmp_path / "t")]) == 2
    assert "not a size" in capsys.readouterr().err


def test_card_roles_inferred_when_the_role_column_is_missing(tmp_path):
    import datasets

    from collection.card import describe

    dsd = datasets.load_from_disk(str(make_dataset(tmp_path, "unpaired")))
    without = datasets.DatasetDict({k: v.remove_columns("role") for k, v in dsd.items()})
    assert describe(without)["by_split"] == describe(dsd)["by_split"] == {
        "test": {"rainy": 1}, "train": {"clean": 2, "rainy": 2}}


def test_dry_run_never_wipes_a_foreign_data_folder(tmp_path):
    src_dir = make_dataset(tmp_path)
    mine = tmp_path / "tree" / "data" / "thesis.tex"
    mine.parent.mkdir(parents=True)
    mine.write_text("precious")
    with pytest.raises(PublishError, match="not shards.*thesis.tex"):
        dry_run(src_dir, tmp_path / "tree", repo_id="org/rain")
    assert mine.read_text() == "precious"


def test_a_killed_shard_write_leaves_nothing_that_counts(tmp_path, monkeypatch):
    """Shards are written atomically: a write that fails leaves no shard; its leftover never blocks a rebuild."""
    import collection.publish.tree as tree_module

    src_dir = make_dataset(tmp_path)
    real = tree_module.scrub_images

    def fail_in_test_split(table, ids):
        if any(i.startswith("b") for i in ids):
            raise OSError("disk full")
        return real(table, ids)

    monkeypatch.setattr(tree_module, "scrub_images", fail_in_test_split)
    with pytest.raises(OSError, match="disk full"):
        dry_run(src_dir, tmp_path / "tree", repo_id="org/rain")
    assert list((tmp_path / "tree" / "data").iterdir()) == []  # the half-written test shard is gone
    assert not (tmp_path / "tree" / "README.md").exists()  # no card: the tree never looks finished
    (tmp_path / "tree" / "data" / ".train-00000-of-00001.parquet.x1y2.tmp.parquet").write_bytes(b"killed")
    monkeypatch.setattr(tree_module, "scrub_images", real)
    tree = dry_run(src_dir, tmp_path / "tree", repo_id="org/rain")  # a SIGKILL leftover is not a foreign file
    assert sorted(p.name for p in (tree.out / "data").iterdir()) == sorted(s.path.split("/")[1] for s in tree.shards)
    assert {s.split for s in tree.shards} == {"test", "train"} and (tree.out / "README.md").is_file()


def test_publish_what_ingest_wrote(tmp_path):
    """End to end with the real ingest: its report feeds the card; its rows keep GPS in the JPEG bytes."""
    import datasets

    from collection.ingest import IngestOptions, SourceSpec, ingest

    photos = tmp_path / "street"
    photos.mkdir()
    for seed in range(3):
        (photos / f"IMG_{seed}.jpg").write_bytes(jpeg_with_gps(seed * 7 + 1))
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "curated"
    ingest([SourceSpec(photos)], out, IngestOptions(min_side=8, radius=0, workers=0))
    stored = datasets.load_from_disk(str(out))
    assert any(_has_gps(r["rainy"]["bytes"]) for s in stored for r in rows_by_id(stored[s]).values())

    tree = dry_run(out, tmp_path / "tree", repo_id="me/street")
    loaded = load_tree(tree.out, tmp_path / "cache")
    assert {s: loaded[s].num_rows for s in loaded} == {s: stored[s].num_rows for s in stored}
    assert not any(_has_gps(r["rainy"]["bytes"]) for s in loaded for r in rows_by_id(loaded[s]).values())
    text = tree.card.read_text()
    assert "Files seen by `rainbench ingest`: 4" in text and "| street |" in text
