"""Image loading and normalisation, shared by training and inference.

Convention: loaders return dark ink on a light background (how documents look), as a 2-D
uint8 array. ``normalize`` turns that into model input: ink bright in [0, 1], background 0, so
that zero padding on the right is background.

Bad input never escapes as a library error (OpenCV, Pillow, numpy): ``load_image`` and
``normalize`` raise ``FileNotFoundError`` (no such file) or ``InvalidImageError`` (anything
else wrong with the item), and the message names the item. Limits, checked before any pixel
is decoded:

- ``MAX_PIXELS``: width x height, read from the file header (decompression bombs) or from the
  array / PIL image;
- ``MAX_FILE_BYTES``: the size of an image file;
- ``IMAGE_FORMATS``: the only file formats decoded (PNG, JPEG, BMP, TIFF, WebP, PNM, GIF,
  JPEG 2000, Sun raster: those both Pillow, which checks the header, and OpenCV, which
  decodes the pixels, read).
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np
import torch
from torch import Tensor

from strings.config import PreprocessConfig

__all__ = [
    "IMAGE_FORMATS",
    "ImageInput",
    "InvalidImageError",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "collate_images",
    "display_name",
    "ink_box",
    "load_image",
    "normalize",
    "prepare",
]

ImageInput = Union[str, os.PathLike, np.ndarray, Any]  # Any: a PIL.Image.Image

# Refuse images above this many pixels before decoding them (decompression bombs).
MAX_PIXELS = 50_000_000
# Refuse image files above this many bytes before reading them (a 50-Mpixel 16-bit RGBA TIFF fits).
MAX_FILE_BYTES = 512 * 1024 * 1024
# Pillow format names whose header is read to check the size; OpenCV then decodes the pixels.
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "DIB", "TIFF", "WEBP", "PPM", "GIF", "JPEG2000", "SUN")


class InvalidImageError(ValueError):
    """An input that cannot be read as an image; the message names the item."""


def display_name(name: str | bytes | os.PathLike) -> str:
    """``name`` as text that can always be printed: characters that are not printable (control
    characters, the lone surrogates Python uses for non-UTF-8 bytes in file names) are
    backslash-escaped; every other character is kept as is."""
    text = os.fsdecode(name) if isinstance(name, (bytes, os.PathLike)) else str(name)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii") for c in text)


def _header_size(data: bytes, name: str) -> tuple[int, int, int]:
    """(width, height, EXIF orientation) from the file header, without decoding pixels.

    Pillow's plugins are called directly, without ``Image.open``: its own decompression-bomb
    check would raise (or warn) with a message that does not name the item, and would make
    very large headers look unreadable instead of too large. Raises ``InvalidImageError``
    when no format of ``IMAGE_FORMATS`` recognises the header.
    """
    from PIL import Image

    Image.init()
    prefix = data[:16]
    for fmt in IMAGE_FORMATS:
        entry = Image.OPEN.get(fmt)
        if entry is None:
            continue
        factory, accept = entry
        try:
            if accept is not None:
                accepted = accept(prefix)
                if isinstance(accepted, str) or not accepted:  # str: Pillow's "recognised but unsupported"
                    continue
            im = factory(io.BytesIO(data), name)
            try:
                w, h = (int(v) for v in im.size)
                try:
                    orientation = int(im.getexif().get(EXIF_ORIENTATION, 1))
                except Exception:  # corrupt EXIF: read the pixels as stored
                    orientation = 1
            finally:
                im.close()
        except Exception:  # a corrupt header: another format may still claim the file
            continue
        return w, h, orientation
    raise InvalidImageError(f"{name}: not a readable image (unrecognised or corrupt header)")


EXIF_ORIENTATION = 0x0112  # the TIFF/EXIF tag number


def _check_pixels(w: int, h: int, name: str) -> None:
    if w <= 0 or h <= 0:
        raise InvalidImageError(f"{name}: empty image ({w}x{h})")
    if w * h > MAX_PIXELS:
        raise InvalidImageError(f"{name}: {w}x{h} exceeds the {MAX_PIXELS:,}-pixel limit")


def _from_path(path: Path) -> np.ndarray:
    name = display_name(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"image not found: {name}") from None
    except ValueError:  # an embedded NUL character
        raise InvalidImageError(f"{name}: not a valid file name") from None
    except OSError as exc:
        raise InvalidImageError(f"{name}: cannot access ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InvalidImageError(f"{name}: is a directory, not an image")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or a device could block or never end
        raise InvalidImageError(f"{name}: not a regular file")
    if st.st_size == 0:
        raise InvalidImageError(f"{name}: empty file")
    if st.st_size > MAX_FILE_BYTES:
        raise InvalidImageError(f"{name}: {st.st_size:,} bytes exceeds the {MAX_FILE_BYTES:,}-byte file limit")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InvalidImageError(f"{name}: cannot read ({exc.strerror or exc})") from None
    except MemoryError:
        raise InvalidImageError(f"{name}: out of memory while reading the file") from None
    if not data:
        raise InvalidImageError(f"{name}: empty file")
    if len(data) > MAX_FILE_BYTES:
        raise InvalidImageError(f"{name}: exceeds the {MAX_FILE_BYTES:,}-byte file limit")
    w, h, orientation = _header_size(data, name)
    _check_pixels(w, h, name)  # before a single pixel is decoded
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else "OpenCV error"
        raise InvalidImageError(f"{name}: not a readable image ({detail})") from None
    except MemoryError:
        raise InvalidImageError(f"{name}: out of memory while decoding") from None
    if img is None:
        raise InvalidImageError(f"{name}: not a readable image")
    return _from_array(_apply_orientation(img, orientation), name, bgr=True)


def _apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright as the EXIF orientation tag says (phone photos are stored
    sideways with a tag; read as stored, every digit would lie on its side)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(img)) if op else img


def _from_array(arr: np.ndarray, name: str, bgr: bool = False) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise InvalidImageError(f"{name}: expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidImageError(f"{name}: empty image of shape {arr.shape}")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise InvalidImageError(f"{name}: {arr.shape[1]}x{arr.shape[0]} exceeds the {MAX_PIXELS:,}-pixel limit")
    if arr.dtype.kind in "uf" and not arr.dtype.isnative:  # big-endian data: same values, native order
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    elif arr.dtype in (np.float32, np.float64):
        if not np.isfinite(arr).all():
            raise InvalidImageError(f"{name}: float image holds NaN or infinity")
        if arr.min() < 0.0 or arr.max() > 1.0:
            raise InvalidImageError(f"{name}: float images must lie in [0, 1], got [{arr.min():.3g}, {arr.max():.3g}]")
        arr = np.round(arr * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise InvalidImageError(f"{name}: unsupported dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    if arr.ndim == 3:
        if arr.shape[2] == 4:  # composite over white so transparent areas read as paper
            alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
            arr = (arr[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
        arr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(arr)


def _from_pil(im: Any, name: str) -> np.ndarray:
    try:
        w, h = (int(v) for v in im.size)
    except Exception:
        raise InvalidImageError(f"{name}: PIL image without a valid size") from None
    _check_pixels(w, h, name)  # before a lazily opened image decodes its pixels
    mode = getattr(im, "mode", "?")
    try:
        if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            arr = np.asarray(im).astype(np.int64)
            if arr.size and arr.max() > 255:
                arr = arr >> 8
            return _from_array(arr.clip(0, 255).astype(np.uint8), name)
        if mode in ("La", "RGBa"):  # premultiplied alpha: undo it first
            im = im.convert("LA" if mode == "La" else "RGBA")
        if im.mode not in ("L", "RGB", "RGBA"):
            im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
        arr = np.asarray(im)
    except InvalidImageError:
        raise
    except MemoryError:
        raise InvalidImageError(f"{name}: out of memory while decoding") from None
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError... on truncated or odd images
        raise InvalidImageError(f"{name}: cannot decode PIL image of mode {mode!r} ({type(exc).__name__}: {exc})") from None
    return _from_array(arr, name)


def _is_pil_image(item: Any) -> bool:
    """A PIL image, recognised without importing PIL."""
    return type(item).__module__.startswith("PIL.") and hasattr(item, "mode") and hasattr(item, "convert")


def load_image(item: ImageInput, name: str | None = None) -> np.ndarray:
    """Any supported input to a 2-D uint8 grey image (dark ink on light paper).

    Accepts a path, a numpy array (grey, RGB or RGBA; uint8, uint16 or float in [0, 1]) or a
    PIL image. Raises ``FileNotFoundError`` or ``InvalidImageError`` with the item's name
    (``name`` if given); see the module docstring for the limits.
    """
    if isinstance(item, (str, os.PathLike)):
        try:
            path = Path(item)
        except TypeError:  # an os.PathLike whose __fspath__ gives bytes or something else
            try:
                path = Path(os.fsdecode(item))
            except TypeError:
                raise InvalidImageError(f"{type(item).__name__}: not a valid path") from None
        return _from_path(path)
    if isinstance(item, np.ndarray):
        return _from_array(item, display_name(name) if name else f"array{item.shape}")
    if _is_pil_image(item):
        return _from_pil(item, display_name(name) if name else "PIL image")
    raise InvalidImageError(f"{display_name(name) if name else type(item).__name__}: unsupported input type {type(item).__name__}")


def _as_grey(grey: np.ndarray, name: str | None) -> np.ndarray:
    """A non-empty 2-D uint8 array as it is; another array through ``load_image``."""
    if not isinstance(grey, np.ndarray):
        raise InvalidImageError(f"{display_name(name) if name else type(grey).__name__}: normalize needs a numpy array")
    if not (grey.ndim == 2 and grey.dtype == np.uint8 and grey.size):
        grey = load_image(grey, name)
    return grey


GREY_LEVELS = 256  # uint8


def _grey_percentiles(img: np.ndarray, qs: tuple[float, float]) -> tuple[float, float]:
    """``np.percentile(img, qs)`` (linear interpolation) of a uint8 image, from its histogram:
    one counting pass instead of a partial sort of every pixel."""
    cum = np.cumsum(np.bincount(img.ravel(), minlength=GREY_LEVELS))  # (256,)
    n = int(cum[-1])
    out = []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        k = int(np.floor(pos))
        lo = int(np.searchsorted(cum, k, side="right"))  # the k-th smallest level (0-based)
        hi = int(np.searchsorted(cum, min(k + 1, n - 1), side="right"))
        out.append(lo + (pos - k) * (hi - lo))
    return out[0], out[1]


def _ink_levels(img: np.ndarray, cfg: PreprocessConfig) -> np.ndarray | None:
    """uint8 grey levels -> float32 ink in [0, 1] (paper 0, darkest ink 1), stretched between
    the config's two grey-level percentiles; None for blank paper (nothing to stretch).
    The stretch is a 256-entry table looked up per pixel."""
    lo, hi = _grey_percentiles(img, (cfg.low_percentile, cfg.high_percentile))
    if hi - lo < 1.0:
        return None
    levels = np.arange(GREY_LEVELS, dtype=np.float32)
    table = np.clip((hi - levels) / (hi - lo), 0.0, 1.0).astype(np.float32)  # (256,)
    return table[img]


# Grey levels at least this far from paper to ink (after the percentile stretch) count as
# strokes when the ink box is found; fainter texture of security paper does not.
TRIM_STROKE_LEVEL = 0.5


def ink_box(grey: np.ndarray, cfg: PreprocessConfig) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the part of a dark-on-light uint8 crop to read when ``cfg.trim`` is on.

    The box spans the stroke mass of each axis, less ``trim_ink_share`` of it at each end, and
    keeps ``trim_margin`` ink-box heights of paper around it, never reaching past the crop.
    Without strokes (blank paper) it is the whole crop. Only ever removes paper: a crop
    tighter than the margin is kept as it is.
    """
    h, w = grey.shape
    ink = _ink_levels(grey, cfg)  # (H, W)
    if ink is None:
        return 0, 0, w, h
    ink = np.where(ink >= TRIM_STROKE_LEVEL, ink, 0.0)
    rows, cols = ink.sum(axis=1), ink.sum(axis=0)  # (H,), (W,)
    total = float(rows.sum())
    if total <= 0.0:
        return 0, 0, w, h
    cut = cfg.trim_ink_share * total

    def extent(profile: np.ndarray) -> tuple[int, int]:
        cum = np.cumsum(profile)
        start = int(np.searchsorted(cum, cut, side="right"))
        end = int(np.searchsorted(cum, total - cut, side="left")) + 1
        return start, max(end, start + 1)

    y0, y1 = extent(rows)
    x0, x1 = extent(cols)
    margin = int(round(cfg.trim_margin * (y1 - y0)))
    return max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)


def prepare(grey: np.ndarray, cfg: PreprocessConfig, name: str | None = None) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The model input of one crop, and the box (x0, y0, x1, y1) of the crop it was made from:
    ``ink_box`` when ``cfg.trim`` is on, else the whole image. Training and reading both go
    through here, so a model sees the same kind of input in both."""
    grey = _as_grey(grey, name)
    box = ink_box(grey, cfg) if cfg.trim else (0, 0, grey.shape[1], grey.shape[0])
    x0, y0, x1, y1 = box
    return normalize(grey[y0:y1, x0:x1], cfg, name), box


def normalize(grey: np.ndarray, cfg: PreprocessConfig, name: str | None = None) -> np.ndarray:
    """uint8 dark-on-light (H0, W0) -> float32 ink-bright (height, W), aspect ratio kept.

    The contrast stretch between two grey-level percentiles makes faint pencil and dark
    ballpoint look alike, and makes the background exactly 0. Any size from 1x1 up is
    accepted; an input that is not a non-empty 2-D uint8 array goes through ``load_image``
    first, so it is converted (uint16, float in [0, 1], RGB...) or refused with
    ``InvalidImageError`` naming ``name``.
    """
    grey = _as_grey(grey, name)
    h0, w0 = grey.shape
    width = int(round(w0 * cfg.height / h0))
    width = max(1, min(max(width, cfg.min_width), cfg.max_width))
    interp = cv2.INTER_AREA if h0 > cfg.height else cv2.INTER_LINEAR
    img = cv2.resize(grey, (width, cfg.height), interpolation=interp)  # uint8
    ink = _ink_levels(img, cfg)  # (height, W)
    return np.zeros(img.shape, np.float32) if ink is None else ink


def collate_images(images: list[np.ndarray], multiple: int = 1) -> tuple[Tensor, Tensor]:
    """Pad normalised images on the right to one width: (B, 1, H, Wmax) and widths (B,).

    Each width is first rounded up to ``multiple`` (the model's stride) with background, so
    that no pooling window straddles an image's edge: with the model's column masks, an
    image then reads identically alone or in any batch.
    """
    height = images[0].shape[0]
    widths = torch.tensor([-(-im.shape[1] // multiple) * multiple for im in images], dtype=torch.long)
    batch = torch.zeros(len(images), 1, height, int(widths.max()))
    for i, im in enumerate(images):
        batch[i, 0, :, : im.shape[1]] = torch.from_numpy(im)
    return batch, widths
