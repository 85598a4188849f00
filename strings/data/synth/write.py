"""Writing and inspection: synthetic sets on disk, the realism sheet, MNIST-test strings."""

from __future__ import annotations

from collections.abc import Iterable

import os
from pathlib import Path

import cv2
import numpy as np

from strings.data.base import DatasetError, ImageDataset, Sample, resolve_data_root
from strings.data.catalog import open_dataset
from strings.data.synth.common import _CAR, _U8_MAX, SynthConfig
from strings.data.synth.compose import SynthStrings, split_materials
from strings.data.synth.glyphs import GlyphBank
from strings.data.synth.paper import Backgrounds

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
    exclude: Iterable[str] = (),
) -> Path:
    """Render ``n`` strings to ``out_dir`` as ``0000000.png``... plus ``gt.txt`` (``<file> <label>``),
    the list format ``strings.data.read_list`` reads. Returns the gt file's path.

    A fixed on-disk set makes an experiment reproducible and shareable without this code. The
    files are those of ``SynthStrings(bank, backgrounds, n, seed, cfg)``; ``bank``/``backgrounds``
    default to ``from_data(data_root, exclude=exclude)``: ``exclude`` names the real crops
    (the validation slice) whose digits and paper must not appear. ``workers > 1`` renders in
    forked processes.
    """
    global _WORKER
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exclude = set(exclude)
    bank = bank if bank is not None else GlyphBank.from_data(data_root, cfg=cfg, exclude=exclude)
    backgrounds = backgrounds if backgrounds is not None else Backgrounds.from_data(data_root, cfg, exclude=exclude)
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
    out_png: str | os.PathLike, data_root: str | os.PathLike | None = None, n: int = 24, seed: int = 0,
    exclude: Iterable[str] = (),
) -> Path:
    """A PNG: synthetic strings (left) beside real CAR-A *training* crops (right), each labelled,
    at the same display height, so a person can judge whether the generator looks real. The
    crops named in ``exclude`` (the validation slice) appear on neither side."""
    row_h, col_w, text_w, pad = _SHEET_ROW_H, _SHEET_COL_W, _SHEET_TEXT_W, _SHEET_PAD
    root = resolve_data_root(data_root)
    exclude = set(exclude)
    synth = SynthStrings(GlyphBank.from_data(root, exclude=exclude), Backgrounds.from_data(root, exclude=exclude), n, seed)
    try:
        real_ds: ImageDataset | None = open_dataset(_CAR, "train", root)
    except DatasetError:
        real_ds = None
    rng = np.random.default_rng(seed)
    allowed = [i for i in range(len(real_ds)) if Path(real_ds.items[i][0]).name not in exclude] if real_ds else []
    real_idx = rng.choice(allowed, size=min(n, len(allowed)), replace=False).tolist() if allowed else []

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
    bank, backgrounds = split_materials(data_root, "test")
    ds = SynthStrings(bank, backgrounds, n=n, seed=seed)
    ds.name = "mnist-test-strings"
    return ds
