"""The HTTP service and its page: ``strings serve`` reads images over HTTP, batching concurrent requests.

``ServeConfig`` imports without the ``serve`` extra (the CLI reads its defaults); ``create_app``
and ``serve`` need it (pip install 'strings[serve]') and are imported on first use.

Example:
    >>> from strings.serve import ServeConfig, create_app   # doctest: +SKIP
    >>> app = create_app(ServeConfig(model="default"))       # an ASGI app; ``serve(cfg)`` runs it on uvicorn
"""

from __future__ import annotations

from typing import Any

from strings.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from strings.serve.app import create_app

        return create_app
    if name == "serve":
        from strings.serve.server import serve

        return serve
    raise AttributeError(f"module 'strings.serve' has no attribute {name!r}")
