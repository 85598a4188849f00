"""Tests for the synthetic amount-string generator.

All but the last test build their glyphs with cv2.putText, so they need no dataset; the last one
checks the real-data loaders when ../shared/data (or $STRINGS_DATA) is present.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from strings.data import read_list
from strings.data.synth import Backgrounds, GlyphBank, SynthConfig, SynthStrings, sample_label, stroke_widths, write_synth
from strings.data.synth.glyphs import _cut_car_digits  # internal steps worth pinning down
from strings.data.synth.paper import _clean_paper

FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_COMPLEX)

# every distractor on / off: the label must not depend on them
MARKS_ON = {
    k: 1.0 for k in ("p_thousands_sep", "p_gap_mark", "p_trailing_mark", "p_leading_mark", "p_underline", "p_box")
}
MARKS_OFF = {k: 0.0 for k in MARKS_ON}


def _digit(d: str, font: int, thickness: int, size: int = 40) -> np.ndarray:
    img = np.full((size, size), 255, np.uint8)
    cv2.putText(img, d, (size // 5, size - size // 5), font, size / 32, 0, thickness, cv2.LINE_AA)
    return img


@pytest.fixture(scope="module")
def bank() -> GlyphBank:
    imgs, labels = [], []
    for d in "0123456789":
        for font in FONTS:
            for thickness in (1, 3):
                imgs.append(_digit(d, font, thickness))
                labels.append(d)
    return GlyphBank.from_arrays(imgs, labels, source="puttext")


@pytest.fixture(scope="module")
def ds(bank: GlyphBank) -> SynthStrings:
    return SynthStrings(bank, Backgrounds.synthetic(), n=200, seed=7)


def test_bank_crops_tight_and_measures_strokes(bank: GlyphBank) -> None:
    assert bank.classes == "0123456789" and len(bank) == 80
    for g in bank.glyphs:
        assert g.dtype == np.uint8 and g.ndim == 2
        ink = g < 255 - SynthConfig.glyph_threshold
        # tight: ink touches every edge of the crop
        assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()
    bar = np.zeros((30, 40), np.uint8)
    bar[5:25, 10:16] = 255  # a 6 px wide stroke, ink bright
    assert stroke_widths(bar) == pytest.approx(6.0, rel=0.25)


def test_bank_from_ink_bright_arrays_and_save_load(tmp_path: Path, bank: GlyphBank) -> None:
    mnist_like = 255 - np.stack([_digit(d, FONTS[0], 3, 28) for d in "0123456789"])
    b = GlyphBank.from_arrays(mnist_like, list("0123456789"), source="m", ink_bright=True)
    for g, ink in zip(b.glyphs, mnist_like):
        ys, xs = np.nonzero(ink >= SynthConfig.glyph_threshold)
        assert np.array_equal(g, 255 - ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])  # stored dark on light
    bank.save(tmp_path / "bank.npz")
    again = GlyphBank.load(tmp_path / "bank.npz")
    assert again.labels == bank.labels and again.sources == bank.sources
    assert all(np.array_equal(a, b) for a, b in zip(again.glyphs, bank.glyphs))


def test_deterministic_for_seed_and_index(bank: GlyphBank, ds: SynthStrings) -> None:
    twin = SynthStrings(bank, Backgrounds.synthetic(), n=200, seed=7)
    for i in (0, 1, 57, 199):
        a, b = ds[i], twin[i]
        assert a.label == b.label and a.name == f"synth[{i}]"
        assert np.array_equal(a.image, b.image)
        assert ds.label(i) == a.label
    other = SynthStrings(bank, Backgrounds.synthetic(), n=200, seed=8)
    assert [other[i].label for i in range(20)] != [ds[i].label for i in range(20)]
    with pytest.raises(IndexError):
        ds[200]


def test_labels_are_digits_with_lengths_in_range(ds: SynthStrings) -> None:
    cfg = ds.cfg
    labels = [ds[i].label for i in range(len(ds))]
    assert all(lab.isdigit() and 1 <= len(lab) <= cfg.max_length for lab in labels)
    lengths = {len(lab) for lab in labels}
    assert len(lengths) >= 5  # the whole range is used, not one length
    rng = np.random.default_rng(0)
    many = [sample_label(rng, cfg) for _ in range(2000)]
    assert sum(lab.endswith("00") for lab in many) > 200  # amount-like
    assert sum(lab.startswith("0") for lab in many) > 10  # and uniform strings too
    assert {len(lab) for lab in many} == set(range(1, cfg.max_length + 1))
    assert all(set(sample_label(rng, cfg, "137")) <= set("137") for _ in range(50))


def test_image_dtype_shape_and_polarity(ds: SynthStrings) -> None:
    for i in range(40):
        img = ds[i].image
        assert img.dtype == np.uint8 and img.ndim == 2
        h, w = img.shape
        assert 20 <= h <= 150 and 8 <= w <= 900
        # dark ink on light paper: the paper (median) is much lighter than the ink (1st percentile)
        lo, med = np.percentile(img, (1, 50))
        assert med - lo > 30 and med > 100


def test_render_given_label(ds: SynthStrings) -> None:
    img, label = ds.render(np.random.default_rng(3), "120500")
    assert label == "120500" and img.shape[1] > img.shape[0]
    with pytest.raises(ValueError):
        ds.render(np.random.default_rng(3), "12a")


def test_distractor_marks_do_not_change_the_label(bank: GlyphBank) -> None:
    on = SynthStrings(bank, Backgrounds.synthetic(), 30, 5, dataclasses.replace(SynthConfig(), **MARKS_ON))
    off = SynthStrings(bank, Backgrounds.synthetic(), 30, 5, dataclasses.replace(SynthConfig(), **MARKS_OFF))
    wider = 0
    for i in range(30):
        a, b = on[i], off[i]
        assert a.label == b.label
        wider += a.image.shape[1] > b.image.shape[1]
    assert wider > 20  # the marks are drawn (leading and trailing ones widen the string)
    img, label = on.render(np.random.default_rng(1), "1234567")
    assert label == "1234567"


def test_spacing_modes_and_no_real_data_needed(bank: GlyphBank) -> None:
    tight = dataclasses.replace(SynthConfig(), spacing_mode_weights=(0, 0, 0, 1), **MARKS_OFF)
    wide = dataclasses.replace(SynthConfig(), spacing_mode_weights=(1, 0, 0, 0), **MARKS_OFF)
    a = SynthStrings(bank, None, 20, 1, tight)
    b = SynthStrings(bank, None, 20, 1, wide)
    ratio = [b[i].image.shape[1] / a[i].image.shape[1] for i in range(20) if len(a[i].label) >= 3]
    assert np.median(ratio) > 1.2


def test_write_synth_gt_reads_back(tmp_path: Path, bank: GlyphBank) -> None:
    out = tmp_path / "synth"
    gt = write_synth(out, 12, seed=3, cfg=SynthConfig(), progress=False, bank=bank, backgrounds=Backgrounds.synthetic())
    assert gt == out / "gt.txt"
    back = read_list(gt, out)
    ref = SynthStrings(bank, Backgrounds.synthetic(), 12, 3)
    assert len(back) == 12
    for i in range(12):
        assert back.label(i) == ref[i].label
        assert np.array_equal(back[i].image, ref[i].image)  # PNG is lossless


def test_backgrounds_fall_back_to_synthetic(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bgs = Backgrounds.from_data(tmp_path)
    assert not bgs.patches and caught
    paper = bgs.sample(np.random.default_rng(0), 50, 120)
    assert paper.shape == (50, 120) and paper.min() > 60  # light paper, patterns stay faint


def _fake_cheque(
    rng: np.random.Generator, text: str, texture: bool = True
) -> tuple[np.ndarray, list[tuple[str, tuple[int, int, int, int]]]]:
    """Grey paper with fine diagonal security lines, digits in dark pen, and their boxes."""
    h, w = 60, 40 * len(text) + 30
    yy, xx = np.mgrid[0:h, 0:w]
    img = (175 - 15 * texture * (np.cos((xx + yy) * 1.3) > 0.8)).astype(np.uint8)
    boxes = []
    for k, d in enumerate(text):
        x = 15 + 40 * k
        cv2.putText(img, d, (x, 48), FONTS[0], 1.2, 40, 3, cv2.LINE_AA)
        (tw, th), _ = cv2.getTextSize(d, FONTS[0], 1.2, 3)
        boxes.append((d, (x - 2, 48 - th - 3, x + tw + 2, 48 + 4)))
    img = np.clip(img + texture * rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    return img, boxes


def test_cheque_digits_cut_clean_and_paper_cleaned() -> None:
    cfg = SynthConfig()
    img, boxes = _fake_cheque(np.random.default_rng(0), "3071")
    cut = _cut_car_digits(img, boxes, cfg)
    clean = _cut_car_digits(_fake_cheque(np.random.default_rng(0), "3071", texture=False)[0], boxes, cfg)
    assert [d for d, _ in cut] == list("3071")
    for (_, alpha), (_, ref) in zip(cut, clean):
        assert alpha.max() == 255 and alpha.shape[0] >= cfg.min_glyph_px
        assert (alpha > 0).sum() <= 1.15 * (ref > 0).sum()  # the strokes, not the security lines
    paper = _clean_paper(img, [b for _, b in boxes], cfg)
    assert paper.shape == img.shape
    assert (paper < 100).sum() < 0.02 * (img < 100).sum()  # the pen ink is gone
    assert paper.std() > 2  # the texture is kept


def _write_idx(path: Path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


def test_from_data_mnist_idx_and_split_rules(tmp_path: Path) -> None:
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    x = np.stack([255 - _digit(d, FONTS[i % 4], 1, 28) for i, d in enumerate("0123456789" * 3)])
    y = np.array([int(d) for d in "0123456789" * 3])
    _write_idx(mnist / "t10k-images-idx3-ubyte.gz", x)
    _write_idx(mnist / "t10k-labels-idx1-ubyte.gz", y)
    b = GlyphBank.from_data(tmp_path, sources=("mnist",), split="test")
    assert len(b) == 30 and b.classes == "0123456789" and b.source_names() == ["mnist"]
    assert all(g.shape[0] <= 28 and g.max() > 200 and g.min() < 60 for g in b.glyphs)
    with pytest.raises(ValueError):
        GlyphBank.from_data(tmp_path, sources=("mnist", "car-a-partial"), split="test")  # cheque test crops stay unseen
    with pytest.raises(ValueError):
        GlyphBank.from_data(tmp_path, sources=("usps",), split="test")


def _real_data_root() -> Path | None:
    env = os.environ.get("STRINGS_DATA")
    for cand in ([Path(env)] if env else []) + [Path(__file__).resolve().parents[2] / "shared" / "data"]:
        if (cand / "mnist").is_dir() and (cand / "orand-car").is_dir():
            return cand
    return None


@pytest.mark.skipif(_real_data_root() is None, reason="real data (../shared/data or $STRINGS_DATA) not present")
def test_real_data_bank_and_backgrounds() -> None:
    root = _real_data_root()
    bank = GlyphBank.from_data(root)
    assert bank.source_names() == ["car-a-partial", "mnist", "usps"]
    assert bank.count(source="mnist") > 58000 and bank.count(source="usps") > 7000  # minus ink blobs
    assert bank.count(source="car-a-partial") > 2000 and bank.classes == "0123456789"
    bgs = Backgrounds.from_data(root)
    assert len(bgs.patches) > 500
    ds = SynthStrings(bank, bgs, 50, 0)
    heights = [ds[i].image.shape[0] for i in range(50)]
    assert 30 <= np.median(heights) <= 80  # like the real crops (33-108 px)


def test_thinning_keeps_thin_parts_of_a_glyph() -> None:
    """A 6 with a fat loop and a hairline stem: plain erosion deletes the stem (the glyph turns
    into a blob that no one can read as a 6); the guarded thinning keeps the ink's height."""
    from strings.data.synth.common import _ink_height, _thin

    patch = np.zeros((60, 40), np.uint8)
    cv2.circle(patch, (20, 42), 11, 255, 9)  # loop, strokes 9 px wide
    cv2.line(patch, (12, 40), (24, 4), 255, 2)  # stem, 2 px wide
    before = _ink_height(patch, 128)
    assert _ink_height(cv2.erode(patch, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))), 128) < 0.7 * before
    thinned = _thin(patch, 4, 0.9, 128)
    assert _ink_height(thinned, 128) >= 0.9 * before
    assert (thinned >= 128).sum() < (patch >= 128).sum()  # still thinned where it could be
    assert np.array_equal(_thin(np.zeros((5, 5), np.uint8), 3, 0.9, 128), np.zeros((5, 5), np.uint8))


class _Stop(Exception):
    """Raised by the spies below once they have seen what the generator was asked for."""


@pytest.mark.parametrize("argv_extra, keeps_out", [([], True), (["--include-validation"], False), (["--sheet", "S"], True)])
def test_synth_command_keeps_the_validation_crops_out(tmp_path, monkeypatch, argv_extra, keeps_out):
    """`strings synth --out` draws glyphs and paper as training-time synthesis does: never from
    the validation slice the default recipe chooses its model on (unless asked to)."""
    from conftest import REAL_DATA

    if REAL_DATA is None:
        pytest.skip("real car-a-partial data not found beside the checkout or in $STRINGS_DATA")
    from strings.cli import main
    from strings.config import TrainConfig
    from strings.data.sources import held_out_names, validation_split

    seen: dict[str, set] = {}

    def spy(kind):
        def from_data(*args, **kwargs):
            seen[kind] = set(kwargs.get("exclude", ()))
            if len(seen) == 2:
                raise _Stop
            return real[kind](*args, **kwargs)
        return from_data

    real = {"glyphs": GlyphBank.from_data, "paper": Backgrounds.from_data}
    monkeypatch.setattr(GlyphBank, "from_data", staticmethod(spy("glyphs")))
    monkeypatch.setattr(Backgrounds, "from_data", staticmethod(spy("paper")))
    argv = ["synth", "--data-root", str(REAL_DATA)]
    argv += ["--sheet", str(tmp_path / "sheet.png")] if argv_extra[:1] == ["--sheet"] else ["--n", "2", "--out", str(tmp_path)]
    argv += [a for a in argv_extra if a not in ("--sheet", "S")]
    with pytest.raises(_Stop):
        main(argv)
    validation = held_out_names(validation_split(TrainConfig(), REAL_DATA)[1])
    assert len(validation) == 108
    assert seen["glyphs"] == seen["paper"] == (validation if keeps_out else set())


def test_synthetic_strings_transcribe_the_marks_they_draw_only_when_asked(bank):
    from strings.read.amount import parse_amount

    plain = SynthStrings(bank, None, 60, seed=5)
    marked = SynthStrings(bank, None, 60, seed=5, transcribe_marks=True)
    assert all(plain[i].written is None for i in range(60))
    seen = set()
    for i in range(60):
        s = marked[i]
        assert "".join(c for c in s.written if c.isdigit()) == s.label == marked.label(i)
        seen.update(c for c in s.written if not c.isdigit())
        assert parse_amount(s.written).value is not None
    assert seen & {".", ","}, "sixty strings and not one separator transcribed"
