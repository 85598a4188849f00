"""Paper and backgrounds: real cheque paper with its ink removed, and synthetic security patterns."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from strings.data.base import DatasetError, resolve_data_root
from strings.data.catalog import open_dataset
from strings.data.readers import read_car_partial_boxes
from strings.data.synth.common import _CAR, _MIN_KERNEL, SynthConfig, _disk, _sym, _u
from strings.image import load_image

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
