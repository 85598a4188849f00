"""The one evaluation loop: exact-match accuracy, CER and throughput of any reader over a dataset."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from strings.data.base import ImageDataset
from strings.metrics import StringMetrics

__all__ = ["EvalReport", "Reader", "evaluate"]


class Reader(Protocol):
    """What :func:`evaluate` reads with: a ``Recognizer`` or a ``DigitClassifier``."""

    def recognize_greys(self, greys: list[Any], names: list[str] | None = None, batch_size: int = 64) -> list[Any]: ...


@dataclass
class EvalReport:
    dataset: str
    n: int
    accuracy: float
    cer: float
    images_per_second: float
    seconds: float
    misses: list[tuple[str, str, str, float]] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)  # per image, in dataset order
    correct: list[bool] = field(default_factory=list)
    # (written truth, written reading) of every sample whose label gives the written form
    written: list[tuple[str, str]] = field(default_factory=list)
    written_confidences: list[float] = field(default_factory=list)  # the confidence of each ``written`` reading

    def to_dict(self) -> dict[str, Any]:
        per_item = ("misses", "confidences", "correct", "written", "written_confidences")
        return {k: v for k, v in self.__dict__.items() if k not in per_item}


def evaluate(rec: Reader, dataset: ImageDataset, batch_size: int = 64, progress: bool = False) -> EvalReport:
    """Exact-match accuracy, CER and throughput (image decoding included) over a dataset.

    ``rec`` is anything with ``recognize_greys(greys, names, batch_size)`` returning results
    with ``text`` and ``confidence``: a ``Recognizer``, or a ``strings.digits.DigitClassifier``
    (whose ``text`` is the digit's value, so accuracy is classification accuracy)."""
    from tqdm import tqdm

    metrics = StringMetrics()
    confidences: list[float] = []
    correct: list[bool] = []
    written: list[tuple[str, str]] = []
    written_conf: list[float] = []
    start = time.perf_counter()
    bar = tqdm(total=len(dataset), desc=f"eval {dataset.name}", unit="img", disable=not progress, leave=False)
    for lo in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(lo, min(lo + batch_size, len(dataset)))]
        readings = rec.recognize_greys([s.image for s in samples], [s.name for s in samples], batch_size)
        for s, r in zip(samples, readings):
            metrics.update(s.label, r.text, s.name, r.confidence)
            confidences.append(r.confidence)
            correct.append(r.text == s.label)
            if s.written is not None:
                written.append((s.written, getattr(r, "written", "") or r.text))
                written_conf.append(r.confidence)
        bar.update(len(samples))
    bar.close()
    secs = time.perf_counter() - start
    summary = metrics.summary()
    return EvalReport(
        dataset.name, int(summary["n"]), float(summary["accuracy"]), float(summary["cer"]),
        len(dataset) / secs if secs > 0 else 0.0, secs, metrics.misses, confidences, correct, written,
        written_conf,
    )


