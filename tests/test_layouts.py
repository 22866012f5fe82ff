"""Source layouts: detection, pairing, roles, scenes, splits, regions, video frames, sidecars, errors.

Every test writes its own tiny tree. Pairing is checked against the pairs the fixture itself
intends, written down independently of the code's matching rules.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from collection.images import ImageLoadError, decode
from collection.layouts import (
    LAYOUTS,
    UNSUPPORTED,
    LayoutError,
    SourceItem,
    crop_region,
    detect_layout,
    discover,
    read_video_frame,
    skipped_files,
    survey,
    unsupported_files,
)

# --------------------------------------------------------------------------- fixture helpers


def img(root: Path, rel: str, size: tuple[int, int] = (8, 6), color=(10, 20, 30), **save) -> Path:
    """Write a tiny real image at ``root/rel`` (format from the suffix)."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, **save)
    return path


def text(root: Path, rel: str, content: str = "not an image") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


PALETTE = [(230, 30, 30), (30, 230, 30), (30, 30, 230), (230, 230, 30), (30, 230, 230)]


def write_video(path: Path, seconds: float = 2.0, rate: int = 10, size=(64, 48)) -> list[tuple[int, int, int]]:
    """Encode ``seconds * rate`` solid frames; frame i has colour PALETTE[i // rate % 5] (one per second)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colours = []
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 4  # several keyframes, so seeking is exercised
        for i in range(int(seconds * rate)):
            colour = PALETTE[(i // rate) % len(PALETTE)] if rate else PALETTE[0]
            colours.append(colour)
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), colour, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return colours


def items_of(root: Path, **kw) -> list[SourceItem]:
    return list(discover(root, **kw))


def pairs_of(items: list[SourceItem]) -> dict[str, str | None]:
    return {i.path: i.clean_path for i in items}


def all_files(root: Path) -> set[str]:
    """Every non-hidden file below root, relative POSIX (an independent walk)."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                found.add((Path(dirpath) / name).relative_to(root).as_posix())
    return found


def assert_accounted(root: Path, result, metadata: frozenset[str] = frozenset()) -> None:
    """Nothing is lost: every file is yielded, skipped with a reason, or named layout metadata."""
    yielded = {i.video_path for i in result.items} | {i.clean_path for i in result.items if i.clean_path}
    skipped = {p.relative_to(root.resolve()).as_posix() for p, _ in result.skipped}
    assert not yielded & skipped
    assert yielded | skipped | set(metadata) == all_files(root)
    assert all(reason for _, reason in result.skipped)


def assert_sorted(items: list[SourceItem]) -> None:
    keys = [(i.video_path, i.frame_time or 0.0) for i in items]
    assert keys == sorted(keys)


# --------------------------------------------------------------------------- plain


def test_plain_folder_recursive_with_hidden_and_unsupported(tmp_path):
    root = tmp_path / "phone"
    img(root, "a.jpg")
    img(root, "sub/b.png")
    img(root, "sub/deeper/c.tif")
    img(root, "d.webp")
    text(root, "e.HEIC", "fake heic body")  # suffix decides; the pipeline's decode judges the bytes
    text(root, "fake.jpg", "text that looks like a jpeg by name")
    text(root, "notes.txt")
    text(root, "sub/raw.cr2")
    img(root, ".cache/x.png")
    img(root, ".hidden.jpg")

    assert detect_layout(root) == "plain"
    result = survey(root)
    paths = [i.path for i in result.items]
    assert paths == sorted(["a.jpg", "sub/b.png", "sub/deeper/c.tif", "d.webp", "e.HEIC", "fake.jpg"])
    assert {i.role for i in result.items} == {"rainy"}
    assert {i.layout for i in result.items} == {"plain"}
    assert all(i.source == "phone" and i.clean_path is None and i.split is None for i in result.items)
    assert all(i.file == root.resolve() / i.path for i in result.items)
    assert sorted(p.name for p in unsupported_files(root)) == ["notes.txt", "raw.cr2"]
    assert {r for _, r in result.skipped} == {UNSUPPORTED}
    assert_accounted(root, result)


def test_odd_names_round_trip(tmp_path):
    root = tmp_path / "odd"
    names = ["with space.png", "ünïcødé.jpg", "hash#1.png", "雨/夜 #2.png", "pct%20.png"]
    for n in names:
        img(root, n)
    write_video(root / "clip #3.mp4", seconds=1.0)
    items = items_of(root)
    still = [i for i in items if i.frame_time is None]
    assert sorted(i.path for i in still) == sorted(names)
    for i in still:
        assert (root / i.path).resolve() == i.file and i.file.exists()
    frames = [i for i in items if i.frame_time is not None]
    assert frames and {i.video_path for i in frames} == {"clip #3.mp4"}
    assert all(i.path == f"clip #3.mp4#t={i.frame_time:.3f}" for i in frames)
    assert all(i.file == (root / "clip #3.mp4").resolve() for i in frames)


def test_source_name_and_tags(tmp_path):
    root = tmp_path / "cam"
    img(root, "a.png")
    [item] = items_of(root, source_name="mycam", tags={"rain_kind": "heavy"})
    assert item.source == "mycam" and item.tags == {"rain_kind": "heavy"}


def test_discover_is_deterministic(tmp_path):
    root = tmp_path / "p"
    for n in ["z.png", "a/b.png", "m.jpg", "a/a.png", "B.png"]:
        img(root, n)
    first, second = items_of(root), items_of(root)
    assert first == second
    assert_sorted(first)


# --------------------------------------------------------------------------- generic pairs


@pytest.mark.parametrize(
    "rainy_dir,clean_dir",
    [("rain", "norain"), ("input", "target"), ("rainy", "clean"), ("inputcrop", "cleancrop"), ("Rain", "NoRain")],
)
def test_generic_pair_folders(tmp_path, rainy_dir, clean_dir):
    root = tmp_path / "set"
    img(root, f"{rainy_dir}/1.png", color=(1, 1, 1))
    img(root, f"{clean_dir}/1.png")
    img(root, f"{rainy_dir}/2.png")
    img(root, f"{clean_dir}/2.jpg")  # extensions may differ
    img(root, f"{rainy_dir}/rainy_only_3.png")
    img(root, f"{clean_dir}/stray.png")
    img(root, f"{rainy_dir}/sub/3.png")
    img(root, f"{clean_dir}/sub/3.png")

    assert detect_layout(root) == "paired"
    result = survey(root)
    expected = {
        f"{rainy_dir}/1.png": f"{clean_dir}/1.png",
        f"{rainy_dir}/2.png": f"{clean_dir}/2.jpg",
        f"{rainy_dir}/rainy_only_3.png": None,
        f"{rainy_dir}/sub/3.png": f"{clean_dir}/sub/3.png",
    }
    assert pairs_of(result.items) == expected
    for i in result.items:
        assert i.role == ("pair" if i.clean_path else "rainy")
        assert i.layout == "paired" and i.scene is None and i.split is None
        if i.clean_path:
            assert i.clean_file == root.resolve() / i.clean_path
    reasons = {p.name: r for p, r in result.skipped}
    assert reasons == {"stray.png": "clean image with no rainy partner"}
    assert_accounted(root, result)


def test_pairs_match_rain_and_norain_prefixed_names(tmp_path):
    root = tmp_path / "Rain100H"
    for k in (1, 2):
        img(root, f"rainy/rain-{k:03d}.png")
        img(root, f"norain/norain-{k:03d}.png")
    assert detect_layout(root) == "paired"
    assert pairs_of(items_of(root)) == {f"rainy/rain-{k:03d}.png": f"norain/norain-{k:03d}.png" for k in (1, 2)}


def test_pair_folders_under_train_test_fix_the_split(tmp_path):
    root = tmp_path / "set"
    for split in ("train", "test"):
        img(root, f"{split}/rain/x.png")
        img(root, f"{split}/norain/x.png")
    items = items_of(root)
    assert {i.path: i.split for i in items} == {"test/rain/x.png": "test", "train/rain/x.png": "train"}
    assert pairs_of(items) == {"test/rain/x.png": "test/norain/x.png", "train/rain/x.png": "train/norain/x.png"}


def test_two_kinds_of_pair_folders_in_one_folder_is_an_error(tmp_path):
    root = tmp_path / "mixed"
    for d in ("rain", "norain", "input", "target"):
        img(root, f"{d}/1.png")
    with pytest.raises(LayoutError, match="ambiguous pair folders"):
        detect_layout(root)


# --------------------------------------------------------------------------- synth


def test_synth_output_with_presets(tmp_path):
    root = tmp_path / "synth_out"
    for name in ("a", "b", "c"):
        img(root, f"rainy/{name}.png")
        img(root, f"clean/{name}.png")
    (root / "params").mkdir()
    (root / "params/a.json").write_text(json.dumps({"preset": "rain100h", "density": 0.3}))
    (root / "params/b.json").write_text(json.dumps({"density": 0.1}))
    sidecar = text(tmp_path, "labels.csv", "path,rain_kind\nrainy/c.png,drizzle\n")

    assert detect_layout(root) == "synth"
    result = survey(root, tags={"rain_kind": "synthetic", "camera": "none"}, sidecar=sidecar)
    assert pairs_of(result.items) == {f"rainy/{n}.png": f"clean/{n}.png" for n in "abc"}
    kinds = {i.path: i.tags["rain_kind"] for i in result.items}
    # layout preset beats --tag; the sidecar beats both
    assert kinds == {"rainy/a.png": "rain100h", "rainy/b.png": "synthetic", "rainy/c.png": "drizzle"}
    assert all(i.tags["camera"] == "none" and i.layout == "synth" for i in result.items)
    assert list(unsupported_files(root)) == []
    assert_accounted(root, result, metadata=frozenset({"params/a.json", "params/b.json"}))


def test_synth_params_must_be_json(tmp_path):
    root = tmp_path / "synth_out"
    img(root, "rainy/a.png")
    img(root, "clean/a.png")
    text(root, "params/a.json", "{not json")
    with pytest.raises(LayoutError, match=r"a\.json"):
        items_of(root)


# --------------------------------------------------------------------------- Rain100


def test_rain100_one_folder(tmp_path):
    root = tmp_path / "RainTrainL"
    for k in (1, 2):
        img(root, f"rain-{k:03d}.png")
        img(root, f"norain-{k:03d}.png")
    img(root, "rain-3.png")
    img(root, "norain-003.png")  # numbers compare as numbers
    img(root, "rain-004.png")  # no clean partner
    img(root, "norain-009.png")  # no rainy partner
    img(root, "rainstreak-1.png")  # JORDER's streak layer, not a photograph

    assert detect_layout(root) == "rain100"
    result = survey(root)
    assert pairs_of(result.items) == {
        "rain-001.png": "norain-001.png",
        "rain-002.png": "norain-002.png",
        "rain-3.png": "norain-003.png",
        "rain-004.png": None,
    }
    assert {i.path: i.role for i in result.items}["rain-004.png"] == "rainy"
    reasons = {p.name: r for p, r in result.skipped}
    assert set(reasons) == {"norain-009.png", "rainstreak-1.png"}
    assert "no rainy partner" in reasons["norain-009.png"]
    assert_accounted(root, result)


# --------------------------------------------------------------------------- RealRain-1k


def test_realrain1k(tmp_path):
    root = tmp_path / "RealRain-1k"
    expected = {}
    for level in ("RealRain-1k-H", "RealRain-1k-L"):
        for split in ("train", "test"):
            for n in ("1", "2"):
                img(root, f"{level}/{split}/input/{n}.png")
                img(root, f"{level}/{split}/target/{n}.png")
                expected[f"{level}/{split}/input/{n}.png"] = (f"{level}/{split}/target/{n}.png", split)
    assert detect_layout(root) == "realrain1k"
    result = survey(root)
    assert {i.path: (i.clean_path, i.split) for i in result.items} == expected
    assert {i.layout for i in result.items} == {"realrain1k"} and {i.role for i in result.items} == {"pair"}
    assert_accounted(root, result)


# --------------------------------------------------------------------------- DDN / Rain1400


def test_ddn_one_clean_many_rainy(tmp_path):
    root = tmp_path / "DDN_Data"
    for split in ("training", "testing"):
        for n in (1, 2):
            img(root, f"{split}/ground_truth/{n}.jpg")
            for k in (1, 2, 14):
                img(root, f"{split}/rainy_image/{n}_{k}.jpg")
    img(root, "training/rainy_image/9_1.jpg")  # its clean image is missing
    img(root, "testing/ground_truth/5.jpg")  # no rainy image

    assert detect_layout(root) == "ddn"
    result = survey(root)
    by_path = {i.path: i for i in result.items}
    assert len(result.items) == 2 * 2 * 3 + 1
    for split, short in (("training", "train"), ("testing", "test")):
        for n in (1, 2):
            for k in (1, 2, 14):
                i = by_path[f"{split}/rainy_image/{n}_{k}.jpg"]
                assert (i.role, i.clean_path, i.scene, i.split) == (
                    "pair", f"{split}/ground_truth/{n}.jpg", f"{split}/{n}", short)
    orphan = by_path["training/rainy_image/9_1.jpg"]
    assert orphan.role == "rainy" and orphan.clean_path is None
    assert [p.name for p, _ in result.skipped] == ["5.jpg"]
    assert_accounted(root, result)


def test_ddn_at_root_scene_is_the_clean_id(tmp_path):
    root = tmp_path / "Rain1400"
    img(root, "ground_truth/7.jpg")
    img(root, "rainy_image/7_3.jpg")
    [item] = items_of(root)
    assert (item.scene, item.clean_path, item.split) == ("7", "ground_truth/7.jpg", None)


# --------------------------------------------------------------------------- Rain800


CLEAN_RGB, RAINY_RGB = (200, 40, 40), (40, 40, 200)


def side_by_side(root: Path, rel: str, w: int = 32, h: int = 12, stored_rotation: bool = False) -> Path:
    """clean | rainy in one file (left half clean); optionally stored rotated with EXIF orientation 6."""
    pixels = np.zeros((h, w, 3), np.uint8)
    pixels[:, : w // 2] = CLEAN_RGB
    pixels[:, w // 2 :] = RAINY_RGB
    upright = Image.fromarray(pixels)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if stored_rotation:
        exif = Image.Exif()
        exif[0x0112] = 6  # viewer turns the stored image 90 degrees clockwise
        upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
    else:
        upright.save(path, quality=95)
    return path


def test_rain800_regions_and_folders(tmp_path):
    root = tmp_path / "Rain800"
    side_by_side(root, "training/1.jpg")
    side_by_side(root, "test_syn/2.png")
    side_by_side(root, "training/rotated.jpg", stored_rotation=True)
    img(root, "test_nature/real.jpg", size=(17, 9))
    img(root, "training/odd.png", size=(31, 12))

    assert detect_layout(root) == "rain800"
    result = survey(root)
    by_path = {i.path: i for i in result.items}
    assert set(by_path) == {"training/1.jpg", "test_syn/2.png", "training/rotated.jpg", "test_nature/real.jpg"}
    assert {p: i.split for p, i in by_path.items()} == {
        "training/1.jpg": "train", "test_syn/2.png": "test", "training/rotated.jpg": "train",
        "test_nature/real.jpg": "test"}
    for rel in ("training/1.jpg", "test_syn/2.png", "training/rotated.jpg"):
        i = by_path[rel]
        assert i.role == "pair" and i.clean_path == rel and i.clean_file == i.file
        assert i.region == (16, 0, 32, 12) and i.clean_region == (0, 0, 16, 12)
        upright = decode(i.file).image
        rainy = np.asarray(crop_region(upright, i.region)).reshape(-1, 3).mean(0)
        clean = np.asarray(crop_region(upright, i.clean_region)).reshape(-1, 3).mean(0)
        assert np.abs(rainy - RAINY_RGB).max() < 12 and np.abs(clean - CLEAN_RGB).max() < 12
    nature = by_path["test_nature/real.jpg"]
    assert nature.role == "rainy" and nature.region is None and nature.clean_path is None
    reasons = {p.name: r for p, r in result.skipped}
    assert set(reasons) == {"odd.png"} and "odd" in reasons["odd.png"]
    assert_accounted(root, result)


def test_rain800_is_only_detected_by_name(tmp_path):
    root = tmp_path / "photos"
    side_by_side(root, "1.jpg")
    assert detect_layout(root) == "plain"
    [item] = items_of(root, layout="rain800")
    assert item.layout == "rain800" and item.region == (16, 0, 32, 12)


def test_crop_region_checks_bounds():
    image = Image.new("RGB", (10, 4))
    assert crop_region(image, None) is image
    assert crop_region(image, (5, 0, 10, 4)).size == (5, 4)
    with pytest.raises(ValueError, match="10x4"):
        crop_region(image, (5, 0, 11, 4))


# --------------------------------------------------------------------------- SPA-Data


def test_spa_list_files(tmp_path):
    root = tmp_path / "SPA"
    lines = [
        "# comment",
        "/real_world/000/000-0/000-0_0.png /real_world_gt/000/000-0.png",
        "",
        "real_world/000/000-0/000-0_1.png real_world_gt/000/000-0.png",
        "real_world/012/012-3/with space.png real_world_gt/012/with space.png",
    ]
    text(root, "real_world.txt", "\n".join(lines) + "\n")
    text(root, "real_test_1000.txt", "test/rain/1000.png test/gt/1000.png\n")
    text(root, "README.txt", "about the data")
    for rel in ("real_world/000/000-0/000-0_0.png", "real_world/000/000-0/000-0_1.png",
                "real_world_gt/000/000-0.png", "real_world/012/012-3/with space.png",
                "real_world_gt/012/with space.png", "test/rain/1000.png", "test/gt/1000.png",
                "real_world/000/000-0/unlisted.png"):
        img(root, rel)

    assert detect_layout(root) == "spa"
    result = survey(root)
    got = {i.path: (i.clean_path, i.scene, i.split) for i in result.items}
    assert got == {
        "real_world/000/000-0/000-0_0.png": ("real_world_gt/000/000-0.png", "000", None),
        "real_world/000/000-0/000-0_1.png": ("real_world_gt/000/000-0.png", "000", None),
        "real_world/012/012-3/with space.png": ("real_world_gt/012/with space.png", "012", None),
        "test/rain/1000.png": ("test/gt/1000.png", "test/rain", "test"),
    }
    assert all(i.role == "pair" and i.file == root.resolve() / i.path for i in result.items)
    reasons = {p.name: r for p, r in result.skipped}
    assert reasons == {"README.txt": UNSUPPORTED, "unlisted.png": "not listed in any SPA list file"}
    assert_accounted(root, result, metadata=frozenset({"real_world.txt", "real_test_1000.txt"}))


def test_spa_malformed_line_names_file_and_line(tmp_path):
    root = tmp_path / "SPA"
    text(root, "list.txt", "a/1.png gt/1.png\na/2.png gt/2.png\nonly_one_path.png\n")
    with pytest.raises(LayoutError, match=r"list\.txt:3: expected 'rainy_path gt_path'"):
        items_of(root)


# --------------------------------------------------------------------------- GT-RAIN


def test_gtrain_scenes(tmp_path):
    root = tmp_path / "GT-RAIN"
    expected = {}
    for split, scene in (("GT-RAIN_train", "Gurutto_0-0"), ("GT-RAIN_train", "M1135"), ("GT-RAIN_test", "Oinari_1-1")):
        clean = f"{split}/{scene}/{scene}-C-000.png"
        img(root, clean)
        for r in range(3):
            rel = f"{split}/{scene}/{scene}-R-{r:03d}.png"
            img(root, rel)
            expected[rel] = (clean, scene, "train" if split.endswith("train") else "test")
    img(root, "GT-RAIN_test/lonely/lonely-R-000.png")  # a scene without its clean frame
    img(root, "GT-RAIN_test/lonely/notes.png")

    assert detect_layout(root) == "gtrain"
    result = survey(root)
    got = {i.path: (i.clean_path, i.scene, i.split) for i in result.items}
    assert {k: v for k, v in got.items() if "lonely" not in k} == expected
    assert got["GT-RAIN_test/lonely/lonely-R-000.png"] == (None, "lonely", "test")
    assert {i.role for i in result.items if i.clean_path} == {"pair"}
    assert [p.name for p, _ in result.skipped] == ["notes.png"]
    assert_accounted(root, result)


# --------------------------------------------------------------------------- unpaired


def test_unpaired_trainA_trainB(tmp_path):
    root = tmp_path / "nlcl_data"
    for folder in ("trainA", "trainB", "testA", "testB"):
        img(root, f"{folder}/{folder.lower()}_1.png")
        img(root, f"{folder}/{folder.lower()}_2.jpg")
    assert detect_layout(root) == "unpaired"
    result = survey(root)
    got = {i.path: (i.role, i.split) for i in result.items}
    for folder, role, split in (("trainA", "rainy", "train"), ("trainB", "clean", "train"),
                                ("testA", "rainy", "test"), ("testB", "clean", "test")):
        for n in (f"{folder.lower()}_1.png", f"{folder.lower()}_2.jpg"):
            assert got.pop(f"{folder}/{n}") == (role, split)
    assert got == {}
    assert all(i.clean_path is None and i.file == root.resolve() / i.path for i in result.items)
    assert_accounted(root, result)


# --------------------------------------------------------------------------- video


def nearest(colour) -> tuple[int, int, int]:
    return min(PALETTE, key=lambda p: sum((a - b) ** 2 for a, b in zip(p, colour)))


def test_video_frames_sampled_at_fps(tmp_path):
    root = tmp_path / "dashcam"
    write_video(root / "clips/a.mp4", seconds=2.0, rate=10)
    write_video(root / "b.mkv", seconds=1.0, rate=10)

    assert detect_layout(root) == "video"
    items = items_of(root, fps=1.0)
    assert [(i.video_path, i.frame_time) for i in items] == [("b.mkv", 0.0), ("clips/a.mp4", 0.0), ("clips/a.mp4", 1.0)]
    items = items_of(root, fps=4.0)
    a = [i for i in items if i.video_path == "clips/a.mp4"]
    assert [i.frame_time for i in a] == [k / 4 for k in range(8)]
    assert a[3].path == "clips/a.mp4#t=0.750"
    assert all(i.layout == "video" and i.role == "rainy" and i.scene == "clips/a.mp4" for i in a)
    assert all(i.file == (root / "clips/a.mp4").resolve() for i in a)
    assert_sorted(items)


def test_read_video_frame_returns_the_frame_at_t(tmp_path):
    path = tmp_path / "v.mp4"
    colours = write_video(path, seconds=2.0, rate=10)
    # ten frames per colour: 0.0-0.9 s first colour, 1.0-1.9 s second; hit both sides of each boundary
    for t in (0.0, 0.45, 0.9, 1.0, 1.35, 1.9, 0.05):
        frame = read_video_frame(path, t)
        assert frame.mode == "RGB" and frame.size == (64, 48)
        mean = np.asarray(frame).reshape(-1, 3).mean(0)
        assert nearest(mean) == colours[int(t * 10 + 1e-9)], t


def test_read_video_frame_exact_frame_index(tmp_path):
    """Each frame a different colour: frame k/rate must come back, whatever keyframe precedes it."""
    path = tmp_path / "v.mp4"
    rate = 5
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=rate)
        stream.width, stream.height = 32, 32
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 3
        for i in range(len(PALETTE)):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), PALETTE[i], np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    for k in range(len(PALETTE)):
        mean = np.asarray(read_video_frame(path, k / rate)).reshape(-1, 3).mean(0)
        assert nearest(mean) == PALETTE[k]


def test_mixed_photos_and_videos_are_plain(tmp_path):
    root = tmp_path / "trip"
    img(root, "photo.jpg")
    write_video(root / "rain.mov", seconds=1.0)
    assert detect_layout(root) == "plain"
    result = survey(root)
    assert [(i.path, i.layout) for i in result.items] == [("photo.jpg", "plain"), ("rain.mov#t=0.000", "video")]
    assert_accounted(root, result)


def test_corrupt_video_yields_one_item_whose_decode_fails(tmp_path):
    root = tmp_path / "v"
    text(root, "broken.mp4", "this is not a video")
    [item] = items_of(root)
    assert item.frame_time == 0.0 and item.path == "broken.mp4#t=0.000"
    with pytest.raises(ImageLoadError, match="broken.mp4#t=0.000"):
        read_video_frame(item.file, item.frame_time)


def test_fps_must_be_positive(tmp_path):
    img(tmp_path / "p", "a.png")
    with pytest.raises(LayoutError, match="fps"):
        items_of(tmp_path / "p", fps=0)


# --------------------------------------------------------------------------- sidecars


def test_sidecar_csv_and_jsonl(tmp_path):
    root = tmp_path / "cam"
    img(root, "a.jpg")
    img(root, "sub/b c.jpg")
    img(root, "d.jpg")
    write_video(root / "clip.mp4", seconds=2.0)
    csv_file = text(root, "labels.csv", 'path,rain_kind,note\na.jpg,heavy,"x, y"\n./sub/b c.jpg,light,\n')
    result = survey(root, tags={"rain_kind": "unknown", "site": "roof"}, sidecar=csv_file)
    tags = {i.path: i.tags for i in result.items}
    assert tags["a.jpg"] == {"rain_kind": "heavy", "site": "roof", "note": "x, y"}
    assert tags["sub/b c.jpg"] == {"rain_kind": "light", "site": "roof"}  # empty cell adds nothing
    assert tags["d.jpg"] == {"rain_kind": "unknown", "site": "roof"}
    assert all(p.name != "labels.csv" for p in unsupported_files(root, sidecar=csv_file))
    assert_accounted(root, result, metadata=frozenset({"labels.csv"}))

    jsonl = text(tmp_path, "labels.jsonl", '{"path": "clip.mp4", "rain_kind": "storm", "iso": 800}\n\n'
                                           '{"path": "clip.mp4#t=1.000", "rain_kind": "drizzle"}\n')
    frames = {i.path: i.tags for i in discover(root, sidecar=jsonl) if i.frame_time is not None}
    assert frames == {"clip.mp4#t=0.000": {"rain_kind": "storm", "iso": "800"},
                      "clip.mp4#t=1.000": {"rain_kind": "drizzle"}}


@pytest.mark.parametrize(
    "name,content,where",
    [
        ("s.csv", "path,kind\na.png,x\nb.png,y,z\n", "s.csv:3"),
        ("s.csv", "file,kind\na.png,x\n", "s.csv:1"),
        ("s.csv", "path,kind\na.png,x\na.png,y\n", "s.csv:3"),
        ("s.jsonl", '{"path": "a.png"}\n{"path": "b.png", oops}\n', "s.jsonl:2"),
        ("s.jsonl", '["a.png"]\n', "s.jsonl:1"),
        ("s.jsonl", '{"kind": "x"}\n', "s.jsonl:1"),
        ("s.txt", "path\n", "s.txt"),
    ],
)
def test_malformed_sidecar_names_file_and_line(tmp_path, name, content, where):
    img(tmp_path / "p", "a.png")
    sidecar = text(tmp_path, name, content)
    with pytest.raises(LayoutError, match=where.replace(".", r"\.")):
        items_of(tmp_path / "p", sidecar=sidecar)


# --------------------------------------------------------------------------- errors and forcing


def test_missing_root_and_file_root(tmp_path):
    with pytest.raises(LayoutError, match="no such folder"):
        items_of(tmp_path / "nope")
    f = img(tmp_path, "a.png")
    with pytest.raises(LayoutError, match="not a folder"):
        detect_layout(f)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no files"):
        detect_layout(tmp_path / "empty")


def test_unreadable_folder_is_named(tmp_path, monkeypatch):
    root = tmp_path / "p"
    img(root, "ok/a.png")
    img(root, "locked/b.png")
    real = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(LayoutError, match=r"locked: cannot read folder \(Permission denied\)"):
        items_of(root)


def test_ambiguous_detection(tmp_path):
    root = tmp_path / "both"
    img(root, "ground_truth/1.jpg")
    img(root, "rainy_image/1_1.jpg")
    img(root, "trainA/a.png")
    img(root, "trainB/b.png")
    with pytest.raises(LayoutError, match="ambiguous layout.*ddn and unpaired"):
        detect_layout(root)
    assert {i.layout for i in discover(root, layout="ddn")} == {"ddn"}


def test_unknown_or_empty_forced_layout(tmp_path):
    root = tmp_path / "p"
    img(root, "a.png")
    with pytest.raises(LayoutError, match="unknown layout 'rain1000'"):
        items_of(root, layout="rain1000")
    for layout in sorted(set(LAYOUTS) - {"plain", "rain800"}):
        with pytest.raises(LayoutError, match=str(root.resolve())):
            items_of(root, layout=layout)


def test_forced_layout_reports_the_rest(tmp_path):
    root = tmp_path / "mix"
    img(root, "rain/1.png")
    img(root, "norain/1.png")
    img(root, "extra/loose.png")
    text(root, "README.md")
    reasons = {p.relative_to(root.resolve()).as_posix(): r for p, r in skipped_files(root, layout="paired")}
    assert reasons == {"extra/loose.png": "not part of the paired layout", "README.md": UNSUPPORTED}


def test_rain800_subfolder_as_root(tmp_path):
    root = tmp_path / "rain800" / "training"
    side_by_side(root, "1.jpg")
    assert detect_layout(root) == "rain800"
    assert detect_layout(side_by_side(tmp_path / "x" / "training", "1.jpg").parent) == "plain"


def test_real_synth_output_reads_back_as_tagged_pairs(tmp_path):
    from collection.synth import synthesize_file

    clean_src = img(tmp_path, "src/photo.png", size=(48, 32), color=(120, 130, 140))
    out = tmp_path / "synth_out"
    synthesize_file(clean_src, out, "photo", preset="rain100h", seed=1)
    synthesize_file(clean_src, out, "photo.v2", preset="rain100l", seed=2)
    assert detect_layout(out) == "synth"
    result = survey(out)
    assert {i.path: (i.clean_path, i.tags.get("rain_kind")) for i in result.items} == {
        "rainy/photo.png": ("clean/photo.png", "rain100h"),
        "rainy/photo.v2.png": ("clean/photo.v2.png", "rain100l"),
    }
    assert_accounted(out, result, metadata=frozenset({"params/photo.json", "params/photo.v2.json"}))


def test_source_name_defaults_to_the_folder_name_as_given(tmp_path):
    img(tmp_path / "real_name", "a.png")
    (tmp_path / "alias").symlink_to(tmp_path / "real_name")
    assert [i.source for i in discover(tmp_path / "alias")] == ["alias"]
    assert next(discover(tmp_path / "alias" / "..", layout="plain")).source == tmp_path.name
