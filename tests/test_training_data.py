"""rainbench.training_data: the Python API reads the same training sources as `rainbench train`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collection.images import save_image
from rainbench.training_data import LazyImages, SourceError, open_training_sources


def image(seed: int, size: tuple[int, int] = (12, 20)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def as_uint8(tensor: torch.Tensor) -> np.ndarray:
    assert tensor.dtype == torch.float32 and tensor.shape[0] == 3 and 0 <= tensor.min() and tensor.max() <= 1
    return np.rint(tensor.permute(1, 2, 0).numpy() * 255).astype(np.uint8)


@pytest.fixture
def dataset_dir(tmp_path):
    """A saved dataset whose rows are pairs, rainy-only and clean-only, images inline and on disk."""
    from datasets import Dataset, DatasetDict, Features, Image, Value

    rows = {"id": [], "rainy": [], "clean": []}
    for i, role in enumerate(["pair", "rainy", "clean", "pair"]):
        rows["id"].append(f"row{i}")
        rainy_path, clean_path = tmp_path / f"r{i}.png", tmp_path / f"c{i}.png"
        save_image(image(i), rainy_path)
        save_image(image(50 + i), clean_path)
        inline = i == 3  # one row carries its bytes, the others a path: both are read
        cell = (lambda p: {"path": None, "bytes": p.read_bytes()}) if inline else (lambda p: {"path": str(p), "bytes": None})
        rows["rainy"].append(None if role == "clean" else cell(rainy_path))
        rows["clean"].append(None if role == "rainy" else cell(clean_path))
    features = Features({"id": Value("string"), "rainy": Image(), "clean": Image()})
    DatasetDict({"train": Dataset.from_dict(rows, features=features)}).save_to_disk(str(tmp_path / "ds"))
    return tmp_path / "ds"


def test_dataset_rows_by_role_decode_the_right_pixels(dataset_dir):
    pairs = open_training_sources([dataset_dir], "pairs")
    assert isinstance(pairs, LazyImages) and len(pairs) == 2
    assert pairs.labels == [f"{dataset_dir}#0", f"{dataset_dir}#3"]
    for (rainy, clean), row in zip(pairs, (0, 3)):
        assert np.array_equal(as_uint8(rainy), image(row)) and np.array_equal(as_uint8(clean), image(50 + row))
    rainy = open_training_sources([dataset_dir], "rainy")
    assert [np.array_equal(as_uint8(rainy[k]), image(row)) for k, row in enumerate((0, 1, 3))] == [True] * 3
    clean = open_training_sources([dataset_dir], "clean")
    assert len(clean) == 3 and np.array_equal(as_uint8(clean[1]), image(52))
    with pytest.raises(SourceError, match="no split 'test'"):
        open_training_sources([dataset_dir], "pairs", split="test")


def test_folders_and_files_lazily_and_in_order(tmp_path):
    root = tmp_path / "pairs"
    for i in range(2):
        save_image(image(i), root / "rainy" / f"{i:03d}.png")
        save_image(image(10 + i), root / "clean" / f"{i:03d}.png")
    single = tmp_path / "one.png"
    save_image(image(7), single)
    pairs = open_training_sources([root], "pairs")
    assert [np.array_equal(as_uint8(c), image(10 + i)) for i, (_, c) in enumerate(pairs)] == [True, True]
    mixed = open_training_sources([root, single], "rainy")
    assert len(mixed) == 3 and np.array_equal(as_uint8(mixed[2]), image(7))
    single.unlink()  # nothing was decoded yet: a file gone after opening fails only when read
    with pytest.raises(Exception, match="one.png"):
        mixed[2]


def test_bad_sources_name_the_source(tmp_path):
    save_image(image(0), tmp_path / "a.png")
    with pytest.raises(SourceError, match="no such file or folder"):
        open_training_sources([tmp_path / "nope"], "rainy")
    with pytest.raises(SourceError, match="a.png: expected a folder or dataset$"):
        open_training_sources([tmp_path / "a.png"], "pairs")
    save_image(image(1), tmp_path / "photos" / "b.png")  # a plain folder holds no pairs
    with pytest.raises(SourceError, match="photos: no rainy/clean pairs found"):
        open_training_sources([tmp_path / "photos"], "pairs")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="empty: no files found"):
        open_training_sources([tmp_path / "empty"], "rainy")
    with pytest.raises(ValueError, match="want must be one of"):
        open_training_sources([tmp_path], "both")
