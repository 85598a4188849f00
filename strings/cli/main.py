"""The ``strings`` command: ``recognize | benchmark | train | synth | calibrate | export | models | digits``.

Each command group lives in a module of its own with its ``run_*`` functions and ``add_parser``;
``main(argv)`` returns an exit code, so the whole CLI is testable in-process.
"""

from __future__ import annotations

import argparse
import sys

from strings._version import __version__
from strings.cli import bench, digits, models, read, serve, training
from strings.data.base import DatasetError
from strings.models.checkpoint import CheckpointError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="strings", description="Read handwritten digit strings.")
    p.add_argument("--version", action="version", version=f"strings {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for group in (read, bench, training, models, digits, serve):
        group.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (OSError, DatasetError, CheckpointError, ValueError, KeyError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
