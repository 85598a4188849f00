"""Command line: one module per command group (read, bench, training, models, digits), the
shared flags and printers in ``common``, the parser and ``main`` in ``main``."""

from __future__ import annotations

from strings.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
