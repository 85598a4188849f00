"""Uploaded bytes -> grey images, through the same validated loader as files on disk.

``strings.image.load_image`` reads paths, arrays and PIL images, not bytes; an upload is
written to a private temporary file and read by path, so it gets exactly the checks a file
gets (formats, header-first size check, EXIF orientation). The service's own, lower pixel
limit is checked from the header before that.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np

from strings.image import InvalidImageError, display_name, load_image
from strings.serve.errors import ItemProblem

__all__ = ["Upload", "decode_upload", "header_pixels"]


@dataclass(frozen=True)
class Upload:
    """One image of a request: the name the client gave it and its bytes (None: the part held
    no file, or its base64 did not decode; ``problem`` says why)."""

    name: str
    data: bytes | None
    problem: ItemProblem | None = None


def header_pixels(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header without decoding pixels; None if no format reads it."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning: the caller judges the size
        try:
            with Image.open(io.BytesIO(data)) as im:
                return int(im.size[0]), int(im.size[1])
        except Image.DecompressionBombError:
            return (2**31, 1)  # far beyond any limit: refused as too large
        except Exception:  # noqa: BLE001 -- not an image: load_image says so with its own message
            return None


def decode_upload(upload: Upload, max_pixels: int, tmp_dir: str) -> np.ndarray:
    """The upload as a grey uint8 image; raises ``ItemProblem`` naming it."""
    name = display_name(upload.name)
    if upload.problem is not None:
        raise upload.problem
    if not upload.data:
        raise ItemProblem(422, "empty", f"{name}: empty file")
    size = header_pixels(upload.data)
    if size is not None and size[0] * size[1] > max_pixels:
        w, h = size
        raise ItemProblem(
            413, "too_many_pixels", f"{name}: {w}x{h} exceeds the {max_pixels:,}-pixel limit of this service"
        )
    fd, path = tempfile.mkstemp(dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(upload.data)
        try:
            return load_image(path)
        except (InvalidImageError, FileNotFoundError) as exc:
            # the loader names the temporary file; the client knows the item by its own name
            message = str(exc).replace(display_name(path), name)
            code = "too_many_pixels" if "pixel limit" in message else "not_an_image"
            raise ItemProblem(413 if code == "too_many_pixels" else 422, code, message) from None
    finally:
        os.unlink(path)
