"""Softmax head against SVM head on every digit set: test accuracy, errors and the rejection
needed for zero errors, as one Markdown table (and JSON).

    python benchmarks/digits_table.py --data-root ../shared/data --runs runs --json benchmarks/digits_results.json

For each dataset the model is ``<runs>/digits_<dataset>/best.safetensors`` if it exists, else the
bundled digit model of that name; the SVM column needs its head beside it
(``best.svm.safetensors``, from ``strings digits fit-svm``) or in the bundle. Datasets with
neither are skipped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from strings.data import open_dataset
from strings.digits.task import reject_summary
from strings.digits import list_digit_models, load_digits, svm_path_for
from strings.train.evaluate import evaluate

DATASETS = ("mnist", "bangla", "devanagari", "telugu", "kannada", "gujarati", "gurmukhi")


def _model_for(dataset: str, runs: Path) -> str | None:
    run = runs / f"digits_{dataset}" / "best.safetensors"
    if run.is_file():
        return str(run)
    return dataset if dataset in list_digit_models() else None


def measure(dataset: str, model: str, head: str, data_root: str | None) -> dict[str, Any]:
    clf = load_digits(model, head=head, dark_ink=True)  # dataset samples are dark on light
    ds = open_dataset(dataset, "test", data_root)
    report = evaluate(clf, ds, batch_size=256)
    rej = reject_summary(report.confidences, report.correct)
    return {
        "dataset": dataset, "head": head, "model": model, "n": report.n, "accuracy": report.accuracy,
        "errors": len(report.misses), "rejection_for_zero_errors": rej["rejection_for_zero_errors"],
        "repeats_dropped": getattr(ds, "repeats_dropped", 0), "images_per_second": report.images_per_second,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None)
    p.add_argument("--runs", default="runs", help="folder holding digits_<dataset>/ training runs")
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args()
    rows = []
    for dataset in DATASETS:
        model = _model_for(dataset, Path(args.runs))
        if model is None:
            print(f"skip {dataset}: no run and no bundled model")
            continue
        for head in ("softmax", "svm"):
            if head == "svm" and Path(model).is_file() and not svm_path_for(model).is_file():
                continue
            try:
                rows.append(measure(dataset, model, head, args.data_root))
            except FileNotFoundError as exc:  # a bundled model without an SVM head
                print(f"skip {dataset} {head}: {exc}")
    print(f"\nMeasured {time.strftime('%Y-%m-%d')}; test splits (repeats of training images dropped).\n")
    print("| dataset | n | head | accuracy | errors | rejection for 0 errors |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['n']} | {r['head']} | {r['accuracy']:.2%} | {r['errors']} | "
              f"{r['rejection_for_zero_errors']:.2%} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
