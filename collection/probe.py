"""Probe each file once: validate by decoding, measure, hash, read EXIF, compute quality figures.

:func:`probe` turns one :class:`ProbeTask` into a flat record dict (JSON-serialisable, so the
incremental cache can store it) and never raises for bad input: a file that cannot be read or
decoded comes back with ``status="quarantined"``, a short ``reason`` code (see :data:`REASONS`)
and the loader's full message in ``detail``.

Speed: a JPEG is decoded once, at 1/2, 1/4 or 1/8 scale (libjpeg DCT scaling, which still reads the
whole bitstream so truncation is caught), to a working image of about 1 MP; the perceptual hash and
quality figures come from that. Other formats are decoded at full size (needed anyway), which also
yields an exact pixel hash so a PNG and a TIFF of the same pixels are recognised as the same image.
Region crops (Rain800 halves) and video frames are re-encoded as PNG, the bytes the dataset stores.

:func:`probe_all` runs probes in worker processes with a bounded number of chunks in flight, so
memory stays flat however many files there are.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from PIL import Image

from collection.exif import empty_exif, read_exif
from collection.files import sha256_file
from collection.images import DEFAULT_MAX_PIXELS, ImageLoadError, decode
from collection.phash import phash64, pixel_hash
from collection.quality import pick_reduce, quality, working_image
from collection.storage import is_url, open_source, source_size

PROBE_VERSION = "2"
"""Bumped whenever a probe record changes meaning, so stale cache entries are not reused."""

REASONS = {
    "empty": "empty file (0 bytes)",
    "unreadable": "file cannot be read (permissions or vanished)",
    "corrupt": "not decodable as an image: corrupt data (the decoder's report in detail) or wrong contents",
    "truncated": "image data ends early",
    "too_large": "above the pixel limit (--max-pixels)",
    "too_small": "short side below --min-side",
    "unsupported": "file type rainbench does not decode",
    "not_in_layout": "an image or video the source layout does not use (e.g. a clean file without its rainy one)",
    "broken_link": "a symbolic link whose target does not exist",
    "link_loop": "a symbolic link that loops, or leads to a folder already listed",
    "changed_during_ingest": "the file's bytes changed between probe and dataset build (re-run ingest)",
    "clean_quarantined": "the paired clean image is quarantined",
    "quality_filter": "fails a --filter threshold",
}
"""Quarantine reason codes and what they mean (the manifest's ``reason`` column)."""

_DELAY_ENV = "RAINBENCH_PROBE_DELAY"  # seconds slept per probe: a test hook to interrupt runs mid-way
_IN_MEMORY = 1 << 28  # files up to 256 MiB are read once: hashed and decoded from the same bytes
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProbeTask:
    """One thing to probe: a file, optionally a crop region of it or a frame of a video."""

    key: str
    file: str
    region: tuple[int, int, int, int] | None = None
    frame_time: float | None = None


@dataclass(frozen=True)
class ProbeOptions:
    """Options that change what a probe records (they are part of the cache key)."""

    max_pixels: int | None = DEFAULT_MAX_PIXELS
    keep_gps: bool = False

    def signature(self) -> str:
        """A short stable id of these options and the probe version, naming a cache namespace."""
        text = f"v{PROBE_VERSION}|max_pixels={self.max_pixels}|gps={int(self.keep_gps)}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _reason_code(message: str) -> str:
    text = message.lower()
    if "permission denied" in text or "file not found" in text:
        return "unreadable"
    if "pixel limit" in text:
        return "too_large"
    if "truncated" in text:
        return "truncated"
    return "corrupt"


def _read_once(path: str, size: int) -> tuple[str, Any]:
    """sha256 of a file and what to decode: its bytes (small files) or its path (large ones).

    Decoding the very bytes that were hashed means a file rewritten mid-probe cannot give a record
    whose hash describes one version and whose pixels another.
    """
    if size <= _IN_MEMORY or is_url(path):  # a remote file is fetched once whatever its size
        with open_source(path) as handle:
            data = handle.read()
        return hashlib.sha256(data).hexdigest(), data
    return sha256_file(path), path


def encode_png(img: Image.Image) -> bytes:
    """PNG bytes of an image, deterministic for given pixels (the encoding of crops and frames)."""
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def derived_bytes(task: ProbeTask, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> bytes:
    """The PNG bytes stored for a region crop or video frame task (same bytes every call)."""
    from collection import layouts

    if task.frame_time is not None:
        img = layouts.read_video_frame(task.file, task.frame_time)
        img = img if img.mode == "RGB" else img.convert("RGB")
    else:
        img = decode(task.file, max_pixels=max_pixels).image
    if task.region is not None:
        img = layouts.crop_region(img, tuple(task.region))
    return encode_png(img)


def _quarantine(record: dict[str, Any], reason: str, detail: str) -> dict[str, Any]:
    record.update(status="quarantined", reason=reason, detail=detail)
    return record


def probe(task: ProbeTask, options: ProbeOptions = ProbeOptions()) -> dict[str, Any]:
    """Probe one task into a record dict; bad input gives ``status="quarantined"``, never an exception.

    Library warnings raised meanwhile (Pillow's "Corrupt EXIF data", ...) are file facts: they go
    to the record's ``warnings``, never raw to the terminal.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = _probe(task, options)
    if caught:
        texts = list(dict.fromkeys(f"{w.category.__name__}: {str(w.message).strip()}" for w in caught))
        record["warnings"] = "; ".join(filter(None, [record.get("warnings"), *texts]))
    return record


def _probe(task: ProbeTask, options: ProbeOptions) -> dict[str, Any]:
    delay = float(os.environ.get(_DELAY_ENV) or 0)
    if delay:
        time.sleep(delay)
    start = time.perf_counter()
    record: dict[str, Any] = {"status": "ok", "reason": None, "detail": None, "warnings": None}
    record.update(empty_exif(options.keep_gps))
    try:
        size = source_size(task.file)
    except OSError as exc:
        return _quarantine(record, "unreadable", f"{task.file}: {exc.strerror or exc}")
    record["size"] = size
    if size == 0:
        return _quarantine(record, "empty", f"{task.file}: empty file (0 bytes)")
    if not is_url(task.file) and not os.access(task.file, os.R_OK):
        return _quarantine(record, "unreadable", f"{task.file}: permission denied (file is not readable)")
    try:
        derived = task.region is not None or task.frame_time is not None
        if derived:
            data = derived_bytes(task, options.max_pixels)
            record["sha256"] = hashlib.sha256(data).hexdigest()
            source: Any = data
            reduce = 1
        else:
            record["sha256"], source = _read_once(task.file, size)
            reduce = 1
            try:
                with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as header:
                    if header.format == "JPEG":
                        reduce = pick_reduce(*header.size)
            except Exception:  # noqa: BLE001 - decode() below names the problem properly
                pass
        decoded = decode(source, max_pixels=options.max_pixels, reduce=reduce, name=task.file)
    except ImageLoadError as exc:
        return _quarantine(record, _reason_code(exc.reason), str(exc))
    except (OSError, ValueError, RuntimeError, EOFError) as exc:  # video/crop readers: same rule
        return _quarantine(record, "corrupt", f"{task.file}: {type(exc).__name__}: {exc}")
    record.update(
        width=decoded.width, height=decoded.height, format=decoded.format, mode=decoded.mode,
        orientation=decoded.orientation,
    )
    full = decoded.scale == 1.0
    # An exact pixel hash needs every pixel; reduced JPEGs rely on the perceptual hash instead.
    record["pixel_hash"] = pixel_hash(decoded.image) if full else None
    work = working_image(decoded.image)
    record["phash"] = f"{phash64(work):016x}"
    record.update(quality(work))
    if task.frame_time is None:  # a video frame has no EXIF of its own
        # The bytes already read (a region's own file otherwise): a remote file is fetched once.
        fields, warnings = read_exif(task.file if derived else source, keep_gps=options.keep_gps)
        record.update(fields)
        record["warnings"] = "; ".join(warnings) or None
    record["seconds"] = time.perf_counter() - start
    return record


class _Prober:
    """The probe worker of an engine: probes one chunk of tasks into records."""

    def __init__(self, options: ProbeOptions):
        self.options = options

    def __call__(self, tasks: list[ProbeTask]) -> list[dict[str, Any]]:
        return [probe(task, self.options) for task in tasks]


def _end_with_parent() -> None:
    """Worker initializer: the worker ends when the ingest process dies, even by SIGKILL.

    Linux: the kernel sends SIGTERM when the parent exits (``PR_SET_PDEATHSIG``); elsewhere a
    daemon thread polls for the parent. Either way a killed ingest leaves no idle workers behind.
    (Under the forkserver start method the parent is the fork server, which ends with ingest.)
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died before the request took effect
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="rainbench-parent-watch", daemon=True).start()


def probe_all(
    tasks: Iterable[ProbeTask],
    options: ProbeOptions = ProbeOptions(),
    *,
    workers: int = 0,
    chunk_size: int = 4,
    engine: Any = None,
) -> Iterator[tuple[ProbeTask, dict[str, Any]]]:
    """Probe tasks on ``engine`` (default: local) with ``workers`` replicas, yielding ``(task, record)`` as they finish.

    ``workers`` 0 probes in this process (local engine). Tasks are consumed lazily and at most a
    few chunks per worker are in flight, so neither tasks nor records pile up in memory;
    completion order is not input order.
    """
    from functools import partial

    from collection.engine import Group, LocalEngine, chunks

    engine = engine or LocalEngine()
    group = Group("probe", partial(_Prober, options), chunks(tasks, chunk_size),
                  replicas=max(workers, 1) if engine.distributed else workers, init=_end_with_parent)
    for _, chunk, records in engine.map([group]):
        yield from zip(chunk, records)
