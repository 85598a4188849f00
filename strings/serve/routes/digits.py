"""``POST /v1/digits``: single digits with a chosen bundled digit model (``strings.load_digits``)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from strings.digits.classifier import list_digit_models
from strings.serve.errors import ItemProblem
from strings.serve.routes.common import answer, service_of, within_timeout
from strings.serve.routes.uploads import collect, decode_all, item_name
from strings.serve.schemas import DigitOptions, DigitsResponse, ErrorResponse, parse_options, request_body_schema
from strings.serve.state import Service

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["digits"])
ROUTE = "/v1/digits"
ERRORS = {s: {"model": ErrorResponse} for s in (400, 413, 415, 422, 500, 504)}


@router.post(
    "/digits", responses={200: {"model": DigitsResponse}, **ERRORS}, openapi_extra=request_body_schema(DigitOptions)
)
async def digits(request: Request) -> JSONResponse:
    """Classify single digits, one record per image (``DigitPrediction.to_dict()`` and ``image``)."""
    service = service_of(request)
    return JSONResponse(await within_timeout(service, _digits(request, service)))


@router.get("/digits/models")
async def digit_models() -> dict[str, list[str]]:
    """The bundled digit models ``/v1/digits`` accepts as ``model``."""
    return {"models": list_digit_models()}


async def _digits(request: Request, service: Service) -> dict[str, Any]:
    uploads, raw = await collect(request, service.cfg)
    opts = parse_options(DigitOptions, raw)
    clf = await anyio.to_thread.run_sync(service.digit_classifier, opts.model)
    names = [item_name(u, i) for i, u in enumerate(uploads)]
    decoded = await decode_all(uploads, service.cfg, service.tmp_dir)
    good = [i for i, d in enumerate(decoded) if not isinstance(d, ItemProblem)]
    preds = await anyio.to_thread.run_sync(clf.recognize_greys, [decoded[i] for i in good], [names[i] for i in good])
    by_index = {i: {**p.to_dict(), "image": names[i]} for i, p in zip(good, preds)}
    return answer(service, ROUTE, clf.name, names, decoded, by_index)
