"""Where in each loose training crop its labelled string is: the box list training reads.

A parish crop is labelled with its row number, not with where the number sits. For each crop
the candidate boxes of ``strings.locate`` are read by a recognizer, and the box whose CTC loss
for the label is lowest becomes the crop's string (multiple-instance choice); up to
``negatives`` other boxes that do not overlap it become places with no string (an empty
target), so that a model trained on them learns to say nothing for rules, marks and labels.
A crop whose best box still explains its label poorly (``max_loss`` nats per character) is
left out: the number was not among the candidates (too faint, or merged with a neighbour).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from strings.config import FieldConfig
from strings.data.base import ImageDataset
from strings.locate import Box, field_candidates
from strings.read.recognizer import Recognizer

__all__ = ["BoxChoice", "choose_boxes"]


@dataclass(frozen=True)
class BoxChoice:
    name: str  # the crop's file name
    label: str
    box: Box | None  # None: no candidate explained the label
    loss_per_char: float
    negatives: tuple[Box, ...]


def _overlaps(a: Box, b: Box) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _label_losses(rec: Recognizer, crops: list, label: str) -> list[float]:
    """CTC loss (nats) of ``label`` for each crop, from the recognizer's uncalibrated logits."""
    target = torch.tensor([rec.alphabet.encode(label)], dtype=torch.long)  # (1, L)
    losses = []
    for logits in rec.item_logits(crops):  # each (T, C)
        lp = logits.log_softmax(-1).unsqueeze(1)  # (T, 1, C)
        t = torch.tensor([lp.shape[0]])
        losses.append(float(torch.nn.functional.ctc_loss(lp, target, t, torch.tensor([len(label)]), reduction="sum", zero_infinity=True)))
    return losses


def choose_boxes(
    rec: Recognizer,
    dataset: ImageDataset,
    cfg: FieldConfig = FieldConfig(),
    negatives: int = 2,
    max_loss: float = 4.0,
    on_item: Callable[[], None] | None = None,
) -> list[BoxChoice]:
    """One ``BoxChoice`` per crop of ``dataset`` (whose labels are the strings to find)."""
    out = []
    for i in range(len(dataset)):
        sample = dataset[i]
        clean, boxes = field_candidates(sample.image, cfg)
        name = Path(sample.name).name
        if not boxes:
            out.append(BoxChoice(name, sample.label, None, float("inf"), ()))
        else:
            crops = [clean[y0:y1, x0:x1] for x0, y0, x1, y1 in boxes]
            losses = _label_losses(rec, crops, sample.label)
            best = min(range(len(boxes)), key=losses.__getitem__)
            per_char = losses[best] / max(1, len(sample.label))
            chosen = boxes[best] if per_char <= max_loss else None
            others = [b for j, b in enumerate(boxes) if j != best and not _overlaps(b, boxes[best])]
            out.append(BoxChoice(name, sample.label, chosen, per_char, tuple(others[:negatives])))
        if on_item is not None:
            on_item()
    return out
