"""Personal data in published rows: which columns go, and EXIF scrubbing inside the image bytes.

Without ``keep_gps`` a published row loses its columns named ``gps_*``, ``*serial*`` or ``*owner*``,
and its images lose the EXIF GPS block, camera/lens serial numbers, owner name, image unique id and
maker notes. JPEG (APP1 Exif, XMP) and PNG (eXIf, XMP iTXt) metadata is rewritten in place: the
compressed pixel data is copied byte for byte, and a file with nothing to remove is returned as the
very same object. Other formats cannot be rewritten without re-encoding, so one that carries GPS
raises :class:`PersonalDataError` naming the row.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import zlib
from typing import Any

log = logging.getLogger(__name__)

IMAGE_COLUMNS = ("rainy", "clean")
PERSONAL_COLUMN = re.compile(r"(^gps_|serial|owner)", re.IGNORECASE)

# EXIF tags that identify a place, a person or a device: GPSInfo (IFD0), CameraSerialNumber (DNG,
# IFD0); CameraOwnerName, BodySerialNumber, LensSerialNumber, ImageUniqueID and MakerNote (Exif
# IFD). Maker notes go too: vendors hide serial numbers there and their offsets break on rewrite.
_IFD0_PERSONAL = (0x8825, 0xC62F)
_EXIF_PERSONAL = (0xA430, 0xA431, 0xA435, 0xA420, 0x927C)
_EXIF_IFD = 0x8769
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"


class PersonalDataError(ValueError):
    """An image carries personal data that cannot be removed without re-encoding it."""


def personal_columns(names: list[str], keep_gps: bool = False) -> list[str]:
    """The columns removed from published rows (none with ``keep_gps``)."""
    return [] if keep_gps else [n for n in names if PERSONAL_COLUMN.search(n)]



def _scrub_exif(payload: bytes) -> bytes | None:
    """EXIF without personal tags (same prefix style as given), or None when there is nothing to remove."""
    from PIL import Image

    exif = Image.Exif()
    try:
        exif.load(payload)
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception as exc:  # noqa: BLE001 - unreadable EXIF may hide GPS: dropping it is the safe side
        log.warning("unreadable EXIF block dropped (%s)", exc)
        return b""
    removed = [t for t in _IFD0_PERSONAL if t in exif] + [t for t in _EXIF_PERSONAL if t in sub]
    if not removed:
        return None
    for tag in _IFD0_PERSONAL:
        exif.pop(tag, None)
    for tag in _EXIF_PERSONAL:
        sub.pop(tag, None)
    out = exif.tobytes()
    return out if payload.startswith(b"Exif\x00\x00") else out[6:]


def _scrub_jpeg(data: bytes) -> bytes:
    out, pos, changed = [data[:2]], 2, False
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xDA, 0xD9):  # start of scan: the compressed image follows, copied as is
            break
        end = pos + 2 + struct.unpack(">H", data[pos + 2:pos + 4])[0]
        payload = data[pos + 4:end]
        new = payload
        if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            scrubbed = _scrub_exif(payload)
            new = payload if scrubbed is None else scrubbed
        elif marker == 0xE1 and payload.startswith(_XMP_HEADER) and b"GPS" in payload:
            new = b""  # XMP location (exif:GPSLatitude ...): the packet is dropped whole
        if new is payload:
            out.append(data[pos:end])
        else:
            changed = True
            if new and len(new) + 2 <= 0xFFFF:
                out.append(b"\xff\xe1" + struct.pack(">H", len(new) + 2) + new)
        pos = end
    return b"".join(out) + data[pos:] if changed else data


def _scrub_png(data: bytes) -> bytes:
    out, pos, changed = [data[:8]], 8, False
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        body = data[pos + 8:end - 4]
        new = body
        if kind == b"eXIf":
            scrubbed = _scrub_exif(body)
            new = body if scrubbed is None else scrubbed
        elif kind == b"iTXt" and body.startswith(b"XML:com.adobe.xmp\x00") and b"GPS" in body:
            new = b""
        if new is body:
            out.append(data[pos:end])
        else:
            changed = True
            if new:
                out.append(struct.pack(">I4s", len(new), kind) + new + struct.pack(">I", zlib.crc32(kind + new)))
        pos = end
    return b"".join(out) + data[pos:] if changed else data


def strip_personal_exif(data: bytes, name: str = "image") -> bytes:
    """``data`` without GPS, serial numbers, owner name and maker notes in its metadata (pixels untouched).

    JPEG and PNG are rewritten losslessly; the same object comes back when nothing had to go.
    Other formats are returned as they are unless they carry GPS, which raises :class:`PublishError`.
    """
    if data[:2] == b"\xff\xd8":
        return _scrub_jpeg(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _scrub_png(data)
    from PIL import Image

    import collection.images  # noqa: F401 - registers the HEIF opener with Pillow

    try:
        with Image.open(io.BytesIO(data)) as image:
            has_gps = bool(image.getexif().get_ifd(0x8825))
            kind = image.format
    except Exception:  # noqa: BLE001 - not an image Pillow reads: nothing it could tell us about GPS
        return data
    if has_gps:
        raise PersonalDataError(f"{name}: {kind} image carries GPS in its EXIF, which rainbench strips only from "
                           "JPEG and PNG; remove the location from the file or pass --keep-gps")
    return data


def scrub_images(table: Any, ids: list[str]) -> tuple[Any, int]:
    """``table`` with personal metadata stripped from its Image columns; also the number of images changed."""
    import pyarrow as pa

    changed = 0
    for column in IMAGE_COLUMNS:
        if column not in table.column_names:
            continue
        cells = table.column(column).to_pylist()
        for i, cell in enumerate(cells):
            if cell and cell.get("bytes"):
                new = strip_personal_exif(cell["bytes"], name=f"row {ids[i]} ({column})")
                if new is not cell["bytes"]:
                    cells[i] = {**cell, "bytes": new}
                    changed += 1
        index = table.column_names.index(column)
        table = table.set_column(index, column, pa.array(cells, type=table.schema.field(column).type))
    return table, changed


