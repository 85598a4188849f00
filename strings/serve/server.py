"""Running the app on uvicorn, with SIGTERM as a graceful stop that exits 0.

On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish (up to
``shutdown_grace_s``), then runs the app's shutdown (the batcher finishes its queue). Plain
uvicorn then re-raises the signal, so the process would die *by* SIGTERM; a service manager
reads that as a crash. Here the stop is an ordinary exit with status 0.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

import uvicorn

from strings.serve.app import create_app
from strings.serve.config import ServeConfig

__all__ = ["serve"]


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM and sig in self._captured_signals:  # a requested stop, not a crash
            self._captured_signals.remove(sig)


def serve(cfg: ServeConfig) -> None:
    """Serve until SIGTERM or Ctrl+C."""
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = uvicorn.Config(
        create_app(cfg),
        host=cfg.host,
        port=cfg.port,
        log_level=cfg.log_level,
        lifespan="on",
        timeout_graceful_shutdown=cfg.shutdown_grace_s,
        access_log=False,
    )
    _Server(config).run()
