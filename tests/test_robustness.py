"""Bad input on every path (load_image, Recognizer.recognize, recognize_many, the readers) meets
a clear error naming the item, never a library exception or a hang; decompression bombs are
refused from their header; model files are never unpickled; one Recognizer serves many
threads; a training run killed with SIGKILL resumes to the same result."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import resource
import struct
import sys
import threading
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import strings
from conftest import REPO, build_car_partial_tree, build_mnist_tree, build_usps_tree, idx_bytes, render_digits, write_png
from strings.models.checkpoint import CheckpointError, load_model
from strings.data import DatasetError, open_dataset, read_car_partial_boxes, read_gt_list, read_idx, read_list
from strings.read.recognizer import ItemError, Reading
from strings.image import MAX_PIXELS, InvalidImageError, display_name, load_image, normalize

IMAGE_ERRORS = (InvalidImageError, FileNotFoundError)


@pytest.fixture(scope="module")
def rec(tiny_checkpoint):
    return strings.load(tiny_checkpoint)


@pytest.fixture(scope="module")
def grey():
    return render_digits("4096")


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(w: int, h: int) -> bytes:
    """A valid PNG header claiming w x h grey pixels, with a little data (a bomb's shape)."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + _chunk(b"IEND", b""))


def jpeg_bomb(w: int, h: int, grey: np.ndarray) -> bytes:
    data = bytearray(_jpeg(grey))
    i = data.index(b"\xff\xc0")  # SOF0: length(2) precision(1) height(2) width(2)
    data[i + 5 : i + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def bmp_bomb(w: int, h: int) -> bytes:
    header = struct.pack("<2sIHHI", b"BM", 54 + 16, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, 16, 2835, 2835, 0, 0)
    return header + info + b"\x00" * 16


def gif_bomb(w: int, h: int) -> bytes:
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0, 0, 0) + b"," + struct.pack("<HHHHB", 0, 0, w, h, 0)
            + b"\x02\x02\x44\x01\x00;")


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------- bad files


BAD_FILES = {
    "truncated-png": lambda g: _png(g)[: len(_png(g)) // 2],
    "truncated-png-header": lambda g: _png(g)[:20],
    "corrupt-png": lambda g: _png(g)[:50] + bytes(range(200)) + _png(g)[250:],
    "truncated-jpeg": lambda g: _jpeg(g)[:200],
    "corrupt-jpeg-header": lambda g: _jpeg(g)[:4] + b"\x00" * 300 + _jpeg(g)[304:],
    "zero-byte": lambda g: b"",
    "text": lambda g: b"1234 is not an image\n",
    "html": lambda g: b"<html><body>404</body></html>",
    "pdf": lambda g: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
    "png-magic-only": lambda g: b"\x89PNG\r\n\x1a\n",
    "zero-width-png": lambda g: png_bomb(0, 20),
    "zero-height-png": lambda g: png_bomb(20, 0),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_bad_files_are_refused_by_name(rec, grey, tmp_path, kind, suffix):
    path = tmp_path / f"bad-{kind}{suffix}"
    path.write_bytes(BAD_FILES[kind](grey))
    for call in (load_image, rec.recognize, lambda p: rec.recognize_batch([grey, p])):
        with pytest.raises(InvalidImageError) as exc:
            call(path)
        assert str(path) in str(exc.value)


def test_truncated_jpeg_body_reads_or_is_refused(rec, tmp_path):
    """libjpeg fills a JPEG cut inside its entropy-coded data with grey: such a file may read."""
    data = _jpeg(render_digits("77"))
    for cut in (len(data) - 2, len(data) * 3 // 4, len(data) // 2):
        path = tmp_path / f"cut{cut}.jpg"
        path.write_bytes(data[:cut])
        try:
            assert isinstance(rec.recognize(path), Reading)
        except InvalidImageError as exc:
            assert str(path) in str(exc)


def test_special_files(rec, tmp_path):
    with pytest.raises(InvalidImageError, match="directory"):
        load_image(tmp_path)
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    start = time.perf_counter()
    with pytest.raises(InvalidImageError, match="not a regular file"):
        rec.recognize(fifo)  # opening a FIFO for reading would block forever
    assert time.perf_counter() - start < 5
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "x.png" / "below-a-file.png")
    with pytest.raises(InvalidImageError, match="file name"):
        load_image(str(tmp_path / "nul\x00.png"))
    with pytest.raises(InvalidImageError):
        load_image(tmp_path / ("x" * 300 + ".png"))  # name too long for the file system


def test_unreadable_file(tmp_path, grey, monkeypatch):
    """A file the OS refuses to read (EACCES) is an InvalidImageError naming it. Permission bits
    cannot make a file unreadable to root, which is how CI runs, so the refusal comes from the
    open call itself; as a normal user chmod 0 is tried too."""
    import builtins
    import errno

    path = write_png(tmp_path / "locked.png", grey)
    real_open = builtins.open

    def refusing_open(file, *args, **kwargs):
        if Path(file) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refusing_open)
    with pytest.raises(InvalidImageError, match="cannot read .Permission denied") as exc:
        load_image(path)
    assert str(path) in str(exc.value)
    monkeypatch.undo()
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        path.chmod(0)
        try:
            with pytest.raises(InvalidImageError, match="cannot read"):
                load_image(path)
        finally:
            path.chmod(0o644)


def test_file_size_limit(monkeypatch, tmp_path, grey):
    import strings.image as T

    path = write_png(tmp_path / "big.png", grey)
    monkeypatch.setattr(T, "MAX_FILE_BYTES", 100)
    with pytest.raises(InvalidImageError, match="file limit") as exc:
        load_image(path)
    assert str(path) in str(exc.value)


def test_formats_other_than_the_listed_ones_are_refused(tmp_path, grey):
    path = tmp_path / "x.png"
    Image.fromarray(grey).save(path, "TGA")  # Pillow writes it, OpenCV does not read it
    with pytest.raises(InvalidImageError, match="not a readable image"):
        load_image(path)


# --------------------------------------------------------------------------- bombs and sizes


@pytest.mark.parametrize("fmt", ["png", "jpeg", "bmp", "gif"])
@pytest.mark.parametrize("size", [(30_000, 30_000), (65_535, 65_535), (10_000, 10_000), (8_000, 8_000)])
def test_decompression_bombs_are_refused_from_the_header(tmp_path, grey, fmt, size):
    w, h = size
    data = {"png": lambda: png_bomb(w, h), "jpeg": lambda: jpeg_bomb(w, h, grey), "bmp": lambda: bmp_bomb(w, h),
            "gif": lambda: gif_bomb(w, h)}[fmt]()
    path = tmp_path / f"bomb.{fmt}"
    path.write_bytes(data)
    rss = _max_rss_mb()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not surface either
        with pytest.raises(InvalidImageError, match="pixel limit") as exc:
            load_image(path)
    assert str(path) in str(exc.value) and f"{w}x{h}" in str(exc.value)
    assert time.perf_counter() - start < 2.0
    assert _max_rss_mb() - rss < 100, "the bomb's pixels were allocated"


def test_pil_decompression_bomb_check_does_not_matter(monkeypatch, tmp_path):
    """Pillow's own limit (raised as DecompressionBombError above 2x MAX_IMAGE_PIXELS) is
    neither relied on nor leaked: only MAX_PIXELS decides, with our message."""
    path = tmp_path / "x.png"
    path.write_bytes(png_bomb(2_000, 2_000))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(InvalidImageError, match="not a readable image"):  # a real bomb check would say "exceeds"
        load_image(path)  # the header passes (4 Mpixel), the truncated data does not decode
    path.write_bytes(png_bomb(9_000, 9_000))
    with pytest.raises(InvalidImageError, match="pixel limit"):
        load_image(path)


def test_lazy_pil_image_is_checked_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(png_bomb(8_000, 8_000))  # 64 Mpixel: above ours, below Pillow's warning
    with Image.open(path) as im:
        with pytest.raises(InvalidImageError, match="pixel limit"):
            load_image(im)


def test_pixel_limit_is_documented():
    import strings.image as T

    assert "MAX_PIXELS" in T.__doc__ and MAX_PIXELS == 50_000_000


@pytest.mark.parametrize("shape", [(10, 5000), (5000, 10), (1, 1), (1, 4000), (4000, 1), (2, 3), (3, 2)])
def test_extreme_shapes_read(rec, tmp_path, shape):
    img = np.full(shape, 235, np.uint8)
    img[shape[0] // 3 : max(shape[0] // 3 + 1, 2 * shape[0] // 3), shape[1] // 3 : max(shape[1] // 3 + 1, 2 * shape[1] // 3)] = 20
    path = write_png(tmp_path / "odd.png", img)
    for item in (img, path):
        r = rec.recognize(item)
        assert isinstance(r, Reading)
        for d in r.digits:
            x0, y0, x1, y1 = d.box
            assert 0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0]
    cfg = strings.image.PreprocessConfig(height=16, min_width=8, max_width=64)
    x = normalize(img, cfg)
    assert x.shape[0] == 16 and 8 <= x.shape[1] <= 64 and np.isfinite(x).all()


def test_normalize_refuses_what_is_not_an_image():
    cfg = strings.image.PreprocessConfig(height=16)
    for bad in (np.zeros((0, 5), np.uint8), np.zeros((5, 0), np.uint8), np.zeros((3,), np.uint8), np.full((4, 4), np.nan)):
        with pytest.raises(InvalidImageError):
            normalize(bad, cfg)
    with pytest.raises(InvalidImageError, match="numpy array"):
        normalize([[1, 2]], cfg)
    with pytest.raises(InvalidImageError, match="crop 7"):
        normalize(np.zeros((4, 4), np.int32), cfg, name="crop 7")
    # what load_image converts, normalize converts too
    g = render_digits("12")
    np.testing.assert_array_equal(normalize(g.astype(np.uint16) * 257, cfg), normalize(g, cfg))
    np.testing.assert_array_equal(normalize(np.stack([g] * 3, -1), cfg), normalize(g, cfg))


# --------------------------------------------------------------------------- image kinds that must read


def test_image_kinds_read_like_grey(rec, tmp_path, grey):
    ref = rec.recognize(grey).text
    rgba16 = np.dstack([np.stack([grey] * 3, -1).astype(np.uint16) * 257, np.full(grey.shape, 65535, np.uint16)])
    files = {
        "p-trns.png": lambda p: Image.fromarray(grey).convert("P").save(p, transparency=255),
        "la.png": lambda p: Image.fromarray(grey).convert("LA").save(p),
        "rgba16.png": lambda p: cv2.imwrite(str(p), rgba16),
        "one-bit.png": lambda p: Image.fromarray(grey).convert("1").save(p),
        "cmyk.jpg": lambda p: Image.fromarray(grey).convert("CMYK").save(p),
        "grey.tif": lambda p: Image.fromarray(grey).save(p),
        "grey.gif": lambda p: Image.fromarray(grey).save(p),
        "grey.webp": lambda p: Image.fromarray(grey).save(p, lossless=True),
        "grey.pgm": lambda p: Image.fromarray(grey).save(p),
    }
    for name, write in files.items():
        path = tmp_path / name
        write(path)
        got = rec.recognize(path)
        assert isinstance(got, Reading), name
        if name not in ("cmyk.jpg", "one-bit.png"):
            assert got.text == ref, name


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "LA", "PA",
                                  "La", "RGBa", "I;16", "I;16B", "I;16L", "RGBX"])
def test_every_pil_mode(rec, mode, grey):
    try:
        im = Image.fromarray(grey).convert(mode)
    except ValueError:
        im = Image.new(mode, grey.shape[::-1])
    try:
        r = rec.recognize(im)
    except InvalidImageError as exc:  # refused is fine, as long as it is clear
        assert "PIL image" in str(exc)
    else:
        assert isinstance(r, Reading)


def test_truncated_lazy_pil_image(tmp_path, grey):
    path = tmp_path / "t.png"
    path.write_bytes(_png(grey)[:-40])
    with Image.open(path) as im:
        with pytest.raises(InvalidImageError, match="PIL image"):
            load_image(im)


@pytest.mark.parametrize(
    "arr, ok",
    [
        (np.zeros((8, 8), ">u2"), True),
        (np.zeros((8, 8), ">f4"), True),
        (np.zeros((8, 8, 3), np.uint8)[::-1, ::2], True),
        (np.full((8, 8), None, object), False),
        (np.array(5, np.uint8), False),
        (np.zeros((8, 8), np.uint64), False),
        (np.zeros((8, 8), "M8[s]"), False),
        (np.zeros((8, 8), [("a", np.uint8)]), False),
        (np.ma.masked_array(np.zeros((8, 8), np.uint8)), True),
        (np.full((8, 8, 4), np.nan, np.float32), False),
    ],
    ids=["big-endian-u16", "big-endian-f32", "strided", "object", "0-d", "uint64", "datetime", "structured", "masked",
         "nan-rgba"],
)
def test_odd_arrays(rec, arr, ok):
    if ok:
        assert isinstance(rec.recognize(arr), Reading)
    else:
        with pytest.raises(InvalidImageError, match="array"):
            rec.recognize(arr)


def test_read_only_and_named_arrays(rec, grey):
    ro = grey.copy()
    ro.setflags(write=False)
    assert rec.recognize(ro).text == rec.recognize(grey).text
    with pytest.raises(InvalidImageError, match="^scan 12: "):
        load_image(np.zeros((4, 4), np.int8), name="scan 12")


# --------------------------------------------------------------------------- odd file names

ODD_NAMES = [b"with space.png", "é-ü-中文.png".encode(), "emoji-\U0001F600.png".encode(), b"new\nline.png", b"tab\t.png",
             b"latin1-\xe9.png", b"invalid-\xff\xfe.png", b"-dash.png", b"'quote\".png", b"\\back.png"]


@pytest.mark.parametrize("raw_name", ODD_NAMES, ids=[repr(n)[2:-1] for n in ODD_NAMES])
def test_odd_file_names(rec, tmp_path, grey, raw_name):
    raw = os.path.join(os.fsencode(tmp_path), raw_name)
    with open(raw, "wb") as fh:
        fh.write(_png(grey))
    path = os.fsdecode(raw)
    r = rec.recognize(path)
    assert r.source == path and r.text == rec.recognize(grey).text
    assert rec.recognize(Path(path)).text == r.text
    with open(raw, "wb") as fh:
        fh.write(b"junk")
    with pytest.raises(InvalidImageError) as exc:
        rec.recognize(path)
    message = str(exc.value)
    message.encode("utf-8")  # printable, even for a name that is not UTF-8
    assert display_name(path) in message
    assert rec.recognize_many([path])[0].error == message


def test_display_name():
    assert display_name("/a/b c/é.png") == "/a/b c/é.png"
    assert display_name(os.fsdecode(b"/x/\xff.png")) == "/x/\\udcff.png"
    assert display_name("a\nb\x00") == "a\\nb\\x00"
    assert display_name(b"/x/\xff") == "/x/\\udcff"
    assert display_name(Path("p")) == "p"


# --------------------------------------------------------------------------- recognize_many


def test_recognize_many_goes_on_past_bad_items(rec, tmp_path, grey):
    good = [render_digits(t) for t in ("7", "42", "1500", "90210")]
    paths = [write_png(tmp_path / f"g{i}.png", g) for i, g in enumerate(good)]
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(_png(grey)[:30])
    missing = tmp_path / "missing.jpg"
    items = [paths[0], corrupt, good[1], np.zeros((4, 4), np.int8), missing, str(paths[2]), None,
             np.zeros((0, 9), np.uint8), Image.fromarray(good[3]), paths[3], tmp_path]
    out = rec.recognize_many(items, batch_size=2)
    assert len(out) == len(items)
    kinds = [type(r).__name__ for r in out]
    assert kinds == ["Reading", "ItemError", "Reading", "ItemError", "ItemError", "Reading", "ItemError",
                     "ItemError", "Reading", "Reading", "ItemError"]
    expected = rec.recognize_batch([paths[0], good[1], str(paths[2]), Image.fromarray(good[3]), paths[3]])
    readings = [r for r in out if isinstance(r, Reading)]
    assert [r.text for r in readings] == [e.text for e in expected]
    assert [r.confidence for r in readings] == pytest.approx([e.confidence for e in expected], rel=1e-5)
    assert [r.source for r in readings] == [str(paths[0]), "", str(paths[2]), "", str(paths[3])]
    errors = {r.source: r.error for r in out if isinstance(r, ItemError)}
    assert errors[str(corrupt)].startswith(str(corrupt)) and "not a readable image" in errors[str(corrupt)]
    assert "not found" in errors[str(missing)] and str(missing) in errors[str(missing)]
    assert "int8" in errors["[3]"] and "unsupported input type" in errors["[6]"] and "empty" in errors["[7]"]
    assert "directory" in errors[str(tmp_path)]
    err = next(r for r in out if isinstance(r, ItemError))
    with pytest.raises(dataclasses.FrozenInstanceError):
        err.error = "x"  # type: ignore[misc]
    assert json.dumps(err.to_dict())


def test_recognize_many_generator_chunks_and_edge_cases(rec, monkeypatch):
    imgs = [render_digits(str(n)) for n in range(100, 113)]
    expected = [r.text for r in rec.recognize_batch(imgs)]
    monkeypatch.setattr(type(rec), "_CHUNK_BATCHES", 1)
    bad_every_third = (img if i % 3 else np.zeros((3, 3), bool) for i, img in enumerate(imgs))
    out = rec.recognize_many(bad_every_third, batch_size=2)
    assert [isinstance(r, ItemError) for r in out] == [i % 3 == 0 for i in range(len(imgs))]
    assert [r.text for i, r in enumerate(out) if i % 3] == [t for i, t in enumerate(expected) if i % 3]
    assert rec.recognize_many([]) == []
    assert all(isinstance(r, ItemError) for r in rec.recognize_many([None, 3, b"x"]))
    with pytest.raises(ValueError):
        rec.recognize_many(imgs, batch_size=0)


# --------------------------------------------------------------------------- readers


def _images(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    for name in ("a.png", "é 中.png", "b.png"):
        write_png(folder / name, render_digits("1"))
    return folder


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"a.png 1\nb.png 2\n\xff\xfe\n", ":3: not UTF-8"),
        ("a.png 1\nb.png 1e3\n".encode(), ":2: label '1e3'"),
        ("a.png ١٢\n".encode(), ":1: label"),
        ("a.png ²\n".encode(), ":1: label"),
        ("a.png 12 \nb.png 3.5\n".encode(), ":2: label '3.5'"),
        (b"a.png\t\n", ":1: expected"),
        (b"a\x00.png 1\n", ":1: file name"),
        (b"\n\n  \n", "no samples"),
        ("é.png 1\r\nb.png 2\rc.png x\n".encode(), ":3: label 'x'"),
    ],
    ids=["non-utf8", "exponent", "arabic-digits", "superscript", "decimal", "no-label", "nul", "blank", "cr-line-ends"],
)
def test_bad_gt_lines_are_refused_with_their_line(tmp_path, content, fragment):
    gt = tmp_path / "gt.txt"
    gt.write_bytes(content)
    for call in (read_gt_list, lambda g: read_list(g, _images(tmp_path))):
        with pytest.raises(DatasetError) as exc:
            call(gt)
        assert str(gt) in str(exc.value) and fragment in str(exc.value), str(exc.value)


def test_gt_with_odd_names(tmp_path):
    images = _images(tmp_path)
    gt = tmp_path / "gt.txt"
    # U+3000 and U+2028 separate name and label like a space; U+2028 does not end a line
    gt.write_text("\ufeffé 中.png 12\nb.png\u300034\na.png\u20285\n", encoding="utf-8")
    ds = read_list(gt, images)
    assert [(p.name, lab) for p, lab in ds.items] == [("é 中.png", "12"), ("b.png", "34"), ("a.png", "5")]
    odd_gt = os.path.join(os.fsencode(tmp_path), b"gt-\xff.txt")
    with open(odd_gt, "wb") as fh:
        fh.write(b"missing.png 1\n")
    with pytest.raises(DatasetError) as exc:
        read_list(os.fsdecode(odd_gt), images)
    str(exc.value).encode("utf-8")  # printable


def test_corrupt_image_in_a_dataset_names_the_file(tmp_path):
    images = _images(tmp_path)
    (images / "b.png").write_bytes(b"\x89PNG\r\n\x1a\ncut")
    gt = tmp_path / "gt.txt"
    gt.write_text("a.png 1\nb.png 2\n")
    ds = read_list(gt, images)
    assert ds[0].label == "1"
    with pytest.raises(InvalidImageError) as exc:
        ds[1]
    assert str(images / "b.png") in str(exc.value)


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b"", "bad magic"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x02\x00\x00", "truncated"),
        (b"\x00\x00\x08\x03" + struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**32 - 1), "needs"),
        (b"\x00\x00\x08\x02" + struct.pack(">II", 2**31, 2**31) + b"\x00", "needs"),  # int64 product would wrap to 0
        (idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-1], "needs"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00", "unsigned-byte"),
        (b"\x1f\x8b" + b"\x00" * 30, "corrupt gzip"),
        (gzip.compress(idx_bytes(np.zeros((4, 4), np.uint8)))[:-6], "corrupt gzip"),
        (gzip.compress(idx_bytes(np.zeros((4, 4), np.uint8))) + b"trailing", "corrupt gzip"),
    ],
    ids=["empty", "0-d", "short-header", "huge-dims", "wrapping-product", "short-body", "int32-type", "not-gzip",
         "cut-gzip", "gzip-garbage"],
)
def test_bad_idx_files(tmp_path, raw, fragment):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(raw)
    with pytest.raises(DatasetError, match=fragment) as exc:
        read_idx(path)
    assert str(path) in str(exc.value)


def test_idx_gzip_bomb_is_refused(tmp_path, monkeypatch):
    import strings.data.readers as R

    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((100, 100, 100), np.uint8))))  # 1 MB inflated
    assert read_idx(path).shape == (100, 100, 100)
    monkeypatch.setattr(R, "MAX_DECOMPRESSED_BYTES", 100_000)
    with pytest.raises(DatasetError, match="inflates past"):
        read_idx(path)
    two = tmp_path / "two-members.gz"
    data = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
    two.write_bytes(gzip.compress(data[:7]) + gzip.compress(data[7:]))
    assert read_idx(two).tolist() == np.arange(12).reshape(3, 4).tolist()


def test_mnist_labels_must_be_digits(tmp_path):
    build_mnist_tree(tmp_path, gz=False)
    labels = tmp_path / "mnist" / "train-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[-1] = 42
    labels.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="label 42"):
        open_dataset("mnist", "train", tmp_path)


def test_usps_non_finite_pixels(tmp_path):
    build_usps_tree(tmp_path)
    path = tmp_path / "usps" / "zip.train.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    lines[1] = lines[1].rsplit(" ", 1)[0] + " nan"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(DatasetError, match=":2: pixel"):
        open_dataset("usps", "train", tmp_path)
    path.write_bytes(gzip.compress(b"\xff\xfe" * 10))
    with pytest.raises(DatasetError, match="malformed"):
        open_dataset("usps", "train", tmp_path)


@pytest.mark.parametrize("patch", ['"bbox": [Infinity, 0, 1, 1]', '"bbox": [NaN, 0, 1, 1]', '"bbox": "x"', '"bbox": [1, 2]'])
def test_coco_boxes_malformed(tmp_path, patch):
    base = build_car_partial_tree(tmp_path)
    path = base / "annotations_coco" / "instances_train2017.json"
    text = path.read_text()
    start = text.index('"bbox": [')
    path.write_text(text[:start] + patch + text[text.index("]", start) + 1 :])
    with pytest.raises(DatasetError, match="malformed COCO"):
        read_car_partial_boxes(tmp_path, "train")
    path.write_text("[" * 100_000)
    with pytest.raises(DatasetError, match="malformed COCO"):
        read_car_partial_boxes(tmp_path, "train")


# --------------------------------------------------------------------------- model files


def _safetensors(header: dict, body: bytes = b"") -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


def test_model_file_with_absurd_sizes_is_refused(tmp_path, tiny_checkpoint):
    raw = tiny_checkpoint.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header, body = json.loads(raw[8 : 8 + n]), raw[8 + n :]
    name = next(k for k in header if k != "__metadata__")
    cases = {
        "header-length": struct.pack("<Q", 2**62) + b"{}",
        "tensor-shape": _safetensors({**header, name: {**header[name], "shape": [10**9, 10**9]}}, body),
        "tensor-offsets": _safetensors({**header, name: {**header[name], "data_offsets": [0, 2**60]}}, body),
        "truncated-body": raw[: 8 + n + 10],
    }
    for case, data in cases.items():
        path = tmp_path / f"{case}.safetensors"
        path.write_bytes(data)
        start = time.perf_counter()
        with pytest.raises(CheckpointError) as exc:
            load_model(path)
        assert str(path) in str(exc.value), case
        assert time.perf_counter() - start < 2, case


@pytest.mark.parametrize("field, value", [("growth_rate", 10**6), ("hidden", -5), ("pools", [[0, 0], [0, 0], [0, 0]])])
def test_model_metadata_with_absurd_network_sizes_is_refused(tmp_path, tiny_checkpoint, field, value):
    raw = tiny_checkpoint.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header, body = json.loads(raw[8 : 8 + n]), raw[8 + n :]
    meta = json.loads(header["__metadata__"]["strings"])
    meta["model"][field] = value
    header["__metadata__"] = {"strings": json.dumps(meta)}
    path = tmp_path / "absurd.safetensors"
    path.write_bytes(_safetensors(header, body))
    with pytest.raises(CheckpointError):
        load_model(path)


class _Tripwire:
    """Unpickling this touches a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("name", ["model.safetensors", "model.pt"])
def test_pickle_model_file_is_refused_without_unpickling(tmp_path, name):
    marker = tmp_path / "UNPICKLED"
    path = tmp_path / name
    torch.save({"state_dict": {"w": torch.zeros(2)}, "evil": _Tripwire(str(marker))}, path)
    with pytest.raises(CheckpointError):
        load_model(path)
    with pytest.raises(CheckpointError):
        strings.load(path)
    legacy = tmp_path / f"legacy-{name}"
    torch.save({"evil": _Tripwire(str(marker))}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError):
        load_model(legacy)
    assert not marker.exists(), "the pickle was executed"


# --------------------------------------------------------------------------- threads


def test_one_recognizer_serves_eight_threads(rec):
    images = [render_digits(t) for t in ("7", "42", "1500", "90210", "3", "118", "5067", "29")]
    work = [images[i % len(images)] for i in range(48)]
    expected = [rec.recognize(img) for img in work]
    barrier = threading.Barrier(8)

    def read(k: int) -> list[Reading]:
        barrier.wait()  # all eight start together
        return [rec.recognize(img) for img in work[k::8]] + rec.recognize_many(work[k::8], batch_size=3)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(read, range(8)))
    for k, got in enumerate(results):
        exp = expected[k::8] * 2
        assert [g.text for g in got] == [e.text for e in exp]
        assert [g.confidence for g in got] == pytest.approx([e.confidence for e in exp], rel=1e-5)
        assert [[d.box for d in g.digits] for g in got] == [[d.box for d in e.digits] for e in exp]


# --------------------------------------------------------------------------- kill -9


@pytest.mark.slow
def test_training_survives_sigkill_twice(tmp_path):
    """The CI-sized kill test: two SIGKILLs (one after an evaluation, one inside a checkpoint
    write), resume, same result as an uninterrupted run. benchmarks/kill_test.py runs 20."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import kill_test
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    spec = kill_test.RunSpec(max_steps=30, eval_every=5, n_train=64, n_val=8)
    summary = kill_test.run_kill_test(kills=2, spec=spec, workdir=tmp_path, seed=1, in_process=True,
                                      moments={"evaluation": 0.5, "write": 0.5}, child_timeout=120)
    assert summary["kills"] == 2, summary
    assert summary["corrupted_checkpoints"] == 0, summary["corruption_details"]
    assert summary["resume_failures"] == [], summary["resume_failures"]
    assert summary["metrics_identical"] and summary["max_abs_weight_difference"] == 0.0, summary


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    """A photo stored sideways with an EXIF tag loads upright, exactly as Pillow's
    exif_transpose turns it."""
    from PIL import Image, ImageOps

    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, (20, 36), dtype=np.uint8)  # (H, W), not square
    im = Image.fromarray(pixels, "L")
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    im.save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    got = load_image(path)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected)
