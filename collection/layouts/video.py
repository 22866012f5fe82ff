"""Videos as sources: frames sampled at a fixed rate, decoded with PyAV (FFmpeg).

A frame is named ``clip.mp4#t=12.500`` (seconds, three decimals); its scene is the video's path.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

from collection.images import ImageLoadError

from .item import LayoutError, Listing, SourceItem
from .tree import Tree

log = logging.getLogger(__name__)

_EPS = 1e-6


def frame_label(rel: str, t: float) -> str:
    """Relative path of a sampled frame: ``clip.mp4#t=12.500``."""
    return f"{rel}#t={t:.3f}"


def _start_and_base(stream) -> tuple[float, Fraction]:
    base = stream.time_base or Fraction(1, 1_000_000)
    start = float(stream.start_time * base) if stream.start_time is not None else 0.0
    return start, base


def _open_video(file: Path | str):
    """An ``av`` container for a local path or a URL (read through fsspec)."""
    from collection.storage import is_url, open_source

    return av.open(open_source(file) if is_url(file) else str(file))


def video_duration(file: Path) -> float:
    """Duration of the first video stream in seconds; header values, else the last packet's end."""
    with _open_video(file) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        start, base = _start_and_base(stream)
        if stream.duration:
            return float(stream.duration * base)
        if container.duration:
            return container.duration / av.time_base
        end = None
        for packet in container.demux(stream):
            if packet.pts is not None:
                stop = float((packet.pts + (packet.duration or 0)) * base)
                end = stop if end is None else max(end, stop)
        if end is None:
            raise ValueError("no timestamped packets")
        return max(end - start, 0.0)


def frame_times(duration: float, fps: float) -> list[float]:
    """Sample times ``k / fps`` strictly inside ``[0, duration)`` (always at least ``0.0``)."""
    if fps <= 0:
        raise LayoutError(f"fps must be positive, got {fps}")
    times = []
    k = 0
    while k == 0 or k / fps < duration - _EPS:
        times.append(k / fps)
        k += 1
    return times


def read_video_frame(file: Path, t: float) -> Image.Image:
    """Decode the frame shown at ``t`` seconds from the start (RGB); ImageLoadError names ``file#t=``."""
    label = frame_label(str(file), t)
    try:
        with _open_video(file) as container:
            if not container.streams.video:
                raise ImageLoadError(label, "no video stream")
            stream = container.streams.video[0]
            start, base = _start_and_base(stream)
            target = start + t
            container.seek(int(target / base), stream=stream, backward=True, any_frame=False)
            shown = None
            for frame in container.decode(stream):
                if frame.time is None:
                    raise ImageLoadError(label, "frame has no timestamp")
                if frame.time > target + _EPS and shown is not None:
                    break
                shown = frame
            if shown is None:
                raise ImageLoadError(label, "no frame decoded")
            return shown.to_image().convert("RGB")
    except ImageLoadError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ImageLoadError(label, f"cannot decode video frame: {exc}") from None


def video_items(tree: Tree, source: str, rel: str, fps: float) -> list[SourceItem]:
    """One item per sampled frame; an unreadable video gives one item at t=0 so its decode is quarantined."""
    file = tree.abspath(rel)
    try:
        times = frame_times(video_duration(file), fps)
    except LayoutError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:  # the pipeline quarantines it on decode
        log.warning("%s: cannot read video duration (%s)", file, exc)
        times = [0.0]
    return [
        SourceItem(
            source=source,
            layout="video",
            role="rainy",
            path=frame_label(rel, t),
            file=file,
            frame_time=t,
            scene=rel,
        )
        for t in times
    ]


def list_video(tree: Tree, source: str, fps: float) -> Listing:
    """Frames of every video below the root; images are left to the ``plain`` layout."""
    videos = tree.videos()
    if not videos:
        raise LayoutError(f"{tree.root}: no video files found")
    listing = Listing()
    for rel in videos:
        listing.items.extend(video_items(tree, source, rel, fps))
    for f in tree.images():
        listing.skipped[f] = "an image in the video layout (use the plain layout to take photos and videos)"
    return listing
