"""What a training run reads: its sources (real and synthetic, by name and weight), the
validation slice it is chosen on, and the per-period loaders that draw batches from them.

The training loop asks here once (:func:`training_data`) and gets loaders back; it never opens
a dataset or builds the generator itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from strings.alphabet import SCRIPT_DIGITS, mark_classes
from strings.config import MODEL_CONFIGS, TrainConfig, split_seed
from strings.data.base import DatasetError, ImageDataset, resolve_data_root
from strings.data.catalog import open_dataset, split_train_val
from strings.data.fields import BoxedDataset, FieldCutDataset, read_boxes
from strings.data.synth.comb import comb_fields, comb_fields_as_written
from strings.data.synth.compose import SynthStrings
from strings.data.synth.glyphs import GlyphBank
from strings.data.synth.paper import Backgrounds
from strings.data.synth.photo import photo_strings
from strings.data.synth.scripts import script_glyph_bank

__all__ = [
    "TrainingData", "build_sources", "extra_validation", "held_out_names", "synth_exclusions", "training_data", "validation_split",
]

# Synthetic sets with a registered name whose training split composes cheque glyphs and paper
_GENERATED: dict[str, Callable[..., ImageDataset]] = {
    "comb-fields": comb_fields, "comb-fields-as-written": comb_fields_as_written, "photo-strings": photo_strings,
}


def validation_split(cfg: TrainConfig, data_root: str | os.PathLike | None = None) -> tuple[ImageDataset, ImageDataset]:
    """The (fit, validation) halves of ``cfg.validation``'s train split that ``cfg`` trains and
    chooses its model on; rebuilt the same from a checkpoint's stored config."""
    root = resolve_data_root(data_root)
    fit, val = split_train_val(open_dataset(cfg.validation, "train", root), cfg.val_fraction, split_seed(cfg))
    boxes = next((src.boxes for src in cfg.sources if src.dataset == cfg.validation and src.boxes), "")
    if boxes:  # loose crops: carved by file, then each part cut to its boxes
        rows = read_boxes(boxes)
        return BoxedDataset(fit, rows), BoxedDataset(val, rows)
    return fit, val


def held_out_names(val: ImageDataset) -> set[str]:
    """File names of the validation crops, which the synthetic generator must not draw from.
    Fails closed: a validation set whose files cannot be named is an error, not an empty set."""
    items = getattr(getattr(val, "base", None), "items", None)
    indices = getattr(val, "indices", None)
    if items is None or indices is None:
        raise ValueError(f"cannot name the files of validation set {val.name!r}, so cannot keep them out of synthetic data")
    return {Path(items[i][0]).name for i in indices}


def synth_exclusions(cfg: TrainConfig, data_root: str | os.PathLike | None = None) -> set[str]:
    """The real crops a synthetic set made for ``cfg`` must not draw glyphs or paper from: the
    files of its validation slice (none when it validates on another dataset, or when the
    dataset is not under the data root, so that the generator cannot draw from it either)."""
    if cfg.validation != "car-a-partial":
        return set()
    try:
        _, val = validation_split(cfg, data_root)
    except DatasetError:
        return set()
    return held_out_names(val)


def _composed_exclusions(cfg: TrainConfig, val: ImageDataset) -> frozenset[str]:
    """The cheque crops a composed set (synth, photo, comb) must not draw glyphs or paper from:
    the files of the validation slice when the run validates on the real cheques."""
    return frozenset(held_out_names(val)) if cfg.validation == "car-a-partial" else frozenset()


def build_sources(
    cfg: TrainConfig, root: Path, fit: ImageDataset, val: ImageDataset
) -> tuple[list[ImageDataset], list[float]]:
    """Open every training source; the validation dataset's train split is replaced by its fit part."""
    sources, weights = [], []
    for src in cfg.sources:
        if src.dataset == "synth":
            # Digits and paper of the validation crops stay out of the synthetic strings.
            held_out = _composed_exclusions(cfg, val)
            if cfg.script == "latin":
                bank = GlyphBank.from_data(root, exclude=held_out)
            else:  # another script's numerals: composed from its own isolated digits (train split)
                bank = script_glyph_bank(cfg.script, root, "train")
            ds: ImageDataset = SynthStrings(
                bank,
                Backgrounds.from_data(root, exclude=held_out),
                n=cfg.synth_pool,
                seed=cfg.seed,
                charset=SCRIPT_DIGITS[cfg.script],
                transcribe_marks=bool(mark_classes(MODEL_CONFIGS[cfg.model][0].alphabet)),
            )
        elif src.dataset == cfg.validation and src.split == "train":
            ds = fit
        elif src.dataset in _GENERATED:  # composed like synth: the validation crops' glyphs and paper stay out
            ds = _GENERATED[src.dataset](root, src.split, exclude=_composed_exclusions(cfg, val))
        elif src.boxes:
            ds = BoxedDataset(open_dataset(src.dataset, src.split, root), read_boxes(src.boxes))
        else:
            ds = open_dataset(src.dataset, src.split, root)
        if src.field:
            ds = FieldCutDataset(ds)
        sources.append(ds)
        weights.append(src.weight)
    return sources, weights


@dataclass
class TrainingData:
    """The sources of one run with their batch shares, its validation slice, and the further
    validation sets the model is also chosen on."""

    sources: list[ImageDataset]
    weights: list[float]
    validation: ImageDataset
    extra: list[ImageDataset] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.sources):
            raise ValueError(f"{len(self.weights)} weights for {len(self.sources)} sources")

    def sample_weights(self) -> torch.Tensor:
        """Per-sample drawing weights (N,): each source gets its share of every batch, whatever its size."""
        return torch.cat([torch.full((len(s),), w / len(s), dtype=torch.double) for s, w in zip(self.sources, self.weights)])

    def loader(
        self,
        data: Dataset,
        n_batches: int,
        batch_size: int,
        generator: torch.Generator,
        collate: Callable[[list[Any]], Any],
        num_workers: int = 0,
        worker_init: Callable[[int], None] | None = None,
    ) -> DataLoader:
        """``n_batches`` batches drawn with replacement by the source weights; the generator
        fixes the draw, so a resumed period sees the batches an uninterrupted one would."""
        sampler = WeightedRandomSampler(self.sample_weights(), n_batches * batch_size, replacement=True, generator=generator)
        return DataLoader(
            data, batch_size=batch_size, sampler=sampler, collate_fn=collate,
            num_workers=num_workers, worker_init_fn=worker_init, generator=generator,
        )


def training_data(
    cfg: TrainConfig,
    data_root: str | os.PathLike | None = None,
    sources: list[ImageDataset] | None = None,
    validation: ImageDataset | None = None,
    weights: list[float] | None = None,
    extra: list[ImageDataset] | None = None,
) -> TrainingData:
    """Everything ``cfg`` trains and validates on; datasets passed in (tests, experiments built
    in memory) replace the ones ``cfg`` names."""
    if validation is None or sources is None:
        root = resolve_data_root(data_root)
        fit, val = validation_split(cfg, root)
        validation = validation or val
        if sources is None:
            sources, _ = build_sources(cfg, root, fit, val)
    if weights is None:
        weights = [s.weight for s in cfg.sources] if len(sources) == len(cfg.sources) else [1.0] * len(sources)
    if extra is None:
        extra = extra_validation(cfg, data_root, validation)
    return TrainingData(list(sources), list(weights), validation, list(extra))


def extra_validation(cfg: TrainConfig, data_root: str | os.PathLike | None, val: ImageDataset) -> list[ImageDataset]:
    """The validation splits of ``cfg.also_validate``; a composed set leaves out the glyphs and
    paper of the cheque validation slice, as its training split does."""
    if not cfg.also_validate:
        return []
    root = resolve_data_root(data_root)
    sets = []
    for name in cfg.also_validate:
        if name in _GENERATED:
            sets.append(_GENERATED[name](root, "validation", exclude=_composed_exclusions(cfg, val)))
        else:
            sets.append(open_dataset(name, "validation", root))
    return sets
