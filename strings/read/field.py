"""Reading a loose field crop: every candidate place (strings.locate) read, the most
confident reading kept, the others returned beside it.

The recognizer's own calibrated confidence chooses between candidates, so a model trained on
field crops with their empty places (``strings field-boxes``) both reads the number and says
nothing, at low confidence, for a rule, a printed label or a stray mark.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from strings.config import FieldConfig
from strings.locate import Box, Places, find_places

if TYPE_CHECKING:
    from strings.read.recognizer import Reading, Recognizer

__all__ = ["FieldReader", "FieldReading", "read_fields"]


@dataclass(frozen=True)
class FieldReading:
    """The string found in a loose crop: its reading (digit boxes in the crop's pixels), the
    string's box (None: nothing found), and the other places read, most confident first."""

    reading: Reading
    box: Box | None
    others: tuple[tuple[Reading, Box], ...] = ()

    @property
    def text(self) -> str:
        return self.reading.text

    @property
    def confidence(self) -> float:
        return self.reading.confidence

    def to_dict(self) -> dict[str, Any]:
        d = self.reading.to_dict()
        d["box"] = list(self.box) if self.box is not None else None
        d["others"] = [{"text": r.text, "confidence": r.confidence, "box": list(b)} for r, b in self.others]
        return d


def _shifted(reading: Reading, box: Box, source: str) -> Reading:
    """A candidate's reading with its digit boxes moved from the candidate's pixels to the crop's."""
    x0, y0 = box[0], box[1]
    digits = tuple(dataclasses.replace(d, box=(d.box[0] + x0, d.box[1] + y0, d.box[2] + x0, d.box[3] + y0)) for d in reading.digits)
    return dataclasses.replace(reading, digits=digits, source=source)


def _without_leading_zeros(reading: Reading) -> Reading:
    """A field's reading without the 0s in front of its first other digit (a comb's placeholders);
    a reading of only 0s keeps its last. Confidence stays the whole reading's."""
    drop = min(len(reading.text) - len(reading.text.lstrip("0")), len(reading.text) - 1)
    if drop <= 0 or len(reading.digits) != len(reading.text):
        return reading
    written, seen = reading.written, 0
    for at, ch in enumerate(written):  # the written form from its drop-th digit on (marks between 0s go too)
        if ch.isdigit():
            if seen == drop:
                written = written[at:]
                break
            seen += 1
    return dataclasses.replace(reading, text=reading.text[drop:], digits=reading.digits[drop:], written=written)


def read_fields(
    rec: Recognizer, greys: Sequence[np.ndarray], sources: Sequence[str] | None = None,
    cfg: FieldConfig = FieldConfig(), batch_size: int = 64, places: Sequence[Places] | None = None,
) -> list[FieldReading]:
    """Read loose crops (grey uint8, dark on light); all their candidates go through the
    network in shared batches. ``places``: each crop's ``find_places(grey, cfg)``, where the
    caller has them already."""
    sources = sources if sources is not None else [""] * len(greys)
    searched = list(places) if places is not None else [find_places(grey, cfg) for grey in greys]
    if len(searched) != len(greys):
        raise ValueError(f"{len(searched)} places for {len(greys)} crops")
    crops: list[np.ndarray] = []
    owner: list[tuple[int, Box]] = []
    first: list[Box | None] = []  # a comb, or a line of strings read whole: preferred (see below)
    joined: list[int] = []
    for i, where in enumerate(searched):
        first.append(where.boxes[0] if where.comb or where.row else None)
        joined.append(where.row)
        for x0, y0, x1, y1 in where.boxes:
            crops.append(where.image[y0:y1, x0:x1])
            owner.append((i, (x0, y0, x1, y1)))
    per_item: list[list[tuple[Reading, Box]]] = [[] for _ in greys]
    for reading, (i, box) in zip(rec.recognize_greys(crops, batch_size=batch_size) if crops else [], owner):
        per_item[i].append((_shifted(reading, box, sources[i]), box))
    out = []
    for i, found in enumerate(per_item):
        # a comb's boxes hold the number: what they read comes before any single place in them;
        # so does a line of strings that reads at least a digit for each string it joined
        found = [f for f in found if f[0].text]
        if joined[i]:
            found = [f for f in found if f[1] != first[i] or len(f[0].text) >= joined[i]]
        found.sort(key=lambda f: (f[1] != first[i], -f[0].confidence))
        if not found:
            out.append(FieldReading(rec.empty_reading(sources[i]), None))
        else:
            best = _without_leading_zeros(found[0][0]) if cfg.strip_leading_zeros else found[0][0]
            out.append(FieldReading(best, found[0][1], tuple(found[1:])))
    return out


class FieldReader:
    """A recognizer that reads every image as a loose field crop: what ``evaluate`` (the one
    evaluation loop) and ``strings benchmark --field`` read with."""

    def __init__(self, rec: Recognizer, cfg: FieldConfig | None = None) -> None:
        self.rec = rec
        self.cfg = cfg or rec.field_config

    def recognize_greys(self, greys: Sequence[np.ndarray], names: Sequence[str] | None = None, batch_size: int = 64) -> list[FieldReading]:
        return read_fields(self.rec, greys, names, self.cfg, batch_size)
