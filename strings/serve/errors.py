"""One error shape for every answer that is not a reading: ``{"error": {"code", "message", "item"?}}``.

Client mistakes are ``ServeError`` with a 4xx status; anything else becomes a logged 500
(see ``strings.serve.middleware``), so no traceback ever reaches a client.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ItemProblem", "ServeError", "error_body"]


def error_body(code: str, message: str, item: str | None = None, **extra: Any) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if item is not None:
        err["item"] = item
    return {"error": {**err, **extra}}


class ServeError(Exception):
    """A request the service refuses: HTTP ``status``, a stable ``code``, a message for people
    and the ``item`` (an image's name, an option's name) it is about."""

    def __init__(self, status: int, code: str, message: str, item: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.item, self.extra = status, code, message, item, extra

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.item, **self.extra)


class ItemProblem(Exception):
    """One image of a request that cannot be read; the others still are. ``status`` is what the
    whole request answers when no image of it could be read."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}
