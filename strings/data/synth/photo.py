"""Phone photos of digit strings: IDs, phone numbers, dates and amounts written in ballpoint or
felt pen on white, beige or grey paper, photographed small (18-32 px high) with uneven light.

Why this exists: the real phone photos users bring (80-100 x 22-31 px crops, blue ballpoint on
beige or grey paper) read badly with a model trained on scanned cheques: trailing digits drop,
neighbours merge, 8 reads as 9 or 0. The layout of the ink comes from the cheque generator
(:class:`SynthStrings`, with longer and less amount-like labels); this module paints it in
colour, photographs it and converts it to grey exactly as ``strings.image.load_image`` converts
an RGB photo. Each image is a pure function of ``(seed, index)``. The ``test`` split composes
MNIST *test* digits (no model trains on them) on synthetic paper under its own seed.

Example:
    >>> from strings.data import open_dataset
    >>> ds = open_dataset("photo-strings", "test", "../shared/data")  # doctest: +SKIP
    >>> ds[0].label, ds[0].image.shape  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from strings.data.base import ImageDataset, Sample
from strings.data.catalog import register_dataset
from strings.data.synth.common import _U8_MAX, SynthConfig, _u
from strings.data.synth.compose import SynthStrings, sample_label, split_materials
from strings.data.synth.damage import phone_capture
from strings.data.synth.glyphs import GlyphBank
from strings.data.synth.paper import Backgrounds

__all__ = ["PHOTO_LAYOUT", "PhotoConfig", "PhotoStrings", "photo_strings"]

_RGB = tuple[float, float, float]

# The pen layout of a photographed string: 1-12 digits (IDs, phone numbers, postal codes, dates
# written without separators), fewer amount-shaped labels, no cheque security print, few marks,
# strokes from a fine ballpoint to a felt pen. Damage is the photo's own (PhotoConfig).
PHOTO_LAYOUT = replace(
    SynthConfig(),
    length_weights=(0.04, 0.05, 0.07, 0.09, 0.1, 0.11, 0.11, 0.12, 0.09, 0.08, 0.07, 0.07),
    pattern_weights=(0.6, 0.25, 0.15),
    spacing_mode_weights=(0.25, 0.55, 0.15, 0.05),  # people space phone numbers and IDs
    stroke_ratio=(0.06, 0.17),
    digit_height_px=(24.0, 48.0),
    p_thousands_sep=0.05,
    p_trailing_mark=0.08,
    p_leading_mark=0.03,
    p_underline=0.15,
    p_box=0.05,
    p_blur=0.0,
    p_rescale=0.0,
    p_noise=0.0,
    p_jpeg=0.0,
)


@dataclass(frozen=True)
class PhotoConfig:
    """Every knob of the photo stage; colours are RGB 0-255."""

    layout: SynthConfig = PHOTO_LAYOUT
    p_date: float = 0.1  # ddmmyyyy / ddmmyy instead of a sampled label
    # a tone (RGB), then its brightness times brightness and each channel +- tone_jitter
    papers: tuple[_RGB, ...] = (
        (245.0, 245.0, 242.0),  # white
        (236.0, 224.0, 196.0),  # cream, beige
        (192.0, 192.0, 189.0),  # grey
        (214.0, 220.0, 230.0),  # bluish grey
        (240.0, 233.0, 190.0),  # yellowish
    )
    paper_weights: tuple[float, ...] = (0.3, 0.25, 0.2, 0.1, 0.15)
    brightness: tuple[float, float] = (0.8, 1.04)
    inks: tuple[_RGB, ...] = (
        (35.0, 50.0, 160.0),  # blue ballpoint
        (35.0, 35.0, 40.0),  # black ballpoint or felt pen
        (95.0, 95.0, 105.0),  # pencil or faded black
    )
    ink_weights: tuple[float, ...] = (0.55, 0.35, 0.1)
    tone_jitter: float = 12.0
    ink_opacity: tuple[float, float] = (0.6, 1.0)  # faint ballpoint to solid felt pen
    texture: tuple[float, float] = (0.3, 1.0)  # share of the grey paper texture kept
    height_px: tuple[float, float] = (18.0, 32.0)  # the photo crop's height, log-uniform
    rotation_deg: float = 3.0
    perspective: float = 0.03
    p_shadow: float = 0.6
    shadow_depth: tuple[float, float] = (0.1, 0.4)
    p_vignette: float = 0.3
    vignette_depth: tuple[float, float] = (0.05, 0.25)
    p_defocus: float = 0.4
    defocus_sigma: tuple[float, float] = (0.3, 0.9)  # px at the photo's own size
    noise_sigma: tuple[float, float] = (1.0, 5.0)
    jpeg_quality: tuple[int, int] = (35, 90)
    colour_cast: float = 0.03  # white balance: each channel's gain 1 +- this

    def __post_init__(self) -> None:
        if len(self.papers) != len(self.paper_weights) or len(self.inks) != len(self.ink_weights):
            raise ValueError("PhotoConfig: one weight per paper and per ink")
        if not 0 < self.height_px[0] <= self.height_px[1]:
            raise ValueError(f"height_px must be a positive (low, high) range, got {self.height_px}")


def _colour(rng: np.random.Generator, tone: _RGB, jitter: float, gain: float = 1.0) -> np.ndarray:
    return (np.asarray(tone, np.float32) * gain + rng.uniform(-jitter, jitter, 3)).astype(np.float32)  # (3,)


def _choice(rng: np.random.Generator, weights: tuple[float, ...]) -> int:
    w = np.asarray(weights, dtype=float)
    return int(rng.choice(len(w), p=w / w.sum()))


class PhotoStrings(ImageDataset):
    """``n`` photographed digit strings from ``bank`` on ``backgrounds``, fixed by ``seed``."""

    def __init__(self, bank: GlyphBank, backgrounds: Backgrounds, n: int, seed: int,
                 cfg: PhotoConfig = PhotoConfig()) -> None:
        self.cfg, self.n, self.seed = cfg, int(n), int(seed)
        self.pen = SynthStrings(bank, backgrounds, n, seed, cfg=cfg.layout)
        self.name = "photo-strings"

    def __len__(self) -> int:
        return self.n

    def _rng(self, index: int) -> np.random.Generator:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} photo strings")
        return np.random.default_rng((self.seed, index % self.n, 0x9407))

    def _label(self, rng: np.random.Generator) -> str:
        if rng.random() < self.cfg.p_date:
            day, month, year = int(rng.integers(1, 29)), int(rng.integers(1, 13)), int(rng.integers(1920, 2031))
            return f"{day:02d}{month:02d}{year if rng.random() < 0.6 else year % 100:02d}"
        return sample_label(rng, self.cfg.layout)

    def label(self, index: int) -> str:
        return self._label(self._rng(index))

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        rgb, label = self.colour(int(index))
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # as load_image turns an RGB photo grey
        return Sample(grey, label, f"photo-strings[{index % self.n}]")

    def colour(self, index: int) -> tuple[np.ndarray, str]:
        """The photo as the phone saved it: ((h, w, 3) uint8 RGB, label)."""
        rng = self._rng(index)
        label = self._label(rng)
        c = self.cfg
        alpha, _, _ = self.pen.layout(rng, label)  # (h, w), 1 = full ink
        h, w = alpha.shape
        grey = self.pen.backgrounds.sample(rng, h, w, c.layout)  # (h, w) paper texture
        texture = 1.0 + _u(rng, c.texture) * (grey / max(1.0, float(grey.mean())) - 1.0)
        paper = _colour(rng, c.papers[_choice(rng, c.paper_weights)], c.tone_jitter, _u(rng, c.brightness))
        ink = _colour(rng, c.inks[_choice(rng, c.ink_weights)], 2 * c.tone_jitter)
        a = np.minimum(alpha, 1.0)[..., None] * _u(rng, c.ink_opacity)  # (h, w, 1)
        img = (texture[..., None] * paper) * (1.0 - a) + ink * a  # (h, w, 3)
        img = phone_capture(rng, img, c.rotation_deg, c.perspective, c.p_shadow, c.shadow_depth)
        if rng.random() < c.p_vignette:
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            r2 = ((xx - w / 2) / max(1.0, w / 2)) ** 2 + ((yy - h / 2) / max(1.0, h / 2)) ** 2  # (h, w)
            img = img * (1.0 - _u(rng, c.vignette_depth) * np.clip(r2 / 2.0, 0.0, 1.0))[..., None]
        img = img * (1.0 + rng.uniform(-c.colour_cast, c.colour_cast, 3)).astype(np.float32)
        th = math.exp(_u(rng, (math.log(c.height_px[0]), math.log(c.height_px[1]))))
        tw = max(1, int(round(w * th / h)))
        img = cv2.resize(img, (tw, max(1, int(round(th)))), interpolation=cv2.INTER_AREA)
        if rng.random() < c.p_defocus:
            img = cv2.GaussianBlur(img, (0, 0), _u(rng, c.defocus_sigma))
        img = img + rng.standard_normal(img.shape).astype(np.float32) * _u(rng, c.noise_sigma)
        out = np.clip(img, 0, _U8_MAX).astype(np.uint8)
        q = int(rng.integers(c.jpeg_quality[0], c.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return np.ascontiguousarray(out), label


PHOTO_TEST_SEED = 20232  # the benchmark's own seed; training uses TrainConfig.seed
PHOTO_TEST_N = 1000
PHOTO_VAL_SEED = 20233  # a seed no training run uses (they use TrainConfig.seed, 0 by default)
PHOTO_VAL_N = 500
PHOTO_TRAIN_N = 200_000  # the training stream; string i is rendered on demand


def photo_strings(data_root: str | os.PathLike | None, split: str, n: int | None = None, seed: int | None = None,
                  exclude: frozenset[str] = frozenset()) -> PhotoStrings:
    """The photo-string set of ``split``: ``test`` composes MNIST test digits on synthetic paper
    (nothing a model trains on); ``train`` the training glyph bank on real and synthetic paper,
    leaving out the cheque crops named in ``exclude`` (a validation slice); ``validation`` the
    same glyphs and paper under a seed of its own, for choosing between models."""
    defaults = {"train": (PHOTO_TRAIN_N, 0), "validation": (PHOTO_VAL_N, PHOTO_VAL_SEED), "test": (PHOTO_TEST_N, PHOTO_TEST_SEED)}
    if split not in defaults:
        raise ValueError(f"photo-strings: split must be train, validation or test, got {split!r}")
    default_n, default_seed = defaults[split]
    ds = PhotoStrings(*split_materials(data_root, split, exclude), n or default_n, default_seed if seed is None else seed)
    ds.name = f"photo-strings-{split}"
    return ds


def _read(root: Path, split: str) -> ImageDataset:
    return photo_strings(root, split)


register_dataset("photo-strings", _read)
