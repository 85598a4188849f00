"""Dataset readers by name, and the data-root rule.

Example:
    >>> from strings.datasets import open_dataset
    >>> ds = open_dataset("car-a-partial", "test", "../shared/data")  # doctest: +SKIP
    >>> sample = ds[0]; sample.label, sample.image.shape  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from strings.datasets.base import (
    ArrayDataset,
    DatasetError,
    FileDataset,
    ImageDataset,
    Sample,
    Subset,
    resolve_data_root,
)
from strings.datasets.readers import (
    read_car_partial,
    read_car_partial_boxes,
    read_cvl,
    read_gt_list,
    read_idx,
    read_list,
    read_mnist,
    read_orand_car,
    read_usps,
)
from strings.datasets.digits import DigitSet, read_cmater, read_gujarati, read_gurmukhi, read_kannada

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "DatasetError",
    "DigitSet",
    "FileDataset",
    "ImageDataset",
    "Sample",
    "Subset",
    "open_dataset",
    "read_car_partial_boxes",
    "read_gt_list",
    "read_idx",
    "read_list",
    "resolve_data_root",
    "split_train_val",
]

DATASETS: dict[str, Callable[[Path, str], ImageDataset]] = {
    "car-a": lambda root, split: read_orand_car(root, "a", split),
    "car-b": lambda root, split: read_orand_car(root, "b", split),
    "cvl": read_cvl,
    "car-a-partial": read_car_partial,
    "mnist": read_mnist,
    "usps": read_usps,
    # Single digits of Indian scripts (strings/datasets/digits.py: repeats dropped, Kannada and
    # Gujarati splits) and synthetic strings composed from them (strings/script_synth.py).
    "bangla": lambda root, split: read_cmater(root, "bangla", split),
    "devanagari": lambda root, split: read_cmater(root, "devanagari", split),
    "telugu": lambda root, split: read_cmater(root, "telugu", split),
    "kannada": read_kannada,
    "gujarati": read_gujarati,
    "gurmukhi": read_gurmukhi,
}


def _script_strings_reader(script: str) -> Callable[[Path, str], ImageDataset]:
    def read(root: Path, split: str) -> ImageDataset:
        from strings.script_synth import read_script_strings  # imports strings.synth, which imports this package

        return read_script_strings(root, script, split)

    return read


for _script in ("bangla", "devanagari", "telugu", "kannada", "gujarati", "gurmukhi"):
    DATASETS[f"{_script}-strings"] = _script_strings_reader(_script)


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
