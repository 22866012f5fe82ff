"""The one image loader: decode any supported file into 8-bit RGB, and convert to and from tensors.

Every part of rainbench that reads or writes pixels goes through this module, so that a file is
interpreted the same way by ingest, the runner and the demo:

- formats: JPEG, PNG (8 and 16 bit), TIFF, WebP, BMP, GIF (first frame), HEIC/HEIF (pillow-heif);
- modes: grayscale, palette, CMYK, 16-bit and float images become 8-bit RGB; images with alpha
  (LA, RGBA, PA, palette with transparency) are composited on a **white** background, the
  convention of most viewers for photographs with transparent borders;
- EXIF orientation 1-8 is applied, so pixels are upright as a viewer shows them;
- decompression bombs above ``max_pixels`` are refused before any pixel is decoded;
- damaged data is refused, not decoded as garbage: JPEGs (grayscale and YCbCr, the camera kinds)
  are decoded by libjpeg-turbo through simplejpeg in strict mode, so what libjpeg reports as
  ``Corrupt JPEG data: ...`` or ``Premature end of JPEG file`` (Pillow swallows these warnings and
  returns the garbage rows) fails the decode; PNG chunk checksums (CRC-32, IDAT included) are
  verified before decoding. Other libjpeg warnings (an unknown JFIF revision, odd SOS parameters)
  leave the file to Pillow, which decodes it as before;
- any failure raises :class:`ImageLoadError`, naming the file and the problem.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Union

import numpy as np
from PIL import Image, ImageFile

from collection.files import atomic_path
from collection.storage import is_url

try:  # libjpeg-turbo with its warnings reported; a declared dependency, optional at import like HEIF
    import simplejpeg

    STRICT_JPEG = True
except ImportError:  # pragma: no cover
    STRICT_JPEG = False

try:  # HEIC/HEIF through libheif; optional at import so a broken wheel does not break JPEG users.
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_AVAILABLE = True
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    HEIF_AVAILABLE = False

# rainbench applies its own, configurable pixel limit (below); Pillow's global one would refuse
# 100+ MP camera files before our check could name the limit and the option that raises it.
Image.MAX_IMAGE_PIXELS = None
# A truncated file must fail loudly, never decode as a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False

DEFAULT_MAX_PIXELS = 200_000_000
"""Largest image (width x height, in pixels) decoded by default; 200 MP covers medium-format cameras."""

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".heic", ".heif", ".hif", ".avif"}
)
"""File name suffixes (lower case) the loader is expected to decode."""

Source = Union[str, os.PathLike, bytes, BinaryIO]

_ORIENTATION_TAG = 0x0112
# libjpeg warnings that mean the entropy-coded data did not decode as written (garbage rows follow).
_JPEG_CORRUPT = ("Corrupt JPEG data",)
_JPEG_TRUNCATED = ("Premature end of JPEG file",)


class ImageLoadError(Exception):
    """An image could not be decoded; ``str()`` names the file and the problem."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class DecodedImage:
    """An upright 8-bit RGB image with what the original file said about itself."""

    image: Image.Image
    """The decoded pixels, mode ``RGB``, EXIF orientation applied (possibly reduced, see ``scale``)."""
    format: str
    """Container format as Pillow names it (``JPEG``, ``PNG``, ``HEIF``, ...)."""
    mode: str
    """The file's original pixel mode (``L``, ``I;16``, ``CMYK``, ``RGBA``, ...)."""
    width: int
    """Full-resolution width after orientation, whatever ``reduce`` was asked."""
    height: int
    """Full-resolution height after orientation."""
    orientation: int
    """EXIF orientation found in the file (1 when absent or invalid)."""
    scale: float
    """Decoded size divided by full size (1.0 unless ``reduce`` was asked)."""


def _name(source: Source, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return getattr(source, "name", "<bytes>")


def _fetch(url: str, label: str) -> bytes:
    """The bytes of a file named by a URL (:mod:`collection.storage`), errors as ImageLoadError."""
    from collection.storage import Location

    try:
        return Location(url).read_bytes()
    except FileNotFoundError:
        raise ImageLoadError(label, "file not found") from None
    except PermissionError:
        raise ImageLoadError(label, "permission denied (file is not readable)") from None
    except OSError as exc:
        raise ImageLoadError(label, f"cannot read: {exc}") from None


def _open(source: Source, label: str) -> Image.Image:
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageLoadError(label, "file not found")
        if path.is_dir():
            raise ImageLoadError(label, "is a directory, not an image file")
        if not os.access(path, os.R_OK):
            raise ImageLoadError(label, "permission denied (file is not readable)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(source)
    except Image.UnidentifiedImageError:
        raise ImageLoadError(label, "not a recognised image format (or the header is corrupt)") from None
    except PermissionError:
        raise ImageLoadError(label, "permission denied (file is not readable)") from None
    except OSError as exc:
        raise ImageLoadError(label, f"cannot open: {exc}") from None


def _orientation(img: Image.Image) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data": the caller's EXIF reader reports it
            value = int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # malformed EXIF must not make a readable image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _to_rgb8(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (alpha over white, 16-bit and float rescaled)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit files store 0..65535; mode I from a 16-bit PNG does too. 8-bit-range I data stays put.
        peak = 65535.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        gray = np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        peak = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        gray = np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK (Pillow handles Adobe's inverted CMYK), YCbCr, LAB, HSV


def decode(
    source: Source,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    reduce: int = 1,
    name: str | None = None,
) -> DecodedImage:
    """Decode a file, path, bytes or stream into an upright 8-bit RGB :class:`DecodedImage`.

    ``reduce`` (1, 2, 4 or 8) asks for a smaller image for hashing and quality figures: JPEGs use
    libjpeg's DCT scaling (draft mode), which still reads the whole bitstream, so truncation is
    still detected; other formats are decoded fully and then reduced.
    """
    label = _name(source, name)
    if reduce not in (1, 2, 4, 8):
        raise ValueError(f"reduce must be 1, 2, 4 or 8, got {reduce}")
    if isinstance(source, str) and is_url(source):
        source = _fetch(source, label)
    img = _open(source, label)
    try:
        width, height = img.size
        if max_pixels is not None and width * height > max_pixels:
            raise ImageLoadError(
                label,
                f"{width}x{height} = {width * height / 1e6:.1f} MP exceeds the pixel limit of "
                f"{max_pixels / 1e6:.1f} MP (raise it with --max-pixels if the file is genuine)",
            )
        if width < 1 or height < 1:
            raise ImageLoadError(label, f"empty image ({width}x{height})")
        fmt = img.format or "unknown"
        mode = img.mode
        orientation = _orientation(img)
        if fmt == "PNG":
            _verify_png(source, label)
        rgb = _strict_jpeg(source, img, reduce, label) if fmt == "JPEG" else None
        if rgb is not None:
            img.close()  # the header was all Pillow had to read
        else:
            if reduce > 1 and fmt == "JPEG":
                img.draft("RGB", (max(1, width // reduce), max(1, height // reduce)))
            try:
                img.load()
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                text = str(exc)
                if "truncated" in text.lower():
                    text = f"truncated file ({text})"
                raise ImageLoadError(label, f"cannot decode: {text}") from None
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            rgb = _to_rgb8(img)
        if reduce > 1 and rgb.size == (width, height):
            rgb = rgb.reduce(reduce)
        if orientation != 1:
            rgb = _apply_orientation(rgb, orientation)
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        return DecodedImage(rgb, fmt, mode, width, height, orientation, rgb.size[0] / width)
    except ImageLoadError:
        img.close()
        raise
    except MemoryError:
        img.close()
        raise ImageLoadError(label, "out of memory while decoding (lower --max-pixels)") from None
    except Exception as exc:  # a decoder bug or exotic mode: still one error type, naming the file
        img.close()
        raise ImageLoadError(label, f"cannot decode: {type(exc).__name__}: {exc}") from None


def _raw_bytes(source: Source) -> bytes | None:
    """The file's bytes for a second reader (paths and bytes; None for streams, left to Pillow)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            return handle.read()
    return None


def _strict_jpeg(source: Source, img: Image.Image, reduce: int, label: str) -> Image.Image | None:
    """RGB pixels of a grayscale or YCbCr JPEG from libjpeg-turbo, failing on corrupt data.

    None hands the file back to Pillow (CMYK, streams, simplejpeg absent, a benign libjpeg warning).
    The pixels equal Pillow's at full size (accurate DCT, fancy upsampling) and, reduced, for
    4:2:0, 4:4:4 and grayscale files (plain upsampling, as Pillow's draft mode; its fast-DCT
    request is ignored by scaled IDCTs); reduced 4:2:2 files may differ by a grey level or so.
    """
    if not STRICT_JPEG or img.mode not in ("L", "RGB"):
        return None
    data = _raw_bytes(source)
    if data is None:
        return None
    width, height = img.size
    try:
        arr = simplejpeg.decode_jpeg(
            data, colorspace="RGB", fastdct=False, fastupsample=reduce > 1, min_factor=reduce,
            min_width=-(-width // reduce), min_height=-(-height // reduce), strict=True)
    except ValueError as exc:
        text = str(exc)
        if text.startswith(_JPEG_TRUNCATED):
            raise ImageLoadError(label, f"cannot decode: truncated file (libjpeg: {text})") from None
        if text.startswith(_JPEG_CORRUPT):
            raise ImageLoadError(label, f"cannot decode: corrupt JPEG data (libjpeg: {text})") from None
        return None
    if arr.shape[:2] != (-(-height // reduce), -(-width // reduce)):
        return None  # a scale libjpeg-turbo chose differently: Pillow's draft is the reference
    return Image.fromarray(arr)


def _verify_png(source: Source, label: str) -> None:
    """Check every PNG chunk's CRC-32 (IDAT included), which Pillow's decoder skips for image data."""
    data = _raw_bytes(source)
    if data is None:
        return
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
    except (SyntaxError, OSError, ValueError, EOFError) as exc:
        text = str(exc)
        if "truncated" in text.lower():
            raise ImageLoadError(label, f"cannot decode: truncated file ({text})") from None
        raise ImageLoadError(label, f"cannot decode: corrupt PNG data ({text})") from None


def _apply_orientation(img: Image.Image, orientation: int) -> Image.Image:
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }[orientation]
    return img.transpose(method)


def open_image(source: Source, **kwargs) -> Image.Image:
    """Decode a file into an upright 8-bit RGB Pillow image (see :func:`decode` for options)."""
    return decode(source, **kwargs).image


def load_image(source: Source, **kwargs) -> np.ndarray:
    """Decode a file into an upright ``H x W x 3`` uint8 array (see :func:`decode` for options)."""
    return np.asarray(decode(source, **kwargs).image)


def to_tensor(images: np.ndarray | Image.Image | Sequence[np.ndarray | Image.Image]):
    """Stack uint8 ``H x W x 3`` arrays or RGB images into a float32 ``N x 3 x H x W`` tensor in [0, 1]."""
    import torch

    if isinstance(images, (np.ndarray, Image.Image)):
        images = [images]
    arrays = [np.asarray(im) for im in images]
    for arr in arrays:
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"expected uint8 H x W x 3 images, got {arr.dtype} {arr.shape}")
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch.float().div_(255.0)


def quantise(x):
    """8-bit levels of values in [0, 1] by MATLAB's convention (``im2uint8``): float64 0..255.

    Clips to [0, 1], multiplies by 255 in float64 (exact for float32 input) and rounds half away
    from zero, as MATLAB's ``round`` does. ``torch.round`` (half to even) in float32 differs: the
    float32 product can land on a tie the exact one does not, and ties go to the even level. Every
    score rainbench computes quantises through this one function. Takes a tensor (returns one, on
    its device) or an array; NaN or infinite values raise ``ValueError``.
    """
    if isinstance(x, np.ndarray):
        x64 = x.astype(np.float64, copy=True)
        if not np.isfinite(x64.sum()):
            raise ValueError("image holds NaN or infinite values")
        return np.floor(np.clip(x64, 0.0, 1.0, out=x64) * 255.0 + 0.5)
    import torch

    if not torch.is_floating_point(x):
        raise ValueError(f"expected a float tensor in [0, 1], got dtype {x.dtype}")
    x64 = x.detach().to(torch.float64, copy=True)
    if not torch.isfinite(x64.sum()):  # one reduction; float64 cannot overflow on float32 input
        raise ValueError("image holds NaN or infinite values")
    return x64.clamp_(0.0, 1.0).mul_(255.0).add_(0.5).floor_()


def to_uint8(batch) -> np.ndarray:
    """Quantise a float ``N x 3 x H x W`` (or ``3 x H x W``) tensor in [0, 1] to uint8 ``N x H x W x 3``.

    Rounds by :func:`quantise` (MATLAB's convention), as the runner does before scoring; NaN or
    infinite values raise ``ValueError``.
    """
    import torch

    if batch.ndim == 3:
        batch = batch.unsqueeze(0)
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise ValueError(f"expected an N x 3 x H x W tensor, got shape {tuple(batch.shape)}")
    out = quantise(batch).to(torch.uint8)
    return out.permute(0, 2, 3, 1).cpu().numpy()


def save_image(image: np.ndarray | Image.Image, path: Any, *, quality: int = 95) -> Any:
    """Write an RGB image atomically (temporary file, then rename; one PUT on remote storage); format from the suffix.

    ``path`` is a local path or a :class:`collection.storage.Location`.

    An interrupted write never leaves a partial file under the final name, so "output exists"
    reliably means "output complete" for resumable runs.
    """
    from collection.storage import Location

    remote = isinstance(path, Location) and not path.local
    if not remote:
        path = Path(path.path if isinstance(path, Location) else path)
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    suffix = os.path.splitext(path.name)[1].lower()
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}.get(suffix)
    if fmt is None:
        raise ValueError(f"{path}: unsupported output format {suffix!r} (use .png, .jpg, .webp or .tif)")
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if remote:  # shared storage (s3://, ...): one whole-file write
        buffer = io.BytesIO()
        img.save(buffer, format=fmt, **options)
        path.write_bytes(buffer.getvalue())
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        img.save(handle, format=fmt, **options)
    return path


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name has a suffix the loader decodes (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES
