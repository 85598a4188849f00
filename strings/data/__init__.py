"""Data: dataset readers by name, the data-root rule, train/validation carving, augmentation,
the synthetic generator, and the sources a training run reads.

Example:
    >>> from strings.data import open_dataset
    >>> ds = open_dataset("car-a-partial", "test", "../shared/data")  # doctest: +SKIP
    >>> sample = ds[0]; sample.label, sample.image.shape  # doctest: +SKIP
"""

from __future__ import annotations

from strings.data.base import ArrayDataset, DatasetError, FileDataset, ImageDataset, Sample, Subset, resolve_data_root
from strings.data.catalog import DATASETS, open_dataset, register_dataset, split_train_val
from strings.data.digitsets import DigitSet
from strings.data.readers import read_car_partial_boxes, read_gt_list, read_idx, read_list
from strings.data.sources import TrainingData, build_sources, training_data, validation_split
from strings.data.synth import scripts as _scripts  # noqa: F401  (registers the <script>-strings datasets)

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "DatasetError",
    "DigitSet",
    "FileDataset",
    "ImageDataset",
    "Sample",
    "Subset",
    "TrainingData",
    "build_sources",
    "open_dataset",
    "read_car_partial_boxes",
    "read_gt_list",
    "read_idx",
    "read_list",
    "register_dataset",
    "resolve_data_root",
    "split_train_val",
    "training_data",
    "validation_split",
]
