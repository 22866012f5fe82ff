"""Perceptual and pixel hashes: stable under benign edits, discriminative across scenes."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image, ImageEnhance, features

from collection.phash import hamming, phash64, pixel_hash

SCENES = ["astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "coins", "moon", "clock", "hubble_deep_field"]
# Natural photographs for the robustness checks (textures such as brick are harder for any pHash).
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins"]
RADIUS = 8


@pytest.fixture(scope="module")
def scenes() -> dict[str, Image.Image]:
    # Real photographs bundled with scikit-image (no download); only the tests using them need it.
    skdata = pytest.importorskip("skimage.data")
    return {name: Image.fromarray(getattr(skdata, name)()).convert("RGB") for name in SCENES}


def _reencode(image: Image.Image, fmt: str, **options) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    decoded.load()
    return decoded


def _crop_border(image: Image.Image, fraction: float) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * fraction), round(h * fraction)
    return image.crop((dx, dy, w - dx, h - dy))


def test_phash_is_a_64_bit_unsigned_int(scenes):
    values = [phash64(im) for im in scenes.values()]
    assert all(isinstance(v, int) and 0 <= v < 2**64 for v in values)
    assert np.array(values, dtype=np.uint64).dtype == np.uint64


@pytest.mark.parametrize("name", PHOTOS)
def test_phash_stable_under_benign_edits(scenes, name):
    image = scenes[name]
    w, h = image.size
    edits = {
        "jpeg 95 vs 70": (_reencode(image, "JPEG", quality=95), _reencode(image, "JPEG", quality=70)),
        "resize 0.5x": (image, image.resize((w // 2, h // 2), Image.Resampling.BICUBIC)),
        "crop 1.5% per border (3% per side length)": (image, _crop_border(image, 0.015)),
        # One-sided crops shift the content more than centred ones: 2% can reach 10 bits (rocket).
        "crop 1.5% from one corner": (image, image.crop((0, 0, w - round(0.015 * w), h - round(0.015 * h)))),
        "brightness +8%": (image, ImageEnhance.Brightness(image).enhance(1.08)),
    }
    for edit, (a, b) in edits.items():
        assert hamming(phash64(a), phash64(b)) <= RADIUS, edit


def test_distinct_scenes_are_far_apart(scenes):
    hashes = {name: phash64(im) for name, im in scenes.items()}
    for a, b in itertools.combinations(SCENES, 2):
        assert hamming(hashes[a], hashes[b]) > RADIUS, (a, b)


def test_phash_same_for_image_array_and_intensity_scale(scenes):
    image = scenes["coffee"]
    expected = phash64(image)
    pixels = np.asarray(image)
    assert phash64(pixels) == expected
    # Linear DCT + median threshold: the intensity scale does not matter (16-bit or float inputs).
    assert hamming(phash64(pixels.astype(np.uint16) * 257), expected) <= 2
    assert hamming(phash64(pixels / 255.0), expected) <= 2
    assert phash64(image.convert("L")) == phash64(np.asarray(image.convert("L")))


def test_phash_ignores_sensor_noise_but_not_a_mirror(scenes):
    rng = np.random.default_rng(1)
    pixels = np.asarray(scenes["astronaut"], dtype=np.float64)
    noisy = np.clip(pixels + rng.normal(0, 6, pixels.shape), 0, 255).astype(np.uint8)
    original = phash64(scenes["astronaut"])
    assert hamming(original, phash64(noisy)) <= RADIUS
    assert hamming(original, phash64(pixels[:, ::-1].astype(np.uint8))) > RADIUS


def test_phash_rejects_bad_input():
    with pytest.raises(ValueError):
        phash64(np.zeros((4, 4, 2)))
    with pytest.raises(ValueError):
        phash64(np.zeros((0, 5)))
    with pytest.raises(TypeError):
        phash64("image.png")  # type: ignore[arg-type]


def test_hamming_scalar_and_vectorised():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**64, 500, dtype=np.uint64, endpoint=False)
    b = rng.integers(0, 2**64, 500, dtype=np.uint64, endpoint=False)
    expected = np.array([(int(x) ^ int(y)).bit_count() for x, y in zip(a, b)])
    np.testing.assert_array_equal(hamming(a, b), expected)
    assert hamming(int(a[0]), int(b[0])) == expected[0]
    assert isinstance(hamming(int(a[0]), int(b[0])), int)
    np.testing.assert_array_equal(hamming(int(a[0]), b), [(int(a[0]) ^ int(y)).bit_count() for y in b])
    assert hamming(2**64 - 1, 0) == 64
    with pytest.raises(ValueError):
        hamming(-1, 0)


def test_pixel_hash_ignores_container_but_sees_one_pixel():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (120, 90, 3), dtype=np.uint8))
    as_png = _reencode(image, "PNG")
    as_tiff = _reencode(image, "TIFF", compression="tiff_lzw")
    assert as_png.tobytes() == image.tobytes()  # sanity: both containers are lossless
    assert pixel_hash(as_png) == pixel_hash(as_tiff) == pixel_hash(image)
    if features.check("webp"):
        assert pixel_hash(_reencode(image, "WEBP", lossless=True)) == pixel_hash(image)
    # Same pixels stored as RGBA (opaque) decode to the same RGB.
    assert pixel_hash(_reencode(image.convert("RGBA"), "PNG")) == pixel_hash(image)

    changed = image.copy()
    r, g, b = changed.getpixel((10, 10))
    changed.putpixel((10, 10), ((r + 1) % 256, g, b))
    assert pixel_hash(changed) != pixel_hash(image)
    assert pixel_hash(_reencode(image, "JPEG", quality=95)) != pixel_hash(image)


def test_pixel_hash_depends_on_size_not_only_bytes():
    flat = np.zeros((4, 6, 3), dtype=np.uint8)
    assert pixel_hash(Image.fromarray(flat)) != pixel_hash(Image.fromarray(flat.reshape(6, 4, 3)))


def test_pixel_hash_spans_strips():
    # Taller than one hashing strip, so a change in a later strip must still show.
    pixels = np.zeros((700, 9, 3), dtype=np.uint8)
    other = pixels.copy()
    other[650, 3, 1] = 1
    assert pixel_hash(Image.fromarray(pixels)) != pixel_hash(Image.fromarray(other))
