"""Composition: amount-like labels, and digit strings laid out left to right on paper (SynthStrings)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

from strings.alphabet import SEPARATORS, ZERO_CENTS
from strings.data.base import ImageDataset, Sample
from strings.data.synth.common import _U8_MAX, SynthConfig, _cum, _disk, _pick, _sym, _thin, _u
from strings.data.synth.damage import _degrade
from strings.data.synth.glyphs import Glyph, GlyphBank
from strings.data.synth.paper import Backgrounds

ZERO_CENTS_MARK = "." + ZERO_CENTS  # the trailing mark kind a written form keeps: "38.117.-"

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
        transcribe_marks: bool = False,
    ) -> None:
        """``transcribe_marks``: samples carry ``written``, the label with the separators drawn
        between digits and the cents (``1.500,00``, ``38.117.-``), for models that read them;
        off, the marks are drawn as untranscribed clutter and the stream is what it always was."""
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
        self.transcribe_marks = transcribe_marks
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
        image, label, written = self.render_written(rng)
        return Sample(image, label, f"synth[{index % self.n}]", written if self.transcribe_marks else None)

    # -- the renderer
    def render(self, rng: np.random.Generator, label: str | None = None) -> tuple[np.ndarray, str]:
        """One (uint8 dark-on-light image, label). The label is drawn first, so ``label(i)`` is cheap."""
        image, label, _ = self.render_written(rng, label)
        return image, label

    def render_written(self, rng: np.random.Generator, label: str | None = None) -> tuple[np.ndarray, str, str]:
        """One (image, digits label, written form). The written form has the separators drawn
        between digits and ``.-`` zero cents; stray dashes and trailing clutter stay out of it,
        as in the real cheques' transcriptions. Without ``transcribe_marks`` no extra random
        number is drawn, so every old stream renders the same."""
        cfg = self.cfg
        alpha, label, written = self.layout(rng, label)
        hh, ww = alpha.shape
        paper = self.backgrounds.sample(rng, hh, ww, cfg)
        ink = max(cfg.min_ink_grey, float(paper.mean()) - _u(rng, cfg.ink_contrast))
        img = paper + (ink - paper) * np.minimum(alpha, 1.0)
        return _degrade(rng, img, cfg), label, written

    def layout(self, rng: np.random.Generator, label: str | None = None) -> tuple[np.ndarray, str, str]:
        """The pen's ink before paper and damage: (alpha (h, w) float32, 1 = full ink, label,
        written form). Other renderers (phone photos) paint their own paper and ink with it."""
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
        cents = self.transcribe_marks and n >= 3 and rng.random() < cfg.p_cents  # "1.500,00"
        whole = n - 2 if cents else n  # digits before the decimal mark
        sep_every = 3 if (whole >= 4 and rng.random() < cfg.p_thousands_sep) else 0
        sep_kind = "," if rng.random() < cfg.sep_comma_share else "."
        decimal_kind = ("." if sep_kind == "," else ",") if cents else ""
        if cents and not sep_every and rng.random() < cfg.p_dot_cents:
            decimal_kind = "."  # "672.90": a dot before the cents, with no thousands mark
        written = ""
        for k, ch in enumerate(label):
            gap = (gap_mean + _sym(rng, cfg.gap_jitter)) * h if k > 0 else _u(rng, cfg.mark_gap) * h
            if cents and k == whole:
                items.extend(self._mark(rng, decimal_kind, h, mark_sw, base, _u(rng, cfg.mark_gap) * h))
                gap = _u(rng, cfg.mark_gap) * h
                written += decimal_kind
            elif k > 0 and k < whole and sep_every and (whole - k) % sep_every == 0:
                items.extend(self._mark(rng, sep_kind, h, mark_sw, base, _u(rng, cfg.mark_gap) * h))
                gap = _u(rng, cfg.mark_gap) * h
                written += sep_kind
            elif k > 0 and rng.random() < cfg.p_gap_mark:
                kind = cfg.gap_marks[int(rng.integers(len(cfg.gap_marks)))]
                items.extend(self._mark(rng, kind, h, mark_sw, base, _u(rng, cfg.mark_gap) * h))
                gap = _u(rng, cfg.mark_gap) * h
                written += kind if kind in SEPARATORS else ""
            written += ch
            g = self.bank.sample(rng, ch, source, cfg)
            patch = self._glyph_patch(rng, g, h, sw_target if match_stroke else None, shear)
            y_center = base - 0.5 * h + (_sym(rng, cfg.baseline_jitter) + slope * k) * h
            y = int(round(y_center - patch.shape[0] / 2))
            items.append(_Item(patch, y, gap, _u(rng, cfg.glyph_strength)))  # the first item's gap is unused
        if rng.random() < cfg.p_trailing_mark:
            kind = cfg.trailing_kinds[_pick(rng, self._trailing_cum)][0]
            if cents and kind == ZERO_CENTS_MARK:
                kind = "-"  # the cents are written already: no ".-" after them
            items.extend(self._mark(rng, kind, h, mark_sw, base + int(round(slope * n * h)), _u(rng, cfg.mark_gap) * h))
            written += kind if kind == ZERO_CENTS_MARK else ""  # "38.117.-": a dash standing for zero cents

        alpha = _compose(items, canvas_h, cfg.glyph_threshold)
        alpha = self._frame(rng, alpha, h)
        alpha *= _u(rng, cfg.ink_strength) * _u(rng, cfg.ink_gain)
        return alpha, label, written

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


def split_materials(data_root: str | os.PathLike | None, split: str,
                    exclude: frozenset[str] = frozenset()) -> tuple[GlyphBank, Backgrounds]:
    """Glyphs and paper of a composed set's ``split``: ``test`` takes MNIST *test* digits on
    synthetic paper (nothing a model trains on); every other split the training glyph bank on
    real and synthetic paper, leaving out the cheque crops named in ``exclude``."""
    if split == "test":
        return GlyphBank.from_data(data_root, sources=("mnist",), split="test"), Backgrounds.synthetic()
    return GlyphBank.from_data(data_root, exclude=exclude), Backgrounds.from_data(data_root, exclude=exclude)
