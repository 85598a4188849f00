"""The CTC task of the training loop: digit strings read by DenseNet-CTC, the CTC loss, and
the training view that augments, normalises and widens each string to the CTC minimum."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from strings.alphabet import SCRIPT_DIGITS, Alphabet, mark_classes
from strings.config import MODEL_CONFIGS, TrainConfig
from strings.data.base import ImageDataset
from strings.decode.ctc import merge_marks
from strings.image import collate_images, prepare
from strings.models import DenseNetCTC, create_model
from strings.models.checkpoint import load_model, save_model
from strings.read.amount import written_scores
from strings.read.recognizer import Recognizer
from strings.train.evaluate import evaluate
from strings.train.tasks import register_task

__all__ = ["CTC_KERNELS", "CTCTask", "TrainStrings", "collate_train", "ctc_loss", "cudnn_ctc_eligible"]


CTC_KERNELS = ("native", "cudnn")


def ctc_loss(
    log_probs: Tensor, targets: Tensor, target_lengths: Tensor, kernel: str = "native", input_lengths: Tensor | None = None,
) -> tuple[Tensor, int]:
    """Mean per-symbol CTC loss over a batch, and the number of items whose loss was infinite
    (zeroed, so they add no gradient).

    Args:
        log_probs: (B, T, C) from the model.
        targets: 1-D int32 concatenated labels (on the CPU).
        target_lengths: (B,) int32.
        kernel: on CUDA, ``"native"`` (the default) hands PyTorch int64 targets on the GPU, which
            selects its own kernel; ``"cudnn"`` keeps the int32 CPU layout that selects cuDNN's
            (``cudnn_ctc_eligible``). cuDNN's gradient was measured wrong (torch 2.11, cuDNN
            9.19, H100: off by more than the gradient itself, and a model trained with it does
            not learn; ``benchmarks/gpu.py``), so it is kept only for that check. The CPU has
            one kernel and ignores this.
        input_lengths: (B,) valid frames per item (``model.output_lengths(widths)``), the same
            count decoding reads; None means every item fills all T frames. Frames of the right
            padding then take no part in the loss, as they take none in decoding (cuDNN's kernel
            needs equal lengths, so it is eligible only when they are all T).
    """
    if kernel not in CTC_KERNELS:
        raise ValueError(f"unknown CTC kernel {kernel!r}; choose from {', '.join(CTC_KERNELS)}")
    lp = log_probs.float().transpose(0, 1)  # (T, B, C)
    t, b, _ = lp.shape
    if input_lengths is None:
        input_lengths = torch.full((b,), t, dtype=torch.int32)
    elif input_lengths.shape != (b,) or int(input_lengths.max()) > t or int(input_lengths.min()) < 1:
        raise ValueError(f"input_lengths must be (B,) = ({b},) frame counts in 1..{t}, got {input_lengths.tolist()}")
    input_lengths = input_lengths.to(torch.int32)
    if lp.is_cuda and kernel == "native":
        targets, target_lengths = targets.to(lp.device, torch.long), target_lengths.to(lp.device, torch.long)
        input_lengths = input_lengths.to(lp.device, torch.long)
    per_item = nn.functional.ctc_loss(
        lp, targets, input_lengths, target_lengths, blank=0, reduction="none", zero_infinity=True
    )  # (B,)
    lengths = target_lengths.to(per_item.device)
    infinite = int(((per_item == 0) & (lengths > 0)).sum())
    return (per_item / lengths.clamp_min(1)).mean(), infinite


def cudnn_ctc_eligible(log_probs: Tensor, targets: Tensor, target_lengths: Tensor) -> bool:
    """Whether ``ctc_loss(..., kernel="cudnn")`` takes cuDNN's kernel, mirroring PyTorch's own
    check (``_use_cudnn_ctc_loss``): blank 0, float32 CUDA log-probs, int32 CPU targets, equal
    input lengths, every target shorter than 256 frames and not longer than T."""
    return bool(
        log_probs.is_cuda
        and torch.backends.cudnn.is_available()
        and targets.device.type == "cpu"
        and targets.dtype == torch.int32
        and target_lengths.dtype == torch.int32
        and int(target_lengths.max()) < 256
        and int(target_lengths.max()) <= log_probs.shape[1]
    )


class TrainStrings(Dataset):
    """Training view over several sources: augment, normalise, widen to the CTC minimum.

    For a model that reads amount marks (``mark_classes`` of its alphabet) the target is the
    written form where a sample has one; a sample without it (a real crop labelled with digits
    only) is flagged, and the loss lets the model write a mark anywhere in it (``merge_marks``).
    Each item is (image, target indices, marks known)."""

    def __init__(self, sources: list[ImageDataset], model: DenseNetCTC, preprocess, augment: bool) -> None:
        self.sources = sources
        self.offsets = np.cumsum([0] + [len(s) for s in sources])
        self.preprocess = preprocess
        self.alphabet = Alphabet(model.cfg.alphabet)
        self.reads_marks = bool(mark_classes(self.alphabet.symbols))
        self.stride = model.stride
        self.min_width = model.min_width
        self.augment = augment
        self._aug: Any = None
        self._aug_seed = 0

    def reseed(self, seed: int) -> None:
        """Restart the augmentation stream; called per period (and per worker) so that a
        resumed run augments exactly as an uninterrupted one would."""
        self._aug_seed = seed
        self._aug = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> tuple[np.ndarray, list[int], bool]:
        src = int(np.searchsorted(self.offsets, index, side="right") - 1)
        sample = self.sources[src][index - int(self.offsets[src])]
        img = sample.image
        if self.augment:
            if self._aug is None:
                from strings.data.augment import string_augmenter

                self._aug = string_augmenter(seed=self._aug_seed)
            img = self._aug(image=img)["image"]
        x, _ = prepare(img, self.preprocess)  # (H, W)
        known = not self.reads_marks or sample.written is not None
        target = sample.written if self.reads_marks and sample.written is not None else sample.label
        need = self.min_width(target)
        if x.shape[1] < need:
            x = np.pad(x, ((0, 0), (0, need - x.shape[1])))
        return x, self.alphabet.encode(target), known


def collate_train(
    batch: list[tuple[np.ndarray, list[int], bool]], multiple: int = 1
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Images (B, 1, H, W), widths (B,), concatenated targets, target lengths (B,), and (B,)
    whether each target transcribes the marks (False: digits only, marks unknown)."""
    images, widths = collate_images([b[0] for b in batch], multiple)
    targets = torch.tensor([k for _, t, _ in batch for k in t], dtype=torch.int32)
    lengths = torch.tensor([len(t) for _, t, _ in batch], dtype=torch.int32)
    known = torch.tensor([bool(b[2]) for b in batch], dtype=torch.bool)
    return images, widths, targets, lengths, known


class CTCTask:
    """Digit strings: DenseNet-CTC, CTC loss, validation by string accuracy and CER."""

    name = "ctc"
    loss_name = "CTC loss"

    def build(self, cfg: TrainConfig) -> tuple[DenseNetCTC, Any]:
        _, pre = MODEL_CONFIGS[cfg.model]
        alphabet = SCRIPT_DIGITS[cfg.script] if cfg.script != "latin" else None  # latin: the config's own
        return create_model(cfg.model, alphabet=alphabet), pre

    def train_data(self, sources: list[ImageDataset], model: nn.Module, preprocess: Any, augment: bool) -> Dataset:
        return TrainStrings(sources, model, preprocess, augment)  # type: ignore[arg-type]

    def augmentation(self, preprocess: Any) -> dict[str, Any]:
        from strings.data.augment import describe, string_augmenter

        return describe(string_augmenter())

    def collate(self, model: nn.Module) -> Callable[[list[Any]], Any]:
        return functools.partial(collate_train, multiple=model.stride)  # type: ignore[arg-type]

    def loss(
        self, model: nn.Module, batch: Any, dev: torch.device, autocast: Any, first_step: bool, log: Callable[[str], None],
    ) -> tuple[Tensor, int]:
        images, widths, targets, target_lengths, known = batch
        with autocast:
            log_probs = model(images.to(dev, non_blocking=True), widths)  # (B, T, C)
        net = getattr(model, "module", model)  # the network inside a DistributedDataParallel wrapper
        log_probs = merge_marks(log_probs, ~known, mark_classes(net.cfg.alphabet))
        return ctc_loss(log_probs, targets, target_lengths, input_lengths=net.output_lengths(widths))

    def validate(self, model: nn.Module, preprocess: Any, dataset: ImageDataset, dev: torch.device) -> dict[str, Any]:
        report = evaluate(Recognizer(model, preprocess, device=dev), dataset, batch_size=64)  # type: ignore[arg-type]
        metrics = {"accuracy": report.accuracy, "cer": report.cer, "n": report.n}
        if report.written and mark_classes(model.cfg.alphabet):  # logged, not chosen on
            scores = written_scores(report.written)
            metrics["written_accuracy"], metrics["value_accuracy"] = scores["accuracy"], scores["value_accuracy"]
        return metrics

    def save(self, path: Path, model: nn.Module, preprocess: Any, extra: dict[str, Any],
             tensors: dict[str, Tensor] | None = None) -> None:
        save_model(path, model, preprocess, extra, tensors=tensors)  # type: ignore[arg-type]

    def load(self, path: str | os.PathLike) -> tuple[nn.Module, Any, dict[str, Any], dict[str, Tensor]]:
        return load_model(path)

    def resolve(self, name_or_path: str) -> Path:
        from strings.read.recognizer import resolve_model

        return resolve_model(name_or_path)




register_task("ctc", lambda cfg: CTCTask())
