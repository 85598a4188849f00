"""How much a crop's margin moves the reading: real CAR-A crops read as given, with paper added
round them, and cut tighter.

A bank's pipeline cuts the amount field by layout, so crops come with more or less paper than
the training crops had. Each variant changes every crop of the split the same way:

- ``padP_paper``: P heights of flat paper (the crop's median grey) on every side;
- ``padP_edge``: the same, repeating the crop's border pixels (lines and texture run on);
- ``cropP``: P heights cut from every side.

    python benchmarks/margins.py --data-root ../shared/data --model default --split val
    python benchmarks/margins.py --data-root ../shared/data --model default --split test --set-preprocess trim=false

``--split val`` is the seeded validation slice of the default recipe (what models are chosen
on); ``test`` is the test split. ``--set-preprocess`` reads with a changed preprocessing (as
``benchmarks/bundle_model.py`` takes it), to compare with and without trimming.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Callable

import cv2
import numpy as np

from bundle_model import parse_setting

DATASET = "car-a-partial"
RECIPE = "configs/default.toml"


def pad(grey: np.ndarray, share: float, edge: bool) -> np.ndarray:
    p = int(round(grey.shape[0] * share))
    if edge:
        return cv2.copyMakeBorder(grey, p, p, p, p, cv2.BORDER_REPLICATE)
    return cv2.copyMakeBorder(grey, p, p, p, p, cv2.BORDER_CONSTANT, value=int(np.median(grey)))


def crop(grey: np.ndarray, share: float) -> np.ndarray:
    h, w = grey.shape
    p = int(round(h * share))
    return grey[p : h - p, p : w - p] if h > 2 * p and w > 2 * p else grey


VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as_given": lambda g: g,
    "pad0.25_edge": lambda g: pad(g, 0.25, edge=True),
    "pad0.25_paper": lambda g: pad(g, 0.25, edge=False),
    "pad0.5_paper": lambda g: pad(g, 0.5, edge=False),
    "pad1_paper": lambda g: pad(g, 1.0, edge=False),
    "crop0.05": lambda g: crop(g, 0.05),
}


def main() -> None:
    from strings.config import load_train_file
    from strings.data import open_dataset
    from strings.data.base import resolve_data_root
    from strings.data.sources import validation_split
    from strings.read.loading import load

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--model", default="default")
    ap.add_argument("--split", choices=("val", "test"), default="val")
    ap.add_argument("--set-preprocess", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    root = resolve_data_root(args.data_root)
    if args.split == "val":
        _, ds = validation_split(load_train_file(RECIPE), root)
    else:
        ds = open_dataset(DATASET, "test", root)
    samples = [ds[i] for i in range(len(ds))]
    rec = load(args.model)
    changes = dict(parse_setting(t) for t in args.set_preprocess)
    if changes:
        rec.preprocess = dataclasses.replace(rec.preprocess, **changes)
    result = {"model": args.model, "split": f"{ds.name} ({len(samples)})", "preprocess": dataclasses.asdict(rec.preprocess)}
    for name, change in VARIANTS.items():
        readings = rec.recognize_greys([change(s.image) for s in samples])
        result[name] = sum(r.text == s.label for r, s in zip(readings, samples)) / len(samples)
        print(f"{name:14s} {result[name]:.4f}", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
