"""Digit boxes from CTC frame spans.

CTC emits each digit as a spike one or two frames wide, usually inside the digit but not
covering it. A digit's box is therefore built from the spikes of the whole string: the string's
ink is cut halfway between neighbouring spikes, and each piece is tightened to the ink it holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["DIGIT_ASPECT", "INK_THRESHOLD", "digit_boxes"]

INK_THRESHOLD = 0.35  # normalised ink level (0 paper .. 1 darkest) that counts as a stroke
DIGIT_ASPECT = 0.7  # width / height of a typical handwritten digit, when there is no pitch to measure
MAIN_SHARE = 0.3  # strokes at least this share of the largest one's area belong to the digit


def _main_box(piece: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the digit's own strokes in a slice: the largest connected stroke and
    those of comparable size; specks, dots and the slivers of underlines or neighbours are
    dropped. None where the slice holds no ink. Read off the components' stats, no mask."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(piece.view(np.uint8), connectivity=8)
    if n <= 1:
        return None
    parts = stats[1:]  # (n - 1, 5): left, top, width, height, area
    areas = parts[:, cv2.CC_STAT_AREA]
    parts = parts[areas >= MAIN_SHARE * areas.max()]
    x0, y0 = parts[:, cv2.CC_STAT_LEFT], parts[:, cv2.CC_STAT_TOP]
    x1, y1 = x0 + parts[:, cv2.CC_STAT_WIDTH], y0 + parts[:, cv2.CC_STAT_HEIGHT]
    return int(x0.min()), int(y0.min()), int(x1.max()), int(y1.max())


def digit_boxes(
    ink: np.ndarray, spans: Sequence[tuple[int, int]], stride: int, original_shape: tuple[int, int]
) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) in the original image's pixels, one per span.

    Args:
        ink: (H, W) normalised image (ink bright), as fed to the model.
        spans: per digit, its frame range [start, end).
        stride: input columns per output frame.
        original_shape: (H0, W0) of the image before normalisation.
    """
    if not spans:
        return []
    h, w = ink.shape
    h0, w0 = original_shape
    sx, sy = w0 / w, h0 / h
    strokes = ink >= INK_THRESHOLD  # (H, W)
    cols = np.flatnonzero(strokes.any(axis=0))
    centres = [(s + e) / 2.0 * stride for s, e in spans]  # normalised columns
    left = float(cols[0]) if len(cols) else 0.0
    right = float(cols[-1] + 1) if len(cols) else float(w)
    # The outer digits reach at most half a digit pitch beyond their spikes, so a leading "#"
    # or a trailing "-" is not taken into their boxes.
    half = (float(np.median(np.diff(centres))) if len(centres) > 1 else float(h) * DIGIT_ASPECT) / 2.0
    first = max(min(left, centres[0]), centres[0] - half)
    last = min(max(right, centres[-1]), centres[-1] + half)
    cuts = [first] + [(a + b) / 2.0 for a, b in zip(centres, centres[1:])] + [last]
    boxes = []
    for k in range(len(spans)):
        a, b = int(np.floor(cuts[k])), int(np.ceil(cuts[k + 1]))
        a, b = max(0, min(a, w - 1)), max(1, min(b, w))
        if b <= a:
            b = a + 1
        found = _main_box(np.ascontiguousarray(strokes[:, a:b]))  # in the (H, b - a) slice
        if found is not None:
            x0, y0, x1, y1 = a + found[0], found[1], a + found[2], found[3]
        else:  # no ink: fall back to the cut and the full height
            x0, x1, y0, y1 = a, b, 0, h
        boxes.append(
            (int(np.floor(x0 * sx)), int(np.floor(y0 * sy)), int(min(w0, np.ceil(x1 * sx))), int(min(h0, np.ceil(y1 * sy))))
        )
    return boxes
