"""Personal data in published rows: which columns go, and EXIF scrubbing inside the image bytes.

Without ``keep_gps`` a published row loses its columns named ``gps_*``, ``*serial*`` or ``*owner*``,
and its images lose the EXIF GPS block, camera/lens serial numbers, owner name, image unique id and
maker notes. JPEG (APP1 Exif, XMP) and PNG (eXIf, XMP iTXt) metadata is rewritten in place: the
compressed pixel data is copied byte for byte. WebP, HEIF and AVIF keep their EXIF as one TIFF
block inside the container; that block is scrubbed at the same length (entries removed, their
values zeroed), so no chunk size or box offset moves. A file with nothing to remove is returned as
the very same object. An image whose personal data cannot be removed this way (TIFF, an XMP packet
naming GPS outside JPEG/PNG, an EXIF block not found verbatim in the file) raises
:class:`PersonalDataError` naming the row.
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


# Bytes per value of each TIFF field type (BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE, UNDEFINED,
# SSHORT, SLONG, SRATIONAL, FLOAT, DOUBLE, IFD): a value wider than 4 bytes sits at an offset.
_TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


class _TiffScrubber:
    """Removes IFD entries from a TIFF block in place: the block keeps its length and every offset."""

    def __init__(self, block: bytes):
        if block[:4] not in (b"II*\x00", b"MM\x00*"):
            raise ValueError("not a TIFF header")
        self.buf = bytearray(block)
        self.order = "<" if block[:2] == b"II" else ">"

    def _int(self, fmt: str, offset: int) -> int:
        return struct.unpack_from(self.order + fmt, self.buf, offset)[0]

    def _zero(self, offset: int, size: int) -> None:
        if offset < 8 or offset + size > len(self.buf):
            raise ValueError(f"value at {offset}+{size} outside the EXIF block")
        self.buf[offset:offset + size] = bytes(size)

    def _entries(self, ifd: int) -> list[tuple[int, int, int, int]]:
        count = self._int("H", ifd)
        if ifd + 2 + 12 * count + 4 > len(self.buf):
            raise ValueError(f"IFD at {ifd} runs past the EXIF block")
        return [(e, *struct.unpack_from(self.order + "HHI", self.buf, e))
                for e in range(ifd + 2, ifd + 2 + 12 * count, 12)]

    def _blank_value(self, entry: int, kind: int, count: int) -> None:
        size = _TIFF_SIZES.get(kind, 1) * count
        if size > 4:
            self._zero(self._int("I", entry + 8), size)

    def blank_ifd(self, ifd: int) -> None:
        """Zero a whole IFD (the GPS block): its values, then its entries."""
        entries = self._entries(ifd)
        for entry, _tag, kind, count in entries:
            self._blank_value(entry, kind, count)
        self._zero(ifd, 2 + 12 * len(entries) + 4)

    def remove(self, ifd: int, tags: tuple[int, ...], ifd_tags: tuple[int, ...] = ()) -> bool:
        """Drop ``tags`` from the IFD at ``ifd`` (blanking ``ifd_tags``' sub-IFDs whole); True if any went."""
        entries = self._entries(ifd)
        kept, gone = [], []
        for entry, tag, kind, count in entries:
            (gone if tag in tags else kept).append((entry, tag, kind, count))
        if not gone:
            return False
        for entry, tag, kind, count in gone:
            if tag in ifd_tags:
                self.blank_ifd(self._int("I", entry + 8))
            else:
                self._blank_value(entry, kind, count)
        end = ifd + 2 + 12 * len(entries)
        rows = b"".join(bytes(self.buf[e:e + 12]) for e, *_ in kept)
        struct.pack_into(self.order + "H", self.buf, ifd, len(kept))
        # Entries stay sorted by tag as TIFF asks; the next-IFD link moves up behind the kept ones and
        # the freed tail of the table is zeroed.
        self.buf[ifd + 2:end + 4] = rows + self.buf[end:end + 4] + bytes(12 * len(gone))
        return True

    def sub_ifd(self, ifd: int, tag: int) -> int | None:
        """Offset of the sub-IFD that ``tag`` points to in the IFD at ``ifd``, if present."""
        for entry, t, _kind, _count in self._entries(ifd):
            if t == tag:
                return self._int("I", entry + 8)
        return None


def _scrub_tiff_block(block: bytes) -> bytes | None:
    """``block`` (a TIFF header and its IFDs) without personal tags, same length; None when none were there."""
    tiff = _TiffScrubber(block)
    ifd0 = tiff._int("I", 4)
    changed = False
    exif_ifd = tiff.sub_ifd(ifd0, _EXIF_IFD)
    if exif_ifd is not None:
        changed |= tiff.remove(exif_ifd, _EXIF_PERSONAL)
    changed |= tiff.remove(ifd0, _IFD0_PERSONAL, ifd_tags=(0x8825,))
    return bytes(tiff.buf) if changed else None


def _personal_tags(image: Any) -> list[int]:
    """The personal EXIF tags Pillow finds in an open image."""
    exif = image.getexif()
    found = [t for t in _IFD0_PERSONAL if t in exif and (t != 0x8825 or exif.get_ifd(0x8825))]
    return found + [t for t in _EXIF_PERSONAL if t in exif.get_ifd(_EXIF_IFD)]


def _scrub_container(data: bytes, name: str) -> bytes:
    """WebP, HEIF, AVIF...: the EXIF block is found in the file and scrubbed at the same length."""
    from PIL import Image

    import collection.images  # noqa: F401 - registers the HEIF opener with Pillow

    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
            found = _personal_tags(image)
            raw = image.info.get("exif") or b""
            xmp = image.info.get("xmp") or b""
    except Exception:  # noqa: BLE001 - not an image Pillow reads: nothing it could tell us about EXIF
        return data
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8", "replace")
    if b"GPS" in xmp:
        raise PersonalDataError(f"{name}: {kind} image carries GPS in its XMP, which rainbench removes only from "
                                "JPEG and PNG; remove the location from the file or pass --keep-gps")
    if not found:
        return data
    problem = f"{kind} EXIF block not found once in the file"
    block = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
    # The block is found by its TIFF header and first IFD offset, not verbatim: pillow-heif hands
    # back EXIF with the orientation reset to 1 (HEIF rotates with its irot box instead).
    at = data.find(block[:8]) if len(block) >= 8 else -1
    if at >= 0 and data.count(block[:8]) == 1:
        block = data[at:at + len(block)]
        try:
            scrubbed = _scrub_tiff_block(block)
        except (ValueError, struct.error) as exc:
            problem = f"malformed {kind} EXIF ({exc})"
        else:
            out = data if scrubbed is None else data[:at] + scrubbed + data[at + len(block):]
            with Image.open(io.BytesIO(out)) as image:
                left = _personal_tags(image)
            if not left:
                return out
            problem = f"{kind} EXIF tags {', '.join(hex(t) for t in left)} survived scrubbing"
    tags = ", ".join(hex(t) for t in found)
    raise PersonalDataError(f"{name}: image carries personal EXIF data (tags {tags}: GPS, serial number, owner "
                            f"or maker note) that rainbench cannot remove ({problem}); remove it from the file "
                            "or pass --keep-gps")


def strip_personal_exif(data: bytes, name: str = "image") -> bytes:
    """``data`` without GPS, serial numbers, owner name and maker notes in its metadata (pixels untouched).

    JPEG and PNG are rewritten losslessly, WebP/HEIF/AVIF have their EXIF block scrubbed at the same
    length; the same object comes back when nothing had to go. Personal data that cannot be removed
    raises :class:`PersonalDataError`.
    """
    if data[:2] == b"\xff\xd8":
        return _scrub_jpeg(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _scrub_png(data)
    return _scrub_container(data, name)


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


