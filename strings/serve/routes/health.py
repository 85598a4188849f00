"""``/healthz`` (the process answers), ``/readyz`` (model loaded and warmed), ``/metrics``
(Prometheus text) and ``/v1/info`` (the model and the limits, for clients and the page)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from strings.read.amount import DEFAULT_LOCALE, LOCALES
from strings.serve.errors import error_body
from strings.serve.routes.common import reads_columns, service_of

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    service = service_of(request)
    if service.ready.is_set():
        return JSONResponse({"status": "ready", "model": service.recognizer.name})
    code, why = (
        ("load_failed", service.load_error) if service.load_error else ("not_ready", "the model is still loading")
    )
    return JSONResponse(error_body(code, str(why)), status_code=503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    service = service_of(request)
    service.metrics.queued.set(service.batcher.queued())
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/info")
async def info(request: Request) -> dict[str, Any]:
    service = service_of(request)
    cfg, rec = service.cfg, service.recognizer
    return {
        "model": rec.name,
        "calibrated": rec.calibration is not None,
        "supports": {
            "amount": True,  # every model; without a fitted operating point each one goes to review
            "operating_point": rec.calibration is not None,
            "field": hasattr(rec, "read_field"),
            "column": reads_columns(rec),
        },
        # without separators every amount goes to review: where the cents begin is unknown
        "reads_separators": rec.reads_separators,
        "locales": list(LOCALES),
        "default_locale": DEFAULT_LOCALE,
        "limits": {
            "max_body_bytes": cfg.max_body_bytes,
            "max_pixels": cfg.max_pixels,
            "max_images": cfg.max_images,
            "max_beam": cfg.max_beam,
            "timeout_s": cfg.timeout_s,
        },
        "batching": {"max_batch": cfg.max_batch, "max_wait_ms": cfg.max_wait_ms, "workers": cfg.workers},
    }
