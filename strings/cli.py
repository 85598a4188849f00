"""Command line: ``strings recognize | benchmark | train | synth | models``.

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


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def run_recognize(args: argparse.Namespace) -> int:
    """Read each image; an unreadable one is reported and the rest are still read."""
    from strings.predictor import ItemError, load
    from strings.transforms import display_name

    rec = load(args.model, beam_size=args.beam)
    failures = 0
    for item, result in zip(args.images, rec.recognize_many(args.images)):
        name = display_name(item)
        if isinstance(result, ItemError):
            failures += 1
            if args.json:
                _print_json({"image": name, "error": result.error})
            else:
                print(f"error: {result.error}", file=sys.stderr)
        elif args.json:
            _print_json({**result.to_dict(), "image": name, "source": name})
        else:
            print(f"{name}\t{result.text}\t{result.confidence:.4f}")
    return 1 if failures else 0


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
    rec = load(args.model, beam_size=args.beam)
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
    }
    if args.reject:
        from strings.metrics import read_rate_at_error

        detail = read_rate_at_error(report.confidences, report.correct)
        result["read_rate_at_error"] = {k: v["read_rate"] for k, v in detail.items()}
        result["read_rate_detail"] = detail
        if args.plot:
            _plot_reject(report.confidences, report.correct, args.plot, f"{result['dataset']} [{split}]")
    if args.errors:
        with open(args.errors, "w", encoding="utf-8") as fh:
            fh.write("image\ttruth\tprediction\tconfidence\n")
            for name, truth, pred, conf in report.misses:
                fh.write(f"{name}\t{truth}\t{pred}\t{conf:.4f}\n")
    if args.json:
        _print_json(result)
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
    from strings.config import TrainConfig, load_train_file, replace
    from strings.engine import train

    cfg = load_train_file(args.config) if args.config else TrainConfig()
    cfg = replace(
        cfg, model=args.model, max_steps=args.max_steps, max_minutes=args.max_minutes, seed=args.seed,
        batch_size=args.batch_size, lr=args.lr, num_workers=args.num_workers,
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

    r = sub.add_parser("recognize", help="read digit strings from image files")
    r.add_argument("images", nargs="+")
    r.add_argument("--json", action="store_true", help="one JSON object per image")
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
    t.add_argument("--out", required=True)
    t.add_argument("--data-root", default=None)
    t.add_argument("--model", default=None)
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--max-minutes", type=float, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--num-workers", type=int, default=None)
    t.add_argument("--no-resume", action="store_true")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=run_train)

    s = sub.add_parser("synth", help="render synthetic digit strings, or a realism sheet")
    s.add_argument("--n", type=int, default=None)
    s.add_argument("--out", default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--data-root", default=None)
    s.add_argument("--sheet", default=None, help="write a PNG of synthetic beside real samples")
    s.set_defaults(func=run_synth)

    m = sub.add_parser("models", help="list bundled models and model configs")
    m.set_defaults(func=run_models)
    return p


def main(argv: list[str] | None = None) -> int:
    from strings.checkpoint import CheckpointError
    from strings.datasets import DatasetError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (OSError, DatasetError, CheckpointError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
