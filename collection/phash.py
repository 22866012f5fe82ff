"""Image fingerprints for duplicate detection: a 64-bit DCT perceptual hash and an exact pixel hash.

:func:`phash64` is the classic DCT pHash (as in pHash.org and imagededup): grayscale, resize to
32 x 32, 2-D DCT-II, keep the top-left 8 x 8 low-frequency block, threshold each coefficient at the
median of the 63 AC coefficients (the DC term is left out of the median because it only carries the
mean brightness and would drag the threshold), and pack the 64 bits row-major, most significant bit
first. Re-encodes, resizes, crops of up to ~3% of a side and small exposure changes stay within
8 bits; different scenes land about 32 bits apart. With no ties at the median, 31 of the 63 AC bits
are set and the DC bit always is, so every hash has 32 ones and all distances are even (a radius
of 9 finds the same pairs as 8).

Because the DCT is linear and the threshold is a median, the hash ignores the intensity scale:
8-bit, 16-bit and float images of the same picture hash alike, and the pixel range need not be known.

:func:`pixel_hash` names the decoded pixels themselves, so a PNG, a lossless WebP and a TIFF of the
same pixels are exact duplicates even though their bytes differ.

A pHash only describes structure. A flat image (solid black, white or red, of any size, 1 x 1 or
10000 x 1) has no AC energy: every coefficient ties with the median and the hash is 0 or the DC bit
alone, so all flat images look alike. Images with structure in one direction only (stripes, a
10000 x 1 line scan) tie most coefficients too. :func:`informative` recognises such hashes by their
bit count; dedup compares those images by their exact pixels instead (:func:`pixel_hash`, which
includes the size), never by Hamming distance.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
from PIL import Image
from scipy.fft import dctn

__all__ = ["HASH_SIZE", "MIN_INFORMATIVE_BITS", "hamming", "informative", "phash64", "pixel_hash"]

HASH_SIZE = 8
"""Side of the low-frequency DCT block kept by :func:`phash64` (8 x 8 = 64 bits)."""

MIN_INFORMATIVE_BITS = 16
"""Fewest set bits of a hash that carries structure: a tie-free pHash has exactly 32, a flat image 0 or 1,
a one-directional one about 8, a mirror-symmetric picture (half its coefficients exactly zero) about 20."""

_RESIZE = 32
# Pillow first shrinks by an integer box filter to within this factor of the target, then applies
# Lanczos: same result to the hash at a fraction of the cost on 12-100 MP photographs.
_REDUCING_GAP = 3.0
# ITU-R BT.601 luma, the weights Pillow's RGB -> L conversion uses, so arrays and images agree.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_PIXEL_HASH_TAG = b"rainbench-pixel-hash-v1"
_STRIP_ROWS = 256


def _gray_image(image: Image.Image | np.ndarray) -> Image.Image:
    """A single-channel Pillow image (mode L or F) holding the luma of ``image``."""
    if isinstance(image, Image.Image):
        if image.mode in ("L", "F"):
            return image
        if image.mode.startswith("I"):  # 16/32-bit integer modes: the scale does not matter (see module doc)
            return Image.fromarray(np.asarray(image, dtype=np.float32), mode="F")
        return image.convert("L")
    if not isinstance(image, np.ndarray):
        raise TypeError(f"phash64 expects a PIL image or a numpy array, got {type(image).__name__}")
    arr = image
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        if arr.dtype == np.uint8:
            # Pillow's own RGB -> L so that an array and the image it came from hash identically.
            return Image.fromarray(np.ascontiguousarray(arr[:, :, :3])).convert("L")
        arr = arr[:, :, :3].astype(np.float32) @ _LUMA
    if arr.ndim != 2:
        raise ValueError(f"phash64 expects an H x W or H x W x 1/3/4 array, got shape {image.shape}")
    if arr.size == 0:
        raise ValueError("phash64 got an empty image")
    if arr.dtype == np.uint8:
        return Image.fromarray(np.ascontiguousarray(arr), mode="L")
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F")


def phash64(image: Image.Image | np.ndarray) -> int:
    """64-bit DCT perceptual hash of an image or H x W (x C) array, as an int in [0, 2**64)."""
    gray = _gray_image(image)
    if gray.width == 0 or gray.height == 0:
        raise ValueError("phash64 got an empty image")
    small = gray.resize((_RESIZE, _RESIZE), Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)
    pixels = np.asarray(small, dtype=np.float64)
    low = dctn(pixels, type=2, norm="ortho")[:HASH_SIZE, :HASH_SIZE].ravel()
    bits = low > np.median(low[1:])
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _popcount(x: np.ndarray) -> np.ndarray:
    """Number of set bits of each element of a uint64 array."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    table = np.array([(i).bit_count() for i in range(256)], dtype=np.uint8)
    as_bytes = np.ascontiguousarray(x, dtype=np.uint64).view(np.uint8).reshape(*x.shape, 8)
    return table[as_bytes].sum(axis=-1, dtype=np.uint8)


def _as_uint64(value: int | np.ndarray) -> np.ndarray:
    """``value`` as a uint64 array, refusing negative or too-large ints rather than wrapping them."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        if not 0 <= int(value) < 2**64:
            raise ValueError(f"a 64-bit hash must lie in [0, 2**64), got {value}")
        return np.array(int(value), dtype=np.uint64)
    if not isinstance(value, np.ndarray):
        # Straight to uint64: numpy would otherwise infer float64 for ints above 2**63 and lose bits.
        try:
            return np.array(value, dtype=np.uint64)
        except (OverflowError, TypeError, ValueError):
            raise ValueError("64-bit hashes must be integers in [0, 2**64)") from None
    arr = value
    if arr.dtype == np.uint64:
        return arr
    if arr.dtype.kind in "iu":
        if arr.size and arr.min() < 0:
            raise ValueError("64-bit hashes must be non-negative")
        return arr.astype(np.uint64)
    if arr.dtype == object:  # Python ints above 2**63 arrive as an object array
        return np.array([int(v) for v in arr.ravel()], dtype=np.uint64).reshape(arr.shape)
    raise TypeError(f"hashes must be integers, got dtype {arr.dtype}")


def hamming(a: int | np.ndarray, b: int | np.ndarray) -> int | np.ndarray:
    """Number of differing bits between 64-bit hashes; broadcasts over uint64 arrays."""
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        return int(_popcount(_as_uint64(a) ^ _as_uint64(b)))
    return _popcount(_as_uint64(a) ^ _as_uint64(b)).astype(np.int64)


def informative(hashes: int | np.ndarray) -> bool | np.ndarray:
    """True where a 64-bit pHash carries structure (>= MIN_INFORMATIVE_BITS set bits), see the module doc."""
    bits = _popcount(_as_uint64(hashes))
    if np.ndim(bits) == 0:
        return bool(bits >= MIN_INFORMATIVE_BITS)
    return bits >= MIN_INFORMATIVE_BITS


def pixel_hash(image: Image.Image) -> str:
    """sha256 hex of an image's size and 8-bit RGB pixels, independent of the container format.

    Images not already in RGB are converted with Pillow's ``convert("RGB")``; pass the output of
    :mod:`collection.images` to apply the project's alpha and 16-bit conventions first. The pixels
    are hashed in strips so a 100 MP image never needs a second full copy in memory.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"pixel_hash expects a PIL image, got {type(image).__name__}")
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    width, height = rgb.size
    digest = hashlib.sha256(_PIXEL_HASH_TAG)
    digest.update(struct.pack("<QQ", width, height))
    for top in range(0, height, _STRIP_ROWS):
        digest.update(rgb.crop((0, top, width, min(top + _STRIP_ROWS, height))).tobytes())
    return digest.hexdigest()
