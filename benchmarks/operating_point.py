"""The cheque decision on held-out images: accept readings whose confidence clears the
threshold the model's calibration derived from its validation split for ``--max-error``;
report the share accepted and the errors among them on the test split.

    python benchmarks/operating_point.py --data-root ../shared/data [--model NAME] [--max-error 0.01 0.001]
"""

from __future__ import annotations

import argparse
import json

from strings.data import open_dataset
from strings.read.loading import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--dataset", default="car-a-partial")
    ap.add_argument("--max-error", type=float, nargs="+", default=[0.01, 0.005, 0.001])
    args = ap.parse_args()
    rec = load(args.model)
    data = open_dataset(args.dataset, "test", args.data_root)
    samples = [data[i] for i in range(len(data))]
    readings = rec.recognize_greys([s.image for s in samples], [s.name for s in samples])
    out = {"model": rec.metadata.get("path", rec.name), "dataset": args.dataset, "n": len(samples), "points": {}}
    for e in args.max_error:
        amounts = [rec.amount(r, e) for r in readings]
        accepted = [(a, s) for a, s in zip(amounts, samples) if not a.needs_review]
        errors = sum(a.digits != s.label for a, s in accepted)
        out["points"][f"{e:g}"] = {
            "threshold": amounts[0].threshold, "accepted": len(accepted), "read_rate": len(accepted) / len(samples),
            "errors_among_accepted": errors, "error_rate": errors / len(accepted) if accepted else 0.0,
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
