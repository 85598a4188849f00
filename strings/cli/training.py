"""``strings train``, ``strings synth`` and ``strings calibrate``: making and fitting models."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from strings.cli.common import add_train_args, print_json, train_with_args

__all__ = ["add_parser", "run_calibrate", "run_field_boxes", "run_synth", "run_train"]


def run_train(args: argparse.Namespace) -> int:
    from strings.config import TrainConfig, load_train_file

    return train_with_args(load_train_file(args.config) if args.config else TrainConfig(), args)


def run_synth(args: argparse.Namespace) -> int:
    """Render a synthetic set or a realism sheet; the validation slice of the recipe (``--config``,
    else the default recipe's) stays out of both, as it does in training-time synthesis."""
    from strings.config import TrainConfig, load_train_file
    from strings.data import synth
    from strings.data.sources import synth_exclusions

    if not args.sheet and (not args.out or not args.n):
        raise SystemExit("error: synth needs --n N --out DIR (or --sheet OUT.png)")
    cfg = load_train_file(args.config) if args.config else TrainConfig()
    exclude = set() if args.include_validation else synth_exclusions(cfg, args.data_root)
    if exclude:
        print(f"keeping the {len(exclude)} crops of the {cfg.validation} validation slice out", file=sys.stderr)
    if args.sheet:
        synth.realism_sheet(args.sheet, data_root=args.data_root, seed=args.seed, exclude=exclude)
        print(f"wrote {args.sheet}")
        return 0
    gt = synth.write_synth(args.out, args.n, args.seed, data_root=args.data_root, exclude=exclude)
    print(f"wrote {args.n} images and {gt}")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    """Choose the string confidence on a validation split and write a calibrated model file."""
    from dataclasses import replace

    from strings.read.calibration import CROSS_FIT_FOLDS, calibrate, cross_fitted
    from strings.models.checkpoint import save_model
    from strings.config import TrainConfig, from_dict
    from strings.data import read_list
    from strings.data.sources import validation_split
    from strings.read.loading import load

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
    labels = [s.label for s in samples]
    calib, scores = calibrate(logits, labels, rec.alphabet, f"{dataset.name} ({len(samples)} images)")
    if len(labels) >= 2 * CROSS_FIT_FOLDS:
        calib = replace(calib, out_of_fold=cross_fitted(logits, labels, rec.alphabet, (0.01, 0.005)))
    else:
        print(f"note: {len(labels)} images are too few to cross-fit the threshold ({2 * CROSS_FIT_FOLDS} needed); "
              "no out-of-fold operating point recorded", file=sys.stderr)
    meta = {k: v for k, v in rec.metadata.items() if k != "path"}
    save_model(args.out, rec.model, rec.preprocess, {**meta, "calibration": calib.to_dict()})
    rows = [
        {"measure": c.measure, "temperature": round(c.temperature, 4), "aurc": c.aurc, "bce": c.bce,
         "read_rate_at_error": c.read_rate_at_error}
        for c in scores
    ]
    if args.json:
        print_json({"chosen": {"measure": calib.measure, "temperature": calib.temperature},
                     "fitted_on": calib.fitted_on, "candidates": rows, "out_of_fold": calib.out_of_fold, "out": args.out})
    else:
        print(f"{'measure':10s} {'T':>6s} {'AURC':>8s} {'BCE':>7s}  read rate at 1% error")
        for r in rows:
            print(f"{r['measure']:10s} {r['temperature']:6.3f} {r['aurc']:8.5f} {r['bce']:7.4f}  {r['read_rate_at_error']['0.01']:.3f}")
        print(f"chosen: {calib.measure} at T={calib.temperature:.3f} (fitted on {calib.fitted_on}); wrote {args.out}")
        for target, r in (calib.out_of_fold or {}).items():
            lo, hi = r["error_ci95"]
            print(f"out of fold ({r['folds']} folds), threshold for {float(target):.1%} error: read rate {r['read_rate']:.1%}, "
                  f"{r['errors']} errors in {r['accepted']} accepted (error 95% interval {lo:.1%}-{hi:.1%})")
    return 0


def run_field_boxes(args: argparse.Namespace) -> int:
    """Choose where each loose training crop's string is (strings.train.fields) and write the
    box list a recipe's ``boxes =`` reads."""
    from tqdm import tqdm

    from strings.data import open_dataset
    from strings.data.fields import write_boxes
    from strings.read.loading import load
    from strings.train.fields import choose_boxes

    if args.split not in ("train",):
        raise SystemExit(f"error: box lists are for training: --split train, not {args.split!r}")
    rec = load(args.model)
    ds = open_dataset(args.dataset, args.split, args.data_root)
    with tqdm(total=len(ds), desc=f"choosing boxes in {ds.name}", unit="crop") as bar:
        choices = choose_boxes(rec, ds, negatives=args.negatives, max_loss=args.max_loss, on_item=bar.update)
    rows = []
    for c in choices:
        if c.box is not None:
            rows.append((c.name, c.box, c.label))
            rows.extend((c.name, b, "") for b in c.negatives)
    found = sum(c.box is not None for c in choices)
    header = (
        f"strings field-boxes --model {args.model or 'default'} --dataset {args.dataset} --split {args.split} "
        f"--negatives {args.negatives} --max-loss {args.max_loss}\n"
        f"{found} of {len(choices)} crops boxed ({len(rows) - found} places with no string)"
    )
    write_boxes(args.out, rows, header)
    print(f"{found} of {len(choices)} crops boxed, {len(rows) - found} empty places; wrote {args.out}")
    return 0


def add_parser(sub: Any) -> None:
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
    s.add_argument("--config", default=None, help="recipe whose validation slice stays out (default: the default recipe's)")
    s.add_argument("--include-validation", action="store_true",
                   help="draw from the validation crops too (never for sets a model will be chosen on)")
    s.set_defaults(func=run_synth)

    b = sub.add_parser("field-boxes", help="find each loose training crop's string; write the box list a recipe trains on")
    b.add_argument("--model", default=None, help="the recognizer that judges the candidates (default: default)")
    b.add_argument("--dataset", default="parish-rowid")
    b.add_argument("--split", default="train")
    b.add_argument("--data-root", default=None)
    b.add_argument("--negatives", type=int, default=2, help="places with no string kept per crop")
    b.add_argument("--max-loss", type=float, default=6.0, help="leave out a crop whose best box costs more nats per digit")
    b.add_argument("--out", required=True, help="the box list (TSV) to write")
    b.set_defaults(func=run_field_boxes)

    c = sub.add_parser("calibrate", help="choose the string confidence on a validation split; write a calibrated copy")
    c.add_argument("--model", default=None, help="bundled model name or .safetensors path (default: default)")
    c.add_argument("--out", required=True, help="the calibrated model file to write")
    c.add_argument("--data-root", default=None)
    c.add_argument("--gt", default=None, help="calibrate on this '<file> <label>' list instead (with --images)")
    c.add_argument("--images", default=None)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=run_calibrate)

