"""The ASGI app: routers, error handlers, limits and the service state, wired once.

Example:
    >>> app = create_app(ServeConfig(model="default"))   # doctest: +SKIP
    >>> # uvicorn.run(app) -- or ``strings serve``, which also handles SIGTERM
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from strings._version import __version__
from strings.read.recognizer import Recognizer
from strings.serve.config import ServeConfig
from strings.serve.errors import ServeError, error_body
from strings.serve.middleware import BodyLimit, Observe
from strings.serve.routes import digits, health, page, read
from strings.serve.state import Service

__all__ = ["create_app"]

log = logging.getLogger("strings.serve")


def create_app(cfg: ServeConfig | None = None, recognizer: Recognizer | None = None) -> FastAPI:
    """The service for ``cfg``; ``recognizer``: an already loaded one instead of ``cfg.model``."""
    cfg = cfg or ServeConfig()
    service = Service(cfg, recognizer)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        yield
        service.close()  # after uvicorn has let in-flight requests finish

    app = FastAPI(
        title="strings",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,  # /docs: routes.page
        description="Read handwritten digit strings (cheque amounts, postal codes, form fields).",
    )
    app.state.service = service
    for module in (read, digits, health, page):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=page.STATIC_DIR), name="static")

    def route_of(request: Request) -> str:
        return str(getattr(request.scope.get("route"), "path", "other"))

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, exc: ServeError) -> JSONResponse:
        service.metrics.errors.labels(route_of(request), exc.code).inc()
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        service.metrics.errors.labels(route_of(request), code).inc()
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return JSONResponse(error_body("bad_request", f"{where}: {first['msg']}", item=where), status_code=422)

    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes)
    app.add_middleware(Observe, metrics=service.metrics)  # added last: outermost, sees every answer
    return app
