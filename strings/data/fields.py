"""Loose field crops as training strings: each crop cut to a chosen box of its clean image.

A register cell holds the row number somewhere among margins, rules and other writing; the
dataset labels only the number, not where it is. ``strings field-boxes`` (strings.train.fields)
chooses, per crop, the candidate box (strings.locate) that reads best as the label, and the
others as places with no string. This module reads that choice back as a dataset.

File format (TSV, ``#`` comments): ``file  x0  y0  x1  y1  label`` (an empty label: no string).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from strings.config import FieldConfig
from strings.data.base import DatasetError, FileDataset, ImageDataset, Sample
from strings.image import display_name, load_image
from strings.locate import Box, field_candidates

__all__ = ["BoxedDataset", "FieldCutDataset", "read_boxes", "write_boxes"]

BoxRow = tuple[str, Box, str]  # (file name, box, label)


def write_boxes(path: str | os.PathLike, rows: Iterable[BoxRow], header: str = "") -> None:
    """Write a box list atomically (a crash leaves the old file or none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for line in header.splitlines():
            f.write(f"# {line}\n")
        for name, (x0, y0, x1, y1), label in rows:
            f.write(f"{name}\t{x0}\t{y0}\t{x1}\t{y1}\t{label}\n")
    os.replace(tmp, path)


def read_boxes(path: str | os.PathLike) -> list[BoxRow]:
    """A box list; a malformed line is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"no box list {display_name(path)} (make one with `strings field-boxes`)")
    rows: list[BoxRow] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            if len(parts) != 6:
                raise ValueError(f"{len(parts)} fields, not 6")
            x0, y0, x1, y1 = (int(v) for v in parts[1:5])
            if not (0 <= x0 < x1 and 0 <= y0 < y1):
                raise ValueError(f"empty or negative box {(x0, y0, x1, y1)}")
            if parts[5] and not parts[5].isdigit():
                raise ValueError(f"label {parts[5]!r} is not digits")
        except ValueError as exc:
            raise DatasetError(f"{display_name(path)}:{n}: {exc}") from None
        rows.append((parts[0], (x0, y0, x1, y1), parts[5]))
    return rows


def _paths(ds: ImageDataset) -> list[str]:
    """The image files of a file dataset or of a carved part of one."""
    if isinstance(ds, FileDataset):
        return [str(p) for p, _ in ds.items]
    base, indices = getattr(ds, "base", None), getattr(ds, "indices", None)
    if isinstance(base, FileDataset) and indices is not None:
        return [str(base.items[i][0]) for i in indices]
    raise DatasetError(f"{ds.name}: boxes need a dataset of image files")


class BoxedDataset(ImageDataset):
    """The boxes of a box list cut from the clean images (margins and rules painted out, as
    ``strings.read.field`` reads them) of a ``FileDataset`` of loose crops."""

    def __init__(self, base: ImageDataset, rows: list[BoxRow], cfg: FieldConfig = FieldConfig()) -> None:
        by_name = {Path(p).name: Path(p) for p in _paths(base)}
        # rows of files outside ``base`` are left out: a train/validation carve boxes each part
        self.items = [(by_name[name], box, label) for name, box, label in rows if name in by_name]
        if not self.items:
            raise DatasetError(f"no boxed file is in {base.name}: is the box list for this dataset?")
        self.cfg = cfg
        self.name = f"{base.name}-boxed"

    def __len__(self) -> int:
        return len(self.items)

    def label(self, index: int) -> str:
        return self.items[index][2]

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        path, (x0, y0, x1, y1), label = self.items[index]
        clean, _ = field_candidates(load_image(path), self.cfg)  # the image the field reader cuts from
        return Sample(clean[y0:y1, x0:x1].copy(), label, f"{path}@{x0},{y0},{x1},{y1}")


class FieldCutDataset(ImageDataset):
    """Loose crops whose place of the string is not known (synthetic comb fields) cut as the
    field search sees them: the image it reads from (clean, or as it came where the crop is
    tight), over the span of all its candidate places. The reader so learns the leftovers of
    box edges, X placeholders and captions as nothing."""

    def __init__(self, base: ImageDataset, cfg: FieldConfig = FieldConfig()) -> None:
        self.base, self.cfg = base, cfg
        self.name = f"{base.name}-cut"

    def __len__(self) -> int:
        return len(self.base)

    def label(self, index: int) -> str:
        return self.base.label(index)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        sample = self.base[index]
        image, boxes = field_candidates(sample.image, self.cfg)
        if boxes:
            x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
            x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
            image = image[y0:y1, x0:x1]
        return dataclasses.replace(sample, image=np.ascontiguousarray(image))
