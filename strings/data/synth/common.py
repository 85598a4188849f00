"""The generator's settings (SynthConfig) and the small image helpers every stage shares."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

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
    # written cents, drawn only for models that transcribe marks (SynthStrings.transcribe_marks):
    # 5 of the 128 real test cheques write cents (README of the data), so a small share
    p_cents: float = 0.1  # "1.500,00": the last two digits after a decimal mark
    p_dot_cents: float = 0.2  # of those without a thousands mark: "672.90" rather than "672,90"
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
