"""``strings recognize``: read images, folders and lists; rows written as they are read."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from strings.cli.common import add_model_args, expand_inputs, load_recognizer, parse_shard
from strings.read.amount import DEFAULT_LOCALE, LOCALES

__all__ = ["add_parser", "run_recognize"]

RECOGNIZE_CHUNK = 256  # images per chunk: results are written (and flushed) chunk by chunk
DEFAULT_MAX_ERROR = 0.01  # --amount without --max-error: the operating point banks quote


def run_recognize(args: argparse.Namespace) -> int:
    """Read every image; an unreadable one is reported in its row and the rest are still read."""
    import csv

    from tqdm import tqdm

    from strings.read.recognizer import ItemError
    from strings.image import display_name, load_image
    from strings.read.draw import draw_field, draw_reading

    if args.column:
        if args.shard:
            raise SystemExit("error: --column reads the images as one column: it cannot be cut with --shard")
        args.field = True
    if args.keep_zeros and not args.field:
        raise SystemExit("error: --keep-zeros applies to field reading: add --field (plain reading never drops a digit)")
    fmt = "jsonl" if args.json else args.format
    index, count = parse_shard(args.shard)
    items = expand_inputs(args.images, args.list)[index::count]
    if not items:
        raise SystemExit("error: no images to read (give image files, folders or --list FILE)")
    args.amount = args.amount or args.max_error is not None  # --max-error implies --amount
    rec = load_recognizer(args)
    if args.decimals is not None:
        print("warning: --decimals no longer applies: an amount's cents come from the separators read (--amount)",
              file=sys.stderr)
    if args.amount and args.max_error is None:
        args.max_error = DEFAULT_MAX_ERROR
    # the digits drawn green are those a calibrated reader would accept; uncalibrated: its own 0.5
    point = rec.operating_point(args.max_error) if args.max_error is not None else None
    if args.max_error is not None and point is None:
        print(f"note: {rec.name} has no fitted operating point (`strings calibrate` fits one): every amount goes to review",
              file=sys.stderr)
    threshold = 0.5 if point is None else min(1.0, point)
    if args.draw and len(items) > 1:
        Path(args.draw).mkdir(parents=True, exist_ok=True)
    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    writer = csv.writer(out) if fmt == "csv" else None
    if writer:
        header = ["image", "text", "confidence", "error"]
        writer.writerow(header + (["value", "status"] if args.max_error is not None else []))
    failures = 0
    bar = tqdm(total=len(items), unit="img", desc="reading", disable=args.quiet or len(items) < 2 * RECOGNIZE_CHUNK,
               file=sys.stderr)
    try:
        # a column is read whole: each row between its neighbours
        chunks = [items] if args.column else [items[lo : lo + RECOGNIZE_CHUNK] for lo in range(0, len(items), RECOGNIZE_CHUNK)]
        for chunk in chunks:
            results = _read_fields(rec, chunk, args.keep_zeros, args.column) if args.field else rec.recognize_many(chunk)
            for item, result in zip(chunk, results):
                name = display_name(item)
                if isinstance(result, ItemError):
                    failures += 1
                    row: dict[str, Any] = {"image": name, "error": result.error}
                    if not args.output and fmt == "text":
                        print(f"error: {result.error}", file=sys.stderr)
                        continue
                else:
                    row = {**result.to_dict(), "image": name, "source": name}
                    if args.max_error is not None:
                        row["amount"] = rec.amount_of(getattr(result, "reading", result), args.max_error, locale=args.locale).to_dict()
                    if args.draw:
                        target = args.draw if len(items) == 1 else str(Path(args.draw) / f"{Path(item).stem}.png")
                        if args.field:
                            draw_field(load_image(item), result, target, threshold)
                        else:
                            draw_reading(load_image(item), result, target, threshold)
                _write_row(out, writer, fmt, row)
            out.flush()
            bar.update(len(chunk))
    finally:
        bar.close()
        if out is not sys.stdout:
            out.close()
    return 1 if failures else 0


def _read_fields(rec: Any, chunk: list[Any], keep_zeros: bool = False, column: bool = False) -> list[Any]:
    """``--field``: each item read as a loose crop; with ``column``, the readable items as the
    rows of one register column. An unreadable item becomes its ItemError."""
    import dataclasses

    from strings.image import InvalidImageError, load_image
    from strings.read.recognizer import ItemError

    out: list[Any] = [None] * len(chunk)
    greys, where = [], []
    for i, item in enumerate(chunk):
        try:
            greys.append(load_image(item))
            where.append(i)
        except (InvalidImageError, OSError) as exc:
            out[i] = ItemError(str(item), str(exc))
    cfg = dataclasses.replace(rec.field_config, strip_leading_zeros=False) if keep_zeros else None
    read = rec.read_column if column else rec.read_fields
    for i, reading in zip(where, read(greys, cfg) if greys else []):
        out[i] = reading
    return out


def _write_row(out: Any, writer: Any, fmt: str, row: dict[str, Any]) -> None:
    amount = row.get("amount")
    if fmt == "jsonl":
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        conf = f"{row['confidence']:.6f}" if "confidence" in row else ""
        extra = [amount["value"] or "", amount["status"]] if amount else []
        writer.writerow([row["image"], row.get("text", ""), conf, row.get("error", "")] + extra)
    elif "error" in row:
        out.write(f"{row['image']}\terror: {row['error']}\n")
    else:
        extra = f"\t{amount['value'] or '-'}\t{amount['status']}" if amount else ""
        out.write(f"{row['image']}\t{row['text']}\t{row['confidence']:.4f}{extra}\n")


def add_parser(sub: Any) -> None:
    r = sub.add_parser("recognize", help="read digit strings from image files, folders or a list")
    r.add_argument("images", nargs="*", help="image files, or folders searched recursively")
    r.add_argument("--list", default=None, help="a file naming one image per line")
    r.add_argument("--format", default="text", choices=("text", "jsonl", "csv"))
    r.add_argument("--json", action="store_true", help="same as --format jsonl: one JSON object per image")
    r.add_argument("--output", default=None, help="write results here instead of stdout")
    r.add_argument("--shard", default=None, help="i/n: read only items i, i+n, ... (fan out over n jobs)")
    r.add_argument("--amount", action="store_true",
                   help="add the cheque amount: written form, value, minor units, accept/review and reasons")
    r.add_argument("--locale", default=DEFAULT_LOCALE, choices=sorted(LOCALES),
                   help=f"how amounts are written (default {DEFAULT_LOCALE}: '.' groups thousands, ',' starts the cents)")
    r.add_argument("--max-error", type=float, default=None,
                   help=f"the error rate the accept threshold is set for (calibrated models; implies --amount; default {DEFAULT_MAX_ERROR})")
    r.add_argument("--decimals", type=int, default=None, help=argparse.SUPPRESS)  # gone: cents come from the separators
    r.add_argument("--field", action="store_true",
                   help="each image is a loose field crop (a register cell, a form box): find the string, then read it "
                        "(default model: field); rows carry the string's box")
    r.add_argument("--column", action="store_true",
                   help="the images, in the order given, are the rows of one register column: each row's number is "
                        "read against its neighbours' (implies --field; see strings.read.column)")
    r.add_argument("--keep-zeros", action="store_true",
                   help="with --field: keep a field's leading zeros (by default they are placeholders, as in a comb's unused boxes)")
    r.add_argument("--draw", default=None, help="write a PNG of the boxes and digits (a folder for several images)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_args(r)
    r.set_defaults(func=run_recognize)

