"""Two ASGI wrappers around the whole app: the request-body limit, and the one place every
answer is counted, timed and, when something broke inside, turned into a logged 500."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from strings.serve.errors import ServeError, error_body
from strings.serve.metrics import Metrics

__all__ = ["BodyLimit", "Observe", "send_json"]

log = logging.getLogger("strings.serve")

Scope = dict[str, Any]


async def send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _too_big(limit: int) -> ServeError:
    return ServeError(
        413, "body_too_large", f"request body exceeds the {limit:,}-byte limit of this service (--max-body-bytes)"
    )


class BodyLimit:
    """Refuses a body over ``limit`` bytes: from Content-Length before reading, else while it
    streams in (the endpoint reading it gets a ``ServeError``, answered as a 413)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            err = _too_big(self.limit)
            return await send_json(send, err.status, err.body())
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _too_big(self.limit)
            return message

        await self.app(scope, limited, send)


class Observe:
    """Counts and times every answer by route; an exception nothing handled is logged and
    answered as a JSON 500 (no traceback goes to the client)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500
        started = False

        async def watched(message: Any) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            log.exception("internal error answering %s %s", scope.get("method"), scope.get("path"))
            status = 500
            if not started:
                await send_json(send, 500, error_body("internal", "internal error; it was logged on the server"))
        finally:
            route = _route_label(scope)
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


def _route_label(scope: Scope) -> str:
    """The route's template (bounded label values), not the raw path."""
    route = getattr(scope.get("route"), "path", None)
    if route:
        return str(route)
    return "/static" if str(scope.get("path", "")).startswith("/static/") else "other"
