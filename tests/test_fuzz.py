"""Fuzz tests (hypothesis), bounded for CI: random and mutated inputs to every entry point
that takes outside data. Each call must either succeed with a well-formed result or raise one
of the documented errors (``InvalidImageError``, ``FileNotFoundError``, ``DatasetError``)
with a message that can be printed; anything else is a bug.

The generators and checks here are shared with ``benchmarks/fuzz.py``, the long seeded run.
``STRINGS_FUZZ_EXAMPLES`` sets the number of examples per test (default 100);
``STRINGS_FUZZ_RANDOM=1`` draws new examples instead of the same ones on every run.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from conftest import render_digits
from strings.alphabet import Alphabet
from strings.config import PreprocessConfig
from strings.data import DatasetError, FileDataset, read_gt_list, read_idx, read_list
from strings.decode.ctc import Decoded, greedy_decode
from strings.read.recognizer import Reading
from strings.image import InvalidImageError, load_image, normalize

EXAMPLES = int(os.environ.get("STRINGS_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=20000,  # ms per example: generous (CI machines are shared) yet still catches a hang
    database=None,  # no .hypothesis/ folder in the checkout
    derandomize=os.environ.get("STRINGS_FUZZ_RANDOM") != "1",  # by default the same examples on every CI run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

IMAGE_ERRORS = (InvalidImageError, FileNotFoundError)
DATASET_ERRORS = (DatasetError,)
ALPHABET = Alphabet("0123456789")


# --------------------------------------------------------------------------- shared: seeds and mutations


def _encode(ext: str, img: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok, ext
    return buf.tobytes()


def _pil_bytes(im: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def seed_images() -> dict[str, bytes]:
    """Valid encoded images of every kind the loader has a branch for."""
    grey = render_digits("90210")
    rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    rgb[grey < 128] = (200, 60, 20)
    rgba = np.dstack([rgb, 255 - grey])
    return {
        "png-grey": _encode(".png", grey),
        "png-rgb": _encode(".png", rgb),
        "png-rgba": _encode(".png", rgba),
        "png-16bit": _encode(".png", grey.astype(np.uint16) * 257),
        "png-palette": _pil_bytes(Image.fromarray(grey).convert("P"), "PNG"),
        "png-1bit": _pil_bytes(Image.fromarray(grey).convert("1"), "PNG"),
        "png-la": _pil_bytes(Image.fromarray(rgba[..., [0, 3]].copy(), "LA"), "PNG"),
        "jpeg-grey": _encode(".jpg", grey, cv2.IMWRITE_JPEG_QUALITY, 90),
        "jpeg-rgb": _encode(".jpg", rgb, cv2.IMWRITE_JPEG_QUALITY, 75),
        "jpeg-progressive": _encode(".jpg", rgb, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        "bmp": _encode(".bmp", rgb),
        "tiff": _encode(".tif", grey),
        "gif": _pil_bytes(Image.fromarray(grey), "GIF"),
        "webp": _pil_bytes(Image.fromarray(grey), "WEBP"),
    }


MAGICS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP", b"P5\n"]
MUTATIONS = ("flip", "truncate", "insert", "delete", "u32", "u16", "repeat", "zero")
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".gif", ".webp", ".txt", "")


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    """Apply (kind, position, value) mutations; positions wrap around the data. ``u32``/``u16``
    overwrite a big- or little-endian integer (the size fields of image headers)."""
    buf = bytearray(data)
    for kind, pos, value in ops:
        n = len(buf)
        if n == 0:
            buf = bytearray(value.to_bytes(4, "big"))
            continue
        p = pos % n
        if kind == "flip":
            buf[p] ^= (value % 255) + 1
        elif kind == "truncate":
            del buf[p:]
        elif kind == "insert":
            buf[p:p] = value.to_bytes(4, "big")[: 1 + value % 4]
        elif kind == "delete":
            del buf[p : p + 1 + value % 64]
        elif kind == "u32":
            buf[p : p + 4] = value.to_bytes(4, "big" if value & 1 else "little")
        elif kind == "u16":
            buf[p : p + 2] = (value & 0xFFFF).to_bytes(2, "big" if value & 0x10000 else "little")
        elif kind == "repeat":
            buf[p:p] = buf[p : p + 1 + value % 256]
        elif kind == "zero":
            buf[p : p + 1 + value % 32] = bytes(len(buf[p : p + 1 + value % 32]))
    return bytes(buf)


def gt_bytes(lines: list[tuple[str, str, str]], encoding: str, junk: bytes = b"", junk_at: int = 0) -> bytes:
    """A ground-truth file: ``name<sep>label`` lines in an encoding, with junk bytes spliced in."""
    text = "".join(f"{name}{sep}{label}\n" for name, sep, label in lines)
    raw = text.encode(encoding, errors="surrogateescape" if encoding == "utf-8" else "replace")
    p = junk_at % (len(raw) + 1)
    return raw[:p] + junk + raw[p:]


def idx_file_bytes(magic: bytes, dims: list[int], body: int, gz: str, fill: int = 7) -> bytes:
    """An IDX file with a header claiming ``dims``, ``body`` bytes of data, raw or gzipped
    (``gz`` = "no", "yes", "truncated")."""
    raw = magic[:3].ljust(3, b"\x00") + bytes([len(dims) % 256]) + b"".join(struct.pack(">I", d % 2**32) for d in dims)
    raw += bytes([fill % 256]) * body
    if gz == "yes":
        return gzip.compress(raw)
    if gz == "truncated":
        return gzip.compress(raw)[: max(2, len(raw) // 2)]
    return raw


# --------------------------------------------------------------------------- shared: oracles


class Crash(AssertionError):
    """An input made the code under test raise an undocumented exception or return nonsense."""


def outcome(fn: Callable[[], Any], allowed: tuple[type[BaseException], ...]) -> tuple[str, Any]:
    """Run ``fn``: ("ok", result) or ("error", exc) for an allowed exception with a printable
    message; any other exception is re-raised as ``Crash``."""
    try:
        return "ok", fn()
    except allowed as exc:
        msg = str(exc)
        if not msg.strip():
            raise Crash(f"{type(exc).__name__} with an empty message") from exc
        try:
            msg.encode("utf-8")
        except UnicodeEncodeError:
            raise Crash(f"{type(exc).__name__} message cannot be printed: {msg!r}") from exc
        return "error", exc
    except Exception as exc:
        raise Crash(f"undocumented {type(exc).__name__}: {exc}") from exc


def check_grey(img: Any) -> None:
    if not (isinstance(img, np.ndarray) and img.ndim == 2 and img.dtype == np.uint8 and img.size > 0):
        raise Crash(f"load_image returned {type(img).__name__} {getattr(img, 'shape', '')} {getattr(img, 'dtype', '')}")


def check_normalized(x: Any, cfg: PreprocessConfig) -> None:
    ok = (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 2 and x.shape[0] == cfg.height
          and max(1, min(cfg.min_width, cfg.max_width)) <= x.shape[1] <= max(1, cfg.max_width)
          and np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0)
    if not ok:
        raise Crash(f"normalize returned {getattr(x, 'dtype', type(x))} {getattr(x, 'shape', '')}")


def check_reading(r: Any, shape: tuple[int, int]) -> None:
    h, w = shape
    if not isinstance(r, Reading) or not all(c in "0123456789" for c in r.text) or not 0.0 <= r.confidence <= 1.0:
        raise Crash(f"bad reading {r!r}")
    if len(r.digits) != len(r.text):
        raise Crash(f"{len(r.digits)} digit boxes for {r.text!r}")
    for d in r.digits:
        x0, y0, x1, y1 = d.box
        if not (0.0 <= d.confidence <= 1.0 and 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise Crash(f"digit {d} outside a {w}x{h} image")


def check_decoded(d: Any, t_len: int) -> None:
    """A well-formed decoding of ``t_len`` frames: every confidence in [0, 1] (the beam decoder's
    exp(score) can round a hair above 1; strings/decode/ctc.py clamps it, and
    test_beam_confidence_never_above_one pins the cases the fuzz found)."""
    if not isinstance(d, Decoded) or not all(c in "0123456789" for c in d.text):
        raise Crash(f"bad decoding {d!r}")
    if not (0.0 <= d.confidence <= 1.0) or any(not (0.0 <= c <= 1.0) for c in d.char_confidences):
        raise Crash(f"confidence outside [0, 1]: {d}")
    if len(d.spans) != len(d.text) or len(d.char_confidences) != len(d.text):
        raise Crash(f"{len(d.spans)} spans for {d.text!r}")
    if any(not (0 <= s < e <= t_len) for s, e in d.spans):
        raise Crash(f"span outside [0, {t_len}): {d.spans}")


def check_gt_pairs(pairs: Any) -> None:
    for name, label in pairs:
        if not name or name != name.strip() or "\x00" in name or not label or not label.isascii() or not label.isdigit():
            raise Crash(f"read_gt_list returned ({name!r}, {label!r})")


def load_image_outcome(item: Any) -> tuple[str, Any]:
    kind, value = outcome(lambda: load_image(item), IMAGE_ERRORS)
    if kind == "ok":
        check_grey(value)
    return kind, value


def normalize_outcome(item: Any, cfg: PreprocessConfig) -> tuple[str, Any]:
    kind, value = outcome(lambda: normalize(item, cfg), (InvalidImageError,))
    if kind == "ok":
        check_normalized(value, cfg)
    return kind, value


def recognize_outcome(rec: Any, item: Any) -> tuple[str, Any]:
    kind, value = outcome(lambda: rec.recognize(item), IMAGE_ERRORS)
    if kind == "ok":
        check_reading(value, load_image(item).shape)
    return kind, value


def gt_outcome(path: Path, images: Path) -> tuple[str, Any]:
    kind, pairs = outcome(lambda: read_gt_list(path), DATASET_ERRORS)
    if kind == "ok":
        check_gt_pairs(pairs)
    kind2, ds = outcome(lambda: read_list(path, images), DATASET_ERRORS)
    if kind2 == "ok":
        if kind != "ok" or not isinstance(ds, FileDataset) or len(ds) != len(pairs):
            raise Crash("read_list accepted what read_gt_list refused, or lost items")
        if not all(p.is_file() for p, _ in ds.items):
            raise Crash("read_list listed a missing image")
    return kind2, ds


def idx_outcome(path: Path) -> tuple[str, Any]:
    kind, arr = outcome(lambda: read_idx(path), DATASET_ERRORS)
    if kind == "ok" and not (isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and arr.ndim >= 1):
        raise Crash(f"read_idx returned {type(arr).__name__} {getattr(arr, 'shape', '')}")
    return kind, arr


def random_log_probs(gen: torch.Generator, b: int, t: int, scale: float, masked: float, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, 11) log-softmax outputs: logits of a given scale, a share of them -inf."""
    logits = torch.randn(b, t, ALPHABET.num_classes, generator=gen) * scale
    if masked > 0:
        mask = torch.rand(logits.shape, generator=gen) < masked
        logits = logits.masked_fill(mask, float("-inf"))
        logits[..., 0] = logits[..., 0].nan_to_num(neginf=0.0)  # keep every frame a distribution
    return logits.log_softmax(-1), torch.tensor(lengths, dtype=torch.long)


def decode_outcome(decoder: Callable, lp: torch.Tensor, lengths: torch.Tensor) -> list:
    kind, out = outcome(lambda: decoder(lp, lengths), ())
    if len(out) != lp.shape[0]:
        raise Crash(f"{len(out)} results for a batch of {lp.shape[0]}")
    for b, item in enumerate(out):
        for d in item if isinstance(item, list) else [item]:
            check_decoded(d, int(lengths[b]))
    return out


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _subnormals_back_on():
    """strings.train.loop.train turns on flush-to-zero for the whole process (torch.set_flush_denormal)
    and leaves it on; hypothesis refuses to generate floats in such a process, and the
    decoders should be fuzzed with IEEE arithmetic. Put the default back for this module."""
    torch.set_flush_denormal(False)
    yield


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    return seed_images()


@pytest.fixture(scope="module")
def tiny_rec(tiny_checkpoint):
    from strings.read.loading import load

    return load(tiny_checkpoint)


@pytest.fixture(scope="module")
def beam_decoder():
    from strings.decode.ctc import BeamSearchDecoder

    return BeamSearchDecoder(ALPHABET, beam_size=4, nbest=3)


def test_seed_images_are_valid(fuzz_dir, seeds, tiny_rec):
    """The mutation seeds themselves load and read: the fuzz starts from the valid side."""
    for name, data in seeds.items():
        path = Path(fuzz_dir) / f"seed-{name}"
        path.write_bytes(data)
        assert load_image_outcome(path)[0] == "ok", name
        assert recognize_outcome(tiny_rec, path)[0] == "ok", name


# --------------------------------------------------------------------------- image files


@FUZZ
@given(magic=st.sampled_from(MAGICS), body=st.binary(max_size=2048), suffix=st.sampled_from(SUFFIXES))
def test_fuzz_random_bytes_files(fuzz_dir, tiny_rec, magic, body, suffix):
    path = fuzz_dir / f"random{suffix}"
    path.write_bytes(magic + body)
    kind, _ = load_image_outcome(path)
    kind2, _ = recognize_outcome(tiny_rec, str(path))
    assert kind == kind2


@FUZZ
@given(
    seed=st.sampled_from(sorted(seed_images())),
    ops=st.lists(st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 2**16), st.integers(0, 2**32 - 1)), min_size=1, max_size=4),
)
def test_fuzz_mutated_image_files(fuzz_dir, seeds, tiny_rec, seed, ops):
    path = fuzz_dir / ("mutated" + (".jpg" if seed.startswith("jpeg") else ".png"))
    path.write_bytes(mutate(seeds[seed], ops))
    kind, _ = load_image_outcome(path)
    kind2, _ = recognize_outcome(tiny_rec, path)
    assert kind == kind2


@FUZZ
@given(name=st.binary(min_size=1, max_size=60).filter(lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b"..")),
       valid=st.booleans())
def test_fuzz_odd_file_names(fuzz_dir, seeds, tiny_rec, name, valid):
    """Any byte string the file system takes as a name (non-UTF-8 included) reads, or fails
    with a printable message."""
    folder = os.fsencode(fuzz_dir / "names")
    os.makedirs(folder, exist_ok=True)
    raw_path = os.path.join(folder, name)
    with open(raw_path, "wb") as fh:
        fh.write(seeds["png-grey"] if valid else b"not an image " + name)
    path = os.fsdecode(raw_path)
    try:
        kind, value = load_image_outcome(path)
        assert kind == ("ok" if valid else "error"), value
        kind, value = recognize_outcome(tiny_rec, path)
        if valid:
            assert value.source == path
    finally:
        os.unlink(raw_path)


# --------------------------------------------------------------------------- arrays

DTYPES = [np.uint8, np.uint16, np.int8, np.int16, np.int32, np.int64, np.uint32, np.float16, np.float32, np.float64,
          np.bool_, np.complex64, np.dtype(">u2"), np.dtype(">f4"), np.dtype("<f8")]
CONFIGS = [PreprocessConfig(), PreprocessConfig(height=16, min_width=8, max_width=64),
           PreprocessConfig(height=1, min_width=1, max_width=1), PreprocessConfig(height=48, min_width=100, max_width=20)]


@FUZZ
@given(
    arr=st.one_of(
        st.sampled_from(DTYPES).flatmap(lambda dt: hnp.arrays(
            dt, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12),
            elements=hnp.from_dtype(np.dtype(dt), allow_subnormal=False) if np.dtype(dt).kind in "fc" else None)),
        # extreme aspect ratios, not huge areas: a 5000x5000 case costs seconds and proves nothing more
        st.builds(lambda hw, c, v: np.full((*hw, c)[: 2 if c == 0 else 3], v, np.uint8),
                  st.sampled_from([(1, 1), (1, 2), (2, 10), (10, 5000), (5000, 10), (300, 300)]),
                  st.sampled_from([0, 1, 2, 3, 4, 5]), st.integers(0, 255)),
    ),
    cfg=st.sampled_from(CONFIGS),
)
def test_fuzz_arrays(tiny_rec, arr, cfg):
    kind, grey = load_image_outcome(arr)
    kind_n, _ = normalize_outcome(arr, cfg)
    assert kind == kind_n, "normalize and load_image must agree on which arrays are images"
    if kind == "ok":
        check_normalized(normalize(grey, cfg), cfg)
        kind_r, _ = recognize_outcome(tiny_rec, arr)
        assert kind_r == "ok"


def test_fuzz_arrays_not_arrays():
    for item in (None, 3, "x", [[1, 2]], b"\x00", object()):
        kind, _ = outcome(lambda: normalize(item, CONFIGS[0]), (InvalidImageError,))
        assert kind == "error"


# --------------------------------------------------------------------------- ground-truth lists

NAME_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=20) | st.sampled_from(
    ["a.png", "b c.png", "../a.png", "/etc/x.png", "é.png", "a\x00.png", "\u2028.png", "a\x85b.png"])
LABEL_TEXT = st.text("0123456789", min_size=1, max_size=6) | st.text(max_size=6) | st.sampled_from(["١٢", "1.5", "-3", "²", "1e3"])


@FUZZ
@given(
    content=st.one_of(
        st.binary(max_size=512),
        st.builds(gt_bytes, st.lists(st.tuples(NAME_TEXT, st.sampled_from([" ", "\t", "  ", "", "\x0b", "\u3000"]), LABEL_TEXT),
                                     max_size=6),
                  st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]), st.binary(max_size=4),
                  st.integers(0, 1000)),
    ),
)
def test_fuzz_gt_files(fuzz_dir, content):
    images = fuzz_dir / "gt-images"
    if not images.is_dir():
        images.mkdir()
        for name in ("a.png", "b c.png", "é.png"):
            cv2.imwrite(str(images / name), render_digits("1"))
    gt = fuzz_dir / "gt.txt"
    gt.write_bytes(content)
    gt_outcome(gt, images)


# --------------------------------------------------------------------------- IDX files


@FUZZ
@given(
    content=st.one_of(
        st.binary(max_size=256),
        st.builds(idx_file_bytes, st.sampled_from([b"\x00\x00\x08", b"\x00\x00\x09", b"\x01\x00\x08", b""]),
                  st.lists(st.integers(0, 6) | st.integers(0, 2**32 - 1), max_size=5),
                  st.integers(0, 300), st.sampled_from(["no", "yes", "truncated"]), st.integers(0, 255)),
        st.builds(lambda dims, gz: idx_file_bytes(b"\x00\x00\x08", dims, math.prod(dims), gz),
                  st.lists(st.integers(0, 6), min_size=1, max_size=4), st.sampled_from(["no", "yes"])),
    ),
)
def test_fuzz_idx_files(fuzz_dir, content):
    path = fuzz_dir / "x-idx3-ubyte"
    path.write_bytes(content)
    idx_outcome(path)


# --------------------------------------------------------------------------- decoders


LOG_PROBS = st.builds(
    lambda seed, b, t, scale, masked, fracs: (seed, b, t, scale, masked, [int(round(f * t)) for f in fracs[:b]] + [t] * (b - len(fracs))),
    st.integers(0, 2**31 - 1), st.integers(0, 4), st.integers(0, 40), st.sampled_from([0.01, 1.0, 5.0, 50.0, 1000.0]),
    st.sampled_from([0.0, 0.3, 0.9]), st.lists(st.floats(0.0, 1.0, allow_subnormal=False), max_size=4),
)


@FUZZ
@given(spec=LOG_PROBS)
def test_fuzz_greedy_decode(spec):
    seed, b, t, scale, masked, lengths = spec
    lp, lens = random_log_probs(torch.Generator().manual_seed(seed), b, t, scale, masked, lengths)
    decode_outcome(lambda x, n: greedy_decode(x, n, ALPHABET), lp, lens)


@FUZZ
@given(spec=LOG_PROBS)
def test_fuzz_beam_decoder(beam_decoder, spec):
    seed, b, t, scale, masked, lengths = spec
    lp, lens = random_log_probs(torch.Generator().manual_seed(seed), b, t, scale, masked, lengths)
    decode_outcome(beam_decoder, lp, lens)


@pytest.mark.parametrize("spec", [(4, 3, 2, 50.0, 0.0, [2, 2, 2]), (1802260863, 1, 54, 1000.0, 0.9, [20]),
                                  (1074685933, 3, 27, 1000.0, 0.3, [27, 17, 14])])
def test_beam_confidence_never_above_one(beam_decoder, spec):
    """Found by the fuzz run: near-certain frames give a beam score a hair above 0."""
    seed, b, t, scale, masked, lengths = spec
    lp, lens = random_log_probs(torch.Generator().manual_seed(seed), b, t, scale, masked, lengths)
    decode_outcome(beam_decoder, lp, lens)
