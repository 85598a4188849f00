"""``strings digits train | eval | predict | list | fit-svm | bundle``: the single-digit mode.

Hooked into ``strings.cli.main`` by ``add_parser``; each subcommand is one ``run_*`` function
returning an exit code, so it is tested in-process through ``strings.cli.main``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from strings.cli.common import add_train_args, print_json, train_with_args, write_misses
from strings.metrics import wilson_interval

__all__ = ["add_parser"]

# The script of each registered digit dataset (usps is Latin digits too).
DATASET_SCRIPTS = {
    "mnist": "latin", "usps": "latin", "bangla": "bangla", "devanagari": "devanagari", "telugu": "telugu",
    "kannada": "kannada", "gujarati": "gujarati", "gurmukhi": "gurmukhi",
}
DEFAULT_MODEL = "mnist"


def _model_for(args: argparse.Namespace) -> str:
    """``--model``, else the bundled model named after the dataset, else ``mnist``."""
    from strings.digits.classifier import list_digit_models

    if args.model:
        return str(args.model)
    dataset = getattr(args, "dataset", None)
    return dataset if dataset and dataset in list_digit_models() else DEFAULT_MODEL


def run_train(args: argparse.Namespace) -> int:
    from strings.config import DataSource, TrainConfig, load_train_file, replace

    if args.config:
        cfg = load_train_file(args.config)
    else:
        dataset = args.dataset or "mnist"
        cfg = TrainConfig(task="classify", model="densenet_digits_small", sources=(DataSource(dataset),), validation=dataset,
                          script=DATASET_SCRIPTS.get(dataset, "latin"), batch_size=128)
    if cfg.task != "classify":
        raise SystemExit(f"error: {args.config} is a {cfg.task!r} recipe; train it with `strings train`")
    if args.config and args.dataset:
        cfg = replace(cfg, sources=(DataSource(args.dataset),), validation=args.dataset,
                      script=DATASET_SCRIPTS.get(args.dataset, cfg.script))
    return train_with_args(cfg, args, script=args.script)


def _eval_dataset(args: argparse.Namespace, symbols: str):
    """The dataset to score and the split name it is reported under."""
    from strings.alphabet import DIGITS
    from strings.data import DatasetError, FileDataset, open_dataset, read_list

    if args.gt or args.images:
        if not (args.gt and args.images):
            raise SystemExit("error: --gt and --images go together")
        listed = read_list(args.gt, args.images, charset=DIGITS + "".join(c for c in symbols if c not in DIGITS))
        items = []
        for path, label in listed.items:
            if len(label) != 1:
                raise DatasetError(f"{args.gt}: {path.name} is labelled {label!r}: single digits only")
            items.append((path, label if label in DIGITS else str(symbols.index(label))))
        return FileDataset(items, listed.name), "list"
    if not args.dataset:
        raise SystemExit("error: name a dataset (" + ", ".join(DATASET_SCRIPTS) + ") or give --gt and --images")
    return open_dataset(args.dataset, args.split, args.data_root), args.split


def run_eval(args: argparse.Namespace) -> int:
    from strings.digits.task import plot_reject, reject_summary
    from strings.digits.classifier import load_digits
    from strings.train.evaluate import evaluate

    clf = load_digits(_model_for(args), head=args.head, svm=args.svm)
    dataset, split = _eval_dataset(args, clf.symbols)
    clf.dark_ink = True if split != "list" else None  # dataset samples are dark on light; a list may be either
    report = evaluate(clf, dataset, batch_size=args.batch_size, progress=not args.json)
    result: dict[str, Any] = {
        "dataset": args.dataset or str(args.gt),
        "split": split,
        "n": report.n,
        "accuracy": report.accuracy,
        "accuracy_ci95": list(wilson_interval(round(report.accuracy * report.n), report.n)),
        "errors": len(report.misses),
        "images_per_second": report.images_per_second,
        "model": clf.metadata.get("path", clf.name),
        "head": clf.head,
        "script": clf.metadata.get("script", ""),
    }
    for attr in ("repeats_dropped", "duplicates_dropped"):
        if hasattr(dataset, attr):
            result[attr] = getattr(dataset, attr)
    if args.reject or args.plot:
        result["reject"] = reject_summary(report.confidences, report.correct)
    if args.plot:
        plot_reject(report.confidences, report.correct, args.plot, f"{result['dataset']} [{split}], {clf.head} head")
    if args.errors:
        write_misses(args.errors, report.misses)
    if args.json:
        print_json(result)
    else:
        repeats = result.get("repeats_dropped")
        dropped = f", {repeats} test repeats of training images dropped" if repeats else ""
        print(f"{result['dataset']} [{split}], {clf.head} head: {report.n} digits, accuracy {report.accuracy:.4f} "
              f"({result['errors']} errors), {report.images_per_second:.0f} images/s{dropped}")
        if "reject" in result:
            r = result["reject"]
            print(f"zero errors after rejecting {r['rejection_for_zero_errors']:.2%} (confidence >= {r['threshold']})")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """Classify each image; an unreadable one is reported and the rest are still classified."""
    from strings.digits.classifier import load_digits
    from strings.image import InvalidImageError, display_name

    clf = load_digits(_model_for(args), head=args.head, svm=args.svm)
    failures = 0
    for item in args.images:
        name = display_name(item)
        try:
            pred = clf.classify(item)
        except (InvalidImageError, OSError) as exc:
            failures += 1
            if args.json:
                print_json({"image": name, "error": str(exc)})
            else:
                print(f"error: {exc}", file=sys.stderr)
            continue
        if args.json:
            print_json({**pred.to_dict(), "image": name, "source": name})
        else:
            print(f"{name}\t{pred.digit}\t{pred.char}\t{pred.confidence:.4f}")
    return 1 if failures else 0


def run_list(args: argparse.Namespace) -> int:
    from strings.data.digitsets import DIGIT_DATASETS
    from strings.digits.classifier import bundled_digit_models
    from strings.models import DIGIT_CONFIGS

    for name, entry in sorted(bundled_digit_models().items()):
        extras = [f"{k} {v}" for k, v in entry.items() if k in ("dataset", "test_accuracy")]
        svm = "svm head" if "svm" in entry else "no svm head"
        print("\t".join([name, entry.get("script", "?"), svm, *extras]))
    print("configs: " + ", ".join(sorted(DIGIT_CONFIGS)))
    print("datasets: " + ", ".join(DIGIT_DATASETS))
    return 0


def run_fit_svm(args: argparse.Namespace) -> int:
    from strings.digits.task import fit_svm_head

    log = (lambda msg: None) if args.json else (lambda msg: print(msg, file=sys.stderr))
    result = fit_svm_head(args.model, args.data_root, out=args.out, dataset=args.dataset, C=args.C,
                          max_train=args.max_train, seed=args.seed, log=log)
    if args.json:
        print_json(result)
    else:
        v = result["validation"]
        print(f"wrote {result['svm']}: {result['support_vectors']} support vectors, fitted on {result['fitted_on']} "
              f"in {result['fit_seconds']:.1f} s; validation ({v['n']}): svm {v['svm_accuracy']:.4f}, "
              f"softmax {v['softmax_accuracy']:.4f}")
    return 0


def run_bundle(args: argparse.Namespace) -> int:
    from strings.digits.classifier import bundle_digit_model

    extra: dict[str, Any] = {}
    if args.dataset:
        extra["dataset"] = args.dataset
    if args.test_accuracy is not None:
        extra["test_accuracy"] = args.test_accuracy
    out = bundle_digit_model(args.checkpoint, args.name, svm=args.svm, extra=extra, weights_dir=args.weights_dir)
    print(f"bundled digit model {args.name}: {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``digits`` and its subcommands to the ``strings`` command's subparsers."""
    from strings.digits.classifier import HEADS

    d = sub.add_parser("digits", help="single-digit mode: train, evaluate and use digit classifiers")
    dsub = d.add_subparsers(dest="digits_command", required=True)
    datasets = tuple(DATASET_SCRIPTS)

    def model_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--model", default=None,
                        help="bundled digit model or .safetensors path "
                             f"(default: the dataset's bundled model, else {DEFAULT_MODEL})")
        sp.add_argument("--head", default="softmax", choices=HEADS)
        sp.add_argument("--svm", default=None, help="the SVM head file (default: bundled, else <model>.svm.safetensors)")

    t = dsub.add_parser("train", help="train a digit classifier (the one training loop; resumes from OUT)")
    t.add_argument("--config", default=None, help="TOML recipe with task = \"classify\" (configs/digits_*.toml)")
    t.add_argument("--dataset", default=None, choices=datasets,
                   help="train and validate on this set (overrides the recipe)")
    t.add_argument("--script", default=None, help="numerals the classes are shown in (default: the dataset's)")
    add_train_args(t, model_help="digit model config (strings digits list)")
    t.set_defaults(func=run_train)

    e = dsub.add_parser("eval", help="accuracy (and the reject option) on a digit set or a list")
    e.add_argument("dataset", nargs="?", choices=datasets)
    e.add_argument("--split", default="test", choices=("train", "test"))
    e.add_argument("--data-root", default=None)
    e.add_argument("--gt", default=None, help="a '<file> <digit>' list (with --images); either polarity")
    e.add_argument("--images", default=None, help="the folder the --gt list names files in")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--reject", action="store_true", help="add accuracy vs rejection and the rejection for zero errors")
    e.add_argument("--plot", default=None, help="write the accuracy-vs-rejection curve PNG here")
    e.add_argument("--errors", default=None, help="write every miss to this TSV file")
    e.add_argument("--batch-size", type=int, default=256)
    model_args(e)
    e.set_defaults(func=run_eval)

    p = dsub.add_parser("predict", help="classify digit images")
    p.add_argument("images", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per image, with the probabilities")
    model_args(p)
    p.set_defaults(func=run_predict)

    ls = dsub.add_parser("list", help="bundled digit models, digit model configs and digit datasets")
    ls.set_defaults(func=run_list)

    f = dsub.add_parser("fit-svm", help="fit an RBF SVM head on a trained classifier's training features")
    f.add_argument("--model", required=True, help="the trained classifier (.safetensors)")
    f.add_argument("--out", default=None, help="the SVM file (default: <model>.svm.safetensors beside it)")
    f.add_argument("--data-root", default=None)
    f.add_argument("--dataset", default=None, choices=datasets, help="fit on this set's training split instead")
    f.add_argument("--C", type=float, default=10.0, help="SVM regularisation")
    f.add_argument("--max-train", type=int, default=0, help="fit on at most this many digits (0 = all)")
    f.add_argument("--seed", type=int, default=0, help="seed of the --max-train subset")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=run_fit_svm)

    b = dsub.add_parser("bundle", help="copy a trained classifier (and its SVM head) into the package")
    b.add_argument("checkpoint")
    b.add_argument("--name", required=True, help="bundled name, e.g. mnist or bangla")
    b.add_argument("--svm", default=None, help="its SVM head file")
    b.add_argument("--dataset", default=None, help="recorded in the manifest")
    b.add_argument("--test-accuracy", type=float, default=None, help="recorded in the manifest")
    b.add_argument("--weights-dir", default=None, help=argparse.SUPPRESS)  # tests: a folder other than the package's
    b.set_defaults(func=run_bundle)
