"""Glyphs: isolated real digits (MNIST, USPS, the CAR-A training crops cut by their boxes), sized and thinned."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from strings.data.base import DatasetError, resolve_data_root
from strings.data.catalog import open_dataset
from strings.data.readers import read_car_partial_boxes
from strings.data.synth.common import (
    _CAR,
    _MIN_KERNEL,
    _U8_MAX,
    DEFAULT_SOURCES,
    SynthConfig,
    _cum,
    _disk,
    _pick,
    _tight_boxes,
    stroke_widths,
)
from strings.image import load_image

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
