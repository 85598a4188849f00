"""A request's images and options, from multipart form data or JSON, with the count limit
checked before any image is decoded."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import anyio
import numpy as np
from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from strings.serve.config import ServeConfig
from strings.serve.errors import ItemProblem, ServeError
from strings.serve.inputs import Upload, decode_upload
from strings.serve.schemas import JSONRead

__all__ = ["collect", "decode_all", "item_name"]

FILE_PART = "file"
MAX_OPTION_FIELDS = 32  # multipart text fields: the options, with room to spare


def item_name(upload: Upload, index: int) -> str:
    """The client's name for the image, or ``[i]`` (its index) like ``Recognizer.recognize_many``."""
    return upload.name or f"[{index}]"


def _too_many(limit: int) -> ServeError:
    return ServeError(413, "too_many_images", f"more than {limit} images in one request (--max-images)")


async def _from_multipart(request: Request, cfg: ServeConfig) -> tuple[list[Upload], dict[str, Any]]:
    try:
        form = await request.form(
            max_files=cfg.max_images, max_fields=MAX_OPTION_FIELDS, max_part_size=cfg.max_body_bytes
        )
    except HTTPException as exc:  # Starlette's multipart limits and parse errors
        if "too many files" in str(exc.detail).lower():
            raise _too_many(cfg.max_images) from None
        raise ServeError(400, "bad_multipart", f"malformed multipart body: {exc.detail}") from None
    uploads: list[Upload] = []
    options: dict[str, Any] = {}
    try:
        for key, value in form.multi_items():
            if key == FILE_PART:
                if isinstance(value, UploadFile):
                    uploads.append(Upload(value.filename or "", await value.read()))
                else:
                    problem = ItemProblem(
                        422, "not_a_file", f"[{len(uploads)}]: part 'file' holds text, not a file upload"
                    )
                    uploads.append(Upload("", None, problem))
            elif isinstance(value, UploadFile):
                raise ServeError(
                    422,
                    "bad_option",
                    f"option {key!r}: a file where a value was expected (images go in parts named 'file')",
                    item=key,
                )
            else:
                options[key] = value
    finally:
        await form.close()
    return uploads, options


async def _from_json(request: Request, cfg: ServeConfig) -> tuple[list[Upload], dict[str, Any]]:
    try:
        body = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ServeError(400, "bad_json", f"the body is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ServeError(422, "bad_request", "the JSON body must be an object with an 'images' list")
    images = body.get("images")
    if isinstance(images, list) and len(images) > cfg.max_images:  # before anything is decoded
        raise _too_many(cfg.max_images)
    try:
        parsed = JSONRead.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ServeError(422, "bad_request", f"{where}: {first['msg']}", item=where) from None
    uploads = []
    for i, item in enumerate(parsed.images):
        try:
            uploads.append(Upload(item.name, base64.b64decode(item.data, validate=True)))
        except (binascii.Error, ValueError):
            name = item.name or f"[{i}]"
            uploads.append(
                Upload(item.name, None, ItemProblem(422, "not_base64", f"{name}: 'data' is not valid base64"))
            )
    return uploads, {k: v for k, v in body.items() if k != "images"}


async def collect(request: Request, cfg: ServeConfig) -> tuple[list[Upload], dict[str, Any]]:
    """(images, options): options from the query string, overridden by the body's."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        uploads, options = await _from_multipart(request, cfg)
    elif kind == "application/json":
        uploads, options = await _from_json(request, cfg)
    else:
        raise ServeError(
            415,
            "unsupported_media_type",
            f"send multipart/form-data (parts named 'file') or application/json, not {kind or 'no content type'}",
        )
    if not uploads:
        raise ServeError(
            422, "no_images", "the request holds no image (multipart parts named 'file', or JSON 'images')"
        )
    if len(uploads) > cfg.max_images:
        raise _too_many(cfg.max_images)
    return uploads, {**dict(request.query_params), **options}


async def decode_all(uploads: list[Upload], cfg: ServeConfig, tmp_dir: str) -> list[np.ndarray | ItemProblem]:
    """Each upload decoded (in a worker thread: decoding is CPU work), or its problem."""

    def run() -> list[np.ndarray | ItemProblem]:
        out: list[np.ndarray | ItemProblem] = []
        for i, up in enumerate(uploads):
            try:
                out.append(decode_upload(Upload(item_name(up, i), up.data, up.problem), cfg.max_pixels, tmp_dir))
            except ItemProblem as problem:
                out.append(problem)
        return out

    return await anyio.to_thread.run_sync(run)
