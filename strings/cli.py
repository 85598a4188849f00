"""Command line: ``strings recognize | benchmark | train | calibrate | synth | models``.

Each subcommand is one ``run_*`` function; ``main(argv)`` returns an exit code, so the whole
CLI is testable in-process.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from strings import __version__

__all__ = ["main"]

BENCHMARK_DATASETS = ("car-a", "car-b", "cvl", "car-a-partial", "mnist-strings")


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def write_misses(path: str, misses: list[tuple[str, str, str, float]]) -> None:
    """Every miss of a benchmark as a TSV row: image, truth, prediction, confidence."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("image\ttruth\tprediction\tconfidence\n")
        for name, truth, pred, conf in misses:
            fh.write(f"{name}\t{truth}\t{pred}\t{conf:.6f}\n")


def _expand_inputs(inputs: list[str], list_file: str | None) -> list[str]:
    """Image paths from arguments (files or folders, searched recursively) and a list file
    (one path per line, '#' comments; relative paths are relative to the list's folder)."""
    from strings.datasets.readers import IMAGE_SUFFIXES

    items: list[str] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                print(f"warning: no images ({', '.join(IMAGE_SUFFIXES)}) under {arg}", file=sys.stderr)
            items.extend(found)
        else:
            items.append(arg)  # a missing file is reported per item, like an unreadable one
    if list_file:
        base = Path(list_file).parent
        for line in Path(list_file).read_text(encoding="utf-8").splitlines():
            entry = line.strip()
            if entry and not entry.startswith("#"):
                items.append(entry if Path(entry).is_absolute() else str(base / entry))
    return items


def _parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` -> (i, n): this job reads items i, i+n, i+2n, ... (0 <= i < n)."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SystemExit(f"error: --shard wants i/n such as 0/4, got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise SystemExit(f"error: --shard {text}: need n >= 1 and 0 <= i < n")
    return i, n


RECOGNIZE_CHUNK = 256  # images per chunk: results are written (and flushed) chunk by chunk


def run_recognize(args: argparse.Namespace) -> int:
    """Read every image; an unreadable one is reported in its row and the rest are still read."""
    import csv

    from tqdm import tqdm

    from strings.predictor import ItemError, load
    from strings.transforms import display_name, load_image
    from strings.visualize import draw_reading

    fmt = "jsonl" if args.json else args.format
    index, count = _parse_shard(args.shard)
    items = _expand_inputs(args.images, args.list)[index::count]
    if not items:
        raise SystemExit("error: no images to read (give image files, folders or --list FILE)")
    rec = load(args.model, beam_size=args.beam, **_backend_args(args))
    threshold = rec.threshold(args.max_error) if args.max_error is not None else 0.5  # fails early if uncalibrated
    if args.draw and len(items) > 1:
        Path(args.draw).mkdir(parents=True, exist_ok=True)
    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    writer = csv.writer(out) if fmt == "csv" else None
    if writer:
        header = ["image", "text", "confidence", "error"]
        writer.writerow(header + (["amount", "needs_review"] if args.max_error is not None else []))
    failures = 0
    bar = tqdm(total=len(items), unit="img", desc="reading", disable=args.quiet or len(items) < 2 * RECOGNIZE_CHUNK,
               file=sys.stderr)
    try:
        for lo in range(0, len(items), RECOGNIZE_CHUNK):
            chunk = items[lo : lo + RECOGNIZE_CHUNK]
            for item, result in zip(chunk, rec.recognize_many(chunk)):
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
                        row["amount"] = rec.amount(result, args.max_error, args.decimals).to_dict()
                    if args.draw:
                        target = args.draw if len(items) == 1 else str(Path(args.draw) / f"{Path(item).stem}.png")
                        draw_reading(load_image(item), result, target, min(1.0, threshold))
                _write_row(out, writer, fmt, row)
            out.flush()
            bar.update(len(chunk))
    finally:
        bar.close()
        if out is not sys.stdout:
            out.close()
    return 1 if failures else 0


def _write_row(out: Any, writer: Any, fmt: str, row: dict[str, Any]) -> None:
    amount = row.get("amount")
    if fmt == "jsonl":
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        conf = f"{row['confidence']:.6f}" if "confidence" in row else ""
        extra = [amount["amount"], str(amount["needs_review"]).lower()] if amount else []
        writer.writerow([row["image"], row.get("text", ""), conf, row.get("error", "")] + extra)
    elif "error" in row:
        out.write(f"{row['image']}\terror: {row['error']}\n")
    else:
        extra = f"\t{amount['amount'] or '-'}\t{'REVIEW' if amount['needs_review'] else 'ok'}" if amount else ""
        out.write(f"{row['image']}\t{row['text']}\t{row['confidence']:.4f}{extra}\n")


def _benchmark_dataset(args: argparse.Namespace):
    from strings.datasets import open_dataset, read_list

    if args.gt or args.images:
        if not (args.gt and args.images):
            raise SystemExit("error: --gt and --images go together")
        return read_list(args.gt, args.images), "list"
    if not args.dataset:
        raise SystemExit(f"error: name a dataset ({', '.join(BENCHMARK_DATASETS)}) or give --gt and --images")
    if args.dataset == "mnist-strings":
        from strings.synth import mnist_test_strings

        return mnist_test_strings(args.data_root, n=args.n or 2000), args.split
    return open_dataset(args.dataset, args.split, args.data_root), args.split


def run_benchmark(args: argparse.Namespace) -> int:
    from strings.engine import evaluate
    from strings.predictor import load

    dataset, split = _benchmark_dataset(args)
    rec = load(args.model, beam_size=args.beam, **_backend_args(args))
    report = evaluate(rec, dataset, batch_size=args.batch_size, progress=not args.json)
    result = {
        "dataset": args.dataset or str(args.gt),
        "split": split,
        "n": report.n,
        "accuracy": report.accuracy,
        "cer": report.cer,
        "images_per_second": report.images_per_second,
        "model": rec.metadata.get("path", rec.name),
        "decoder": f"beam{args.beam}" if args.beam else "greedy",
        "backend": rec.backend.name,
    }
    if args.reject:
        from strings.metrics import read_rate_at_error

        detail = read_rate_at_error(report.confidences, report.correct)
        result["read_rate_at_error"] = {k: v["read_rate"] for k, v in detail.items()}
        result["read_rate_detail"] = detail
        if args.plot:
            _plot_reject(report.confidences, report.correct, args.plot, f"{result['dataset']} [{split}]")
    if args.errors:
        write_misses(args.errors, report.misses)
    if args.json:
        print_json(result)
    else:
        print(
            f"{result['dataset']} [{split}]: {report.n} images, accuracy {report.accuracy:.4f}, "
            f"CER {report.cer:.4f}, {report.images_per_second:.1f} images/s"
        )
    return 0


def _plot_reject(confidences: list[float], correct: list[bool], path: str, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from strings.metrics import reject_curve

    read, err, _ = reject_curve(confidences, correct)
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(read, [1.0 - e for e in err], color="tab:blue")
    for target in (0.01, 0.001):
        ax.axhline(1.0 - target, color="grey", lw=0.8, ls="--")
        ax.text(0.01, 1.0 - target, f"{target:.1%} error", fontsize=8, va="bottom")
    ax.set_xlabel("read rate (accepted / all)")
    ax.set_ylabel("accuracy of accepted")
    ax.set_title(f"Accuracy vs read rate: {title}")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run_train(args: argparse.Namespace) -> int:
    from strings.config import TrainConfig, load_train_file

    return train_with_args(load_train_file(args.config) if args.config else TrainConfig(), args)


def add_train_args(t: argparse.ArgumentParser, model_help: str) -> None:
    """The flags every training command shares (``strings train``, ``strings digits train``):
    the run folder, the data root and the recipe overrides that ``train_with_args`` applies."""
    t.add_argument("--out", required=True)
    t.add_argument("--data-root", default=None)
    t.add_argument("--model", default=None, help=model_help)
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--max-minutes", type=float, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--num-workers", type=int, default=None)
    t.add_argument("--init", default=None, help="warm start from this model (same network and preprocessing)")
    t.add_argument("--no-resume", action="store_true")
    t.add_argument("--quiet", action="store_true", help="no progress bars")


def train_with_args(cfg: Any, args: argparse.Namespace, **overrides: Any) -> int:
    """Apply the shared command-line overrides (and a command's own) to ``cfg``, train, print the result."""
    from strings.config import replace
    from strings.engine import train

    cfg = replace(
        cfg, model=args.model, max_steps=args.max_steps, max_minutes=args.max_minutes, seed=args.seed,
        batch_size=args.batch_size, lr=args.lr, num_workers=args.num_workers, init=args.init, **overrides,
    )
    result = train(cfg, args.out, data_root=args.data_root, resume=not args.no_resume, progress=not args.quiet)
    print(json.dumps(result))
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from strings import synth

    if args.sheet:
        synth.realism_sheet(args.sheet, data_root=args.data_root, seed=args.seed)
        print(f"wrote {args.sheet}")
        return 0
    if not args.out or not args.n:
        raise SystemExit("error: synth needs --n N --out DIR (or --sheet OUT.png)")
    gt = synth.write_synth(args.out, args.n, args.seed, data_root=args.data_root)
    print(f"wrote {args.n} images and {gt}")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    """Choose the string confidence on a validation split and write a calibrated model file."""
    from strings.calibration import calibrate
    from strings.checkpoint import save_model
    from strings.config import TrainConfig, from_dict
    from strings.datasets import read_list
    from strings.engine import validation_split
    from strings.predictor import load

    rec = load(args.model)
    if args.gt or args.images:
        if not (args.gt and args.images):
            raise SystemExit("error: --gt and --images go together")
        dataset = read_list(args.gt, args.images)
    else:
        if "train_config" not in rec.metadata:
            raise SystemExit("error: the model file does not say what it was validated on; give --gt and --images")
        _, dataset = validation_split(from_dict(TrainConfig, rec.metadata["train_config"]), args.data_root)
    samples = [dataset[i] for i in range(len(dataset))]
    logits = rec.item_logits([s.image for s in samples])
    calib, scores = calibrate(logits, [s.label for s in samples], rec.alphabet, f"{dataset.name} ({len(samples)} images)")
    meta = {k: v for k, v in rec.metadata.items() if k != "path"}
    save_model(args.out, rec.model, rec.preprocess, {**meta, "calibration": calib.to_dict()})
    rows = [
        {"measure": c.measure, "temperature": round(c.temperature, 4), "aurc": c.aurc, "bce": c.bce,
         "read_rate_at_error": c.read_rate_at_error}
        for c in scores
    ]
    if args.json:
        print_json({"chosen": {"measure": calib.measure, "temperature": calib.temperature},
                     "fitted_on": calib.fitted_on, "candidates": rows, "out": args.out})
    else:
        print(f"{'measure':10s} {'T':>6s} {'AURC':>8s} {'BCE':>7s}  read rate at 1% error")
        for r in rows:
            print(f"{r['measure']:10s} {r['temperature']:6.3f} {r['aurc']:8.5f} {r['bce']:7.4f}  {r['read_rate_at_error']['0.01']:.3f}")
        print(f"chosen: {calib.measure} at T={calib.temperature:.3f} (fitted on {calib.fitted_on}); wrote {args.out}")
    return 0


def _backend_args(args: argparse.Namespace) -> dict[str, Any]:
    """``load`` keywords from --backend / --threads (PyTorch's thread count is process-wide)."""
    import torch

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.backend == "onnx":
        # PyTorch only decodes then: tiny tensors, for which its worker threads cost more than they
        # save (waiting on a busy core, one tiny op took milliseconds; benchmarks/speed.py).
        torch.set_num_threads(1)
    elif args.threads is not None:
        torch.set_num_threads(args.threads)
    return {"backend": args.backend, "threads": args.threads}


def run_export(args: argparse.Namespace) -> int:
    """Write the model as an ONNX graph (batch norms folded, dynamic batch and width) and
    check it against the PyTorch network on random batches before reporting success."""
    from strings.export import export_onnx, onnx_parity
    from strings.predictor import load

    rec = load(args.model)
    data = export_onnx(rec.model, rec.preprocess, args.onnx, rec.metadata)
    diff = onnx_parity(rec.model, data)
    if diff > 1e-3:
        Path(args.onnx).unlink(missing_ok=True)
        raise ValueError(f"the exported graph differs from the PyTorch model by {diff:.3g} in a logit; removed it")
    print_json({"onnx": args.onnx, "bytes": len(data), "model": rec.metadata.get("path", rec.name),
                 "max_logit_difference": diff})
    return 0


def run_models(args: argparse.Namespace) -> int:
    from strings.checkpoint import read_metadata
    from strings.models import list_configs
    from strings.predictor import list_models, resolve_model

    for name in list_models():
        meta = read_metadata(resolve_model(name))
        val = meta.get("validation", {})
        print(f"{name}\t{meta['train_config']['model']}\tval accuracy {val.get('accuracy', float('nan')):.4f}")
    print("configs: " + ", ".join(list_configs()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="strings", description="Read handwritten digit strings.")
    p.add_argument("--version", action="version", version=f"strings {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def model_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--model", default=None, help="bundled model name or .safetensors path (default: default)")
        sp.add_argument("--beam", type=int, default=0, help="CTC beam width; 0 = greedy best path")
        sp.add_argument("--backend", choices=("torch", "torch-bf16", "onnx"), default="torch",
                        help="run the network in PyTorch (float32 or bfloat16) or in ONNX Runtime (CPU; exported at load time)")
        sp.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the backend's own)")

    r = sub.add_parser("recognize", help="read digit strings from image files, folders or a list")
    r.add_argument("images", nargs="*", help="image files, or folders searched recursively")
    r.add_argument("--list", default=None, help="a file naming one image per line")
    r.add_argument("--format", default="text", choices=("text", "jsonl", "csv"))
    r.add_argument("--json", action="store_true", help="same as --format jsonl: one JSON object per image")
    r.add_argument("--output", default=None, help="write results here instead of stdout")
    r.add_argument("--shard", default=None, help="i/n: read only items i, i+n, ... (fan out over n jobs)")
    r.add_argument("--max-error", type=float, default=None,
                   help="add the cheque amount and needs_review at this error rate (calibrated models)")
    r.add_argument("--decimals", type=int, default=0, help="digits after the decimal point in the formatted amount")
    r.add_argument("--draw", default=None, help="write a PNG of the boxes and digits (a folder for several images)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    model_args(r)
    r.set_defaults(func=run_recognize)

    b = sub.add_parser("benchmark", help="accuracy, CER and speed on a labelled set")
    b.add_argument("dataset", nargs="?", choices=BENCHMARK_DATASETS)
    b.add_argument("--split", default="test", choices=("train", "test"))
    b.add_argument("--data-root", default=None)
    b.add_argument("--gt", default=None, help="a '<file> <label>' list (with --images)")
    b.add_argument("--images", default=None, help="the folder the --gt list names files in")
    b.add_argument("--json", action="store_true")
    b.add_argument("--errors", default=None, help="write every miss to this TSV file")
    b.add_argument("--batch-size", type=int, default=64)
    b.add_argument("--reject", action="store_true", help="add read rates at 1%%, 0.5%%, 0.1%% error")
    b.add_argument("--plot", default=None, help="with --reject: write the accuracy-vs-read-rate curve PNG here")
    b.add_argument("--n", type=int, default=None, help="strings to compose (mnist-strings)")
    model_args(b)
    b.set_defaults(func=run_benchmark)

    t = sub.add_parser("train", help="train a model (resumes from OUT/last.safetensors)")
    t.add_argument("--config", default=None, help="TOML recipe (configs/)")
    add_train_args(t, model_help="string model config (strings models)")
    t.set_defaults(func=run_train)

    s = sub.add_parser("synth", help="render synthetic digit strings, or a realism sheet")
    s.add_argument("--n", type=int, default=None)
    s.add_argument("--out", default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--data-root", default=None)
    s.add_argument("--sheet", default=None, help="write a PNG of synthetic beside real samples")
    s.set_defaults(func=run_synth)

    c = sub.add_parser("calibrate", help="choose the string confidence on a validation split; write a calibrated copy")
    c.add_argument("--model", default=None, help="bundled model name or .safetensors path (default: default)")
    c.add_argument("--out", required=True, help="the calibrated model file to write")
    c.add_argument("--data-root", default=None)
    c.add_argument("--gt", default=None, help="calibrate on this '<file> <label>' list instead (with --images)")
    c.add_argument("--images", default=None)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=run_calibrate)

    e = sub.add_parser("export", help="export a model to ONNX (for ONNX Runtime and other runtimes)")
    e.add_argument("--onnx", required=True, help="the .onnx file to write")
    e.add_argument("--model", default=None, help="bundled model name or .safetensors path (default: default)")
    e.set_defaults(func=run_export)

    m = sub.add_parser("models", help="list bundled models and model configs")
    m.set_defaults(func=run_models)

    from strings.cli_digits import add_digits_parser  # `strings digits ...`: the single-digit mode

    add_digits_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from strings.checkpoint import CheckpointError
    from strings.datasets import DatasetError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (OSError, DatasetError, CheckpointError, ValueError, KeyError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
