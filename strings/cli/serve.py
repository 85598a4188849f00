"""``strings serve``: the HTTP service and its page (strings.serve; pip install 'strings[serve]')."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from strings.cli.common import add_model_args, backend_args
from strings.serve.config import ServeConfig  # no extra needed: plain dataclass

__all__ = ["add_parser", "run_serve"]

INSTALL_HINT = "the HTTP service needs its extra: pip install 'strings[serve]'"


def run_serve(args: argparse.Namespace) -> int:
    """Check the flags and the model path, then serve until SIGTERM (exit 0) or Ctrl+C."""
    try:
        from strings.serve import serve
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} ({exc})") from None
    from strings.read.loading import member_names
    from strings.read.recognizer import resolve_model

    for name in member_names(args.model):  # a wrong name or path fails here, not in the background loader
        resolve_model(name)
    fields = ServeConfig.field_names()
    cfg = ServeConfig(**{k: v for k, v in vars(args).items() if k in fields and v is not None})
    backend_args(args)  # PyTorch's process-wide thread count
    serve(cfg)
    return 0


def add_parser(sub: Any) -> None:
    d = asdict(ServeConfig())  # flags default to the config's fields, so the two cannot drift
    s = sub.add_parser(
        "serve",
        help="HTTP service and a page to try it (needs pip install 'strings[serve]')",
        description="Serve POST /v1/read, /v1/digits, /healthz, /readyz, /metrics, /docs and a page at /.",
    )
    s.add_argument("--host", default=d["host"], help=f"address to listen on (default {d['host']})")
    s.add_argument("--port", type=int, default=d["port"], help=f"port (default {d['port']})")
    s.add_argument(
        "--workers",
        type=int,
        default=d["workers"],
        help="inference threads taking batches from the one queue (one model in memory)",
    )
    s.add_argument("--max-batch", type=int, default=d["max_batch"], help="dynamic batching: images per batch at most")
    s.add_argument(
        "--max-wait-ms",
        type=float,
        default=d["max_wait_ms"],
        help="dynamic batching: how long a batch waits for more images after its first",
    )
    s.add_argument("--max-body-bytes", type=int, default=d["max_body_bytes"], help="request body size limit")
    s.add_argument("--max-pixels", type=int, default=d["max_pixels"], help="width x height limit per image")
    s.add_argument("--max-images", type=int, default=d["max_images"], help="images per request at most")
    s.add_argument("--max-beam", type=int, default=d["max_beam"], help="the largest beam a request may ask for")
    s.add_argument("--timeout", dest="timeout_s", type=float, default=d["timeout_s"], help="seconds per request")
    s.add_argument("--digit-model", default=d["digit_model"], help="bundled digit model of /v1/digits by default")
    s.add_argument(
        "--shutdown-grace",
        dest="shutdown_grace_s",
        type=float,
        default=d["shutdown_grace_s"],
        help="on SIGTERM, seconds in-flight requests may still take",
    )
    s.add_argument("--log-level", default=d["log_level"], choices=("debug", "info", "warning", "error"))
    add_model_args(s)
    s.set_defaults(func=run_serve)
