"""Training data for learnable methods: files, folders in any layout, or saved datasets, read lazily.

``method.fit(rainy=..., clean=...)`` or ``fit(pairs=...)`` takes sequences of ``3 x H x W`` float
tensors in [0, 1]. :func:`open_training_sources` builds them from what a user has on disk:

- an image file (rainy or clean images, not pairs);
- a folder in any layout ``rainbench ingest`` understands (plain folders, ``rainy/`` + ``clean/``
  pairs, Rain100, videos ...), matched by the same layout rules;
- a dataset written by ``rainbench ingest`` or a Hub tree on disk (one split), read with the
  benchmark's own reader (:class:`rainbench.data.BenchDataset`).

Nothing is decoded until an item is indexed, one image at a time, so a training set never has to
fit in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

Loader = Callable[[], Any]
WANTS = {"pairs": "rainy/clean pairs", "rainy": "rainy images", "clean": "clean images"}
"""What a source can be asked for, and how an error message names it."""


class SourceError(ValueError):
    """A training source is missing, empty or of the wrong kind; the message names it."""


class LazyImages(Sequence):
    """A sequence whose items are loaded (decoded) only when indexed: images or (rainy, clean) pairs."""

    def __init__(self, loaders: list[Loader], labels: list[str]):
        self.loaders = loaders
        self.labels = labels
        """Where each item comes from (a file, or ``dataset#row``), for messages."""

    def __len__(self) -> int:
        return len(self.loaders)

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        return self.loaders[index]()

    def __iter__(self) -> Iterator[Any]:
        return (loader() for loader in self.loaders)


def _tensor(image: Any) -> Any:
    """An RGB PIL image or uint8 array as a 3 x H x W float tensor in [0, 1]."""
    import numpy as np

    from collection.images import to_tensor

    return to_tensor(np.asarray(image))[0]


def _file_loader(file: Path, region: Any = None, frame_time: float | None = None) -> Loader:
    def load() -> Any:
        from collection.images import open_image
        from collection.layouts import crop_region, read_video_frame

        image = read_video_frame(file, frame_time) if frame_time is not None else open_image(file)
        return _tensor(crop_region(image, region))

    return load


def is_dataset_dir(path: Path) -> bool:
    """True for a folder :func:`rainbench.data.open_dataset` reads (saved dataset or Hub tree), not a source folder."""
    return path.is_dir() and (
        (path / "dataset_dict.json").exists() or (path / "state.json").exists() or any(path.glob("data/*.parquet"))
    )


def _dataset_loaders(src: str, split: str, want: str) -> tuple[list[Loader], list[str]]:
    """Loaders for a saved dataset's rows: rainy images, clean images, or (rainy, clean) pairs."""
    from rainbench.data import DatasetError, open_dataset

    ds = open_dataset(src, split)
    columns = ("rainy", "clean") if want == "pairs" else (want,)

    def load(index: int) -> Any:
        sample = ds.sample(index, columns)
        if sample.error is not None:
            raise DatasetError(f"{src}: row {sample.id}: {sample.error}")
        images = [_tensor(getattr(sample, column)) for column in columns]
        return tuple(images) if want == "pairs" else images[0]

    rows = ds.rows_with(want)
    return [(lambda i=i: load(i)) for i in rows], [f"{src}#{i}" for i in rows]


def _folder_loaders(src: Path, want: str) -> tuple[list[Loader], list[str]]:
    """Loaders for a source folder in any known layout (pairs matched by the layout rules)."""
    from collection.layouts import survey

    found = survey(src)
    loaders: list[Loader] = []
    labels: list[str] = []
    for item in found.items:
        rainy = _file_loader(item.file, item.region, item.frame_time)
        if want == "pairs" and item.role == "pair":
            clean = _file_loader(item.clean_file, item.clean_region)
            loaders.append(lambda r=rainy, c=clean: (r(), c()))
        elif want == "rainy" and item.role in ("pair", "rainy"):
            loaders.append(rainy)
        elif want == "clean" and item.role == "pair":
            loaders.append(_file_loader(item.clean_file, item.clean_region))
        elif want == "clean" and (item.role == "clean" or found.layout == "plain"):
            loaders.append(rainy)  # a plain folder given as clean data holds clean photographs
        else:
            continue
        labels.append(str(item.file))
    return loaders, labels


def open_training_sources(sources: Sequence[str | Path], want: str, split: str = "train") -> LazyImages:
    """Every image (``want`` rainy | clean) or pair (``pairs``) of ``sources`` as one lazy sequence.

    ``split`` is read from dataset sources. Raises :class:`SourceError` naming the source when one
    does not exist, holds nothing of the kind asked for, or cannot be read.
    """
    from collection.images import is_image_file
    from collection.layouts import LayoutError
    from rainbench.data import DatasetError

    if want not in WANTS:
        raise ValueError(f"want must be one of {', '.join(WANTS)}, got {want!r}")
    loaders: list[Loader] = []
    labels: list[str] = []
    for src in map(str, sources):
        path = Path(src).expanduser()
        try:
            if path.is_file():
                if want == "pairs" or not is_image_file(path):
                    raise SourceError(f"{src}: expected a folder or dataset{'' if want == 'pairs' else ' or an image file'}")
                found = ([_file_loader(path)], [str(path)])
            elif is_dataset_dir(path):
                found = _dataset_loaders(src, split, want)
            elif path.is_dir():
                found = _folder_loaders(path, want)
            else:
                raise SourceError(f"{src}: no such file or folder")
        except (LayoutError, DatasetError) as exc:
            raise SourceError(str(exc)) from exc
        if not found[0]:
            raise SourceError(f"{src}: no {WANTS[want]} found")
        loaders += found[0]
        labels += found[1]
    return LazyImages(loaders, labels)
