"""Sample containers shared by every reader: (grey uint8 image, label, name)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from strings.image import load_image

__all__ = ["DatasetError", "Sample", "ImageDataset", "FileDataset", "ArrayDataset", "Subset", "resolve_data_root"]

DATA_ENV = "STRINGS_DATA"


class DatasetError(ValueError):
    """A dataset tree or list that is missing or malformed; the message names the path."""


@dataclass(frozen=True)
class Sample:
    image: np.ndarray  # (H, W) uint8, dark ink on light paper
    label: str  # the digits (the ORAND protocol: separators and cents marks not transcribed)
    name: str
    written: str | None = None  # the label with the separators as written ("1.500,00"); None: unknown


class ImageDataset(Sequence[Sample]):
    """A random-access, labelled set of images. Readers return one of these."""

    name: str = "dataset"

    def labels(self) -> list[str]:
        return [self.label(i) for i in range(len(self))]

    def label(self, index: int) -> str:
        return self[index].label

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index):  # type: ignore[override]  # pragma: no cover - abstract
        raise NotImplementedError


class FileDataset(ImageDataset):
    """Images on disk, decoded lazily (a 5,000-image set costs a list of paths in memory)."""

    def __init__(self, items: list[tuple[Path, str]], name: str, written: dict[str, str] | None = None) -> None:
        self.items = items
        self.name = name
        self.written = written or {}  # file name -> the label as written, where a list gives it

    def __len__(self) -> int:
        return len(self.items)

    def label(self, index: int) -> str:
        return self.items[index][1]

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        path, label = self.items[index]
        return Sample(load_image(path), label, str(path), self.written.get(Path(path).name))


class ArrayDataset(ImageDataset):
    """Images held in one uint8 array (N, H, W), e.g. MNIST. ``ink_bright`` arrays (white digit on
    black) are inverted on access so every reader yields the same polarity."""

    def __init__(self, images: np.ndarray, labels: Sequence[str], name: str, ink_bright: bool) -> None:
        if not isinstance(images, np.ndarray) or images.ndim != 3 or images.dtype != np.uint8:
            got = f"{images.dtype} array of shape {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
            raise DatasetError(f"{name}: images must be a uint8 array of shape (N, H, W), got {got}")
        if images.shape[1] == 0 or images.shape[2] == 0:
            raise DatasetError(f"{name}: empty images of shape {images.shape[1:]}")
        if len(images) != len(labels):
            raise DatasetError(f"{name}: {len(images)} images but {len(labels)} labels")
        self.images = images
        self._labels = list(labels)
        self.name = name
        self.ink_bright = ink_bright

    def __len__(self) -> int:
        return len(self.images)

    def label(self, index: int) -> str:
        return self._labels[index]

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        img = self.images[index]
        if self.ink_bright:
            img = 255 - img
        return Sample(np.ascontiguousarray(img), self._labels[index], f"{self.name}[{index}]")


class Subset(ImageDataset):
    """A view on some indices of another dataset (train/validation carving)."""

    def __init__(self, base: ImageDataset, indices: Sequence[int], name: str | None = None) -> None:
        self.base = base
        self.indices = list(indices)
        self.name = name or base.name

    def __len__(self) -> int:
        return len(self.indices)

    def label(self, index: int) -> str:
        return self.base.label(self.indices[index])

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        return self.base[self.indices[index]]


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """``--data-root`` if given, else ``$STRINGS_DATA``, else the repository's ``data/`` folder."""
    if data_root:
        return Path(data_root)
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    repo_data = Path(__file__).resolve().parents[2] / "data"
    return repo_data if repo_data.is_dir() else Path("data")
