"""Ingest against messy real data: corrupt pixels, files changing under it, its own output inside a
source, broken links, non-UTF-8 names, a killed parent, library warnings (issue 16)."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from collection import ingest as ingest_module
from collection.images import ImageLoadError, decode
from collection.ingest import IngestOptions, SourceSpec, ingest
from collection.layouts import survey
from collection.probe import ProbeTask, probe

OPTIONS = IngestOptions(min_side=16, split="train=1.0")


def photo(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A smooth, distinct picture with a little grain (what a camera gives, small)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]]
    phase = rng.uniform(0, 6.28, 3)
    arr = np.stack([127 + 100 * np.sin(x / (9 + 5 * c) + y / (13 + 3 * c) + phase[c]) for c in range(3)], -1)
    arr = arr + rng.normal(0, 4, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def jpeg_bytes(img: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=90, **kwargs)
    return buffer.getvalue()


def entropy_span(data: bytes) -> tuple[int, int]:
    """(start, end) of a baseline JPEG's entropy-coded segment: after the SOS header, before EOI."""
    i = 2
    while data[i + 1] != 0xDA:
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return i + 2 + int.from_bytes(data[i + 2:i + 4], "big"), len(data) - 2


def damage(data: bytes, how: str) -> bytes:
    """Zero a run of entropy-coded bytes, or flip bits in one (never creating a 0xFF marker byte)."""
    start, end = entropy_span(data)
    out = bytearray(data)
    if how == "zeroed":
        at = start + (end - start) // 2
        out[at:at + 1024] = bytes(1024)
    else:
        at = start + (end - start) // 3
        for i in range(at, at + 256):
            if out[i] != 0xFF and out[i - 1] != 0xFF and out[i] ^ 0x5A != 0xFF:
                out[i] ^= 0x5A
    return bytes(out)


# --- item 1: corrupt pixels are quarantined as corrupt, naming what the decoder reported ---------


@pytest.mark.parametrize("how", ["zeroed", "flipped"])
def test_jpeg_with_damaged_entropy_data_is_corrupt(how, tmp_path):
    bad = damage(jpeg_bytes(photo(1, (1200, 900))), how)
    with Image.open(io.BytesIO(bad)) as img:
        img.load()  # Pillow alone decodes the garbage rows without a word: the check is ours
    path = tmp_path / f"{how}.jpg"
    path.write_bytes(bad)
    record = probe(ProbeTask(key="k", file=str(path)))
    assert record["status"] == "quarantined" and record["reason"] == "corrupt"
    assert "Corrupt JPEG data" in record["detail"] and str(path) in record["detail"]
    with pytest.raises(ImageLoadError, match="corrupt JPEG data"):
        decode(path)  # the runner's loader refuses it too


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def test_png_with_one_flipped_idat_byte_is_corrupt(tmp_path):
    buffer = io.BytesIO()
    photo(2).save(buffer, "PNG")
    png, chunks, i = buffer.getvalue(), [], 8
    while i < len(png):
        n = int.from_bytes(png[i:i + 4], "big")
        chunks.append((png[i + 4:i + 8], png[i + 8:i + 8 + n]))
        i += 12 + n
    stream = b"".join(body for kind, body in chunks if kind == b"IDAT")
    # A legal split: the zlib stream's adler-32 in an IDAT of its own, which Pillow never reads once
    # it has every row; one flipped bit there is what zlib calls "incorrect data check".
    rebuilt = png[:8] + b"".join(png_chunk(k, b) for k, b in chunks if k not in (b"IDAT", b"IEND"))
    rebuilt += png_chunk(b"IDAT", stream[:-4]) + png_chunk(b"IDAT", stream[-4:]) + png_chunk(b"IEND", b"")
    data = bytearray(rebuilt)
    data[data.rfind(b"IDAT") + 5] ^= 0x01
    with Image.open(io.BytesIO(bytes(data))) as img:
        img.load()  # Pillow alone returns the pixels
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    record = probe(ProbeTask(key="k", file=str(path)))
    assert record["status"] == "quarantined" and record["reason"] == "corrupt"
    assert "IDAT" in record["detail"] and "checksum" in record["detail"]


def test_intact_jpegs_decode_as_pillow_does(tmp_path):
    """The strict decoder gives Pillow's pixels for intact files, full size and reduced."""
    from collection import images

    for kwargs in ({}, {"subsampling": 0}):
        data = jpeg_bytes(photo(3, (333, 250)), **kwargs)
        for reduce in (1, 4, 8):
            strict = np.asarray(decode(data, reduce=reduce).image)
            images.STRICT_JPEG = False
            try:
                reference = np.asarray(decode(data, reduce=reduce).image)
            finally:
                images.STRICT_JPEG = True
            assert strict.shape == reference.shape and np.array_equal(strict, reference)


# --- item 3: the stored bytes are the probed bytes --------------------------------------------


def stored_rows(out: Path) -> list[dict]:
    from datasets import Image as HFImage
    from datasets import load_from_disk

    dataset = load_from_disk(str(out))
    rows = []
    for split in dataset:
        part = dataset[split].cast_column("rainy", HFImage(decode=False))
        rows += list(part)
    return rows


def test_file_rewritten_between_probe_and_build_is_not_stored_under_its_old_hash(tmp_path, monkeypatch):
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(3):
        photo(10 + i).save(src / f"p{i}.png")
    original = ingest_module._probe

    def probe_then_rewrite(*args, **kwargs):
        result = original(*args, **kwargs)
        (src / "p1.png").write_bytes(b"x\n")  # the file changes after its probe, before the build
        return result

    monkeypatch.setattr(ingest_module, "_probe", probe_then_rewrite)
    out = tmp_path / "out"
    ingest([SourceSpec(src)], out, OPTIONS)
    manifest = pd.read_parquet(out / "manifest.parquet").set_index("path")
    assert manifest.loc["p1.png", "status"] == "quarantined"
    assert manifest.loc["p1.png", "reason"] == "changed_during_ingest"
    rows = stored_rows(out)
    assert sorted(r["path"] for r in rows) == ["p0.png", "p2.png"]
    for row in rows:
        assert hashlib.sha256(row["rainy"]["bytes"]).hexdigest() == row["sha256"]

    monkeypatch.setattr(ingest_module, "_probe", original)
    photo(99).save(src / "p1.png")  # a real image again: the next run takes it, with its own hash
    ingest([SourceSpec(src)], out, OPTIONS)
    rows = {r["path"]: r for r in stored_rows(out)}
    assert set(rows) == {"p0.png", "p1.png", "p2.png"}
    assert rows["p1.png"]["sha256"] == hashlib.sha256((src / "p1.png").read_bytes()).hexdigest()


def test_same_size_same_mtime_replacement_is_probed_again(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    photo(20).save(src / "a.bmp")  # BMP: the same size in bytes for any pixels of the same shape
    photo(21).save(src / "b.bmp")
    out = tmp_path / "out"
    ingest([SourceSpec(src)], out, OPTIONS)
    st = os.stat(src / "a.bmp")
    replacement = io.BytesIO()
    photo(22).save(replacement, "BMP")
    assert len(replacement.getvalue()) == st.st_size
    (src / "a.bmp").write_bytes(replacement.getvalue())
    os.utime(src / "a.bmp", ns=(st.st_atime_ns, st.st_mtime_ns))  # what a careless sync tool does
    assert os.stat(src / "a.bmp").st_mtime_ns == st.st_mtime_ns
    summary = ingest([SourceSpec(src)], out, OPTIONS)
    assert summary.probed == 1
    manifest = pd.read_parquet(out / "manifest.parquet").set_index("path")
    assert manifest.loc["a.bmp", "sha256"] == hashlib.sha256(replacement.getvalue()).hexdigest()
    for row in stored_rows(out):
        assert hashlib.sha256(row["rainy"]["bytes"]).hexdigest() == row["sha256"]


# --- item 4: the output folder (and anything rainbench wrote) is not a source -----------------


def test_out_inside_a_source_is_never_ingested(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    for i in range(3):
        photo(30 + i).save(src / f"p{i}.png")
    out = src / "dataset"  # report plots and arrow shards land inside the source
    first = ingest([SourceSpec(src)], out, OPTIONS)
    second = ingest([SourceSpec(src)], out, OPTIONS)
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert not manifest["path"].str.startswith("dataset/").any()
    assert second.files == first.files == 3 and second.splits == {"train": 3}


def test_folders_rainbench_wrote_are_skipped(tmp_path):
    src = tmp_path / "photos"
    (src / "derained").mkdir(parents=True)
    photo(40).save(src / "rain.png")
    photo(41).save(src / "derained" / "rain.png")
    (src / "derained" / "derain.json").write_text("{}")
    found = survey(src)
    assert [i.path for i in found.items] == ["rain.png"]
    assert found.skipped == []


# --- item 6: broken links and loops are accounted for -----------------------------------------


@pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32", reason="needs POSIX symlinks")
def test_broken_links_and_link_loops_are_quarantined(tmp_path):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    photo(50).save(src / "good.png")
    os.symlink(src / "missing.jpg", src / "gone.jpg")
    os.symlink(src / "loop_b.jpg", src / "loop_a.jpg")
    os.symlink(src / "loop_a.jpg", src / "loop_b.jpg")
    os.symlink(src, src / "sub" / "up")  # a folder link back to the root
    out = tmp_path / "out"
    summary = ingest([SourceSpec(src)], out, OPTIONS)
    manifest = pd.read_parquet(out / "manifest.parquet").set_index("path")
    assert manifest.loc["gone.jpg", "reason"] == "broken_link"
    assert "missing.jpg" in manifest.loc["gone.jpg", "detail"]
    for path in ("loop_a.jpg", "loop_b.jpg", "sub/up"):
        assert manifest.loc[path, "status"] == "quarantined" and manifest.loc[path, "reason"] == "link_loop"
    assert manifest.loc["good.png", "status"] == "ok" and summary.splits == {"train": 1}


# --- item 7: a non-UTF-8 file name does not abort the ingest ----------------------------------


def test_non_utf8_file_name_is_ingested_with_an_escaped_path(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    photo(60).save(src / "plain.png")
    odd = os.fsdecode(b"rain\xff.png")
    try:
        photo(61).save(src / odd, format="PNG")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses non-UTF-8 names")
    out = tmp_path / "out"
    ingest([SourceSpec(src)], out, OPTIONS)
    manifest = pd.read_parquet(out / "manifest.parquet").set_index("path")
    assert manifest.loc["rain\\xff.png", "status"] == "ok"
    assert {r["path"] for r in stored_rows(out)} == {"plain.png", "rain\\xff.png"}


# --- item 10: workers end when the ingest process dies ----------------------------------------


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be read


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_the_parent_is_killed(tmp_path):
    for i in range(4):
        photo(70 + i).save(tmp_path / f"p{i}.png")
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from collection.probe import ProbeTask, probe_all
        tasks = [ProbeTask(key=str(p), file=str(p)) for p in sorted(Path({str(tmp_path)!r}).glob("*.png"))] * 10
        for task, record in probe_all(tasks, workers=2, chunk_size=1):
            print("probed", flush=True)
    """)
    env = dict(os.environ, RAINBENCH_PROBE_DELAY="2", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "probed"
        workers = _children(proc.pid)
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)]
    finally:
        if proc.poll() is None:
            proc.kill()


# --- item 15: library warnings are file facts, not terminal noise -----------------------------


def test_pillow_warnings_go_to_the_row_and_to_verbose_logging_only(tmp_path):
    from rainbench.cli import cli

    src = tmp_path / "photos"
    src.mkdir()
    (src / "bad_exif.jpg").write_bytes(jpeg_bytes(photo(80), exif=b"Exif\x00\x00MM\x00*\xff\xff\xff\xff"))
    record = probe(ProbeTask(key="k", file=str(src / "bad_exif.jpg")))
    assert record["status"] == "ok" and "Corrupt EXIF data" in record["warnings"]

    runner = CliRunner()
    quiet = runner.invoke(cli, ["ingest", str(src), "--out", str(tmp_path / "q"), "--min-side", "16",
                                "--workers", "0", "-q"])
    assert quiet.exit_code == 0, quiet.output
    assert "Corrupt EXIF" not in quiet.output
    verbose = runner.invoke(cli, ["ingest", str(src), "--out", str(tmp_path / "v"), "--min-side", "16",
                                  "--workers", "0", "-v"])
    assert verbose.exit_code == 0, verbose.output
    assert "Corrupt EXIF" in verbose.output


# --- item 16: a rainy image without its clean partner is a rainy row, as both docs say --------


def test_rainy_image_without_clean_partner_is_a_rainy_row(tmp_path):
    src = tmp_path / "set"
    (src / "rain").mkdir(parents=True)
    (src / "norain").mkdir()
    photo(90).save(src / "rain" / "1.png")
    photo(91).save(src / "norain" / "1.png")
    photo(92).save(src / "rain" / "2.png")  # no clean partner
    photo(93).save(src / "norain" / "3.png")  # no rainy partner
    ingest([SourceSpec(src)], tmp_path / "out", OPTIONS)
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet").set_index("path")
    assert (manifest.loc["rain/2.png", "role"], manifest.loc["rain/2.png", "status"]) == ("rainy", "ok")
    assert manifest.loc["norain/3.png", "reason"] == "not_in_layout"
    from collection.probe import REASONS

    # The reason's own text (the report's legend) and docs/ingest.md once said the opposite.
    assert "rainy file without" not in REASONS["not_in_layout"]
    text = (Path(__file__).resolve().parents[1] / "docs" / "ingest.md").read_text()
    assert "`not_in_layout` (e.g. a rainy file" not in text and "`role=rainy` row" in text
