"""Pictures of what was read: digit boxes, digits and confidences drawn over the image."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from strings.read.field import FieldReading
from strings.read.recognizer import Reading

__all__ = ["draw_field", "draw_reading"]

MIN_DRAW_HEIGHT = 160  # small crops are enlarged to at least this height so labels stay legible
BANNER = 28  # pixels of header above the image for the string and its confidence
SURE, UNSURE = (40, 160, 40), (30, 60, 220)  # BGR: box colour at or above / below the threshold
STRING, OTHER = (200, 120, 0), (170, 170, 170)  # BGR: the string found in a field crop / other places read


def draw_field(grey: np.ndarray, field: FieldReading, path: str | os.PathLike, threshold: float = 0.5) -> Path:
    """``draw_reading`` over a whole loose crop, with the found string's box (blue) and the
    other places read (grey, with what they read)."""
    boxes = [(b, OTHER, f"{r.text} {r.confidence:.2f}") for r, b in field.others]
    if field.box is not None:
        boxes.append((field.box, STRING, ""))
    return draw_reading(grey, field.reading, path, threshold, boxes)


def draw_reading(
    grey: np.ndarray, reading: Reading, path: str | os.PathLike, threshold: float = 0.5,
    regions: Sequence[tuple[tuple[int, int, int, int], tuple[int, int, int], str]] = (),
) -> Path:
    """Write a PNG of ``grey`` (H, W uint8) with each digit's box, character and confidence;
    digits under ``threshold`` are drawn in red; ``regions`` (box, colour, caption) are drawn
    first, under the digits. Returns the path written."""
    scale = max(1.0, MIN_DRAW_HEIGHT / max(1, grey.shape[0]))
    img = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    if scale > 1.0:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    h, w = img.shape[:2]
    canvas = np.full((h + BANNER, max(w, 220), 3), 255, np.uint8)
    canvas[BANNER:, :w] = img
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, max(1, round(scale / 2))
    for box, colour, caption in regions:
        x0, y0, x1, y1 = (round(v * scale) for v in box)
        cv2.rectangle(canvas, (x0, y0 + BANNER), (x1, y1 + BANNER), colour, thick)
        if caption:
            cv2.putText(canvas, caption, (x0 + 2, y0 + BANNER + 12), font, 0.4, colour, 1, cv2.LINE_AA)
    for d in reading.digits:
        x0, y0, x1, y1 = (round(v * scale) for v in d.box)
        colour = SURE if d.confidence >= threshold else UNSURE
        cv2.rectangle(canvas, (x0, y0 + BANNER), (x1, y1 + BANNER), colour, thick)
        label = f"{d.char} {d.confidence:.2f}"
        cv2.putText(canvas, label, (x0 + 2, y1 + BANNER - 4), font, 0.45, colour, 1, cv2.LINE_AA)
    title = f"{reading.text or '(nothing read)'}   confidence {reading.confidence:.3f}"
    cv2.putText(canvas, title, (6, BANNER - 9), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), canvas):
        raise OSError(f"cannot write {out} (is the suffix an image format, e.g. .png?)")
    return out
