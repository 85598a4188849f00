"""The public API: ``strings.load(path).recognize(...)`` on every supported input type, clear
errors on bad inputs, batching and threads; plus the image transforms it is built on."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import strings
from conftest import render_digits, write_png
from strings.models.checkpoint import CheckpointError
from strings.config import PreprocessConfig
from strings.read.recognizer import DigitReading, Reading, Recognizer, resolve_model
from strings.image import InvalidImageError, collate_images, ink_box, load_image, normalize, prepare

TEXTS = ("7", "42", "1500", "90210", "3", "118", "5067", "29")


@pytest.fixture(scope="module")
def rec(trained_checkpoint):
    return strings.load(trained_checkpoint)


@pytest.fixture(scope="module")
def images():
    return [render_digits(t) for t in TEXTS]


def test_load_and_metadata(rec, trained_checkpoint):
    assert isinstance(rec, Recognizer)
    assert rec.name == "tiny-run"
    assert rec.metadata["path"] == str(trained_checkpoint)
    assert rec.metadata["train_config"]["model"] == "test_tiny"
    assert not rec.model.training


def test_trained_tiny_model_reads_clean_strings(rec, images):
    """Sanity check of the whole path: the tiny model trained for 5 s reads most clean strings."""
    texts = [r.text for r in rec.recognize_batch(images)]
    assert sum(t == e for t, e in zip(texts, TEXTS)) >= len(TEXTS) // 2, texts


def _same(a: Reading, b: Reading) -> None:
    assert a.text == b.text
    assert a.confidence == pytest.approx(b.confidence, rel=1e-5, abs=1e-7)
    assert [d.box for d in a.digits] == [d.box for d in b.digits]


def test_same_reading_for_every_input_type(rec, tmp_path):
    grey = render_digits("90210")
    path = write_png(tmp_path / "x.png", grey)
    ref = rec.recognize(grey)
    assert ref.text  # the test is only meaningful if something is read
    variants = {
        "str path": str(path),
        "Path": path,
        "3-channel uint8": np.stack([grey] * 3, axis=-1),
        "(H, W, 1)": grey[:, :, None],
        "PIL L": Image.fromarray(grey),
        "PIL RGB": Image.fromarray(grey).convert("RGB"),
        "float64 [0,1]": grey.astype(np.float64) / 255.0,
        "float32 [0,1]": grey.astype(np.float32) / 255.0,
        "non-contiguous": np.asfortranarray(grey),
        "jpeg path": write_png(tmp_path / "x.jpg", grey),
    }
    for name, item in variants.items():
        got = rec.recognize(item)
        if name == "jpeg path":
            assert got.text == ref.text, name
        else:
            _same(got, ref)
    assert rec.recognize(path).source == str(path)
    assert rec.recognize(grey).source == ""


def test_colour_channel_order_for_files_and_arrays(rec, tmp_path):
    """A file is decoded BGR by OpenCV, an array is RGB: both must give the same grey."""
    grey = render_digits("1500")
    rgb = np.stack([grey, grey, grey], axis=-1).astype(np.float32)
    ink = grey < 128
    rgb[ink] = (20, 60, 200)  # blue ballpoint
    rgb[~ink] = (250, 240, 210)  # yellowish paper
    rgb = rgb.astype(np.uint8)
    path = tmp_path / "colour.png"
    Image.fromarray(rgb, "RGB").save(path)
    np.testing.assert_array_equal(load_image(path), load_image(rgb))
    np.testing.assert_array_equal(load_image(Image.fromarray(rgb, "RGB")), load_image(rgb))
    _same(rec.recognize(path), rec.recognize(rgb))


def test_rgba_inputs(rec, tmp_path):
    """Black ink whose shape is in the alpha channel, on a transparent background."""
    grey = render_digits("5067")
    rgba = np.zeros(grey.shape + (4,), np.uint8)
    rgba[..., 3] = 255 - grey
    composited = load_image(rgba)
    assert np.abs(composited.astype(int) - grey.astype(int)).max() <= 1
    path = tmp_path / "a.png"
    Image.fromarray(rgba, "RGBA").save(path)
    ref = rec.recognize(grey)
    for item in (rgba, path, Image.fromarray(rgba, "RGBA")):
        assert rec.recognize(item).text == ref.text
    la = Image.fromarray(rgba, "RGBA").convert("LA")
    assert rec.recognize(la).text == ref.text
    pal = Image.fromarray(grey).convert("P")
    assert rec.recognize(pal).text == ref.text


def test_16_bit_inputs(rec, tmp_path):
    grey = render_digits("118")
    g16 = grey.astype(np.uint16) * 257
    path = tmp_path / "g16.png"
    assert cv2.imwrite(str(path), g16)
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    for item in (g16, path, Image.fromarray(g16), np.stack([g16] * 3, axis=-1)):
        np.testing.assert_array_equal(load_image(item), grey)
    ref = rec.recognize(grey)
    for item in (g16, path, Image.fromarray(g16)):
        _same(rec.recognize(item), ref)


def test_reading_structure(rec):
    grey = render_digits("1500")
    h, w = grey.shape
    r = rec.recognize(grey)
    assert isinstance(r, Reading) and isinstance(r.text, str) and r.text.isdigit()
    assert 0.0 < r.confidence <= 1.0
    assert len(r.digits) == len(r.text)
    assert "".join(d.char for d in r.digits) == r.text
    prev_x0 = -1
    for d in r.digits:
        assert isinstance(d, DigitReading) and 0.0 < d.confidence <= 1.0
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert x0 >= prev_x0
        prev_x0 = x0
    # Every digit's confidence is at least the string's (a frame product cannot exceed one frame).
    assert all(d.confidence >= r.confidence for d in r.digits)
    d = r.to_dict()
    json.dumps(d)
    assert set(d) == {"text", "confidence", "digits", "source", "written"}
    assert d["written"] == r.text  # a digits model writes exactly its digits
    assert set(d["digits"][0]) == {"char", "confidence", "box"} and isinstance(d["digits"][0]["box"], list)


def test_boxes_stay_inside_odd_shapes(rec):
    for img in (render_digits("42")[:, :5], render_digits("123456", height=12), np.full((80, 7), 200, np.uint8),
                cv2.resize(render_digits("907"), (600, 20))):
        r = rec.recognize(img)
        h, w = img.shape
        for d in r.digits:
            x0, y0, x1, y1 = d.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (img.shape, d.box)


def test_blank_image_reads_empty(rec):
    r = rec.recognize(np.full((32, 100), 255, np.uint8))
    assert r.text == "" and r.digits == () and r.confidence == 0.0  # nothing read is never confident


def test_recognize_batch_equals_single_same_widths(rec):
    """Same-size images: no padding, so batching must change nothing (order bookkeeping)."""
    imgs = [cv2.resize(render_digits(t), (120, 32), interpolation=cv2.INTER_AREA) for t in TEXTS]
    batch = rec.recognize_batch(imgs, batch_size=3)
    for img, got in zip(imgs, batch):
        _same(got, rec.recognize(img))


@pytest.mark.parametrize("which", ["trained", "random"])
def test_recognize_batch_equals_single_mixed_widths_text(which, rec, images, tiny_checkpoint):
    r = rec if which == "trained" else strings.load(tiny_checkpoint)
    batch = r.recognize_batch(images, batch_size=4)
    singles = [r.recognize(img) for img in images]
    assert [b.text for b in batch] == [s.text for s in singles]
    assert [len(b.digits) for b in batch] == [len(s.digits) for s in singles]
    assert r.recognize_batch([]) == []


@pytest.mark.parametrize("which", ["trained", "random"])
def test_recognize_batch_equals_single_mixed_widths_confidence(which, rec, images, tiny_checkpoint, monkeypatch):
    """An image's reading must not depend on which other images share its batch: the right
    padding of narrower images must not leak into their valid frames. Width bucketing would
    keep similar widths together and pad little, so here every image goes in one batch beside
    one many times wider than any of them."""
    import strings.read.recognizer as R

    r = rec if which == "trained" else strings.load(tiny_checkpoint)
    wide = np.hstack([images[0]] * 8)  # far wider than the rest: the others are mostly padding
    items = [*images, wide]
    singles = [r.recognize(img) for img in items]
    batches: list[list[int]] = []

    def one_batch(widths, batch_size, multiple):
        batches.append(list(range(len(widths))))
        return [batches[-1]]

    monkeypatch.setattr(R, "width_batches", one_batch)
    batch = r.recognize_batch(items, batch_size=len(items))
    assert batches == [list(range(len(items)))]  # really one padded batch
    assert [b.text for b in batch] == [s.text for s in singles]
    assert [b.confidence for b in batch] == pytest.approx([s.confidence for s in singles], rel=1e-3)
    for b, s in zip(batch, singles):
        assert [d.confidence for d in b.digits] == pytest.approx([d.confidence for d in s.digits], rel=1e-3)
        assert [d.box for d in b.digits] == [d.box for d in s.digits]


def test_recognize_batch_mixed_inputs_keep_order(rec, images, tmp_path):
    path = write_png(tmp_path / "p.png", images[2])
    items = [images[0], path, Image.fromarray(images[1]), images[3]]
    out = rec.recognize_batch(items)
    assert [o.text for o in out] == [rec.recognize(x).text for x in items]
    assert out[1].source == str(path)


# --------------------------------------------------------------------------- errors


def test_missing_file(rec, tmp_path):
    missing = tmp_path / "nope" / "missing.png"
    with pytest.raises(FileNotFoundError) as exc:
        rec.recognize(missing)
    assert str(missing) in str(exc.value)
    with pytest.raises(FileNotFoundError):
        rec.recognize_batch([render_digits("1"), str(missing)])


@pytest.mark.parametrize(
    "content, fragment",
    [(b"this is not an image at all\n", "not a readable image"), (b"", "empty"),
     (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not a readable image")],
    ids=["text", "zero-byte", "truncated-png"],
)
def test_unreadable_files(rec, tmp_path, content, fragment):
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    with pytest.raises(InvalidImageError, match=fragment) as exc:
        rec.recognize(path)
    assert str(path) in str(exc.value)


def test_directory_is_not_an_image(rec, tmp_path):
    with pytest.raises(InvalidImageError, match="directory"):
        rec.recognize(tmp_path)


@pytest.mark.parametrize(
    "arr, fragment",
    [
        (np.zeros((32, 0), np.uint8), "empty"),
        (np.zeros((0, 32), np.uint8), "empty"),
        (np.zeros((32, 0, 3), np.uint8), "empty"),
        (np.zeros((32, 40), np.int64), "dtype"),
        (np.zeros((32, 40), np.complex64), "dtype"),
        (np.zeros((32, 40), bool), "dtype"),
        (np.zeros((32, 40), np.float16), "dtype"),
        (np.full((32, 40), np.nan), "NaN"),
        (np.full((32, 40), np.inf, np.float32), "infinity"),
        (np.full((32, 40), 2.0), r"\[0, 1\]"),
        (np.full((32, 40), -0.5, np.float32), r"\[0, 1\]"),
        (np.zeros((32,), np.uint8), "shape"),
        (np.zeros((32, 40, 2), np.uint8), "shape"),
        (np.zeros((2, 32, 40, 3), np.uint8), "shape"),
    ],
    ids=["w0", "h0", "w0-rgb", "int64", "complex", "bool", "float16", "nan", "inf", "above1", "below0", "1d",
         "2ch", "4d"],
)
def test_invalid_arrays(rec, arr, fragment):
    with pytest.raises(InvalidImageError, match=fragment):
        rec.recognize(arr)


def test_unsupported_input_types(rec):
    for item in ([[0, 1], [1, 0]], 42, None, b"bytes"):
        with pytest.raises(InvalidImageError, match="unsupported input type"):
            rec.recognize(item)


def test_pixel_limit(monkeypatch, tmp_path, rec):
    import strings.image as T

    path = write_png(tmp_path / "big.png", render_digits("12"))
    monkeypatch.setattr(T, "MAX_PIXELS", 100)
    with pytest.raises(InvalidImageError, match="pixel limit") as exc:
        rec.recognize(path)
    assert str(path) in str(exc.value)
    with pytest.raises(InvalidImageError, match="pixel limit"):
        rec.recognize(np.zeros((20, 20), np.uint8))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        strings.load(tmp_path / "missing.safetensors")
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"nope")
    with pytest.raises(CheckpointError):
        strings.load(fake)
    if not strings.list_models():
        with pytest.raises(FileNotFoundError, match="none bundled"):
            resolve_model(None)


# --------------------------------------------------------------------------- threads, beam


def test_threads_give_sequential_results(rec, images):
    work = [images[i % len(images)] for i in range(24)]
    expected = [rec.recognize(img) for img in work]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(rec.recognize, work))
        batches = list(pool.map(lambda k: rec.recognize_batch(work[k::4]), range(4)))
    assert [g.text for g in got] == [e.text for e in expected]
    assert [g.confidence for g in got] == pytest.approx([e.confidence for e in expected], rel=1e-5)
    for k in range(4):
        assert [b.text for b in batches[k]] == [e.text for e in expected[k::4]]


def test_beam_recognizer(trained_checkpoint, rec, images):
    beam = strings.load(trained_checkpoint, beam_size=8)
    assert beam.beam is not None
    for img in images:
        g, b = rec.recognize(img), beam.recognize(img)
        assert len(b.digits) == len(b.text)
        assert 0.0 < b.confidence <= 1.0
        if g.confidence > 0.5:  # a confident best path is also the most probable string
            assert b.text == g.text
            assert b.confidence >= g.confidence * (1 - 1e-4)


def test_beam_recognizer_boxes_match_greedy(trained_checkpoint, rec, images):
    """Where beam and greedy read the same text on a confident image, each digit box starts
    at the same place (the beam reports the first frame of each digit)."""
    beam = strings.load(trained_checkpoint, beam_size=8)
    checked = 0
    for img in images:
        g, b = rec.recognize(img), beam.recognize(img)
        if g.text == b.text and g.confidence > 0.5:
            assert [d.box[0] for d in b.digits] == [d.box[0] for d in g.digits]
            checked += 1
    assert checked >= 2


def test_beam_recognizer_threads(trained_checkpoint, images):
    beam = strings.load(trained_checkpoint, beam_size=8)
    work = [images[i % len(images)] for i in range(16)]
    expected = [beam.recognize(img) for img in work]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(beam.recognize, work))
    assert [(g.text, round(g.confidence, 5)) for g in got] == [(e.text, round(e.confidence, 5)) for e in expected]


# --------------------------------------------------------------------------- transforms


def test_normalize():
    cfg = PreprocessConfig(height=16, min_width=8, max_width=64)
    grey = render_digits("1500")  # 32 high
    x = normalize(grey, cfg)
    assert x.dtype == np.float32, "normalize promises float32 model input"
    assert x.shape == (16, round(grey.shape[1] * 16 / grey.shape[0]))
    assert x.min() == 0.0 and x.max() == 1.0
    assert x[:, 0].max() == 0.0  # paper margin -> 0
    assert normalize(np.full((30, 3), 90, np.uint8), cfg).shape == (16, 8)  # min width
    assert normalize(render_digits("1234567890" * 3), cfg).shape == (16, 64)  # max width
    blank = normalize(np.full((20, 50), 200, np.uint8), cfg)
    assert blank.shape == (16, 40) and not blank.any()


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (31, 70), (64, 333)])
def test_grey_percentiles_are_numpys(shape):
    # the histogram percentiles that the contrast stretch uses equal np.percentile's (linear)
    from strings.image import _grey_percentiles

    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    for img in (rng.integers(0, 256, shape, dtype=np.uint8), np.full(shape, 17, np.uint8),
                (rng.random(shape) > 0.9).astype(np.uint8) * 255):
        for qs in ((1.0, 99.0), (0.0, 100.0), (37.5, 62.5)):
            assert _grey_percentiles(img, qs) == pytest.approx(tuple(np.percentile(img, qs)), abs=1e-9)


def test_normalize_contrast_invariance():
    cfg = PreprocessConfig(height=16)
    grey = render_digits("29")
    faint = (grey.astype(np.float32) * 0.3 + 160).astype(np.uint8)  # pale pencil on grey paper
    a, b = normalize(grey, cfg), normalize(faint, cfg)
    assert np.abs(a - b).mean() < 0.05


PAPER = 235  # render_digits' paper grey


def _shift(box, dx, dy):
    x0, y0, x1, y1 = box
    return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)


def test_ink_box_ignores_the_paper_margin():
    cfg = PreprocessConfig(trim=True, trim_margin=0.0)
    grey = render_digits("1500", height=64)
    tight = ink_box(grey, cfg)
    x0, y0, x1, y1 = tight
    assert 0 < x0 < x1 < grey.shape[1] and 0 <= y0 < y1 <= grey.shape[0]  # render_digits leaves paper round the ink
    padded = cv2.copyMakeBorder(grey, 40, 50, 60, 70, cv2.BORDER_CONSTANT, value=PAPER)
    assert np.allclose(ink_box(padded, cfg), _shift(tight, 60, 40), atol=1)


def test_ink_box_keeps_a_margin_inside_the_crop():
    cfg = PreprocessConfig(trim=True, trim_margin=0.25)
    grey = cv2.copyMakeBorder(render_digits("907", height=64), 100, 100, 100, 100, cv2.BORDER_CONSTANT, value=PAPER)
    x0, y0, x1, y1 = ink_box(grey, dataclasses.replace(cfg, trim_margin=0.0))
    m = round(0.25 * (y1 - y0))
    assert ink_box(grey, cfg) == (x0 - m, y0 - m, x1 + m, y1 + m)
    tight = grey[y0:y1, x0:x1]  # a crop tighter than the margin is kept whole, never widened
    assert ink_box(tight, cfg) == (0, 0, tight.shape[1], tight.shape[0])
    blank = np.full((30, 90), 200, np.uint8)
    assert ink_box(blank, cfg) == (0, 0, 90, 30)


def test_ink_box_ignores_a_far_speck():
    cfg = PreprocessConfig(trim=True, trim_margin=0.0)
    grey = cv2.copyMakeBorder(render_digits("1500", height=64), 20, 20, 20, 300, cv2.BORDER_CONSTANT, value=PAPER)
    clean = ink_box(grey, cfg)
    grey[30, grey.shape[1] - 10] = 0  # one dark pixel far right: a small share of the stroke mass
    assert ink_box(grey, cfg) == clean
    grey[:, grey.shape[1] - 12 : grey.shape[1] - 8] = 0  # a vertical rule is ink, not a speck
    assert ink_box(grey, cfg)[2] > clean[2] + 250


def test_prepare_without_trim_is_normalize():
    cfg = PreprocessConfig(height=16)
    grey = render_digits("42")
    ink, box = prepare(grey, cfg)
    assert box == (0, 0, grey.shape[1], grey.shape[0])
    assert np.array_equal(ink, normalize(grey, cfg))


def test_trimmed_reading_is_margin_free_and_boxes_map_back(rec):
    """With ``trim`` a generous margin neither changes the reading nor misplaces the digits:
    boxes come back in the padded image's pixels, shifted by the margin."""
    trimmed = Recognizer(rec.model, dataclasses.replace(rec.preprocess, trim=True))
    grey = render_digits("5067")
    pad_x, pad_y = 3 * grey.shape[0], grey.shape[0]
    padded = cv2.copyMakeBorder(grey, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=PAPER)
    a, b = trimmed.recognize(grey), trimmed.recognize(padded)
    assert a.text and b.text == a.text
    for da, db in zip(a.digits, b.digits):
        assert np.allclose(db.box, _shift(da.box, pad_x, pad_y), atol=2), (da.box, db.box)


def test_collate_images():
    ims = [np.ones((16, 5), np.float32), np.full((16, 9), 0.5, np.float32)]
    batch, widths = collate_images(ims)
    assert batch.shape == (2, 1, 16, 9) and batch.dtype == torch.float32
    assert widths.tolist() == [5, 9]
    assert batch[0, 0, :, 5:].abs().sum() == 0 and batch[0, 0, :, :5].min() == 1.0
    assert torch.all(batch[1, 0] == 0.5)


def test_load_image_file_types(tmp_path):
    grey = render_digits("7")
    for ext in (".png", ".bmp", ".tif"):
        p = write_png(tmp_path / f"x{ext}", grey)
        np.testing.assert_array_equal(load_image(p), grey)
    assert load_image(Path(write_png(tmp_path / "y.jpg", grey))).shape == grey.shape
