"""Where a handwritten string may sit in a loose field crop: scan margins and ruled lines
painted out, ink grouped into candidate strings.

A loose crop (a register cell, a form box cut by fixed coordinates) holds far more than the
number: a black scan margin on one side, ruled lines, printed labels, underlines, other writing.
This module only proposes places; the recognizer reads each and ``strings.read.field`` chooses
by its calibrated confidence, so nothing here needs to know what a digit looks like.

Example:
    >>> from strings.locate import field_candidates
    >>> clean, boxes = field_candidates(grey)  # doctest: +SKIP
    >>> boxes[0]  # doctest: +SKIP
    (31, 52, 88, 81)
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import cv2
import numpy as np

from strings.config import FieldConfig

__all__ = ["Box", "Places", "clean_field", "field_candidates", "find_places", "ink_mask"]

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), pixels of the crop, end exclusive


def _paper_level(grey: np.ndarray) -> float:
    return float(np.percentile(grey, 75))


def _margin_mask(grey: np.ndarray, cfg: FieldConfig) -> np.ndarray:
    """True on scan margins: whole columns (rows) darker than ``margin_level`` of the paper,
    at the crop's edge or inside it (a page's edge with the scanner bed's light beyond it),
    widened by ``margin_pad`` of the crop's short side for the margin's soft edge."""
    h, w = grey.shape
    mask = np.zeros_like(grey, dtype=bool)
    dark = _paper_level(grey) * cfg.margin_level
    pad = int(round(cfg.margin_pad * min(h, w)))
    window = np.ones(2 * pad + 1, np.int32)

    def bands(flags: np.ndarray) -> np.ndarray:
        """Runs of dark lines at least ``margin_width`` of the crop wide (a digit's upright in
        a tight crop darkens its columns too, but only a few), widened by ``pad``."""
        keep = np.zeros_like(flags)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
        for lo, hi in zip(edges[::2], edges[1::2]):
            if hi - lo >= cfg.margin_width * len(flags):
                keep[lo:hi] = True
        return np.convolve(keep.astype(np.int32), window, mode="same") > 0

    cols = bands(np.median(grey, axis=0) < dark)  # (W,)
    mask[:, cols] = True
    if not cols.all():  # rows judged on the columns left, so a wide side margin does not darken every row
        mask[bands(np.median(grey[:, ~cols], axis=1) < dark)] = True  # (H,)
    return mask


def ink_mask(grey: np.ndarray, cfg: FieldConfig) -> tuple[np.ndarray, np.ndarray]:
    """(flattened grey, ink mask): the paper's slow shading divided out, then ink as the pixels
    darker than ``ink_level`` of the local paper; margins are never ink."""
    h, w = grey.shape
    margin = _margin_mask(grey, cfg)
    g = grey.astype(np.float32)
    paper_fill = float(np.median(g[~margin])) if (~margin).any() else _paper_level(grey)
    g[margin] = paper_fill
    k = max(3, int(round(cfg.background_kernel * min(h, w))) | 1)
    background = cv2.morphologyEx(g, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    flat = np.clip(g / np.maximum(background, 1.0), 0.0, 1.0)  # (H, W), paper ~1
    ink = (flat < _ink_threshold(flat[~margin], cfg)) & ~margin
    return flat, ink


def _ink_threshold(flat: np.ndarray, cfg: FieldConfig) -> float:
    """Otsu's split of the flattened levels, kept between ``faint_level`` (pale pencil, worn
    ink) and ``ink_level``: a dark pen on clean paper splits near the middle, a faint one high."""
    if flat.size == 0:
        return cfg.ink_level
    u8 = (flat * 255).astype(np.uint8).reshape(1, -1)
    otsu, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(np.clip(otsu / 255.0, cfg.ink_level, cfg.faint_level))


def _ruled_lines(ink: np.ndarray, cfg: FieldConfig) -> tuple[np.ndarray, np.ndarray, Box | None]:
    """Long straight strokes: rules, cell borders, box edges (not an underline of the number,
    which is about as long as the number, nor a digit's upright).

    A horizontal run of ``line_length`` of the width is a rule. A vertical run that long is a
    rule only where it spans ``rule_span`` of the height (a cell border) or meets a horizontal
    rule at both ends (a comb's box edge): the 1s and 4s of a tight crop are as tall as that too.
    Returns (horizontal rules, upright rules), each widened by a pixel, and the span of the box
    edges where there are two or more (a comb field: its boxes hold one number)."""
    h, w = ink.shape
    u8 = ink.astype(np.uint8)
    kh = max(3, int(round(cfg.line_length * w)))
    kv = max(3, int(round(cfg.line_length * h)))
    horiz = cv2.morphologyEx(u8, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (kh, 1)))
    vert = cv2.morphologyEx(u8, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, kv)))
    near_rule = cv2.dilate(horiz, np.ones((3, 3), np.uint8)).astype(bool)  # a box edge meets its rule: printed, it touches
    n, labels, stats, _ = cv2.connectedComponentsWithStats(vert, connectivity=8)
    top, height = stats[:, cv2.CC_STAT_TOP], stats[:, cv2.CC_STAT_HEIGHT]  # (n,)
    spans = height >= cfg.rule_span * h
    # a box edge meets a rule at both its ends; a 1 standing on a baseline meets one at its foot
    ys, xs = np.nonzero(near_rule & (labels > 0))
    lab = labels[ys, xs]
    at_top = np.zeros(n, dtype=bool)
    at_foot = np.zeros(n, dtype=bool)
    at_top[lab[ys - top[lab] < 3]] = True
    at_foot[lab[top[lab] + height[lab] - ys <= 3]] = True
    edges = at_top & at_foot
    edges[0] = False  # label 0: not a vertical run
    is_rule = spans | edges
    is_rule[0] = False
    comb: Box | None = None
    if edges.sum() >= 2:  # the comb spans its edges and the rules they meet (a tilted edge may go unseen)
        _, hlabels, hstats, _ = cv2.connectedComponentsWithStats(horiz, connectivity=8)
        touched = np.unique(hlabels[cv2.dilate(edges[labels].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)])
        parts = np.concatenate([stats[edges, :4], hstats[touched[touched > 0], :4]])  # (k, 4): x, y, w, h
        comb = (int(parts[:, 0].min()), int(parts[:, 1].min()),
                int((parts[:, 0] + parts[:, 2]).max()), int((parts[:, 1] + parts[:, 3]).max()))
    grow = np.ones((3, 3), np.uint8)
    horiz_wide = cv2.dilate(horiz, grow).astype(bool)
    return horiz_wide, cv2.dilate(is_rule[labels].astype(np.uint8), grow).astype(bool), comb


def _clean(grey: np.ndarray, cfg: FieldConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, Box | None]:
    """(clean grey uint8, ink without rules, ink without upright rules only, comb span or None)."""
    flat, ink = ink_mask(grey, cfg)
    horiz, upright, comb = _ruled_lines(ink, cfg)
    lines = horiz | upright
    clean = (flat * 255.0).astype(np.uint8)
    clean[~ink] = np.maximum(clean[~ink], np.uint8(255 * cfg.ink_level))  # specks under the level: paper
    clean[lines] = 255
    return clean, ink & ~lines, ink & ~upright, comb


def clean_field(grey: np.ndarray, cfg: FieldConfig = FieldConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(clean grey uint8, ink mask): margins, shading and ruled lines painted as flat paper."""
    clean, ink, _, _ = _clean(grey, cfg)
    return clean, ink


def _components(ink: np.ndarray, cfg: FieldConfig, fragments: bool = True) -> np.ndarray:
    """(N, 5) stats of the strokes worth grouping: specks dropped, and (``fragments``) the
    hairline pieces of broken rules."""
    h, w = ink.shape
    n, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    stats = stats[1:]
    min_area = cfg.min_stroke_area * h * w
    sw, sh = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    keep = stats[:, cv2.CC_STAT_AREA] >= max(min_area, 4)
    # what is left of a broken or slanted rule: thin, and taller (wider) than writing here is
    # (parish: 416 -> 450 of 500 validation crops read once these pieces no longer joined the number)
    if fragments:
        keep &= ~((sh > cfg.max_height * h / 2) & (sh > cfg.rule_aspect * sw))
        keep &= ~((sw >= cfg.line_length * w) & (sw > cfg.rule_aspect * sh))
    return stats[keep]


def _group(stats: np.ndarray, cfg: FieldConfig, shape: tuple[int, int]) -> list[Box]:
    """Strokes merged into strings (single linkage): two strokes join when they sit side by side
    (overlapping rows, neither over ``join_height_ratio`` times the other's height) with a gap
    under ``join_gap`` of the shorter one's height (so a piece of
    a broken rule does not reach across the cell), or one above the other (overlapping columns:
    the pieces of a broken digit) with a gap under ``stack_gap``."""
    if len(stats) == 0:
        return []
    boxes = [[int(s[0]), int(s[1]), int(s[0] + s[2]), int(s[1] + s[3])] for s in stats]
    parent = list(range(len(boxes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            b = boxes[j]
            ha, hb = a[3] - a[1], b[3] - b[1]
            wa, wb = a[2] - a[0], b[2] - b[0]
            side_by_side = (min(a[3], b[3]) - max(a[1], b[1]) >= cfg.join_overlap * min(ha, hb)
                            and max(ha, hb) <= cfg.join_height_ratio * min(ha, hb))
            stacked = min(a[2], b[2]) - max(a[0], b[0]) >= cfg.join_overlap * min(wa, wb)  # a broken digit
            gap_x = max(a[0], b[0]) - min(a[2], b[2])
            gap_y = max(a[1], b[1]) - min(a[3], b[3])
            if (side_by_side and gap_x <= cfg.join_gap * min(ha, hb)) or (stacked and gap_y <= cfg.stack_gap * max(ha, hb)):
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        g = groups.setdefault(find(i), [0, 0, 0, 0, 0])
        b = boxes[i]
        if g[4] == 0:
            g[:4] = b
        else:
            g[0], g[1], g[2], g[3] = min(g[0], b[0]), min(g[1], b[1]), max(g[2], b[2]), max(g[3], b[3])
        g[4] += 1
    return [tuple(g[:4]) for g in groups.values()]  # type: ignore[misc]


def _regrouped(strokes: np.ndarray, groups: list[Box], cfg: FieldConfig, shape: tuple[int, int]) -> list[Box]:
    """The strings inside groups too tall to be one, grouped again without their strokes taller
    than ``split_tall`` of the crop: what is left of a tilted rule or a margin's edge, joined
    to an underline, otherwise swallows the number beside it. Only groups of at most
    ``split_strokes`` other strokes (noise and clutter would split into specks); new groups only."""
    h = shape[0]
    big = [g for g in groups if g[3] - g[1] > cfg.max_height * h] if cfg.split_tall > 0 else []
    if not big:
        return []
    x0, y0 = strokes[:, cv2.CC_STAT_LEFT], strokes[:, cv2.CC_STAT_TOP]  # (N,)
    x1, y1 = x0 + strokes[:, cv2.CC_STAT_WIDTH], y0 + strokes[:, cv2.CC_STAT_HEIGHT]
    short = strokes[:, cv2.CC_STAT_HEIGHT] <= cfg.split_tall * h  # (N,)
    keep = np.zeros(len(strokes), dtype=bool)
    for g in big:
        inside = (x0 >= g[0]) & (y0 >= g[1]) & (x1 <= g[2]) & (y1 <= g[3])
        if (inside & ~short).any() and (inside & short).sum() <= cfg.split_strokes:  # more is clutter, not a number
            keep |= inside & short
    seen = set(groups)
    return [g for g in _group(strokes[keep], cfg, shape) if g not in seen]


class Places(NamedTuple):
    """Where a string may be in a loose crop: the image to cut the places from, the boxes (at
    most ``max_candidates``, a comb's boxes first, then the most ink first), whether the first
    box is a comb (its boxes hold the number: a reading there is preferred), and ``row``: how
    many strings the first box joins when it is a line of them (0: it is not; see
    ``FieldConfig.join_rows``)."""

    image: np.ndarray
    boxes: list[Box]
    comb: bool = False
    row: int = 0


def _row(groups: list[Box], mass: list[float], cfg: FieldConfig) -> list[Box]:
    """The strings on the inkiest one's line that chain to it with gaps under ``row_gap`` of its
    height, left to right (itself included)."""
    anchor = groups[int(np.argmax(mass))]
    ah = anchor[3] - anchor[1]

    def on_line(g: Box) -> bool:
        gh = g[3] - g[1]
        overlap = min(g[3], anchor[3]) - max(g[1], anchor[1])
        return overlap >= cfg.row_overlap * min(gh, ah) and 1 / cfg.row_height_ratio <= gh / ah <= cfg.row_height_ratio

    line = sorted(g for g in groups if on_line(g))
    lo = hi = line.index(anchor)
    while lo > 0 and line[lo][0] - line[lo - 1][2] <= cfg.row_gap * ah:
        lo -= 1
    while hi < len(line) - 1 and line[hi + 1][0] - line[hi][2] <= cfg.row_gap * ah:
        hi += 1
    return line[lo : hi + 1]


def field_candidates(grey: np.ndarray, cfg: FieldConfig = FieldConfig()) -> tuple[np.ndarray, list[Box]]:
    """(image to cut from, candidate boxes) of ``find_places``."""
    places = find_places(grey, cfg)
    return places.image, places.boxes


def find_places(grey: np.ndarray, cfg: FieldConfig = FieldConfig()) -> Places:
    """Where a string may be; each box padded by ``pad`` of its height and kept inside the crop.

    A crop whose writing is taller than ``max_height`` of it is already tight (a cheque's
    amount box, a cell cut to its number): it is read whole, as it came, since painting out
    rules there cuts the digits that sit on them."""
    h, w = grey.shape
    clean, ink, with_horizontals, comb = _clean(grey, cfg)
    # tight or not is judged with horizontal rules kept (a baseline through the digits cuts
    # them), on string-shaped writing: a cell's leftover border with its rule is tall, not wide;
    # a comb's frame is not writing
    if comb is None:
        # (with the thin strokes a loose crop's leftover rules would be: a tight crop's 1s)
        for x0, y0, x1, y1 in _group(_components(with_horizontals, cfg, fragments=False), cfg, (h, w)):
            if y1 - y0 > cfg.max_height * h and x1 - x0 >= cfg.tight_aspect * (y1 - y0):
                return Places(grey, [(0, 0, w, h)])
    strokes = _components(ink, cfg)
    groups = _group(strokes, cfg, (h, w))
    regrouped = _regrouped(strokes, groups, cfg, (h, w))  # candidates, not parts of a line of strings

    def by_ink(boxes: list[Box]) -> list[tuple[float, Box]]:
        """The boxes of a string's height, the most ink first."""
        kept = [(float(ink[y0:y1, x0:x1].sum()), (x0, y0, x1, y1)) for x0, y0, x1, y1 in boxes
                if cfg.min_height * h <= y1 - y0 <= cfg.max_height * h]
        return sorted(kept, key=lambda t: -t[0])

    def padded(b: Box) -> Box:
        p = int(round(cfg.pad * (b[3] - b[1])))
        return (max(0, b[0] - p), max(0, b[1] - p), min(w, b[2] + p), min(h, b[3] + p))

    scored = by_ink(groups)
    if comb is None and not scored and not by_ink(regrouped) and cfg.faint_retry and cfg.ink_level < cfg.faint_level:
        # nothing of a string's height: a thin pale pen may sit under the split Otsu chose; search
        # again with every pixel under faint_level counted as ink
        return find_places(grey, dataclasses.replace(cfg, ink_level=cfg.faint_level))
    out: list[Box] = [comb] if comb is not None else []  # a comb's boxes, the number's own place, come first
    row = _row([b for _, b in scored], [m for m, _ in scored], cfg) if comb is None and cfg.join_rows and len(scored) > 1 else []
    joined = len(row) if len(row) > 1 else 0
    if joined:  # the line of strings first (no comb here, so it is the first box), then its parts among the others
        out.append(padded((min(b[0] for b in row), min(b[1] for b in row), max(b[2] for b in row), max(b[3] for b in row))))
    for _, box in sorted(scored + by_ink(regrouped), key=lambda t: -t[0])[: max(0, cfg.max_candidates - len(out))]:
        out.append(padded(box))
    return Places(clean, out, comb is not None, joined)
