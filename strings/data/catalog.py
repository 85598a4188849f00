"""Datasets by registered name and split under the data root, and the train/validation carving.

Example:
    >>> from strings.data import open_dataset
    >>> ds = open_dataset("car-a-partial", "test", "../shared/data")  # doctest: +SKIP
    >>> sample = ds[0]; sample.label, sample.image.shape  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from strings.data.base import DatasetError, ImageDataset, Subset, resolve_data_root
from strings.data.digitsets import read_cmater, read_gujarati, read_gurmukhi, read_kannada
from strings.data.readers import read_car_partial, read_cvl, read_mnist, read_orand_car, read_parish_rowid, read_usps

__all__ = ["DATASETS", "open_dataset", "register_dataset", "split_train_val"]

DATASETS: dict[str, Callable[[Path, str], ImageDataset]] = {
    "car-a": lambda root, split: read_orand_car(root, "a", split),
    "car-b": lambda root, split: read_orand_car(root, "b", split),
    "cvl": read_cvl,
    "car-a-partial": read_car_partial,
    "parish-rowid": read_parish_rowid,  # loose field crops: read with strings.read.field
    "mnist": read_mnist,
    "usps": read_usps,
    # Single digits of Indian scripts (strings/data/digitsets.py: repeats dropped, Kannada and
    # Gujarati splits); strings/data/synth/scripts.py registers the strings composed from them.
    "bangla": lambda root, split: read_cmater(root, "bangla", split),
    "devanagari": lambda root, split: read_cmater(root, "devanagari", split),
    "telugu": lambda root, split: read_cmater(root, "telugu", split),
    "kannada": read_kannada,
    "gujarati": read_gujarati,
    "gurmukhi": read_gurmukhi,
}


def register_dataset(name: str, reader: Callable[[Path, str], ImageDataset]) -> None:
    """Add a dataset name; the synthetic generator registers its ``<script>-strings`` sets
    here, so this module needs no import of it."""
    if name in DATASETS and DATASETS[name] is not reader:
        raise ValueError(f"dataset {name!r} is already registered")
    DATASETS[name] = reader


def open_dataset(name: str, split: str, data_root: str | os.PathLike | None = None) -> ImageDataset:
    """A dataset by registered name and split, found under the data root."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](resolve_data_root(data_root), split)


def split_train_val(dataset: ImageDataset, fraction: float, seed: int) -> tuple[Subset, Subset]:
    """Carve a validation slice out of a training set, the same for the same seed."""
    import numpy as np

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(dataset))
    n_val = max(1, int(round(len(dataset) * fraction)))
    val, train = sorted(order[:n_val].tolist()), sorted(order[n_val:].tolist())
    return Subset(dataset, train, f"{dataset.name}:fit"), Subset(dataset, val, f"{dataset.name}:val")
