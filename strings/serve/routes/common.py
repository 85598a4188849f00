"""What the image endpoints share: the per-request timeout and the answer built from
per-image records (a 4xx when not a single image of the request could be read)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from fastapi import Request

from strings.serve.errors import ItemProblem, ServeError
from strings.serve.results import error_record
from strings.serve.state import Service

__all__ = ["answer", "reads_columns", "service_of", "within_timeout"]


def service_of(request: Request) -> Service:
    return request.app.state.service


async def within_timeout(service: Service, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """``work``, or a 504 after the per-request timeout (its queued images are then skipped)."""
    try:
        return await asyncio.wait_for(work, service.cfg.timeout_s)
    except TimeoutError:
        raise ServeError(
            504, "timeout", f"the request took longer than {service.cfg.timeout_s:g} s (--timeout)"
        ) from None


def answer(
    service: Service, route: str, model: str, names: list[str], decoded: list[Any], read: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    """``{"model", "results"}``: image i's record ``read[i]``, or its error when ``decoded[i]``
    is an ``ItemProblem``. When every image failed, the first problem is the request's 4xx,
    with all records beside it."""
    records: list[dict[str, Any]] = []
    problems: list[tuple[str, ItemProblem]] = []
    for i, d in enumerate(decoded):
        if isinstance(d, ItemProblem):
            records.append(error_record(names[i], d))
            problems.append((names[i], d))
        else:
            records.append(read[i])
    for _, problem in problems:
        service.metrics.errors.labels(route, problem.code).inc()
    service.metrics.images.labels(route).inc(len(records) - len(problems))
    if problems and len(problems) == len(records):
        name, first = problems[0]
        raise ServeError(first.status, first.code, first.message, item=name, results=records)
    return {"model": model, "results": records}


def reads_columns(rec: Any) -> bool:
    """Whether ``rec`` can read a register column: one model (a committee has no logits of its own)."""
    return getattr(rec, "members", None) is None
