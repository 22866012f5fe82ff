"""Read the EXIF fields rainbench records (camera, lens, capture time, exposure, GPS) with exifread.

EXIF is provenance, not validity: a photograph whose EXIF block cannot be parsed is still a
photograph. :func:`read_exif` therefore never raises on bad EXIF; it returns what it could read and
a list of warning strings that ingest stores on the manifest row.

Units: ``exposure_time`` in seconds, ``f_number`` as the ratio N of f/N, ``focal_length_mm`` in
millimetres (the lens's real focal length, not the 35 mm equivalent), ``iso`` as an integer,
``datetime_original`` as ISO 8601 (``2024-05-06T07:08:09.123+02:00``, sub-seconds from
``SubSecTimeOriginal`` and offset from ``OffsetTimeOriginal`` when the camera wrote them), GPS in
signed decimal degrees and metres (only when asked for: location is personal data).
"""

from __future__ import annotations

import io
import logging
import os
import re
from typing import Any, BinaryIO, Union

import exifread

EXIF_FIELDS = (
    "camera_make", "camera_model", "lens_model", "datetime_original", "exposure_time", "f_number",
    "iso", "focal_length_mm", "exif_orientation",
)
"""Fields :func:`read_exif` always returns (``None`` where absent)."""

GPS_FIELDS = ("gps_latitude", "gps_longitude", "gps_altitude")
"""Fields :func:`read_exif` adds when ``keep_gps`` is true."""

Source = Union[str, os.PathLike, bytes, BinaryIO]

_DATETIME = re.compile(r"^\s*(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_EXIF_MARKER = b"Exif\x00\x00"
_HEAD = 1 << 16  # EXIF lives in the first 64 KiB of a JPEG (APP1 is capped at 64 KiB)
_OFFSET = re.compile(r"^\s*([+-])(\d{2}):?(\d{2})\s*$")


class _Collect(logging.Handler):
    """Collects what exifread logs about a file: it reports damage through logging, not exceptions."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _text(tags: dict, *names: str) -> str | None:
    for name in names:
        tag = tags.get(name)
        if tag is None:
            continue
        value = tag.values if isinstance(tag.values, str) else tag.printable
        value = str(value).replace("\x00", "").strip()
        if value:
            return value
    return None


def _ratio(value: Any) -> float | None:
    if hasattr(value, "numerator") and hasattr(value, "denominator"):
        num, den = value.numerator, value.denominator
    elif hasattr(value, "num") and hasattr(value, "den"):
        num, den = value.num, value.den
    else:
        return float(value)
    return None if den == 0 else float(num) / float(den)


def _number(tags: dict, name: str) -> float | None:
    tag = tags.get(name)
    if tag is None or isinstance(tag.values, (str, bytes)):
        return None
    values = list(tag.values)
    if not values:
        return None
    # A RATIONAL written as two LONGs (some writers do this) still reads as num/den.
    if len(values) == 2 and all(isinstance(v, int) for v in values):
        return None if values[1] == 0 else values[0] / values[1]
    return _ratio(values[0])


def _datetime(tags: dict) -> str | None:
    raw = _text(tags, "EXIF DateTimeOriginal", "Image DateTimeOriginal", "EXIF DateTimeDigitized", "Image DateTime")
    match = _DATETIME.match(raw or "")
    if not match:
        return None
    y, mo, d, h, mi, s = match.groups()
    out = f"{y}-{mo}-{d}T{h}:{mi}:{s}"
    subsec = re.sub(r"\D", "", _text(tags, "EXIF SubSecTimeOriginal") or "")
    if subsec:
        out += "." + subsec
    offset = _OFFSET.match(_text(tags, "EXIF OffsetTimeOriginal") or "")
    if offset:
        sign, oh, om = offset.groups()
        out += f"{sign}{oh}:{om}"
    return out


def _gps_degrees(tags: dict, name: str, ref_name: str, negative: str) -> float | None:
    tag = tags.get(name)
    if tag is None or isinstance(tag.values, (str, bytes)) or len(tag.values) < 1:
        return None
    parts = [_ratio(v) for v in list(tag.values)[:3]]
    if any(p is None for p in parts):
        return None
    parts += [0.0] * (3 - len(parts))
    value = parts[0] + parts[1] / 60.0 + parts[2] / 3600.0
    ref = (_text(tags, ref_name) or "").upper()
    return -value if ref.startswith(negative) else value


def _gps(tags: dict) -> dict[str, float | None]:
    altitude = _number(tags, "GPS GPSAltitude")
    ref = tags.get("GPS GPSAltitudeRef")
    if altitude is not None and ref is not None and list(getattr(ref, "values", [0]) or [0])[0] == 1:
        altitude = -altitude  # AltitudeRef 1 means below sea level
    return {
        "gps_latitude": _gps_degrees(tags, "GPS GPSLatitude", "GPS GPSLatitudeRef", "S"),
        "gps_longitude": _gps_degrees(tags, "GPS GPSLongitude", "GPS GPSLongitudeRef", "W"),
        "gps_altitude": altitude,
    }


def _fields(tags: dict, keep_gps: bool) -> dict[str, Any]:
    iso = _number(tags, "EXIF ISOSpeedRatings") or _number(tags, "EXIF PhotographicSensitivity")
    orientation = _number(tags, "Image Orientation")
    out: dict[str, Any] = {
        "camera_make": _text(tags, "Image Make"),
        "camera_model": _text(tags, "Image Model"),
        "lens_model": _text(tags, "EXIF LensModel", "MakerNote LensModel"),
        "datetime_original": _datetime(tags),
        "exposure_time": _number(tags, "EXIF ExposureTime"),
        "f_number": _number(tags, "EXIF FNumber"),
        "iso": int(iso) if iso is not None and iso > 0 else None,
        "focal_length_mm": _number(tags, "EXIF FocalLength"),
        "exif_orientation": int(orientation) if orientation is not None and 1 <= orientation <= 8 else None,
    }
    if keep_gps:
        out.update(_gps(tags))
    return out


def empty_exif(keep_gps: bool = False) -> dict[str, Any]:
    """The field dict of a file without EXIF (every field ``None``)."""
    return dict.fromkeys(EXIF_FIELDS + (GPS_FIELDS if keep_gps else ()))


def read_exif(source: Source, *, keep_gps: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Read EXIF from a path, bytes or binary stream: ``(fields, warnings)``; never raises on bad EXIF.

    ``fields`` has every name of :data:`EXIF_FIELDS` (and :data:`GPS_FIELDS` with ``keep_gps``),
    ``None`` where the file does not say. ``warnings`` describes EXIF that could not be parsed.
    """
    collector = _Collect()
    logger = logging.getLogger("exifread")
    logger.addHandler(collector)
    previous_propagate = logger.propagate
    logger.propagate = False  # exifread's complaints belong on the row, not on the user's terminal
    warnings: list[str] = []
    try:
        if isinstance(source, (str, os.PathLike)):
            from collection.storage import open_source

            with open_source(source) as handle:
                head = handle.read(_HEAD)
                handle.seek(0)
                tags = exifread.process_file(handle, details=False)
        else:
            stream = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
            start = stream.tell()
            head = stream.read(_HEAD)
            stream.seek(start)
            tags = exifread.process_file(stream, details=False)
        fields = _fields(tags or {}, keep_gps)
        if not tags and _EXIF_MARKER in head:
            # exifread gives up silently on a damaged IFD; the block is there, so say it is unreadable.
            warnings.append("EXIF block present but unreadable (damaged IFD); fields left empty")
    except Exception as exc:  # noqa: BLE001 - exifread raises many types on damaged blocks
        warnings.append(f"EXIF unreadable ({type(exc).__name__}: {exc})")
        fields = empty_exif(keep_gps)
    finally:
        logger.removeHandler(collector)
        logger.propagate = previous_propagate
    warnings.extend(f"EXIF: {message}" for message in collector.messages)
    return fields, warnings
