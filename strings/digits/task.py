"""The classify task of the one training loop (``TrainConfig.task = "classify"``), and what
single-digit evaluation adds to the one evaluation loop: the reject option and the SVM head.

The training loop itself lives in ``strings.train.loop``, which finds this task by name (it is
registered below); this module only supplies what differs
from digit strings: the network (``DigitNet``), the training view over digit datasets (each
image normalised once, then augmented per draw), cross-entropy, validation by classification
accuracy, and the model-file format.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from strings.alphabet import SCRIPT_DIGITS
from strings.config import DigitPreprocessConfig, TrainConfig
from strings.data import DatasetError, ImageDataset
from strings.digits.classifier import (
    DigitClassifier,
    load_digit_model,
    normalize_digit,
    resolve_digit_model,
    save_digit_model,
    svm_path_for,
    weights_digest,
)
from strings.models import DIGIT_CONFIGS, DigitNet, create_digit_model
from strings.train.evaluate import evaluate
from strings.train.tasks import register_task

__all__ = [
    "REJECT_RATES",
    "ClassifyTask",
    "TrainDigits",
    "collate_digits",
    "fit_svm_head",
    "plot_reject",
    "reject_summary",
]

# Rejection rates at which ``reject_summary`` reports the accuracy of the accepted digits.
REJECT_RATES = (0.001, 0.005, 0.01, 0.02, 0.05)


def _label_index(label: str, num_classes: int, name: str) -> int:
    if len(label) != 1 or not label.isdigit() or int(label) >= num_classes:
        raise DatasetError(f"{name}: label {label!r} is not a single digit value below {num_classes}")
    return int(label)


class TrainDigits(Dataset):
    """Training view over digit datasets: each image is normalised once to the model's canvas
    and kept as uint8 (60,000 MNIST digits take 47 MB), then augmented on every draw."""

    def __init__(
        self, sources: list[ImageDataset], preprocess: DigitPreprocessConfig, augment: bool, num_classes: int
    ) -> None:
        n = sum(len(s) for s in sources)
        size = preprocess.size
        self.canvases = np.zeros((n, size, size), np.uint8)  # (N, S, S) ink bright
        self.labels = np.zeros(n, np.int64)
        i = 0
        for src in sources:
            for j in range(len(src)):
                sample = src[j]
                self.labels[i] = _label_index(sample.label, num_classes, sample.name)
                canvas = normalize_digit(sample.image, preprocess, sample.name, dark_ink=True)  # dataset convention
                self.canvases[i] = np.round(canvas * 255.0)
                i += 1
        self.size = size
        self.augment = augment
        self._aug: Any = None
        self._aug_seed = 0

    def reseed(self, seed: int) -> None:
        """Restart the augmentation stream (per period and per worker, as ``TrainStrings``)."""
        self._aug_seed = seed
        self._aug = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        img = self.canvases[index]
        if self.augment:
            if self._aug is None:
                from strings.data.augment import digit_augmenter

                self._aug = digit_augmenter(self.size, seed=self._aug_seed)
            img = self._aug(image=img)["image"]
        return img.astype(np.float32) / 255.0, int(self.labels[index])  # (S, S) in [0, 1]


def collate_digits(batch: list[tuple[np.ndarray, int]]) -> tuple[Tensor, Tensor]:
    """Images (B, 1, S, S) float32 and labels (B,) int64."""
    images = torch.from_numpy(np.stack([b[0] for b in batch]))[:, None]
    return images, torch.tensor([b[1] for b in batch], dtype=torch.long)


class ClassifyTask:
    """Single digits: DigitNet, cross-entropy, validation by classification accuracy."""

    name = "classify"
    loss_name = "cross-entropy"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def build(self, cfg: TrainConfig) -> tuple[DigitNet, DigitPreprocessConfig]:
        _, pre = DIGIT_CONFIGS[cfg.model]
        return create_digit_model(cfg.model, symbols=SCRIPT_DIGITS[cfg.script]), pre

    def train_data(self, sources: list[ImageDataset], model: nn.Module, preprocess: Any, augment: bool) -> Dataset:
        return TrainDigits(sources, preprocess, augment, model.num_classes)  # type: ignore[arg-type]

    def augmentation(self, preprocess: DigitPreprocessConfig) -> dict[str, Any]:
        from strings.data.augment import describe, digit_augmenter

        return describe(digit_augmenter(preprocess.size))

    def collate(self, model: nn.Module) -> Callable[[list[Any]], Any]:
        return collate_digits

    def loss(
        self, model: nn.Module, batch: Any, dev: torch.device, autocast: Any, first_step: bool, log: Callable[[str], None],
    ) -> tuple[Tensor, int]:
        images, labels = batch
        with autocast:
            logits = model(images.to(dev, non_blocking=True))  # (B, K)
        loss = F.cross_entropy(logits.float(), labels.to(dev), label_smoothing=self.label_smoothing)
        return loss, int(not bool(torch.isfinite(loss)))

    def validate(self, model: nn.Module, preprocess: Any, dataset: ImageDataset, dev: torch.device) -> dict[str, Any]:
        clf = DigitClassifier(model, preprocess, device=dev, dark_ink=True)  # type: ignore[arg-type]
        report = evaluate(clf, dataset, batch_size=256)
        return {"accuracy": report.accuracy, "n": report.n}

    def save(self, path: Path, model: nn.Module, preprocess: Any, extra: dict[str, Any],
             tensors: dict[str, Tensor] | None = None) -> None:
        save_digit_model(path, model, preprocess, extra, tensors=tensors)  # type: ignore[arg-type]

    def load(self, path: str | os.PathLike) -> tuple[nn.Module, Any, dict[str, Any], dict[str, Tensor]]:
        return load_digit_model(path)

    def resolve(self, name_or_path: str) -> Path:
        return resolve_digit_model(name_or_path)


register_task("classify", lambda cfg: ClassifyTask(label_smoothing=cfg.label_smoothing))


# --------------------------------------------------------------------------- reject option


def reject_summary(
    confidences: list[float], correct: list[bool], rates: tuple[float, ...] = REJECT_RATES
) -> dict[str, Any]:
    """Accuracy against rejection, rejecting the least confident digits first.

    Returns ``rejection_for_zero_errors`` (the smallest share of digits that must be rejected
    for the accepted ones to hold no error, with a confidence threshold that can realise it:
    ties are accepted or rejected together) and its ``threshold`` (accept confidence >=
    threshold; None when even the most confident digit is wrong), and
    ``accuracy_at_rejection``: for each rate r, the accuracy of the digits left after rejecting
    the ceil(r n) least confident.
    """
    from strings.metrics import read_rate_at_error, reject_curve

    n = len(confidences)
    if n == 0:
        return {"n": 0, "errors": 0, "rejection_for_zero_errors": 0.0, "threshold": None, "accuracy_at_rejection": {}}
    read, err, _ = reject_curve(confidences, correct)
    zero = read_rate_at_error(confidences, correct, targets=(0.0,))["0"]
    at = {}
    for r in rates:
        accepted = n - math.ceil(r * n - 1e-9)
        at[f"{r:g}"] = 1.0 - err[accepted - 1] if accepted > 0 else None
    return {
        "n": n,
        "errors": int(n - sum(bool(c) for c in correct)),
        "rejection_for_zero_errors": 1.0 - float(zero["read_rate"] or 0.0),
        "threshold": zero["threshold"],
        "accuracy_at_rejection": at,
    }


def plot_reject(confidences: list[float], correct: list[bool], path: str | os.PathLike, title: str) -> None:
    """PNG of the accuracy of the accepted digits against the rejection rate, with the
    rejection needed for zero errors marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from strings.metrics import reject_curve

    read, err, _ = reject_curve(confidences, correct)
    summary = reject_summary(confidences, correct)
    rejection = [1.0 - r for r in read]
    accuracy = [1.0 - e for e in err]
    zero = summary["rejection_for_zero_errors"]
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(rejection, accuracy, color="tab:blue")
    right = min(1.0, max(0.05, 2.0 * zero))
    ax.axvline(zero, color="tab:red", lw=0.8, ls="--")
    ax.text(zero, min(accuracy), f" zero errors at {zero:.2%} rejected ", color="tab:red", fontsize=8, va="bottom",
            ha="left" if zero < 0.6 * right else "right")
    ax.set_xlim(0, right)
    ax.set_xlabel("rejection rate (least confident rejected first)")
    ax.set_ylabel("accuracy of accepted digits")
    ax.set_title(f"Accuracy vs rejection: {title}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# --------------------------------------------------------------------------- SVM head


def fit_svm_head(
    model: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    dataset: str | None = None,
    C: float = 10.0,
    max_train: int = 0,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fit an RBF SVM on a trained classifier's features of the *fit* part of its training
    split (the same validation slice is carved as in training, from the config stored in the
    model, so the SVM never sees a validation or test digit), compare it with the softmax head
    on the validation slice, and write it beside the model (or to ``out``).

    ``dataset`` fits on another registered digit set instead (carved the same way);
    ``max_train > 0`` fits on a seeded random subset of that many digits (an SVM's cost grows
    with the square of the training set).
    """
    import dataclasses

    import sklearn

    from strings.config import from_dict
    from strings.digits.svm import fit_svm, save_svm
    from strings.data.sources import validation_split
    from strings.digits.classifier import bundled_digit_models

    path = resolve_digit_model(model)
    if out is None and isinstance(model, str) and model in bundled_digit_models():
        raise ValueError("a bundled model's SVM head must go elsewhere than the package: give --out")
    net, pre, meta, _ = load_digit_model(path)
    if "train_config" not in meta:
        raise ValueError(f"{path} does not record its training config, so its training split cannot be rebuilt")
    cfg = from_dict(TrainConfig, meta["train_config"])
    if dataset is not None:
        cfg = dataclasses.replace(cfg, validation=dataset)
    fit, val = validation_split(cfg, data_root)
    indices = np.arange(len(fit))
    if 0 < max_train < len(fit):
        indices = np.sort(np.random.default_rng(seed).choice(len(fit), max_train, replace=False))
    clf = DigitClassifier(net, pre, dark_ink=True)  # dataset samples: dark on light
    t0 = time.perf_counter()
    samples = [fit[int(i)] for i in indices]
    feats = clf.features([s.image for s in samples])
    labels = np.array([_label_index(s.label, net.num_classes, s.name) for s in samples])
    log(f"features of {len(samples)} {fit.name} digits in {time.perf_counter() - t0:.1f} s; fitting the SVM (C={C})")
    t1 = time.perf_counter()
    head = fit_svm(feats, labels, C=C)
    fit_seconds = time.perf_counter() - t1
    softmax = evaluate(clf, val, batch_size=256)
    svm = evaluate(DigitClassifier(net, pre, head="svm", svm=head, dark_ink=True), val, batch_size=256)
    target = Path(out) if out is not None else svm_path_for(path)
    result = {
        "model": str(path),
        "svm": str(target),
        "fitted_on": f"{fit.name} ({len(samples)} digits)",
        "C": C,
        "gamma": head.gamma,
        "support_vectors": int(head.support_vectors.shape[0]),
        "fit_seconds": round(fit_seconds, 2),
        "validation": {"dataset": val.name, "n": svm.n, "svm_accuracy": svm.accuracy, "softmax_accuracy": softmax.accuracy},
    }
    save_svm(target, head, {"model_weights": weights_digest(net), "C": C, "fitted_on": result["fitted_on"],
                            "validation": result["validation"], "sklearn": sklearn.__version__})
    return result
