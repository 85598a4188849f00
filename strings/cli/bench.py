"""``strings benchmark``: accuracy, CER, speed and read rates on a named or listed set."""

from __future__ import annotations

import argparse
from typing import Any

from strings.cli.common import add_model_args, load_recognizer, print_json, write_misses
from strings.metrics import wilson_interval
from strings.read.amount import written_scores

__all__ = ["BENCHMARK_DATASETS", "add_parser", "run_benchmark"]

OPERATING_POINTS = (0.01, 0.005)  # the target error rates whose fitted thresholds a benchmark applies
BENCHMARK_DATASETS = ("car-a", "car-b", "cvl", "car-a-partial", "mnist-strings", "parish-rowid", "photo-strings", "comb-fields")


def _benchmark_dataset(args: argparse.Namespace):
    from strings.data import open_dataset, read_list

    if args.gt or args.images:
        if not (args.gt and args.images):
            raise SystemExit("error: --gt and --images go together")
        return read_list(args.gt, args.images), "list"
    if not args.dataset:
        raise SystemExit(f"error: name a dataset ({', '.join(BENCHMARK_DATASETS)}) or give --gt and --images")
    if args.dataset == "mnist-strings":
        from strings.data.synth import mnist_test_strings

        return mnist_test_strings(args.data_root, n=args.n or 2000), args.split
    if args.dataset in ("photo-strings", "comb-fields"):  # composed on demand: --n takes the first n
        from strings.data.synth import comb_fields, photo_strings

        make = photo_strings if args.dataset == "photo-strings" else comb_fields
        return make(args.data_root, args.split, n=args.n), args.split
    return open_dataset(args.dataset, args.split, args.data_root), args.split


def run_benchmark(args: argparse.Namespace) -> int:
    from strings.train.evaluate import evaluate
    from strings.read.field import FieldReader

    if args.column:
        args.field = True
    dataset, split = _benchmark_dataset(args)
    rec = load_recognizer(args)
    reader = _column_reader(rec, args, split) if args.column else FieldReader(rec) if args.field else rec
    # without a list of columns, a column reader reads each call as one column: the whole set
    batch = len(dataset) if args.column and reader.columns is None else args.batch_size
    report = evaluate(reader, dataset, batch_size=max(1, batch), progress=not args.json)
    result = {
        "dataset": args.dataset or str(args.gt),
        "split": split,
        "n": report.n,
        "accuracy": report.accuracy,
        "accuracy_ci95": list(wilson_interval(round(report.accuracy * report.n), report.n)),
        "cer": report.cer,
        "images_per_second": report.images_per_second,
        "model": rec.metadata.get("path", rec.name),
        "decoder": f"beam{args.beam}" if args.beam else "greedy",
        "field": bool(args.field),
        "column": bool(args.column),
        "backend": rec.backend.name,
    }
    if report.written:
        result["written"] = written_scores(report.written)
    # a column's confidences are its chain's posteriors, not the measure the thresholds were fitted on
    points = {} if args.column else _operating_points(rec, report)
    if points:
        result["operating_points"] = points
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
        for target, point in result.get("operating_points", {}).items():
            for what, r in point.items():
                lo, hi = r["error_ci95"]
                print(f"  at the validation threshold for {float(target):.1%} error ({r['threshold']}): {what} accepted "
                      f"{r['accepted']}/{r['n']} ({r['read_rate']:.1%}), {r['errors']} wrong (95% {lo:.1%}-{hi:.1%})")
    return 0


def _column_reader(rec: Any, args: argparse.Namespace, split: str) -> Any:
    """``--column``: parish-rowid's rows read in their register columns (every row of the split,
    the unlabelled ones too, in page and row order); any other set in its own order, as one column."""
    from strings.read.column import ColumnReader

    if args.dataset != "parish-rowid":
        return ColumnReader(rec)
    from strings.data.base import resolve_data_root
    from strings.data.readers import parish_columns

    columns = parish_columns(resolve_data_root(args.data_root), split)
    return ColumnReader(rec, [[str(path) for path, _ in c] for c in columns])


def _operating_points(rec: Any, report: Any) -> dict[str, Any]:
    """At each target error rate, the threshold the reader's calibration fixed on validation
    (never on this set) applied here: readings accepted and wrong among them, and, where the
    set gives written amounts, the amounts ``accept``ed and those with a wrong value."""
    from strings.metrics import accepted_at
    from strings.read.amount import accepted_amounts

    if getattr(rec, "calibration", None) is None:
        return {}
    out: dict[str, Any] = {}
    for max_error in OPERATING_POINTS:
        threshold = rec.operating_point(max_error)
        point = {"digits": accepted_at(threshold, report.confidences, report.correct)}
        if report.written:
            point["amounts"] = accepted_amounts(report.written, report.written_confidences, threshold, max_error,
                                                rec.reads_separators)
        out[f"{max_error:g}"] = point
    return out


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


def add_parser(sub: Any) -> None:
    b = sub.add_parser("benchmark", help="accuracy, CER and speed on a labelled set")
    b.add_argument("dataset", nargs="?", choices=BENCHMARK_DATASETS)
    b.add_argument("--split", default="test", choices=("train", "validation", "test"))
    b.add_argument("--field", action="store_true",
                   help="read each image as a loose field crop: find the string, then read it (default model: field)")
    b.add_argument("--column", action="store_true",
                   help="read the rows of each register column together, each number against its neighbours' "
                        "(implies --field; parish-rowid: its books' columns; other sets: one column in their order)")
    b.add_argument("--data-root", default=None)
    b.add_argument("--gt", default=None, help="a '<file> <label>' list (with --images)")
    b.add_argument("--images", default=None, help="the folder the --gt list names files in")
    b.add_argument("--json", action="store_true")
    b.add_argument("--errors", default=None, help="write every miss to this TSV file")
    b.add_argument("--batch-size", type=int, default=64)
    b.add_argument("--reject", action="store_true", help="add read rates at 1%%, 0.5%%, 0.1%% error")
    b.add_argument("--plot", default=None, help="with --reject: write the accuracy-vs-read-rate curve PNG here")
    b.add_argument("--n", type=int, default=None, help="strings to compose (mnist-strings; photo-strings and comb-fields: the first N)")
    add_model_args(b)
    b.set_defaults(func=run_benchmark)

