"""``POST /v1/read``: digit strings, one record per image, in order; concurrent requests are
batched together (strings.serve.batcher)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from strings.serve.errors import ItemProblem, ServeError
from strings.serve.results import AmountRequest, reading_record
from strings.serve.routes.common import answer, reads_columns, service_of, within_timeout
from strings.serve.routes.uploads import collect, decode_all, item_name
from strings.serve.schemas import ErrorResponse, ReadOptions, ReadResponse, parse_options, request_body_schema
from strings.serve.state import Service

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["read"])
ROUTE = "/v1/read"
ERRORS = {s: {"model": ErrorResponse} for s in (400, 413, 415, 422, 500, 503, 504)}


@router.post(
    "/read", responses={200: {"model": ReadResponse}, **ERRORS}, openapi_extra=request_body_schema(ReadOptions)
)
async def read(request: Request) -> JSONResponse:
    """Read digit strings: one or many images as multipart parts named ``file``, or JSON
    ``{"images": [{"name", "data": base64}]}``; options ``beam``, ``amount`` (with
    ``max_error``, ``locale``), ``field``, ``column``."""
    service = service_of(request)
    return JSONResponse(await within_timeout(service, _read(request, service)))  # already plain JSON: no re-encoding


def _check_options(service: Service, opts: ReadOptions) -> tuple[int, AmountRequest | None]:
    """The beam width and the amount request, or a 4xx for what this model or version cannot do."""
    cfg = service.cfg
    beam = cfg.beam if opts.beam is None else opts.beam
    if beam > cfg.max_beam:
        raise ServeError(
            422, "bad_option", f"option 'beam': at most {cfg.max_beam} on this server (--max-beam)", item="beam"
        )
    if not opts.amount:
        if "locale" in opts.model_fields_set:  # a locale alone would be silently ignored
            raise ServeError(
                422, "bad_option", "option 'locale': applies to amounts only; add amount=true", item="locale"
            )
        return beam, None
    return beam, AmountRequest(opts.max_error, opts.locale)


async def _read(request: Request, service: Service) -> dict[str, Any]:
    uploads, raw = await collect(request, service.cfg)
    opts = parse_options(ReadOptions, raw)
    beam, amount = _check_options(service, opts)
    names = [item_name(u, i) for i, u in enumerate(uploads)]
    decoded = await decode_all(uploads, service.cfg, service.tmp_dir)
    good = [i for i, d in enumerate(decoded) if not isinstance(d, ItemProblem)]
    greys = [decoded[i] for i in good]
    rec = service.for_beam(beam)
    if opts.column and not reads_columns(rec):
        raise ServeError(422, "bad_option", "option 'column': this server reads with a committee; column reading "
                         "scores strings with one model (strings serve --model NAME)", item="column")
    if opts.field or opts.column:  # the request's crops and their candidates share the network's batches
        read = rec.read_column if opts.column else rec.read_fields  # a column: the request's readable images, in order
        found = await anyio.to_thread.run_sync(lambda: read(greys) if greys else [])
        by_index = {
            i: {**reading_record(rec, f.reading, names[i], amount), **f.to_dict(), "image": names[i], "source": names[i]}
            for i, f in zip(good, found)
        }
    else:
        service.metrics.queued.set(service.batcher.queued() + len(greys))
        readings = await service.batcher.submit(greys, [names[i] for i in good], beam)
        by_index = {i: reading_record(rec, r, names[i], amount) for i, r in zip(good, readings)}
    return answer(service, ROUTE, rec.name, names, decoded, by_index)
