"""EXIF reading (collection.exif) on JPEGs written with known tags, orientations and damaged blocks."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image
from PIL.ExifTags import IFD
from PIL.TiffImagePlugin import IFDRational

from collection.exif import read_exif

# The dataset row's EXIF columns (docs/ARCHITECTURE.md), written out here rather than read from the
# module, so that renaming or dropping a column is caught as the contract change it is.
CONTRACT_FIELDS = {"camera_make", "camera_model", "lens_model", "datetime_original", "exposure_time", "f_number",
                   "iso", "focal_length_mm", "exif_orientation"}
GPS_COLUMNS = {"gps_latitude", "gps_longitude", "gps_altitude"}


def no_location(fields: dict) -> bool:
    """No location under any name: no GPS-like key and no value that is one of the test coordinates."""
    location = {round(-(33 + 51 / 60 + 36 / 3600), 4), -70.5, -10.5}
    keys_ok = not any(word in key for key in fields for word in ("gps", "lat", "lon", "alt"))
    values_ok = not any(isinstance(v, float) and round(v, 4) in location for v in fields.values())
    return keys_ok and values_ok
from collection.images import decode
from collection.probe import ProbeTask, probe

# EXIF tag numbers (EXIF 2.32 spec)
MAKE, MODEL, ORIENTATION = 0x010F, 0x0110, 0x0112
EXPOSURE, FNUMBER, ISO, DATETIME_ORIGINAL = 0x829A, 0x829D, 0x8827, 0x9003
OFFSET_ORIGINAL, SUBSEC_ORIGINAL, FOCAL, LENS = 0x9011, 0x9291, 0x920A, 0xA434


def jpeg_with_exif(tags: dict, sub: dict | None = None, gps: dict | None = None, img: Image.Image | None = None) -> bytes:
    exif = Image.Exif()
    for k, v in tags.items():
        exif[k] = v
    if sub:
        ifd = exif.get_ifd(IFD.Exif)
        ifd.update(sub)
    if gps:
        ifd = exif.get_ifd(IFD.GPSInfo)
        ifd.update(gps)
    img = img or Image.new("RGB", (40, 30), (90, 120, 150))
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


FULL_SUB = {
    DATETIME_ORIGINAL: "2024:05:06 07:08:09", SUBSEC_ORIGINAL: "045", OFFSET_ORIGINAL: "-03:30",
    EXPOSURE: IFDRational(1, 250), FNUMBER: IFDRational(28, 10), ISO: 800, FOCAL: IFDRational(355, 10),
    LENS: "XF35mmF1.4 R",
}
GPS = {1: "S", 2: (IFDRational(33, 1), IFDRational(51, 1), IFDRational(36, 1)),
       3: "W", 4: (IFDRational(70, 1), IFDRational(30, 1), IFDRational(0, 1)),
       5: b"\x01", 6: IFDRational(21, 2)}


def test_known_fields_are_read_with_units():
    data = jpeg_with_exif({MAKE: "FUJIFILM", MODEL: "X-T5", ORIENTATION: 1}, FULL_SUB)
    fields, warnings = read_exif(data)
    assert warnings == []
    assert fields["camera_make"] == "FUJIFILM"
    assert fields["camera_model"] == "X-T5"
    assert fields["lens_model"] == "XF35mmF1.4 R"
    assert fields["datetime_original"] == "2024-05-06T07:08:09.045-03:30"
    assert fields["exposure_time"] == pytest.approx(1 / 250)
    assert fields["f_number"] == pytest.approx(2.8)
    assert fields["iso"] == 800
    assert fields["focal_length_mm"] == pytest.approx(35.5)
    assert fields["exif_orientation"] == 1
    assert set(fields) == CONTRACT_FIELDS, "GPS must not be returned unless asked for"


def test_gps_only_when_asked_and_signed_by_reference():
    data = jpeg_with_exif({MAKE: "X"}, None, GPS)
    without, _ = read_exif(data)
    assert set(without) == CONTRACT_FIELDS and no_location(without)
    fields, _ = read_exif(data, keep_gps=True)
    assert set(fields) == CONTRACT_FIELDS | GPS_COLUMNS and not no_location(fields)
    assert fields["gps_latitude"] == pytest.approx(-(33 + 51 / 60 + 36 / 3600))
    assert fields["gps_longitude"] == pytest.approx(-70.5)
    assert fields["gps_altitude"] == pytest.approx(-10.5)  # AltitudeRef 1: below sea level


def test_datetime_without_subseconds_or_offset_and_missing_fields_are_none():
    data = jpeg_with_exif({MODEL: "Pixel 8"}, {DATETIME_ORIGINAL: "2023:12:31 23:59:58"})
    fields, _ = read_exif(data)
    assert fields["datetime_original"] == "2023-12-31T23:59:58"
    assert fields["camera_make"] is None and fields["iso"] is None and fields["exposure_time"] is None


def test_no_exif_gives_every_field_none(tmp_path):
    path = tmp_path / "plain.jpg"
    Image.new("RGB", (20, 20)).save(path)
    fields, _ = read_exif(path)
    assert set(fields) == CONTRACT_FIELDS
    assert all(v is None for v in fields.values())


def damaged(data: bytes) -> bytes:
    start = data.find(b"Exif\x00\x00")
    assert start > 0
    out = bytearray(data)
    out[start + 6:start + 40] = b"\xff" * 34  # clobber the TIFF header and first IFD
    return bytes(out)


def test_malformed_exif_is_a_warning_not_an_error(tmp_path):
    data = damaged(jpeg_with_exif({MAKE: "Canon", MODEL: "EOS"}, FULL_SUB))
    fields, warnings = read_exif(data)
    assert warnings and "EXIF" in warnings[0]
    assert fields["camera_make"] is None
    path = tmp_path / "bad_exif.jpg"
    path.write_bytes(data)
    record = probe(ProbeTask(key="k", file=str(path)))
    assert record["status"] == "ok"
    assert record["warnings"] and "EXIF" in record["warnings"]


# Orientation o means: to view upright, apply this transform to the stored pixels (EXIF spec).
# So a file is written as the INVERSE transform of the upright picture.
STORE_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,     # viewer rotates 90 deg clockwise, so store rotated counter-clockwise
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def upright_with_marker() -> Image.Image:
    arr = np.full((48, 64, 3), 30, np.uint8)  # 64 wide, 48 tall
    arr[:12, :12] = (255, 0, 0)  # red marker at the top-left corner
    return Image.fromarray(arr)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_reads_upright(tmp_path, orientation):
    upright = upright_with_marker()
    transform = STORE_AS[orientation]
    stored = upright if transform is None else upright.transpose(transform)
    path = tmp_path / f"o{orientation}.jpg"
    path.write_bytes(jpeg_with_exif({ORIENTATION: orientation, MAKE: "T"}, img=stored))
    fields, _ = read_exif(path)
    assert fields["exif_orientation"] == orientation
    img = decode(path).image
    assert img.size == (64, 48)
    arr = np.asarray(img).astype(int)
    assert arr[3, 3, 0] > 200 and arr[3, 3, 1] < 60, "marker must be at the top-left after orientation"
    assert arr[-3, -3, 0] < 80
    record = probe(ProbeTask(key="k", file=str(path)))
    assert (record["width"], record["height"], record["orientation"]) == (64, 48, orientation)


def test_rational_written_as_fraction_reads_the_same():
    data = jpeg_with_exif({MAKE: "A"}, {EXPOSURE: IFDRational(Fraction(1, 8000))})
    fields, _ = read_exif(data)
    assert fields["exposure_time"] == pytest.approx(1 / 8000)
