"""Synthetic cheque-amount strings composed from isolated real digits.

Why this exists: only ~1,000 real courtesy-amount strings are available for training, far too few
for a CTC recogniser to learn writer variation, spacing and the clutter around amounts. Isolated
digits are plentiful (MNIST, USPS, and the digits cut out of the real cheque training images by
their COCO boxes), so we compose strings from them and make the composition look like the real
crops: amount-like labels, touching and overlapping digits, slant, thin pen strokes, cheque paper
with security patterns, separators and dashes that are *not* transcribed, and scanner/JPEG damage.

Every knob lives in :class:`SynthConfig`; ``SynthStrings(...)[i]`` is a pure function of
``(seed, i)`` so data loaders in several worker processes agree without coordination.

Example:
    >>> from strings.synth import GlyphBank, Backgrounds, SynthStrings
    >>> bank = GlyphBank.from_data("../shared/data")  # doctest: +SKIP
    >>> ds = SynthStrings(bank, Backgrounds.from_data("../shared/data"), n=100_000, seed=1)  # doctest: +SKIP
    >>> ds[0].label, ds[0].image.shape  # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from strings.datasets import DatasetError, ImageDataset, Sample, open_dataset, read_car_partial_boxes, resolve_data_root
from strings.transforms import load_image

__all__ = [
    "SynthConfig",
    "Glyph",
    "GlyphBank",
    "Backgrounds",
    "SynthStrings",
    "sample_label",
    "stroke_widths",
    "write_synth",
    "realism_sheet",
    "DEFAULT_SOURCES",
    "mnist_test_strings",
]

DEFAULT_SOURCES = ("mnist", "usps", "car-a-partial")
_CAR = "car-a-partial"
_U8_MAX = 255
_MIN_KERNEL = 3  # smallest odd morphology kernel
_RANGE = tuple[float, float]


@dataclass(frozen=True)
class SynthConfig:
    """Every knob of the generator, with the real-data statistic it was tuned against.

    Lengths are in units of the digit height ``h`` of the string being drawn unless they end in
    ``_px``; grey levels are 0 (black) .. 255 (white). Measured on the 1,080 CAR-A training crops:
    crop height 41-70 px (5-95 %), digit height / crop height 0.42-0.82, gap between digit boxes
    -0.24 h .. 0.58 h (median 0.07 h), per-digit baseline deviation +-0.13 h, paper grey 144-199,
    ink grey 28-89 (paper minus darkest ink 74-143), stroke width / crop height 0.03-0.09 (about 0.10 h).
    """

    # --- labels: length 1..len(length_weights), amount-like patterns and plain random strings
    length_weights: tuple[float, ...] = (0.04, 0.08, 0.15, 0.22, 0.22, 0.15, 0.09, 0.05)
    # (uniform digits, amount = nonzero lead + random digits + maybe trailing zeros, round
    # amount = 1-3 significant digits then zeros: 150, 1250, 35000)
    pattern_weights: tuple[float, float, float] = (0.3, 0.4, 0.3)
    p_amount_trailing_zeros: float = 0.5
    trailing_zero_weights: tuple[float, float, float] = (0.25, 0.45, 0.3)  # 1, 2, 3 zeros
    significant_digit_weights: tuple[float, float, float] = (0.35, 0.45, 0.2)  # 1, 2, 3 digits
    # --- glyph sources: real cheque digits match the target domain, so they are drawn more often
    source_weights: tuple[tuple[str, float], ...] = ((_CAR, 0.5), ("mnist", 0.35), ("usps", 0.15))
    other_source_weight: float = 1.0  # for sources not named above (e.g. a test bank)
    p_single_source: float = 0.7  # one writer per cheque: take the whole string from one source
    # --- geometry
    digit_height_px: _RANGE = (24.0, 52.0)  # log-uniform; real crops have h ~ 22-50 px
    digit_scale_jitter: float = 0.1  # per digit height factor 1 +- this
    digit_aspect_jitter: float = 0.15  # per digit width factor 1 +- this
    baseline_jitter: float = 0.05  # per digit vertical offset, +- this * h
    baseline_slope: float = 0.04  # whole-string baseline tilt, +- this * h per digit
    rotation_deg: float = 6.0  # per digit rotation, +- degrees
    p_slant: float = 0.75
    slant_shear: _RANGE = (-0.15, 0.4)  # global italic shear dx/dy (positive leans right)
    # --- spacing: gap between the ink of neighbouring digits, row by row (true kerning)
    spacing_mode_weights: tuple[float, float, float, float] = (0.12, 0.5, 0.23, 0.15)
    gap_wide: _RANGE = (0.2, 0.6)
    gap_normal: _RANGE = (0.02, 0.2)
    gap_touching: _RANGE = (-0.03, 0.02)
    gap_overlap: _RANGE = (-0.12, -0.03)
    gap_jitter: float = 0.05  # per gap, +- this * h around the string's mode
    # --- stroke width: thin pen strokes whatever the source; MNIST is thick, USPS blurry
    p_stroke_match: float = 0.9  # else keep the glyph's own (scaled) width
    stroke_ratio: _RANGE = (0.055, 0.12)  # target stroke width / h (cheque digits: median 0.09)
    min_stroke_px: float = 1.5
    max_morph_px: int = 6
    # thinning a glyph whose strokes vary in width can erase its thin parts (a 6 loses its stem
    # and turns into a blob): back off the erosion until the ink keeps this share of its height
    min_thinned_extent: float = 0.9
    # --- ink
    ink_contrast: _RANGE = (80.0, 160.0)  # paper mean minus full ink, grey levels (real p50 - p1: 74-143)
    min_ink_grey: float = 5.0
    ink_strength: _RANGE = (0.85, 1.0)  # whole string opacity (pen pressure, faint ballpoint)
    glyph_strength: _RANGE = (0.9, 1.0)  # per digit
    ink_gain: _RANGE = (1.0, 1.6)  # opacity gain: soft upscaled/thinned strokes become solid pen
    # --- paper
    p_real_background: float = 0.55
    paper_grey: _RANGE = (140.0, 235.0)
    real_tone_shift: float = 20.0  # +- grey levels added to a real paper patch
    real_patch_scale: _RANGE = (0.8, 1.5)
    p_flip_paper: float = 0.5  # per axis
    p_gradient: float = 0.4
    gradient_amplitude: _RANGE = (5.0, 30.0)
    p_lines: float = 0.3
    line_period_px: _RANGE = (3.0, 9.0)
    p_guilloche: float = 0.45
    guilloche_period_px: _RANGE = (4.0, 12.0)
    guilloche_wave_px: _RANGE = (15.0, 80.0)  # wavelength of the line wiggle
    guilloche_amplitude_px: _RANGE = (2.0, 12.0)
    p_second_family: float = 0.4  # a crossing family of wavy lines (mesh)
    pattern_contrast: _RANGE = (6.0, 35.0)
    pattern_sharpness: _RANGE = (1.0, 6.0)  # exponent: larger gives thinner pattern lines
    p_speckle: float = 0.3
    speckle_density: _RANGE = (0.002, 0.02)
    speckle_contrast: _RANGE = (15.0, 60.0)
    # --- distractor marks, never transcribed
    p_thousands_sep: float = 0.35  # "15.006": a mark before every third digit from the right
    sep_comma_share: float = 0.25  # "," instead of "."
    p_gap_mark: float = 0.02  # per gap: a stray mark from gap_marks
    gap_marks: str = ".,-"
    p_trailing_mark: float = 0.35
    trailing_kinds: tuple[tuple[str, float], ...] = (
        ("-", 0.27), (".-", 0.15), ("=", 0.12), (":", 0.1), ("/", 0.04),
        ("--", 0.05), ("long", 0.17), ("#", 0.05), (".", 0.05),
    )
    p_leading_mark: float = 0.08
    leading_kinds: tuple[tuple[str, float], ...] = (("#", 0.4), ("long", 0.35), ("/", 0.05), ("-", 0.2))
    mark_gap: _RANGE = (0.0, 0.3)
    mark_thickness: _RANGE = (0.8, 1.3)  # times stroke width
    mark_y_jitter: float = 0.05  # +- h, vertical wobble of dots and commas around the baseline
    mark_descent: float = 0.5  # room below the baseline in a mark's patch (comma tails)
    dot_radius: _RANGE = (0.5, 1.1)  # times stroke width
    comma_tail: _RANGE = (0.12, 0.3)
    dash: _RANGE = (0.2, 0.5)
    long_dash: _RANGE = (0.8, 3.0)  # length of a "----" filler
    dash_height: float = 0.45  # above the baseline
    dash_height_jitter: float = 0.1
    dash_tilt: float = 0.06
    equals_heights: tuple[float, float] = (0.35, 0.6)
    colon_heights: tuple[float, float] = (0.15, 0.6)
    slash_size: _RANGE = (0.3, 0.6)  # small and leaning, so a slash is not read as a "1"
    slash_lean: _RANGE = (0.6, 1.0)  # width / height
    hash_size: _RANGE = (0.5, 0.9)
    hash_lean: float = 1 / 6
    hash_max_thickness: float = 0.12  # times the hash size
    p_underline: float = 0.3
    p_box: float = 0.1
    rule_strength: _RANGE = (0.25, 0.9)  # printed lines are often lighter than the pen
    rule_thickness_px: tuple[int, int] = (1, 2)
    rule_offset: _RANGE = (-0.05, 0.25)  # underline distance below the digits
    rule_tilt: float = 0.02  # +- underline rise over its length
    # --- margins around the ink, a few px as in the real crops
    margin_left: _RANGE = (0.03, 0.35)
    margin_right: _RANGE = (0.05, 0.45)
    margin_top: _RANGE = (0.04, 0.35)
    margin_bottom: _RANGE = (0.02, 0.25)
    # --- degradations
    p_blur: float = 0.35
    blur_sigma: _RANGE = (0.3, 1.0)
    p_rescale: float = 0.3
    rescale_factor: _RANGE = (0.45, 0.85)
    p_noise: float = 0.6
    noise_sigma: _RANGE = (1.0, 7.0)
    p_jpeg: float = 0.7
    jpeg_quality: tuple[int, int] = (30, 92)
    # --- glyph extraction (GlyphBank.from_data)
    glyph_threshold: int = 40  # ink-bright level that counts as ink for the tight crop
    glyph_binary_threshold: int = 128  # ink-bright level for stroke-width estimation
    min_glyph_px: int = 8  # cheque digits smaller than this are box errors
    max_glyph_stroke_ratio: float = 0.25  # stroke width / glyph height above this is an ink blob
    car_bg_kernel: float = 0.25  # closing kernel / crop height: removes strokes, keeps paper
    car_ink_percentile: float = 99.0  # darkness reaching full ink (within the digit boxes)
    car_full_ink: float = 0.8  # share of that darkness already drawn as fully opaque
    car_paper_percentile: float = 95.0  # darkness of the paper texture outside the boxes
    car_alpha_floor: float = 0.2  # at least this share of the ink contrast counts as paper
    car_box_pad_px: int = 2
    car_max_box_overlap: float = 0.1  # skip digits whose box shares more than this with another box
    car_component_share: float = 0.5  # keep an ink blob if this much of it lies in the box
    # --- backgrounds from real crops: the ink is masked and filled with paper from the same row
    paper_percentile: float = 90.0  # darkness of the paper texture outside the digit boxes
    paper_mask_share: float = 0.2  # darkness above paper + this share of the ink contrast is ink
    paper_mask_dilate_px: int = 7  # covers anti-aliased stroke edges and JPEG ringing
    paper_passes: int = 3  # re-detect ink that the previous fill copied in or missed
    paper_shifts: tuple[float, ...] = (1, -1, 2, -2, 3, -3, 0.5, -0.5, 4, -4)  # in digit-box widths
    bg_box_gap_px: int = 3  # added to the median box width: the shift unit
    paper_inpaint_radius_px: int = 3

    def __post_init__(self) -> None:
        for name in ("length_weights", "pattern_weights", "spacing_mode_weights"):
            w = getattr(self, name)
            if not w or min(w) < 0 or sum(w) <= 0:
                raise ValueError(f"{name} must be non-negative with a positive sum, got {w}")
        if self.digit_height_px[0] <= 0 or self.digit_height_px[0] > self.digit_height_px[1]:
            raise ValueError(f"digit_height_px must be a positive (low, high) range, got {self.digit_height_px}")

    @property
    def max_length(self) -> int:
        return len(self.length_weights)


# ----------------------------------------------------------------------------- small helpers


def _cum(weights: Iterable[float]) -> list[float]:
    out, acc = [], 0.0
    for w in weights:
        acc += float(w)
        out.append(acc)
    return out


def _pick(rng: np.random.Generator, cum: Sequence[float]) -> int:
    """Index drawn with the weights whose running sum is ``cum`` (much cheaper than rng.choice)."""
    return min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)


def _u(rng: np.random.Generator, r: Sequence[float]) -> float:
    return r[0] + (r[1] - r[0]) * rng.random()


def _sym(rng: np.random.Generator, half: float) -> float:
    return half * (2.0 * rng.random() - 1.0)


@functools.lru_cache(maxsize=64)
def _disk(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _ink_height(patch: np.ndarray, threshold: int) -> int:
    rows = np.flatnonzero((patch >= threshold).any(axis=1))
    return int(rows[-1] - rows[0] + 1) if rows.size else 0


def _thin(patch: np.ndarray, px: int, min_extent: float, threshold: int) -> np.ndarray:
    """Erode an ink-bright patch by up to ``px``, less where that would cut the ink's height
    below ``min_extent`` of what it was (the label must stay readable)."""
    before = _ink_height(patch, threshold)
    for k in range(px, 0, -1):
        out = cv2.erode(patch, _disk(k + 1))
        if _ink_height(out, threshold) >= min_extent * before:
            return out
    return patch


def stroke_widths(ink_bright: np.ndarray, threshold: int = SynthConfig.glyph_binary_threshold) -> np.ndarray:
    """Mean stroke width in px of each ink-bright image in an (N, H, W) stack (or one (H, W)).

    Why: MNIST strokes are ~0.13 of the digit height, cheque pen strokes ~0.10, and the renderer
    thins/thickens each glyph to a target width. Width = 2 * area / boundary pixels, exact for a
    long stroke of width >= 2 and vectorised, so MNIST's 60k digits cost a fraction of a second.
    """
    single = ink_bright.ndim == 2
    m = (ink_bright if not single else ink_bright[None]) >= threshold
    padded = np.pad(m, ((0, 0), (1, 1), (1, 1)))
    interior = m & padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1] & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:]
    area = m.sum(axis=(1, 2)).astype(np.float64)
    boundary = area - interior.sum(axis=(1, 2))
    sw = np.where(boundary > 0, 2.0 * area / np.maximum(boundary, 1.0), 1.0)
    return sw[0] if single else sw


def _tight_boxes(ink_bright: np.ndarray, threshold: int) -> np.ndarray:
    """(N, 4) [y0, y1, x0, x1) ink bounding boxes of an (N, H, W) stack, all-blank -> whole image."""
    m = ink_bright >= threshold
    rows, cols = m.any(axis=2), m.any(axis=1)
    n, h, w = ink_bright.shape
    y0 = rows.argmax(axis=1)
    y1 = h - rows[:, ::-1].argmax(axis=1)
    x0 = cols.argmax(axis=1)
    x1 = w - cols[:, ::-1].argmax(axis=1)
    blank = ~rows.any(axis=1)
    y0[blank], y1[blank], x0[blank], x1[blank] = 0, h, 0, w
    return np.stack([y0, y1, x0, x1], axis=1)


# ----------------------------------------------------------------------------- glyphs


class Glyph(NamedTuple):
    image: np.ndarray  # uint8 (h, w), dark ink on light paper, tight to the ink
    source: str
    stroke_width: float  # px at the glyph's own size


class GlyphBank:
    """Isolated digit glyphs per class, each tagged with the dataset it came from.

    Glyphs are stored dark-on-light (the project's image convention) and cropped tight to the ink
    so the renderer controls every margin and gap itself.
    """

    def __init__(
        self,
        glyphs: Sequence[np.ndarray],
        labels: Sequence[str],
        sources: Sequence[str] | str,
        stroke_width: Sequence[float] | None = None,
        threshold: int = SynthConfig.glyph_threshold,
        binary_threshold: int = SynthConfig.glyph_binary_threshold,
    ) -> None:
        """Glyphs of any size, dark on light; they are cropped to their ink here."""
        if isinstance(sources, str):
            sources = [sources] * len(glyphs)
        if not (len(glyphs) == len(labels) == len(sources)):
            raise ValueError(f"{len(glyphs)} glyphs, {len(labels)} labels, {len(sources)} sources: lengths differ")
        if not glyphs:
            raise ValueError("a GlyphBank needs at least one glyph")
        bad = sorted({str(v) for v in labels if len(str(v)) != 1})
        if bad:
            raise ValueError(f"glyph labels must be single characters, got {bad[:5]}")
        self.glyphs: list[np.ndarray] = []
        widths: list[float] = []
        for k, g in enumerate(glyphs):
            g = np.asarray(g)
            if g.ndim != 2 or g.dtype != np.uint8:
                raise ValueError(f"glyph {k}: expected a 2-D uint8 array, got {g.dtype} {g.shape}")
            inv = _U8_MAX - g
            y0, y1, x0, x1 = _tight_boxes(inv[None], threshold)[0]
            self.glyphs.append(np.ascontiguousarray(g[y0:y1, x0:x1]))
            if stroke_width is None:
                widths.append(float(stroke_widths(inv[y0:y1, x0:x1], binary_threshold)))
        sw = widths if stroke_width is None else stroke_width
        self._init_prepared(self.glyphs, [str(v) for v in labels], [str(v) for v in sources], np.asarray(sw))

    # -- constructors
    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray | Sequence[np.ndarray],
        labels: Sequence[str | int],
        source: str = "array",
        ink_bright: bool = False,
    ) -> GlyphBank:
        """A bank from in-memory digits (tests, user data). ``ink_bright`` inverts MNIST-style arrays."""
        imgs = [np.asarray(im, dtype=np.uint8) for im in images]
        if ink_bright:
            imgs = [_U8_MAX - im for im in imgs]
        return cls(imgs, [str(v) for v in labels], source)

    @classmethod
    def _from_stack(cls, ink_bright: np.ndarray, labels: Sequence[str], source: str, cfg: SynthConfig) -> GlyphBank:
        """Vectorised crop + stroke width for an (N, H, W) ink-bright stack (MNIST, USPS)."""
        boxes = _tight_boxes(ink_bright, cfg.glyph_threshold)
        sw = stroke_widths(ink_bright, cfg.glyph_binary_threshold)
        # blobs (MNIST has zeros drawn as filled ovals) stay blobs however much they are thinned
        keep = np.nonzero(sw <= cfg.max_glyph_stroke_ratio * (boxes[:, 1] - boxes[:, 0]))[0]
        dark = _U8_MAX - ink_bright
        glyphs = [dark[i, y0:y1, x0:x1] for i, (y0, y1, x0, x1) in zip(keep.tolist(), boxes[keep].tolist())]
        bank = cls.__new__(cls)
        bank._init_prepared(glyphs, [labels[i] for i in keep.tolist()], [source] * len(glyphs), sw[keep])
        return bank

    def _init_prepared(self, glyphs: list[np.ndarray], labels: list[str], sources: list[str], sw: np.ndarray) -> None:
        """Set up from glyphs that are already tight (skips the per-glyph work of __init__)."""
        self.glyphs, self.labels, self.sources = glyphs, labels, sources
        self.stroke_width = np.asarray(sw, dtype=np.float32)
        index: dict[str, dict[str, list[int]]] = {}
        for i, (lab, src) in enumerate(zip(labels, sources)):
            index.setdefault(lab, {}).setdefault(src, []).append(i)
        self._index = {lab: {s: np.asarray(v, dtype=np.int64) for s, v in d.items()} for lab, d in index.items()}
        self._source_names = sorted(set(sources))
        self._weights_cache: dict[tuple, tuple[list[str], list[float]]] = {}

    @classmethod
    def merge(cls, banks: Iterable[GlyphBank]) -> GlyphBank:
        banks = list(banks)
        bank = cls.__new__(cls)
        bank._init_prepared(
            [g for b in banks for g in b.glyphs],
            [lab for b in banks for lab in b.labels],
            [s for b in banks for s in b.sources],
            np.concatenate([b.stroke_width for b in banks]) if banks else np.zeros(0),
        )
        return bank

    @classmethod
    def from_data(
        cls,
        data_root: str | os.PathLike | None = None,
        sources: Sequence[str] = DEFAULT_SOURCES,
        split: str = "train",
        cfg: SynthConfig = SynthConfig(),
        cache_dir: str | os.PathLike | None = None,
        exclude: Iterable[str] = (),
    ) -> GlyphBank:
        """Digits from the named datasets' ``split``.

        ``exclude`` names cheque crops (file names) whose digits must not be used: the
        validation slice carved from the CAR-A training split, so that model selection sees
        no digit it was trained on.

        ``split="test"`` is allowed for MNIST only (the MNIST-test benchmark strings); cheque digits
        always come from the CAR-A *training* images so the real test crops stay unseen. With
        ``cache_dir`` the bank is kept as one .npz keyed by sources, split and config.
        """
        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test, got {split!r}")
        if split == "test" and set(sources) != {"mnist"}:
            raise ValueError("split='test' is only allowed with sources=('mnist',): other test sets stay unseen")
        unknown = set(sources) - set(DEFAULT_SOURCES)
        if unknown:
            raise ValueError(f"unknown glyph sources {sorted(unknown)}; known: {DEFAULT_SOURCES}")
        root = resolve_data_root(data_root)
        excluded = frozenset(exclude)
        key = hashlib.sha1(repr((sorted(sources), split, cfg, sorted(excluded))).encode()).hexdigest()[:12]  # any knob change: rebuild
        cache = Path(cache_dir) / f"glyphs-{split}-{key}.npz" if cache_dir else None
        if cache is not None and cache.is_file():
            return cls.load(cache)
        parts = []
        for src in sources:
            if src == _CAR:
                parts.append(cls._from_car(root, cfg, excluded))
            else:
                ds = open_dataset(src, split, root)
                ink = np.asarray(ds.images)  # type: ignore[attr-defined]  # ArrayDataset: ink bright
                if not getattr(ds, "ink_bright", True):
                    ink = _U8_MAX - ink
                parts.append(cls._from_stack(ink, ds.labels(), src, cfg))
        bank = cls.merge(parts)
        if cache is not None:
            bank.save(cache)
        return bank

    @classmethod
    def _from_car(cls, root: Path, cfg: SynthConfig, exclude: frozenset[str] = frozenset()) -> GlyphBank:
        ds = open_dataset(_CAR, "train", root)  # never the test split: those crops stay unseen
        boxes = read_car_partial_boxes(root, "train")
        glyphs, labels = [], []
        for path, _label in ds.items:  # type: ignore[attr-defined]
            entries = boxes.get(Path(path).name)
            if not entries or Path(path).name in exclude:
                continue
            grey = load_image(path)
            for digit, alpha in _cut_car_digits(grey, entries, cfg):
                glyphs.append(_U8_MAX - alpha)
                labels.append(digit)
        if not glyphs:
            raise DatasetError(f"no cheque digits could be cut from {root}")
        sw = np.array([stroke_widths(_U8_MAX - g, cfg.glyph_binary_threshold) for g in glyphs])
        keep = [i for i, g in enumerate(glyphs) if sw[i] <= cfg.max_glyph_stroke_ratio * g.shape[0]]
        bank = cls.__new__(cls)
        bank._init_prepared([glyphs[i] for i in keep], [labels[i] for i in keep], [_CAR] * len(keep), sw[keep])
        return bank

    # -- persistence
    def save(self, path: str | os.PathLike) -> None:
        """One .npz: the glyph pixels concatenated plus their shapes (loads in well under a second)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shapes = np.array([g.shape for g in self.glyphs], dtype=np.int32).reshape(-1, 2)
        flat = np.concatenate([g.ravel() for g in self.glyphs]) if self.glyphs else np.zeros(0, np.uint8)
        tmp = path.with_suffix(".tmp.npz")
        labels, sources = np.array(self.labels), np.array(self.sources)
        np.savez(tmp, flat=flat, shapes=shapes, labels=labels, sources=sources, sw=self.stroke_width)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> GlyphBank:
        with np.load(path) as z:
            flat, shapes = z["flat"], z["shapes"]
            ends = np.cumsum(shapes[:, 0] * shapes[:, 1])
            starts = ends - shapes[:, 0] * shapes[:, 1]
            glyphs = [flat[a:b].reshape(h, w) for a, b, (h, w) in zip(starts.tolist(), ends.tolist(), shapes.tolist())]
            bank = cls.__new__(cls)
            bank._init_prepared(glyphs, [str(x) for x in z["labels"]], [str(x) for x in z["sources"]], z["sw"])
        return bank

    # -- queries
    def __len__(self) -> int:
        return len(self.glyphs)

    @property
    def classes(self) -> str:
        return "".join(sorted(self._index))

    def source_names(self) -> list[str]:
        return list(self._source_names)

    def count(self, digit: str | None = None, source: str | None = None) -> int:
        digits = [digit] if digit is not None else list(self._index)
        return sum(len(v) for d in digits for s, v in self._index.get(d, {}).items() if source in (None, s))

    def _source_weights(self, digit: str, cfg: SynthConfig) -> tuple[list[str], list[float]]:
        key = (digit, cfg.source_weights, cfg.other_source_weight)
        hit = self._weights_cache.get(key)
        if hit is None:
            named = dict(cfg.source_weights)
            names = sorted(self._index.get(digit, {}))
            weights = [named.get(s, cfg.other_source_weight) for s in names]
            keep = [(n, w) for n, w in zip(names, weights) if w > 0]
            if not keep:
                raise KeyError(f"no glyphs for digit {digit!r} from a source with positive weight")
            hit = ([n for n, _ in keep], _cum(w for _, w in keep))
            self._weights_cache[key] = hit
        return hit

    def pick_source(self, rng: np.random.Generator, cfg: SynthConfig = SynthConfig()) -> str:
        """A source drawn by the config weights (used to give a whole string one 'writer')."""
        key = ("*", cfg.source_weights, cfg.other_source_weight)
        hit = self._weights_cache.get(key)
        if hit is None:
            named = dict(cfg.source_weights)
            hit = (self._source_names, _cum(named.get(s, cfg.other_source_weight) for s in self._source_names))
            self._weights_cache[key] = hit
        return hit[0][_pick(rng, hit[1])]

    def sample(
        self, rng: np.random.Generator, digit: str, source: str | None = None, cfg: SynthConfig = SynthConfig()
    ) -> Glyph:
        """One glyph of ``digit``: from ``source`` if it has that digit, else by the source weights."""
        by_src = self._index.get(digit)
        if not by_src:
            raise KeyError(f"no glyphs for digit {digit!r} (bank has {self.classes!r})")
        if source is None or source not in by_src:
            names, cum = self._source_weights(digit, cfg)
            source = names[_pick(rng, cum)]
        idx = by_src[source]
        i = int(idx[int(rng.integers(len(idx)))])
        return Glyph(self.glyphs[i], self.sources[i], float(self.stroke_width[i]))


def _cut_car_digits(
    grey: np.ndarray, entries: Sequence[tuple[str, tuple[int, int, int, int]]], cfg: SynthConfig
) -> list[tuple[str, np.ndarray]]:
    """Digits of one real cheque crop as ink-bright alpha (uint8), paper texture removed.

    Why not just crop the box: the boxes hold cheque paper with security lines and bits of the
    neighbouring digits. A grey closing (max then min filter wider than a stroke) estimates the
    paper under the ink; darkness above the paper texture level becomes ink opacity, and ink
    blobs lying mostly outside the box (neighbours, separators) are dropped.
    """
    h, w = grey.shape
    k = max(_MIN_KERNEL, int(round(cfg.car_bg_kernel * h)) | 1)
    paper = cv2.morphologyEx(grey, cv2.MORPH_CLOSE, _disk(k))
    dark = cv2.subtract(paper, grey)
    inside = np.zeros((h, w), bool)
    for _, (x0, y0, x1, y1) in entries:
        inside[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    if not inside.any():
        return []
    full = float(np.percentile(dark[inside], cfg.car_ink_percentile)) * cfg.car_full_ink
    floor = cfg.car_alpha_floor * full
    if (~inside).sum() > 0:
        floor = max(floor, float(np.percentile(dark[~inside], cfg.car_paper_percentile)))
    if full <= floor + 1.0:
        return []
    alpha = np.clip((dark.astype(np.float32) - floor) * (_U8_MAX / (full - floor)), 0, _U8_MAX).astype(np.uint8)
    n_cc, cc = cv2.connectedComponents((alpha >= cfg.glyph_threshold).astype(np.uint8), connectivity=8)
    cc_total = np.bincount(cc.ravel(), minlength=n_cc)
    out = []
    pad = cfg.car_box_pad_px
    for k, (digit, (x0, y0, x1, y1)) in enumerate(entries):
        area = max(1, (x1 - x0) * (y1 - y0))
        shared = max(
            (
                max(0, min(x1, b[2]) - max(x0, b[0])) * max(0, min(y1, b[3]) - max(y0, b[1]))
                for j, (_, b) in enumerate(entries)
                if j != k
            ),
            default=0,
        )
        if shared > cfg.car_max_box_overlap * area:  # tangled with a neighbour: its strokes would leak in
            continue
        # pad vertically only: sideways the neighbours are close and their ink would leak in
        x0, y0, x1, y1 = max(0, x0), max(0, y0 - pad), min(w, x1), min(h, y1 + pad)
        if x1 - x0 < cfg.min_glyph_px // 2 or y1 - y0 < cfg.min_glyph_px:
            continue
        a = alpha[y0:y1, x0:x1].copy()
        lab = cc[y0:y1, x0:x1]
        inside_counts = np.bincount(lab.ravel(), minlength=n_cc)
        in_box_ink = inside_counts[1:].sum()
        share = inside_counts / np.maximum(cc_total, 1)
        keep = (share >= cfg.car_component_share) | (inside_counts >= cfg.car_component_share * max(in_box_ink, 1))
        keep[0] = True  # background label: its pixels are below the ink threshold anyway
        a[~keep[lab]] = 0
        y_any, x_any = np.nonzero(a >= cfg.glyph_threshold)
        if len(y_any) == 0:
            continue
        a = a[y_any.min() : y_any.max() + 1, x_any.min() : x_any.max() + 1]
        if a.shape[0] < cfg.min_glyph_px:
            continue
        out.append((digit, np.ascontiguousarray(a)))
    return out


# ----------------------------------------------------------------------------- backgrounds


class Backgrounds:
    """Cheque paper: real training crops with the ink removed, or synthetic security patterns.

    Real paper carries the true tone, texture and JPEG grain; synthetic patterns (fine lines,
    guilloche waves, gradients, speckle) cover papers the subset does not show and work when no
    real data is present.
    """

    def __init__(self, patches: Sequence[np.ndarray] = (), cfg: SynthConfig = SynthConfig()) -> None:
        self.patches = [np.ascontiguousarray(p, dtype=np.uint8) for p in patches if p.ndim == 2 and p.size]
        self.cfg = cfg

    @classmethod
    def synthetic(cls, cfg: SynthConfig = SynthConfig()) -> Backgrounds:
        return cls((), cfg)

    @classmethod
    def from_data(
        cls, data_root: str | os.PathLike | None = None, cfg: SynthConfig = SynthConfig(), exclude: Iterable[str] = ()
    ) -> Backgrounds:
        """The CAR-A *training* crops with their handwriting removed (see ``_clean_paper``),
        except the crops named in ``exclude`` (the validation slice).

        Falls back to synthetic paper (with a warning) when the subset is not under the data root.
        """
        root = resolve_data_root(data_root)
        try:
            ds = open_dataset(_CAR, "train", root)
            boxes = read_car_partial_boxes(root, "train")
        except DatasetError as exc:
            warnings.warn(f"real cheque paper unavailable, using synthetic backgrounds only ({exc})", stacklevel=2)
            return cls.synthetic(cfg)
        patches = []
        excluded = frozenset(exclude)
        for path, _ in ds.items:  # type: ignore[attr-defined]
            entries = boxes.get(Path(path).name)
            if entries and Path(path).name not in excluded:
                patches.append(_clean_paper(load_image(path), [b for _, b in entries], cfg))
        return cls(patches, cfg)

    def sample(self, rng: np.random.Generator, h: int, w: int, cfg: SynthConfig | None = None) -> np.ndarray:
        """A (h, w) float32 paper image in grey levels."""
        cfg = cfg or self.cfg
        if self.patches and rng.random() < cfg.p_real_background:
            return self._real(rng, h, w, cfg)
        return _synthetic_paper(rng, h, w, cfg)

    def _real(self, rng: np.random.Generator, h: int, w: int, cfg: SynthConfig) -> np.ndarray:
        p = self.patches[int(rng.integers(len(self.patches)))]
        s = _u(rng, cfg.real_patch_scale)
        ph, pw = max(2, int(round(p.shape[0] * s))), max(2, int(round(p.shape[1] * s)))
        p = cv2.resize(p, (pw, ph), interpolation=cv2.INTER_LINEAR)
        if rng.random() < cfg.p_flip_paper:
            p = p[:, ::-1]
        if rng.random() < cfg.p_flip_paper:
            p = p[::-1]
        oy, ox = int(rng.integers(ph)), int(rng.integers(pw))
        # mirror-tile: seams continue the texture instead of jumping
        tiled = np.pad(p, ((oy, max(0, h + ph - oy)), (ox, max(0, w + pw - ox))), mode="symmetric")
        bg = tiled[oy : oy + h, ox : ox + w].astype(np.float32)
        bg += _sym(rng, cfg.real_tone_shift)
        return bg


def _fill_from_row(
    grey: np.ndarray, mask: np.ndarray, step: int, shifts: Sequence[float], inpaint_radius: int
) -> np.ndarray:
    """Replace masked pixels by unmasked pixels of the same row a few digit widths away.

    Why: the security print runs across the whole field, so paper from elsewhere in the same row
    continues its lines; blur-based inpainting would leave smooth, digit-shaped holes that a
    model could learn to read. Whatever no shift can fill is inpainted (a few % of pixels).
    """
    out, todo = grey.copy(), mask.copy()
    w = grey.shape[1]
    for f in shifts:
        dx = int(round(f * step))
        if dx == 0 or abs(dx) >= w:
            continue
        src, src_masked = np.roll(grey, dx, axis=1), np.roll(mask, dx, axis=1)
        take = todo & ~src_masked
        if dx > 0:
            take[:, :dx] = False  # rolled in from the other edge
        else:
            take[:, dx:] = False
        out[take] = src[take]
        todo &= ~take
        if not todo.any():
            return out
    return cv2.inpaint(out, todo.astype(np.uint8), inpaint_radius, cv2.INPAINT_TELEA)


def _clean_paper(grey: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], cfg: SynthConfig) -> np.ndarray:
    """A real cheque crop with the handwriting (and separators, dashes, underlines) removed.

    Ink = darker than a grey closing of the crop by more than the paper texture does outside the
    digit boxes; it is masked generously and refilled from the same rows (real texture, real tone,
    real JPEG grain), in a few passes so ink copied in by a fill is caught again.
    """
    h, w = grey.shape
    inside = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in boxes:
        inside[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    step = max(1, int(np.median([b[2] - b[0] for b in boxes])) + cfg.bg_box_gap_px)
    k = max(_MIN_KERNEL, int(round(cfg.car_bg_kernel * h)) | 1)
    out, thr = grey, None
    for _ in range(cfg.paper_passes):
        dark = cv2.subtract(cv2.morphologyEx(out, cv2.MORPH_CLOSE, _disk(k)), out)
        if thr is None:
            full = float(np.percentile(dark[inside], cfg.car_ink_percentile)) if inside.any() else 0.0
            full *= cfg.car_full_ink
            floor = float(np.percentile(dark[~inside], cfg.paper_percentile)) if (~inside).any() else 0.0
            thr = floor + cfg.paper_mask_share * max(0.0, full - floor)
        mask = dark > thr
        if not mask.any():
            break
        mask = cv2.dilate(mask.astype(np.uint8), _disk(cfg.paper_mask_dilate_px)).astype(bool)
        out = _fill_from_row(out, mask, step, cfg.paper_shifts, cfg.paper_inpaint_radius_px)
    return out


def _synthetic_paper(rng: np.random.Generator, h: int, w: int, cfg: SynthConfig) -> np.ndarray:
    """Plain tone plus optional gradient, fine lines, guilloche waves and speckle."""
    tone = _u(rng, cfg.paper_grey)
    bg = np.full((h, w), tone, np.float32)
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    if rng.random() < cfg.p_gradient:
        theta = rng.random() * 2 * math.pi
        ramp = (x * math.cos(theta) + y * math.sin(theta)) / max(h, w)
        bg += _u(rng, cfg.gradient_amplitude) * (ramp - ramp.mean())
    families = []
    if rng.random() < cfg.p_lines:
        families.append(("lines", 1))
    if rng.random() < cfg.p_guilloche:
        families.append(("wave", 2 if rng.random() < cfg.p_second_family else 1))
    for kind, count in families:
        contrast = _u(rng, cfg.pattern_contrast)
        sharp = _u(rng, cfg.pattern_sharpness)
        theta0 = rng.random() * math.pi
        for k in range(count):
            theta = theta0 + k * (math.pi / 2 + _sym(rng, math.pi / 6))
            c, s = math.cos(theta), math.sin(theta)
            u = x * c + y * s  # across the lines
            if kind == "lines":
                period = _u(rng, cfg.line_period_px)
            else:
                period = _u(rng, cfg.guilloche_period_px)
                v = -x * s + y * c  # along the lines
                wave = _u(rng, cfg.guilloche_wave_px)
                wiggle = np.sin(v * (2 * math.pi / wave) + rng.random() * 2 * math.pi)
                u = u + _u(rng, cfg.guilloche_amplitude_px) * wiggle
            phase = rng.random() * 2 * math.pi
            lines = (0.5 + 0.5 * np.cos(u * (2 * math.pi / period) + phase)) ** sharp
            bg -= contrast * lines
    if rng.random() < cfg.p_speckle:
        n = int(_u(rng, cfg.speckle_density) * h * w)
        if n:
            ys, xs = rng.integers(h, size=n), rng.integers(w, size=n)
            bg[ys, xs] -= _u(rng, cfg.speckle_contrast)
    return bg


# ----------------------------------------------------------------------------- labels


def sample_label(rng: np.random.Generator, cfg: SynthConfig = SynthConfig(), charset: str = "0123456789") -> str:
    """An amount-like digit string (150, 1250, 35000, 4839) or a uniform random one.

    Uniform strings keep the model from trusting a language prior ("ends in 00") too much.
    """
    n = _pick(rng, _cum(cfg.length_weights)) + 1
    pattern = _pick(rng, _cum(cfg.pattern_weights))
    nonzero = [c for c in charset if c != "0"]
    idx = rng.integers(len(charset), size=n)
    chars = [charset[i] for i in idx.tolist()]
    if pattern == 0 or "0" not in charset or not nonzero:
        return "".join(chars)
    chars[0] = nonzero[int(rng.integers(len(nonzero)))]
    if pattern == 1:
        if n > 1 and rng.random() < cfg.p_amount_trailing_zeros:
            k = min(_pick(rng, _cum(cfg.trailing_zero_weights)) + 1, n - 1)
            chars[n - k :] = ["0"] * k
    else:
        sig = min(_pick(rng, _cum(cfg.significant_digit_weights)) + 1, n)
        chars[sig:] = ["0"] * (n - sig)
    return "".join(chars)


# ----------------------------------------------------------------------------- rendering


class _Item(NamedTuple):
    patch: np.ndarray  # uint8 ink-bright
    y: int  # top row in the layout canvas
    gap: float  # wanted ink-to-ink gap to the previous item, px
    strength: float


def _profiles(patch: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: has ink, leftmost and rightmost ink column (for kerning)."""
    m = patch >= threshold
    has = m.any(axis=1)
    left = m.argmax(axis=1)
    right = patch.shape[1] - 1 - m[:, ::-1].argmax(axis=1)
    return has, left, right


class SynthStrings(ImageDataset):
    """``n`` synthetic amount strings; item ``i`` depends only on ``(seed, i)``."""

    def __init__(
        self,
        bank: GlyphBank,
        backgrounds: Backgrounds | None,
        n: int,
        seed: int,
        cfg: SynthConfig = SynthConfig(),
        charset: str = "0123456789",
    ) -> None:
        missing = [c for c in charset if c not in bank.classes]
        if missing:
            raise ValueError(f"glyph bank has no {''.join(missing)!r} (it holds {bank.classes!r})")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.bank = bank
        self.backgrounds = backgrounds if backgrounds is not None else Backgrounds.synthetic(cfg)
        self.n = int(n)
        self.seed = int(seed)
        self.cfg = cfg
        self.charset = charset
        self.name = f"synth-{seed}"
        c = cfg
        self._spacing_cum = _cum(c.spacing_mode_weights)
        self._gap_ranges = (c.gap_wide, c.gap_normal, c.gap_touching, c.gap_overlap)
        self._trailing_cum = _cum(w for _, w in c.trailing_kinds)
        self._leading_cum = _cum(w for _, w in c.leading_kinds)

    def __len__(self) -> int:
        return self.n

    def _labels_rng(self, index: int) -> np.random.Generator:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} synthetic strings")
        return np.random.default_rng([self.seed, index % self.n])

    def label(self, index: int) -> str:
        return sample_label(self._labels_rng(index), self.cfg, self.charset)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        index = int(index)
        rng = self._labels_rng(index)
        image, label = self.render(rng)
        return Sample(image, label, f"synth[{index % self.n}]")

    # -- the renderer
    def render(self, rng: np.random.Generator, label: str | None = None) -> tuple[np.ndarray, str]:
        """One (uint8 dark-on-light image, label). The label is drawn first, so ``label(i)`` is cheap."""
        cfg = self.cfg
        if label is None:
            label = sample_label(rng, cfg, self.charset)
        elif not label or any(ch not in self.bank.classes for ch in label):
            raise ValueError(f"cannot render {label!r} with glyphs {self.bank.classes!r}")
        lo, hi = cfg.digit_height_px
        h = math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * rng.random())  # digit height
        sw_target = _u(rng, cfg.stroke_ratio) * h
        match_stroke = rng.random() < cfg.p_stroke_match
        shear = _u(rng, cfg.slant_shear) if rng.random() < cfg.p_slant else 0.0
        source = self.bank.pick_source(rng, cfg) if rng.random() < cfg.p_single_source else None
        mode = _pick(rng, self._spacing_cum)
        gap_mean = _u(rng, self._gap_ranges[mode])
        slope = _sym(rng, cfg.baseline_slope)
        margin = int(math.ceil(h))  # layout canvas room above/below the digit zone
        base = margin + int(round(h))  # baseline row in the layout canvas
        canvas_h = base + 2 * margin
        mark_sw = max(1.0, sw_target)

        items: list[_Item] = []
        if rng.random() < cfg.p_leading_mark:
            kind = cfg.leading_kinds[_pick(rng, self._leading_cum)][0]
            items.extend(self._mark(rng, kind, h, mark_sw, base, 0.0))
        n = len(label)
        sep_every = 3 if (n >= 4 and rng.random() < cfg.p_thousands_sep) else 0
        sep_kind = "," if rng.random() < cfg.sep_comma_share else "."
        for k, ch in enumerate(label):
            gap = (gap_mean + _sym(rng, cfg.gap_jitter)) * h if k > 0 else _u(rng, cfg.mark_gap) * h
            if k > 0 and sep_every and (n - k) % sep_every == 0:
                items.extend(self._mark(rng, sep_kind, h, mark_sw, base, _u(rng, cfg.mark_gap) * h))
                gap = _u(rng, cfg.mark_gap) * h
            elif k > 0 and rng.random() < cfg.p_gap_mark:
                kind = cfg.gap_marks[int(rng.integers(len(cfg.gap_marks)))]
                items.extend(self._mark(rng, kind, h, mark_sw, base, _u(rng, cfg.mark_gap) * h))
                gap = _u(rng, cfg.mark_gap) * h
            g = self.bank.sample(rng, ch, source, cfg)
            patch = self._glyph_patch(rng, g, h, sw_target if match_stroke else None, shear)
            y_center = base - 0.5 * h + (_sym(rng, cfg.baseline_jitter) + slope * k) * h
            y = int(round(y_center - patch.shape[0] / 2))
            items.append(_Item(patch, y, gap, _u(rng, cfg.glyph_strength)))  # the first item's gap is unused
        if rng.random() < cfg.p_trailing_mark:
            kind = cfg.trailing_kinds[_pick(rng, self._trailing_cum)][0]
            items.extend(self._mark(rng, kind, h, mark_sw, base + int(round(slope * n * h)), _u(rng, cfg.mark_gap) * h))

        alpha = _compose(items, canvas_h, cfg.glyph_threshold)
        alpha = self._frame(rng, alpha, h)
        alpha *= _u(rng, cfg.ink_strength) * _u(rng, cfg.ink_gain)
        hh, ww = alpha.shape
        paper = self.backgrounds.sample(rng, hh, ww, cfg)
        ink = max(cfg.min_ink_grey, float(paper.mean()) - _u(rng, cfg.ink_contrast))
        img = paper + (ink - paper) * np.minimum(alpha, 1.0)
        return _degrade(rng, img, cfg), label

    def _glyph_patch(
        self, rng: np.random.Generator, g: Glyph, h: float, sw_target: float | None, shear: float
    ) -> np.ndarray:
        """Scale to the digit height, jitter aspect and rotation, slant, then match stroke width."""
        cfg = self.cfg
        gh, gw = g.image.shape
        sy = h * (1.0 + _sym(rng, cfg.digit_scale_jitter)) / gh
        sx = sy * (1.0 + _sym(rng, cfg.digit_aspect_jitter))
        morph = 0
        if sw_target is not None:
            delta = sw_target - g.stroke_width * sy
            morph = int(round(delta))
            if morph < 0:  # never thin a stroke below the minimum width
                morph = -min(-morph, max(0, int(g.stroke_width * sy - cfg.min_stroke_px)))
            morph = max(-cfg.max_morph_px, min(cfg.max_morph_px, morph))
        ang = math.radians(_sym(rng, cfg.rotation_deg))
        ca, sa = math.cos(ang), math.sin(ang)
        # A = shear @ rotation @ scale (x right, y down; positive shear leans the top to the right)
        a11, a12 = ca * sx, -sa * sy
        a21, a22 = sa * sx, ca * sy
        a11, a12 = a11 - shear * a21, a12 - shear * a22
        corners = np.array([[0, 0], [gw, 0], [0, gh], [gw, gh]], np.float64)
        xs = corners[:, 0] * a11 + corners[:, 1] * a12
        ys = corners[:, 0] * a21 + corners[:, 1] * a22
        pad = abs(morph) + 1
        ow = int(math.ceil(xs.max() - xs.min())) + 2 * pad
        oh = int(math.ceil(ys.max() - ys.min())) + 2 * pad
        m = np.array([[a11, a12, pad - xs.min()], [a21, a22, pad - ys.min()]], np.float64)
        patch = cv2.warpAffine(_U8_MAX - g.image, m, (ow, oh), flags=cv2.INTER_LINEAR, borderValue=0)
        if morph > 0:
            patch = cv2.dilate(patch, _disk(morph + 1))
        elif morph < 0:
            patch = _thin(patch, -morph, cfg.min_thinned_extent, cfg.glyph_binary_threshold)
        return patch

    def _mark(self, rng: np.random.Generator, kind: str, h: float, sw: float, base: int, gap: float) -> list[_Item]:
        """Pen marks that are not transcribed: separators, dashes, '#', slashes."""
        cfg = self.cfg
        if len(kind) > 1 and kind != "long":  # ".-", "--": a sequence of simple marks
            out: list[_Item] = []
            for j, part in enumerate(kind):
                out.extend(self._mark(rng, part, h, sw, base, gap if j == 0 else _u(rng, cfg.mark_gap) * h))
            return out
        t = max(1, int(round(sw * _u(rng, cfg.mark_thickness))))
        hi = int(math.ceil(h))
        ph = hi + int(math.ceil(cfg.mark_descent * h)) + 2 * t  # digit zone + descender room
        top = base - hi - t  # patch row 0 in the layout canvas; the baseline is at row hi + t
        b = hi + t
        if kind in (".", ",", ":"):
            r = max(1, int(round(sw * _u(rng, cfg.dot_radius))))
            w = 2 * r + 2 * t + 2
            patch = np.zeros((ph, w), np.uint8)
            cy = b - r + int(round(_sym(rng, cfg.mark_y_jitter) * h))
            if kind == ".":
                cv2.circle(patch, (w // 2, cy), r, _U8_MAX, -1, cv2.LINE_AA)
            elif kind == ",":
                tail = int(round(_u(rng, cfg.comma_tail) * h))
                cv2.line(patch, (w // 2 + t // 2, cy), (w // 2 - t // 2 - 1, cy + tail), _U8_MAX, t, cv2.LINE_AA)
                cv2.circle(patch, (w // 2, cy), r, _U8_MAX, -1, cv2.LINE_AA)
            else:
                for yy in cfg.colon_heights:
                    cv2.circle(patch, (w // 2, b - r - int(round(yy * h))), r, _U8_MAX, -1, cv2.LINE_AA)
        elif kind in ("-", "long", "="):
            length = int(round(_u(rng, cfg.long_dash if kind == "long" else cfg.dash) * h))
            w = length + 2 * t + 2
            patch = np.zeros((ph, w), np.uint8)
            tilt = int(round(_sym(rng, cfg.dash_tilt) * h))
            for yy in (cfg.dash_height,) if kind != "=" else cfg.equals_heights:
                cy = b - int(round((yy + _sym(rng, cfg.dash_height_jitter)) * h))
                cv2.line(patch, (t, cy + tilt), (t + length, cy - tilt), _U8_MAX, t, cv2.LINE_AA)
        elif kind == "/":
            size = _u(rng, cfg.slash_size) * h
            w = int(round(_u(rng, cfg.slash_lean) * size)) + 2 * t + 2
            patch = np.zeros((ph, w), np.uint8)
            cv2.line(patch, (t, b), (w - t - 1, b - int(round(size))), _U8_MAX, t, cv2.LINE_AA)
        elif kind == "#":
            size = int(round(_u(rng, cfg.hash_size) * h))
            lean = int(round(cfg.hash_lean * size))
            t = max(1, min(t, int(size * cfg.hash_max_thickness)))  # thicker strokes clog into a blob
            w = size + 2 * t + 2
            patch = np.zeros((ph, w), np.uint8)
            y0 = b - size
            for o in (size // 3, 2 * size // 3):
                cv2.line(patch, (t + o + lean, y0), (t + o - lean, b), _U8_MAX, t, cv2.LINE_AA)
                cv2.line(patch, (t, y0 + o), (t + size, y0 + o), _U8_MAX, t, cv2.LINE_AA)
        else:
            raise ValueError(f"unknown mark kind {kind!r}")
        return [_Item(patch, top, gap, _u(rng, cfg.glyph_strength))]

    def _frame(self, rng: np.random.Generator, alpha: np.ndarray, h: float) -> np.ndarray:
        """Crop the ink with random margins, then draw printed rules (underline, field box)."""
        cfg = self.cfg
        rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
        if len(rows) == 0:
            rows, cols = np.array([0, alpha.shape[0] - 1]), np.array([0, alpha.shape[1] - 1])
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        mt, mb = int(round(_u(rng, cfg.margin_top) * h)), int(round(_u(rng, cfg.margin_bottom) * h))
        ml, mr = int(round(_u(rng, cfg.margin_left) * h)), int(round(_u(rng, cfg.margin_right) * h))
        underline = rng.random() < cfg.p_underline
        t_rule = int(rng.integers(cfg.rule_thickness_px[0], cfg.rule_thickness_px[1] + 1))
        offset = int(round(_u(rng, cfg.rule_offset) * h))  # ink bottom to underline; < 0 cuts descenders
        if underline:
            mb = max(mb, offset + 2 * t_rule)
        out = np.zeros((y1 - y0 + mt + mb, x1 - x0 + ml + mr), np.float32)
        out[mt : mt + y1 - y0, ml : ml + x1 - x0] = alpha[y0:y1, x0:x1]
        hh, ww = out.shape
        rule = np.zeros_like(out)
        if underline:
            yl = min(hh - 1 - t_rule // 2, mt + (y1 - y0) + offset)
            tilt = int(round(_sym(rng, cfg.rule_tilt) * ww))
            xa = int(rng.integers(0, max(1, ml + 1)))  # printed line may start inside the crop
            cv2.line(rule, (xa, yl + tilt), (ww - 1, yl - tilt), 1.0, t_rule, cv2.LINE_AA)
        if rng.random() < cfg.p_box:  # one edge of the printed amount box caught by the crop
            side = int(rng.integers(4))
            xe, ye = ww - 1, hh - 1  # edges: top, bottom, left, right
            ends = [((0, 0), (xe, 0)), ((0, ye), (xe, ye)), ((0, 0), (0, ye)), ((xe, 0), (xe, ye))]
            cv2.line(rule, ends[side][0], ends[side][1], 1.0, t_rule, cv2.LINE_AA)
        if rule.any():
            np.maximum(out, rule * _u(rng, cfg.rule_strength), out=out)
        return out


def _compose(items: Sequence[_Item], canvas_h: int, threshold: int) -> np.ndarray:
    """Place items left to right so the ink gap, measured row by row, equals each item's gap.

    Row-wise kerning is what makes a '7' tuck over a '1' and lets 'touching' mean touching.
    """
    right = np.full(canvas_h, -np.inf)  # rightmost ink column so far, per canvas row
    placed: list[tuple[np.ndarray, int, int, float]] = []
    for it in items:
        ph, pw = it.patch.shape
        y0 = max(0, min(canvas_h - ph, it.y)) if ph <= canvas_h else 0
        patch = it.patch[: canvas_h - y0]
        has, left, rgt = _profiles(patch, threshold)
        rows = np.arange(len(has)) + y0
        if not placed:
            x = 0
        else:
            prev = right[rows]
            both = has & np.isfinite(prev)
            if both.any():
                x = int(math.ceil(np.max(prev[both] - left[both]) + 1 + it.gap))
            else:
                x = int(math.ceil(np.max(right[np.isfinite(right)]) + 1 + it.gap - left[has].min())) if has.any() else 0
        if has.any():
            right[rows[has]] = np.maximum(right[rows[has]], x + rgt[has])
        placed.append((patch, x, y0, it.strength))
    x_min = min(x for _, x, _, _ in placed)
    width = max(x + p.shape[1] for p, x, _, _ in placed) - x_min
    canvas = np.zeros((canvas_h, max(1, width)), np.float32)
    for patch, x, y0, strength in placed:
        ph, pw = patch.shape
        sl = canvas[y0 : y0 + ph, x - x_min : x - x_min + pw]
        np.maximum(sl, patch.astype(np.float32) * (strength / _U8_MAX), out=sl)
    return canvas


def _degrade(rng: np.random.Generator, img: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    """Scanner and re-encoding damage: blur, resolution loss, sensor noise, JPEG blocks."""
    hh, ww = img.shape
    if rng.random() < cfg.p_blur:
        img = cv2.GaussianBlur(img, (0, 0), _u(rng, cfg.blur_sigma))
    if rng.random() < cfg.p_rescale:
        f = _u(rng, cfg.rescale_factor)
        small = cv2.resize(img, (max(1, int(ww * f)), max(1, int(hh * f))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (ww, hh), interpolation=cv2.INTER_LINEAR)
    if rng.random() < cfg.p_noise:
        img = img + rng.standard_normal((hh, ww), dtype=np.float32) * _u(rng, cfg.noise_sigma)
    out = np.clip(img, 0, _U8_MAX).astype(np.uint8)
    if rng.random() < cfg.p_jpeg:
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return out


# ----------------------------------------------------------------------------- writing, inspection


_WORKER: SynthStrings | None = None  # the dataset forked write_synth workers render from
# realism sheet layout (display only): row height, image column width, label column width, gutter
_SHEET_ROW_H, _SHEET_COL_W, _SHEET_TEXT_W, _SHEET_PAD = 64, 330, 110, 6
_SHEET_FONT, _SHEET_FONT_WEIGHT = 0.7, 2


def _write_range(args: tuple[Path, int, int]) -> list[tuple[int, str]]:
    out_dir, start, stop = args
    assert _WORKER is not None
    out = []
    for i in range(start, stop):
        s = _WORKER[i]
        cv2.imwrite(str(out_dir / f"{i:07d}.png"), s.image)
        out.append((i, s.label))
    return out


def write_synth(
    out_dir: str | os.PathLike,
    n: int,
    seed: int,
    data_root: str | os.PathLike | None = None,
    cfg: SynthConfig = SynthConfig(),
    progress: bool = True,
    *,
    workers: int = 1,
    bank: GlyphBank | None = None,
    backgrounds: Backgrounds | None = None,
    chunk: int = 500,
) -> Path:
    """Render ``n`` strings to ``out_dir`` as ``0000000.png``... plus ``gt.txt`` (``<file> <label>``),
    the list format ``strings.datasets.read_list`` reads. Returns the gt file's path.

    A fixed on-disk set makes an experiment reproducible and shareable without this code. The
    files are those of ``SynthStrings(bank, backgrounds, n, seed, cfg)``; ``bank``/``backgrounds``
    default to ``from_data(data_root)``. ``workers > 1`` renders in forked processes.
    """
    global _WORKER
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bank = bank if bank is not None else GlyphBank.from_data(data_root, cfg=cfg)
    backgrounds = backgrounds if backgrounds is not None else Backgrounds.from_data(data_root, cfg)
    _WORKER = SynthStrings(bank, backgrounds, n, seed, cfg)
    ranges = [(out, a, min(n, a + chunk)) for a in range(0, n, chunk)]
    labels: dict[int, str] = {}
    bar = tqdm(total=n, desc="synth", unit="img", disable=not progress)
    try:
        if workers > 1 and n > chunk:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(workers) as pool:
                for part in pool.imap_unordered(_write_range, ranges):
                    labels.update(part)
                    bar.update(len(part))
        else:
            for r in ranges:
                part = _write_range(r)
                labels.update(part)
                bar.update(len(part))
    finally:
        bar.close()
        _WORKER = None
    gt = out / "gt.txt"
    gt.write_text("".join(f"{i:07d}.png {labels[i]}\n" for i in range(n)), encoding="utf-8")
    return gt


def realism_sheet(
    out_png: str | os.PathLike, data_root: str | os.PathLike | None = None, n: int = 24, seed: int = 0
) -> Path:
    """A PNG: synthetic strings (left) beside real CAR-A *training* crops (right), each labelled,
    at the same display height, so a person can judge whether the generator looks real."""
    row_h, col_w, text_w, pad = _SHEET_ROW_H, _SHEET_COL_W, _SHEET_TEXT_W, _SHEET_PAD
    root = resolve_data_root(data_root)
    synth = SynthStrings(GlyphBank.from_data(root), Backgrounds.from_data(root), n, seed)
    try:
        real_ds: ImageDataset | None = open_dataset(_CAR, "train", root)
    except DatasetError:
        real_ds = None
    rng = np.random.default_rng(seed)
    real_idx = rng.choice(len(real_ds), size=min(n, len(real_ds)), replace=False).tolist() if real_ds else []

    def text(img: np.ndarray, s: str, x: int, y: int) -> None:
        cv2.putText(img, s, (x, y), cv2.FONT_HERSHEY_SIMPLEX, _SHEET_FONT, 0, _SHEET_FONT_WEIGHT, cv2.LINE_AA)

    def cell(sample: Sample | None) -> np.ndarray:
        c = np.full((row_h + pad, col_w + text_w), _U8_MAX, np.uint8)
        if sample is None:
            return c
        im = sample.image
        w = max(1, int(round(im.shape[1] * row_h / im.shape[0])))
        im = cv2.resize(im, (w, row_h), interpolation=cv2.INTER_AREA if im.shape[0] > row_h else cv2.INTER_LINEAR)
        w = min(w, col_w)
        c[pad // 2 : pad // 2 + row_h, :w] = im[:, :w]
        text(c, sample.label, col_w + pad, (row_h + pad) // 2 + pad)
        return c

    header = np.full((row_h // 2, 2 * (col_w + text_w) + pad), _U8_MAX, np.uint8)
    text(header, "synthetic", pad, row_h // 2 - pad)
    text(header, "real CAR-A train", col_w + text_w + 2 * pad, row_h // 2 - pad)
    rows = [header]
    for k in range(n):
        left = cell(synth[k])
        right = cell(real_ds[real_idx[k]] if k < len(real_idx) else None)  # type: ignore[index]
        rows.append(np.hstack([left, np.full((left.shape[0], pad), _U8_MAX // 2, np.uint8), right]))
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack(rows))
    return out


def mnist_test_strings(data_root: str | os.PathLike | None = None, n: int = 2000, seed: int = 20141) -> SynthStrings:
    """The MNIST-test string benchmark: ``n`` strings composed only from MNIST *test* digits
    (which no model trains on), on synthetic paper, fixed by ``seed``."""
    bank = GlyphBank.from_data(data_root, sources=("mnist",), split="test")
    ds = SynthStrings(bank, Backgrounds.synthetic(), n=n, seed=seed)
    ds.name = "mnist-test-strings"
    return ds
