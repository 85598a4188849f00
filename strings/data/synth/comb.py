"""Comb fields: a number written one digit per printed box, as on forms and tally sheets,
photographed with a phone.

The number is right-aligned in a row of boxes; the unused leading boxes are left empty, crossed
out with an X, or hold a 0 (placeholders: the label is the number without them; the training
stream ``comb-fields-as-written`` labels the placeholder 0s as the digits they are, and the field
reader drops a field's leading zeros, ``FieldConfig.strip_leading_zeros``). Each field is a
pure function of ``(seed, index)``. The ``test`` split composes MNIST *test* digits, which no
model trains on, under its own seed; ``train`` composes the training glyph bank.

Example:
    >>> from strings.data import open_dataset
    >>> ds = open_dataset("comb-fields", "test", "../shared/data")  # doctest: +SKIP
    >>> ds[0].label  # doctest: +SKIP
    '3071'
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from strings.data.base import ImageDataset, Sample
from strings.data.catalog import register_dataset
from strings.data.synth.common import SynthConfig, _u
from strings.data.synth.compose import split_materials
from strings.data.synth.damage import _degrade, phone_capture
from strings.data.synth.glyphs import GlyphBank
from strings.data.synth.paper import Backgrounds

__all__ = ["CombConfig", "CombFields", "comb_fields", "comb_fields_as_written"]

PLACEHOLDERS = ("empty", "x", "zero")


@dataclass(frozen=True)
class CombConfig:
    """Every knob of a comb field; lengths in units of the box height unless they end in ``_px``."""

    boxes: tuple[int, int] = (3, 8)  # boxes in the comb, inclusive
    box_height_px: tuple[float, float] = (26.0, 56.0)
    box_aspect: tuple[float, float] = (0.7, 1.1)  # box width / height
    placeholder_weights: tuple[float, float, float] = (0.4, 0.4, 0.2)  # empty, x, zero (PLACEHOLDERS)
    p_full: float = 0.15  # every box used
    line_px: tuple[float, float] = (1.0, 3.0)
    line_grey: tuple[float, float] = (40.0, 150.0)  # printed box lines: black to pale
    ink_grey: tuple[float, float] = (10.0, 90.0)
    digit_height: tuple[float, float] = (0.5, 0.85)  # of the box height
    digit_jitter: float = 0.08  # offset of a digit in its box, +- this
    margin: tuple[float, float] = (0.25, 0.8)  # paper around the comb (a crop cut by fixed coordinates)
    p_label: float = 0.4  # a printed caption beside the comb ("No.", "Total")
    rotation_deg: float = 2.0
    perspective: float = 0.025  # corner jitter, share of the field's size
    p_shadow: float = 0.5  # a phone's shadow / uneven light: a linear ramp of brightness
    shadow_depth: tuple[float, float] = (0.1, 0.45)


class CombFields(ImageDataset):
    """``n`` comb fields drawn from ``bank`` on ``backgrounds``, fixed by ``seed``."""

    def __init__(self, bank: GlyphBank, backgrounds: Backgrounds, n: int, seed: int, cfg: CombConfig = CombConfig(),
                 synth: SynthConfig = SynthConfig(), zeros_written: bool = False) -> None:
        self.bank, self.backgrounds, self.n, self.seed, self.cfg, self.synth = bank, backgrounds, n, seed, cfg, synth
        self.zeros_written = zeros_written  # label placeholder 0s (a reader cannot tell a leading 0 from an inner one)
        self.name = "comb-fields"

    def __len__(self) -> int:
        return self.n

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, index, 0xC0B))

    def _layout(self, rng: np.random.Generator) -> tuple[int, str, str]:
        """(boxes, label, placeholder kind)."""
        lo, hi = self.cfg.boxes
        n_boxes = int(rng.integers(lo, hi + 1))
        k = n_boxes if rng.random() < self.cfg.p_full else int(rng.integers(1, n_boxes + 1))
        label = str(int(rng.integers(1, 10))) + "".join(str(int(d)) for d in rng.integers(0, 10, k - 1))
        w = np.asarray(self.cfg.placeholder_weights, dtype=float)
        kind = PLACEHOLDERS[int(rng.choice(len(PLACEHOLDERS), p=w / w.sum()))]
        return n_boxes, label, kind

    def _written(self, n_boxes: int, label: str, kind: str) -> str:
        """The training target: the number, with its placeholder 0s where ``zeros_written``."""
        return "0" * (n_boxes - len(label)) + label if self.zeros_written and kind == "zero" else label

    def label(self, index: int) -> str:
        return self._written(*self._layout(self._rng(index)))

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        rng = self._rng(index)
        n_boxes, label, kind = self._layout(rng)
        return Sample(self._render(rng, n_boxes, label, kind), self._written(n_boxes, label, kind), f"comb-fields[{index}]")

    def _render(self, rng: np.random.Generator, n_boxes: int, label: str, kind: str) -> np.ndarray:
        c = self.cfg
        bh = math.exp(_u(rng, (math.log(c.box_height_px[0]), math.log(c.box_height_px[1]))))
        bw = bh * _u(rng, c.box_aspect)
        mx, my = bh * _u(rng, c.margin), bh * _u(rng, c.margin)
        caption = rng.random() < c.p_label
        cap_w = 2.2 * bh if caption else 0.0
        w, h = int(round(2 * mx + cap_w + n_boxes * bw)), int(round(2 * my + bh))
        img = self.backgrounds.sample(rng, h, w).astype(np.float32)  # (h, w) grey paper
        x0, y0 = mx + cap_w, my
        line_g, lw = _u(rng, c.line_grey), max(1, int(round(_u(rng, c.line_px))))
        if caption:
            text = ("No.", "Total", "Nr", "ID", "Qty")[int(rng.integers(5))]
            mask = np.zeros((h, w), np.uint8)  # putText draws on 8-bit images only
            cv2.putText(mask, text, (int(mx), int(y0 + 0.7 * bh)), cv2.FONT_HERSHEY_SIMPLEX, bh / 45.0, 255, 1, cv2.LINE_AA)
            a = mask.astype(np.float32) / 255.0
            img = img * (1 - a) + line_g * a
        for i in range(n_boxes + 1):  # verticals, then the top and bottom rules
            x = int(round(x0 + i * bw))
            cv2.line(img, (x, int(y0)), (x, int(y0 + bh)), line_g, lw)
        cv2.line(img, (int(x0), int(y0)), (int(x0 + n_boxes * bw), int(y0)), line_g, lw)
        cv2.line(img, (int(x0), int(y0 + bh)), (int(x0 + n_boxes * bw), int(y0 + bh)), line_g, lw)
        ink = _u(rng, c.ink_grey)
        source = self.bank.pick_source(rng, self.synth)
        unused = n_boxes - len(label)
        cells = [("0" if kind == "zero" else kind) for _ in range(unused)] + list(label)
        for i, what in enumerate(cells):
            cx, cy = x0 + (i + 0.5) * bw, y0 + 0.5 * bh
            if what == "empty":
                continue
            if what == "x":
                r = 0.3 * bh * _u(rng, (0.8, 1.2))
                t = max(1, int(round(0.06 * bh)))
                for sx in (-1, 1):
                    cv2.line(img, (int(cx - sx * r), int(cy - r)), (int(cx + sx * r), int(cy + r)), ink, t, cv2.LINE_AA)
                continue
            self._paste(rng, img, what, source, cx + _u(rng, (-1, 1)) * c.digit_jitter * bw,
                        cy + _u(rng, (-1, 1)) * c.digit_jitter * bh, bh * _u(rng, c.digit_height), ink)
        img = phone_capture(rng, img, c.rotation_deg, c.perspective, c.p_shadow, c.shadow_depth)
        return _degrade(rng, img, self.synth)

    def _paste(self, rng: np.random.Generator, img: np.ndarray, digit: str, source: str,
               cx: float, cy: float, dh: float, ink: float) -> None:
        glyph = self.bank.sample(rng, digit, source, self.synth).image  # dark on light, tight
        gh, gw = glyph.shape
        th = max(4, int(round(dh)))
        tw = max(2, int(round(gw * th / gh)))
        alpha = cv2.resize(255 - glyph, (tw, th), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        x, y = int(round(cx - tw / 2)), int(round(cy - th / 2))
        H, W = img.shape
        xa, ya, xb, yb = max(0, x), max(0, y), min(W, x + tw), min(H, y + th)
        if xb <= xa or yb <= ya:
            return
        a = alpha[ya - y : yb - y, xa - x : xb - x]
        region = img[ya:yb, xa:xb]
        img[ya:yb, xa:xb] = region * (1 - a) + ink * a

COMB_TEST_SEED = 20231  # the benchmark's own seed; training uses TrainConfig.seed
COMB_TEST_N = 1000
COMB_TRAIN_N = 200_000  # the training stream; field i is rendered on demand


def comb_fields(data_root: str | os.PathLike | None, split: str, n: int | None = None, seed: int | None = None,
                exclude: frozenset[str] = frozenset(), zeros_written: bool = False) -> CombFields:
    """The comb-field set of ``split``: ``test`` composes MNIST test digits on synthetic paper
    (nothing a model trains on); ``train`` the training glyph bank on real and synthetic paper,
    leaving out the cheque crops named in ``exclude`` (a validation slice)."""
    if split not in ("train", "test"):
        raise ValueError(f"comb-fields: split must be train or test, got {split!r}")
    default_n, default_seed = (COMB_TEST_N, COMB_TEST_SEED) if split == "test" else (COMB_TRAIN_N, 0)
    ds = CombFields(*split_materials(data_root, split, exclude), n or default_n, default_seed if seed is None else seed,
                    zeros_written=zeros_written)
    ds.name = f"comb-fields-{split}" + ("-as-written" if zeros_written else "")
    return ds


def comb_fields_as_written(data_root: str | os.PathLike | None, split: str, n: int | None = None, seed: int | None = None,
                           exclude: frozenset[str] = frozenset()) -> CombFields:
    """``comb_fields`` labelled with the placeholder 0s it draws: the training stream for a
    reader whose field search drops leading zeros (a model taught to skip a boxed 0 also skips
    inner ones: 26 of the bundled field model's 105 misses on 300 training-bank fields)."""
    return comb_fields(data_root, split, n, seed, exclude, zeros_written=True)


def _read(root: Path, split: str) -> ImageDataset:
    return comb_fields(root, split)


register_dataset("comb-fields", _read)
