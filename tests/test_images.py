"""The one image loader: formats, modes, orientation, limits, errors, tensor round trips."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from collection.images import (
    ImageLoadError,
    decode,
    is_image_file,
    load_image,
    save_image,
    to_tensor,
    to_uint8,
)


def _asym(h: int = 24, w: int = 36) -> np.ndarray:
    """An image whose every orientation is distinguishable: a gradient plus a red top-left block."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (h + w)], -1).astype(np.uint8)
    img[:4, :4] = (255, 0, 0)
    return img


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,kw", [("PNG", {}), ("TIFF", {}), ("BMP", {}), ("WEBP", {"lossless": True})])
def test_lossless_formats_decode_exactly(fmt, kw, tmp_path):
    pixels = _asym()
    path = tmp_path / f"img.{fmt.lower()}"
    path.write_bytes(_encode(Image.fromarray(pixels), fmt, **kw))
    decoded = decode(path)
    assert decoded.format == fmt
    assert np.array_equal(np.asarray(decoded.image), pixels)
    assert (decoded.width, decoded.height) == (36, 24)


def test_jpeg_and_heic_decode_close_to_source():
    pixels = _asym(64, 96)
    for fmt in ("JPEG", "HEIF"):
        decoded = decode(_encode(Image.fromarray(pixels), fmt, quality=95))
        err = np.abs(np.asarray(decoded.image).astype(int) - pixels).mean()
        assert decoded.format == fmt and err < 6, (fmt, err)


def test_sixteen_bit_gray_png_is_scaled_to_eight_bits():
    values = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    decoded = decode(_encode(Image.fromarray(values), "PNG"))
    assert decoded.mode.startswith("I")
    assert np.asarray(decoded.image)[0, :, 0].tolist() == [0, 1, 255, 128]
    assert np.array_equal(np.asarray(decoded.image)[..., 0], np.asarray(decoded.image)[..., 2])


def test_grayscale_palette_and_cmyk_become_rgb():
    gray = decode(_encode(Image.fromarray(np.full((8, 8), 77, np.uint8)), "PNG"))
    assert np.asarray(gray.image)[0, 0].tolist() == [77, 77, 77]
    pal = Image.fromarray(_asym()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    assert np.asarray(decode(_encode(pal, "PNG")).image).shape == (24, 36, 3)
    cmyk = decode(_encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=95))
    r, g, b = np.asarray(cmyk.image)[4, 4].astype(int)
    assert cmyk.mode == "CMYK" and r > 200 and g < 60 and b < 60  # pure red


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 128))
    out = np.asarray(decode(_encode(rgba, "PNG")).image)[0, 0].astype(int)
    assert out[0] == 255 and 120 <= out[1] <= 135 and 120 <= out[2] <= 135
    clear = Image.new("LA", (4, 4), (0, 0))
    assert np.asarray(decode(_encode(clear, "PNG")).image)[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation, tmp_path):
    stored = Image.fromarray(_asym())
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    stored.save(path, exif=exif)
    decoded = decode(path)
    assert decoded.orientation == orientation
    # Pillow's own transposer is an independent reference for the 8 EXIF cases.
    reference = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(np.asarray(decoded.image), reference)
    if orientation >= 5:
        assert (decoded.width, decoded.height) == (24, 36)


def test_orientation_six_means_rotate_clockwise(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # camera held rotated: display = stored rotated 90 degrees clockwise
    path = tmp_path / "o6.jpg"
    Image.fromarray(_asym(48, 64)).save(path, exif=exif, quality=98)
    img = np.asarray(decode(path).image)
    assert img.shape == (64, 48, 3)
    assert img[1, -2, 0] > 200 and img[1, -2, 1] < 80  # red block moved from top-left to top-right


def test_malformed_exif_does_not_block_decoding():
    data = bytearray(_encode(Image.fromarray(_asym()), "JPEG", exif=b"Exif\x00\x00MM\x00*\xff\xff\xff\xff"))
    decoded = decode(bytes(data))
    assert decoded.orientation == 1 and decoded.image.size == (36, 24)


def test_pixel_limit_refuses_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (2000, 1000)).save(path)
    with pytest.raises(ImageLoadError) as err:
        decode(path, max_pixels=1_000_000)
    assert "big.png" in str(err.value) and "pixel limit" in str(err.value)
    assert decode(path, max_pixels=None).width == 2000


@pytest.mark.parametrize("make,needle", [
    (lambda p: p.write_bytes(b""), "not a recognised image"),
    (lambda p: p.write_bytes(os.urandom(2048)), "not a recognised image"),
    (lambda p: p.write_bytes(_encode(Image.fromarray(_asym(200, 300)), "JPEG")[:1500]), "truncated"),
])
def test_bad_files_raise_one_error_naming_the_file(make, needle, tmp_path):
    path = tmp_path / "bad photo #1.jpg"
    make(path)
    with pytest.raises(ImageLoadError) as err:
        decode(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        decode(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="directory"):
        decode(tmp_path)


def test_reduce_uses_draft_and_still_detects_truncation():
    data = _encode(Image.fromarray(np.tile(_asym(), (40, 40, 1))), "JPEG")
    small = decode(data, reduce=4)
    assert small.image.size == (360, 240) and (small.width, small.height) == (1440, 960) and small.scale == 0.25
    with pytest.raises(ImageLoadError, match="truncated"):
        decode(data[: len(data) * 2 // 3], reduce=8)


def test_odd_names_round_trip(tmp_path):
    path = tmp_path / "pluie à Paris #3 (copy).png"
    save_image(_asym(), path)
    assert np.array_equal(load_image(path), _asym())
    assert is_image_file(path) and is_image_file("X.HEIC") and not is_image_file("notes.txt")


def test_tensor_round_trip_and_nan():
    batch = to_tensor([_asym(), _asym()[::-1].copy()])
    assert batch.shape == (2, 3, 24, 36) and batch.dtype == torch.float32 and 0 <= batch.min() and batch.max() <= 1
    assert np.array_equal(to_uint8(batch)[1], _asym()[::-1])
    noisy = batch + (torch.rand_like(batch) - 0.5) / 255 * 0.98  # less than half a level
    assert np.array_equal(to_uint8(noisy), to_uint8(batch))
    batch[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(batch)


def test_save_image_is_atomic_and_checks_suffix(tmp_path):
    save_image(_asym(), tmp_path / "a" / "out.jpg")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["out.jpg"]
    with pytest.raises(ValueError, match="unsupported output format"):
        save_image(_asym(), tmp_path / "out.xyz")
    assert not list(Path(tmp_path).glob(".tmp-*"))
