"""Sources and outputs on shared storage (issue 18): ingest and derain read and write fsspec URLs.

fsspec's ``memory://`` filesystem stands in for an object store: it has no local paths, no links,
no atomic renames and lists folders only through the names under them. It lives in this process,
so these runs use in-process workers (a cluster's workers reach a real store the same way).
"""

from __future__ import annotations

import io
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from collection.ingest import IngestOptions, SourceSpec, ingest
from collection.layouts.tree import Tree
from collection.mirror import stage_for
from collection.storage import Location

MEMORY = fsspec.filesystem("memory")


@pytest.fixture
def store(monkeypatch, tmp_path):
    """A clean ``memory://`` store and a stage folder of this test's own."""
    monkeypatch.setenv("RAINBENCH_CACHE", str(tmp_path / "cache"))
    root = f"/rb-{tmp_path.name}"
    yield f"memory:/{root}"
    if MEMORY.exists(root):
        MEMORY.rm(root, recursive=True)


def _upload(local: Path, url: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            (Location(url) / path.relative_to(local).as_posix()).write_bytes(path.read_bytes())


def _manifest(where: str | Path) -> pd.DataFrame:
    frame = pd.read_parquet(io.BytesIO((Location(str(where)) / "manifest.parquet").read_bytes()))
    # Where a file was read from differs by design; what was found in it must not.
    return frame.drop(columns=["file", "detail", "seconds"], errors="ignore")


def test_ingest_from_and_into_urls_equals_the_local_ingest(store, tmp_path):
    from datasets import load_from_disk

    from test_ingest import MIN_SIDE, SPLIT, dataset_content, make_sources

    sources = make_sources(tmp_path / "src")
    (tmp_path / "src" / "photos" / ".DS_Store").write_bytes(b"hidden")
    _upload(tmp_path / "src", f"{store}/src")
    options = IngestOptions(min_side=MIN_SIDE, split=SPLIT)
    local = ingest([SourceSpec(path) for path in sources.values()], tmp_path / "local", options)
    specs = [SourceSpec.parse(f"{store}/src/{name}") for name in sources]
    assert all(isinstance(spec.path, str) and spec.path.startswith("memory://") for spec in specs)
    out = f"{store}/out"
    remote = ingest(specs, out, options)
    assert remote.fingerprint == local.fingerprint and remote.splits == local.splits and remote.out == out
    assert remote.status == local.status and remote.reasons == local.reasons
    pd.testing.assert_frame_equal(_manifest(out), _manifest(tmp_path / "local"))
    stage = stage_for(Location(out))
    assert not any((stage / split).exists() for split in remote.splits), "the stage keeps metadata, not images"
    read_back = load_from_disk(out)
    assert {split: len(ds) for split, ds in read_back.items()} == local.splits
    staged_copy = tmp_path / "from-store"
    read_back.save_to_disk(str(staged_copy))
    assert dataset_content(staged_copy) == dataset_content(tmp_path / "local")
    again = ingest(specs, out, options)
    assert again.probed == 0 and again.cached == remote.probed and not again.rebuilt


def test_an_interrupted_remote_ingest_resumes_on_another_machine(store, tmp_path, monkeypatch):
    from test_ingest import MIN_SIDE, SPLIT, make_sources

    sources = make_sources(tmp_path / "src")
    _upload(tmp_path / "src", f"{store}/src")
    specs = [SourceSpec.parse(f"{store}/src/{name}") for name in sources]
    options = IngestOptions(min_side=MIN_SIDE, split=SPLIT, cache_batch=1)
    out = f"{store}/out"

    def stop_at_curation(stage, done, total):
        if stage == "curate":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest(specs, out, options, progress=stop_at_curation)
    assert not (Location(out) / "dataset_dict.json").exists()
    monkeypatch.setenv("RAINBENCH_CACHE", str(tmp_path / "another-machine"))  # an empty stage
    finished = ingest(specs, out, options)
    assert finished.probed == 0 and finished.cached > 0, "every probe of the interrupted run was pushed"
    assert (Location(out) / "dataset_dict.json").exists() and finished.rebuilt


def test_a_remote_tree_lists_implied_folders_and_skips_outputs_and_hidden_names(store):
    root = Location(f"{store}/tree")
    for rel in ("rain/1.png", "norain/1.png", "deep/a/b/c.jpg", ".git/x.png", "old-run/run.json",
                "old-run/outputs/x.png", "notes.txt"):
        (root / rel).write_bytes(b"x")
    tree = Tree(str(root))
    assert tree.files == ["deep/a/b/c.jpg", "norain/1.png", "notes.txt", "rain/1.png"]
    assert tree.dirs == ["deep", "deep/a", "deep/a/b", "norain", "rain"]
    assert tree.outputs == ["old-run"]
    assert tree.subdirs("deep") == {"a": "deep/a"} and tree.images() == ["deep/a/b/c.jpg", "norain/1.png", "rain/1.png"]
    assert tree.abspath("rain/1.png") == f"{store}/tree/rain/1.png"
    with pytest.raises(Exception, match="no such folder"):
        Tree(f"{store}/nowhere")


def test_remote_files_that_cannot_be_read_are_quarantined_naming_the_file(store, tmp_path):
    from PIL import Image

    photos = Location(f"{store}/photos")
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (40, 90, 200)).save(buffer, "PNG")
    (photos / "good.png").write_bytes(buffer.getvalue())
    (photos / "empty.png").write_bytes(b"")
    (photos / "cut.png").write_bytes(buffer.getvalue()[:60])
    summary = ingest([SourceSpec.parse(str(photos))], tmp_path / "out", IngestOptions(min_side=1))
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet").set_index("path")
    assert manifest.loc["good.png", "status"] == "ok"
    assert manifest.loc["empty.png", "reason"] == "empty"
    assert manifest.loc["cut.png", "status"] == "quarantined"
    assert f"{store}/photos/cut.png" in manifest.loc["cut.png", "detail"]
    assert summary.status == {"ok": 1, "quarantined": 2}


def test_derain_reads_and_writes_urls_with_the_local_bytes(store, tmp_path):
    from PIL import Image

    from rainbench.cli import main
    from test_runner import _images

    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    for i, (_, rainy) in enumerate(_images()[:3]):
        Image.fromarray(rainy).save(inputs / ("sub" if i else "") / f"r{i}.png")
    _upload(inputs, f"{store}/in")
    assert main(["derain", str(inputs), "-m", "guided", "-o", str(tmp_path / "local"), "-q"]) == 0
    out = f"{store}/out"
    assert main(["derain", f"{store}/in", "-m", "guided", "-o", out, "-q"]) == 0
    for rel in ("r0.png", "sub/r1.png", "sub/r2.png"):
        assert (Location(out) / rel).read_bytes() == (tmp_path / "local" / rel).read_bytes()
    assert (Location(out) / "derain.json").read_text() == (tmp_path / "local" / "derain.json").read_text()
    before = MEMORY.info(f"{Location(out).path}/r0.png")["created"]
    assert main(["derain", f"{store}/in/r0.png", "-m", "guided", "-o", out, "-q"]) == 0
    assert MEMORY.info(f"{Location(out).path}/r0.png")["created"] == before, "an output already there is skipped"
    assert main(["derain", f"{store}/missing", "-m", "guided", "-o", out, "-q"]) == 2


def test_odd_names_on_a_store_survive_the_round_trip(store, tmp_path):
    from PIL import Image

    from collection.storage import Location

    photos = Location(f"{store}/odd photos")
    names = ["a b.png", "x#1.png", "q?.png", "pct%20.png", "ünï.png", "two::colons.png"]
    for k, name in enumerate(names):
        buffer = io.BytesIO()
        Image.new("RGB", (64 + k, 48), (40 * k, 90, 200)).save(buffer, "PNG")
        entry = photos / name
        entry.write_bytes(buffer.getvalue())
        assert Location(str(entry)).read_bytes() == buffer.getvalue(), name
    summary = ingest([SourceSpec.parse(str(photos))], tmp_path / "out", IngestOptions(min_side=1, duplicates="flag"))
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert sorted(manifest["path"]) == sorted(names)
    assert summary.status == {"ok": len(names)}, manifest[["path", "detail"]]
