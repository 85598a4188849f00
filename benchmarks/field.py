"""Field reading (issue 16): accuracy on loose crops, time per crop, and what it costs tight crops.

Sets, each read by ``Recognizer.read_fields`` (the path of ``strings recognize --field``):

- ``parish-rowid`` validation: the 2,697 digit-labelled real register crops (never trained or
  chosen on: the field model is chosen on a slice of the *train* split);
- ``comb-fields`` test: ``--comb-n`` synthetic comb fields (strings.data.synth.comb) composed
  from MNIST *test* digits under their own seed;
- ``parish-rowid`` validation again, read as register columns (``Recognizer.read_column``, the
  path of ``--column``): every row of the split in its book's column, the digit rows scored;
- ``car-a-partial`` test, read both ways (plain ``recognize`` and ``--field``): whether field
  reading could replace plain reading on tight crops (the decision of issue 16).

Time per crop: one ``read_field`` call per crop (candidates found, read as one batch, chosen),
p50 / p95 over ``--latency-n`` parish crops, image decoding excluded, at ``--threads`` intra-op
threads; and the search alone (``strings.locate.field_candidates``) on the same crops. Every accuracy has a 95% Wilson interval.

    python benchmarks/field.py --model field --data-root ../shared/data \
        --out benchmarks/field.json [--sets parish,comb,car] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import latencies_ms, machine_info  # noqa: E402

SETS = ("parish", "column", "comb", "car")


def _accuracy(readings: list[Any], labels: list[str]) -> dict[str, Any]:
    from strings.metrics import StringMetrics, wilson_interval

    m = StringMetrics()
    for r, lab in zip(readings, labels):
        m.update(lab, r.text, "", r.confidence)
    s = m.summary()
    n, acc = int(s["n"]), float(s["accuracy"])
    return {"n": n, "accuracy": acc, "accuracy_ci95": list(wilson_interval(round(acc * n), n)), "cer": float(s["cer"])}


def _misses(readings: list[Any], labels: list[str], names: list[str], k: int = 20) -> list[list[str]]:
    return [[nm, lab, r.text] for r, lab, nm in zip(readings, labels, names) if r.text != lab][:k]


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    import strings
    from strings.data import open_dataset
    from strings.image import load_image
    from strings.locate import field_candidates

    torch.set_num_threads(args.threads)
    rec = strings.load(args.model, backend=args.backend, threads=args.threads)
    out: dict[str, Any] = {"machine": machine_info(), "model": rec.metadata.get("path", rec.name), "threads": args.threads,
                           "backend": args.backend, "field_config": rec.field_config.__dict__}
    sets = args.sets.split(",")
    if "parish" in sets:
        ds = open_dataset("parish-rowid", "validation", args.data_root)
        samples = [ds[i] for i in range(len(ds))]
        greys, labels, names = [s.image for s in samples], [s.label for s in samples], [Path(s.name).name for s in samples]
        t = time.perf_counter()
        readings = rec.read_fields(greys)
        secs = time.perf_counter() - t
        out["parish"] = {**_accuracy(readings, labels), "crops_per_second_batched": len(greys) / secs,
                         "misses": _misses(readings, labels, names)}
        idx = np.random.default_rng(0).permutation(len(greys))[: args.latency_n]
        out["parish"]["latency"] = latencies_ms(lambda g: rec.read_field(g), [greys[i] for i in idx])
        out["parish"]["search_latency"] = latencies_ms(lambda g: field_candidates(g, rec.field_config), [greys[i] for i in idx])
        print(f"parish-rowid validation: {out['parish']['accuracy']:.4f} of {len(greys)}, "
              f"p50 {out['parish']['latency']['p50_ms']:.1f} ms (the search alone {out['parish']['search_latency']['p50_ms']:.1f} ms)",
              file=sys.stderr)
    if "column" in sets:
        from strings.data.base import resolve_data_root
        from strings.data.readers import parish_columns
        from strings.read.column import read_column

        readings, labels, rows = [], [], 0
        t = time.perf_counter()
        for col in parish_columns(resolve_data_root(args.data_root), "validation"):
            read = read_column(rec, [load_image(path) for path, _ in col], [str(path) for path, _ in col])
            rows += len(col)
            scored = [(r, lab) for r, (_, lab) in zip(read, col) if lab.isdigit()]  # the digit rows, as above
            readings += [r for r, _ in scored]
            labels += [lab for _, lab in scored]
        secs = time.perf_counter() - t
        out["column"] = {**_accuracy(readings, labels), "rows": rows,
                         "rows_per_second_with_decoding": rows / secs}
        print(f"parish-rowid validation as columns: {out['column']['accuracy']:.4f} of {len(readings)}", file=sys.stderr)
    if "comb" in sets:
        from strings.data.synth.comb import comb_fields

        ds = comb_fields(args.data_root, "test", n=args.comb_n)
        samples = [ds[i] for i in range(len(ds))]
        readings = rec.read_fields([s.image for s in samples])
        out["comb"] = {**_accuracy(readings, [s.label for s in samples]),
                       "misses": _misses(readings, [s.label for s in samples], [s.name for s in samples])}
        print(f"comb-fields test: {out['comb']['accuracy']:.4f} of {len(samples)}", file=sys.stderr)
    if "car" in sets:
        ds = open_dataset("car-a-partial", "test", args.data_root)
        samples = [ds[i] for i in range(len(ds))]
        greys, labels = [s.image for s in samples], [s.label for s in samples]
        out["car"] = {"plain": _accuracy(rec.recognize_greys(greys), labels), "field": _accuracy(rec.read_fields(greys), labels)}
        print(f"car-a-partial test: plain {out['car']['plain']['accuracy']:.4f}, field {out['car']['field']['accuracy']:.4f}",
              file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="field")
    p.add_argument("--data-root", default=None)
    p.add_argument("--sets", default=",".join(SETS))
    p.add_argument("--comb-n", type=int, default=1000)
    p.add_argument("--latency-n", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    p.add_argument("--out", default=None, help="write the JSON here (default: stdout)")
    args = p.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
