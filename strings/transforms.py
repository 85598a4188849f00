"""Image loading and normalisation, shared by training and inference.

Convention: loaders return dark ink on a light background (how documents look), as a 2-D
uint8 array. ``normalize`` turns that into model input: ink bright in [0, 1], background 0, so
that zero padding on the right is background.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import cv2
import numpy as np
import torch
from torch import Tensor

from strings.config import PreprocessConfig

__all__ = ["ImageInput", "InvalidImageError", "MAX_PIXELS", "load_image", "normalize", "collate_images"]

ImageInput = Union[str, os.PathLike, np.ndarray, Any]  # Any: a PIL.Image.Image

# Refuse images above this many pixels before decoding them (decompression bombs).
MAX_PIXELS = 50_000_000


class InvalidImageError(ValueError):
    """An input that cannot be read as an image; the message names the item."""


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header without decoding pixels, or None if unknown."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.size
    except Exception:
        return None


def _from_path(path: Path) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(f"image not found: {path}")
    if path.is_dir():
        raise InvalidImageError(f"{path}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise InvalidImageError(f"{path}: empty file")
    size = _header_size(path)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise InvalidImageError(f"{path}: {size[0]}x{size[1]} exceeds the {MAX_PIXELS:,}-pixel limit")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InvalidImageError(f"{path}: not a readable image")
    return _from_array(img, str(path), bgr=True)


def _from_array(arr: np.ndarray, name: str, bgr: bool = False) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise InvalidImageError(f"{name}: expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidImageError(f"{name}: empty image of shape {arr.shape}")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise InvalidImageError(f"{name}: {arr.shape[1]}x{arr.shape[0]} exceeds the {MAX_PIXELS:,}-pixel limit")
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


def load_image(item: ImageInput, name: str | None = None) -> np.ndarray:
    """Any supported input to a 2-D uint8 grey image (dark ink on light paper).

    Accepts a path, a numpy array (grey, RGB or RGBA; uint8, uint16 or float in [0, 1]) or a
    PIL image. Raises ``FileNotFoundError`` or ``InvalidImageError`` with the item's name.
    """
    if isinstance(item, (str, os.PathLike)):
        return _from_path(Path(item))
    if isinstance(item, np.ndarray):
        return _from_array(item, name or f"array{item.shape}")
    if hasattr(item, "mode") and hasattr(item, "convert"):  # PIL image, without importing PIL eagerly
        im = item
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(im, dtype=np.uint32)
            arr = (arr >> 8).clip(0, 255).astype(np.uint8) if arr.max() > 255 else arr.astype(np.uint8)
            return _from_array(arr, name or "PIL image")
        if im.mode not in ("L", "RGB", "RGBA"):
            im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
        return _from_array(np.asarray(im), name or "PIL image")
    raise InvalidImageError(f"{name or type(item).__name__}: unsupported input type {type(item).__name__}")


def normalize(grey: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """uint8 dark-on-light (H0, W0) -> float32 ink-bright (height, W), aspect ratio kept.

    The contrast stretch between two grey-level percentiles makes faint pencil and dark
    ballpoint look alike, and makes the background exactly 0.
    """
    h0, w0 = grey.shape
    width = int(round(w0 * cfg.height / h0))
    width = min(max(width, cfg.min_width), cfg.max_width)
    interp = cv2.INTER_AREA if h0 > cfg.height else cv2.INTER_LINEAR
    img = cv2.resize(grey, (width, cfg.height), interpolation=interp).astype(np.float32)
    lo, hi = (float(v) for v in np.percentile(img, (cfg.low_percentile, cfg.high_percentile)))
    if hi - lo < 1.0:  # blank image: nothing to stretch
        return np.zeros_like(img)
    ink = (hi - img) / (hi - lo)  # (height, W): paper -> 0, darkest ink -> 1
    return np.clip(ink, 0.0, 1.0).astype(np.float32)


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
