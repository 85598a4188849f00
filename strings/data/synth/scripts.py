"""Synthetic digit strings in any script's numerals, for string models of that script.

Why: there is no real handwritten Bangla (or Devanagari, Telugu...) digit-string set here, but
each script has a set of isolated handwritten numerals. The same generator that composes
cheque amounts from MNIST digits (``strings.data.synth.SynthStrings``) composes them from those
numerals; the labels are written in the script's own numerals (``SCRIPT_DIGITS``), so a model
trained on them has that alphabet and reads ``"১৫০০"``, not ``"1500"``.

Registered datasets ``<script>-strings`` (e.g. ``bangla-strings``): the ``train`` split composes
``SCRIPT_STRINGS_N["train"]`` strings from the script's *training* digits, ``test`` composes
``SCRIPT_STRINGS_N["test"]`` strings from its *test* digits (repeats of training images already
dropped by the reader), so test strings hold no digit image the model was trained on. A
validation slice carved from ``train`` shares digit images with the fitted part, so its accuracy
is optimistic; the test split is the honest number.

Example:
    >>> from strings.data.synth.scripts import script_strings
    >>> ds = script_strings("bangla", "train", "../shared/data")  # doctest: +SKIP
    >>> ds[0].label  # doctest: +SKIP
    '৪০৭'
"""

from __future__ import annotations

import os
from pathlib import Path

from strings.alphabet import SCRIPT_DIGITS
from strings.data.base import DatasetError, ImageDataset, resolve_data_root
from strings.data.catalog import open_dataset, register_dataset
from strings.data.digitsets import SCRIPT_DATASETS
from strings.data.synth.compose import SynthStrings
from strings.data.synth.glyphs import GlyphBank

__all__ = ["SCRIPT_STRINGS_N", "SCRIPT_STRINGS_SEED", "script_glyph_bank", "script_strings", "read_script_strings"]

SCRIPT_STRINGS_N = {"train": 20000, "test": 2000}  # strings per split of a <script>-strings dataset
SCRIPT_STRINGS_SEED = {"train": 0, "test": 1}  # string i of a split depends only on (seed, i)


def script_glyph_bank(script: str, data_root: str | os.PathLike | None = None, split: str = "train") -> GlyphBank:
    """The isolated numerals of ``script`` (its registered digit dataset, ``split``) as glyphs
    labelled with the script's own numerals."""
    if script not in SCRIPT_DIGITS or script not in SCRIPT_DATASETS:
        raise ValueError(f"unknown script {script!r}; known: {', '.join(SCRIPT_DATASETS)}")
    ds = open_dataset(SCRIPT_DATASETS[script], split, resolve_data_root(data_root))
    images = getattr(ds, "images", None)
    if images is None:
        raise DatasetError(f"{ds.name}: glyphs need an in-memory image array")
    symbols = SCRIPT_DIGITS[script]
    labels = [symbols[int(v)] for v in ds.labels()]
    return GlyphBank.from_arrays(images, labels, source=script, ink_bright=bool(getattr(ds, "ink_bright", False)))


def script_strings(
    script: str,
    split: str = "train",
    data_root: str | os.PathLike | None = None,
    n: int | None = None,
    seed: int | None = None,
) -> SynthStrings:
    """Synthetic strings of ``script``'s numerals composed from its ``split`` digits."""
    if split not in SCRIPT_STRINGS_N:
        raise DatasetError(f"{script}-strings: split must be train or test, got {split!r}")
    bank = script_glyph_bank(script, data_root, split)
    ds = SynthStrings(
        bank, None, n=SCRIPT_STRINGS_N[split] if n is None else n,
        seed=SCRIPT_STRINGS_SEED[split] if seed is None else seed, charset=SCRIPT_DIGITS[script],
    )
    ds.name = f"{script}-strings-{split}"
    return ds


def read_script_strings(root: Path, script: str, split: str) -> SynthStrings:
    """The reader behind the registered ``<script>-strings`` datasets."""
    return script_strings(script, split, root)


def _reader(script: str):
    def read(root: Path, split: str) -> ImageDataset:
        return read_script_strings(root, script, split)

    return read


for _script in SCRIPT_DATASETS:
    if _script == "latin":  # latin strings are the cheque generator's own (the synth source)
        continue
    register_dataset(f"{_script}-strings", _reader(_script))
