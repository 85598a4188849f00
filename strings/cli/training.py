"""``strings train``, ``strings synth`` and ``strings calibrate``: making and fitting models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
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
    """Choose the string confidence on a validation split and write a calibrated model file
    (for a committee ``a+b``: a JSON record of its calibration, as ``strings/weights/committees.json`` holds)."""
    from dataclasses import replace

    from strings.read.calibration import CROSS_FIT_FOLDS, calibrate, calibrate_values, cross_fitted, cross_fitted_values
    from strings.read.committee import Committee
    from strings.read.loading import load

    rec = load(args.model)
    dataset = _calibration_set(args, rec)
    samples = [dataset[i] for i in range(len(dataset))]
    labels = [s.label for s in samples]
    fitted_on = f"{dataset.name} ({len(samples)} images)"
    cross_fit = len(labels) >= 2 * CROSS_FIT_FOLDS
    if not cross_fit:
        print(f"note: {len(labels)} images are too few to cross-fit the threshold ({2 * CROSS_FIT_FOLDS} needed); "
              "no out-of-fold operating point recorded", file=sys.stderr)
    if isinstance(rec, Committee):
        values, correct = _committee_values(rec, [s.image for s in samples], labels)
        calib, scores = calibrate_values(values, correct, fitted_on)
        if cross_fit:
            calib = replace(calib, out_of_fold=cross_fitted_values(values, correct, (0.01, 0.005)))
        _write_committee(args.out, args.model, rec, calib)
    else:
        from strings.models.checkpoint import save_model

        logits = rec.item_logits([s.image for s in samples])
        calib, scores = calibrate(logits, labels, rec.alphabet, fitted_on)
        if cross_fit:
            calib = replace(calib, out_of_fold=cross_fitted(logits, labels, rec.alphabet, (0.01, 0.005)))
        meta = {k: v for k, v in rec.metadata.items() if k != "path"}
        save_model(args.out, rec.model, rec.preprocess, {**meta, "calibration": calib.to_dict()})
    _report_calibration(args, calib, scores)
    return 0


def _calibration_set(args: argparse.Namespace, rec: Any) -> Any:
    """The labelled crops to calibrate on: ``--gt``/``--images``, else the validation slice the
    model (a committee: its first member) was chosen on. A committee is fitted only on crops
    that every member held out of its training."""
    from strings.config import TrainConfig, from_dict
    from strings.data import read_list
    from strings.data.sources import held_out_names, validation_split
    from strings.read.committee import Committee

    if args.gt or args.images:
        if not (args.gt and args.images):
            raise SystemExit("error: --gt and --images go together")
        return read_list(args.gt, args.images)
    members = rec.members if isinstance(rec, Committee) else (rec,)
    vals = []
    for m in members:
        if "train_config" not in m.metadata:
            raise SystemExit(f"error: model {m.name!r} does not say what it was validated on; give --gt and --images")
        vals.append(validation_split(from_dict(TrainConfig, m.metadata["train_config"]), args.data_root)[1])
    if len(members) > 1:
        lead = held_out_names(vals[0])
        for m, val in zip(members[1:], vals[1:]):
            trained_on = lead - held_out_names(val)
            if trained_on:
                raise SystemExit(
                    f"error: {m.name!r} trained on {len(trained_on)} of the {len(lead)} validation crops of "
                    f"{members[0].name!r}, so they cannot fit this committee's operating point; "
                    "give crops no member trained on with --gt and --images"
                )
    return vals[0]


def _committee_values(rec: Any, greys: list[Any], labels: list[str]) -> tuple[dict[str, list[float]], list[bool]]:
    """Every committee confidence of each crop's reading and whether its digits are right."""
    from strings.alphabet import digits_of
    from strings.decode.confidence import COMMITTEE_MEASURES

    scored = rec.scored(greys)
    correct = [s.digits == digits_of(y) for s, y in zip(scored, labels)]
    return {m: [s.confidence(m) for s in scored] for m in COMMITTEE_MEASURES}, correct


def _write_committee(out: str, model: str, rec: Any, calib: Any) -> None:
    """``{"a+b": {"members": {"a": sha256, "b": sha256}, "calibration": ...}}``, named as
    ``--model`` named the members: merge it into ``strings/weights/committees.json`` to bundle it."""
    import json

    from strings.models.checkpoint import sha256_file
    from strings.read.committee import COMMITTEE_SEP
    from strings.read.loading import member_names

    names = [str(n) for n in member_names(model)]
    record = {
        COMMITTEE_SEP.join(names): {
            "members": {n: sha256_file(m.metadata["path"]) for n, m in zip(names, rec.members)},
            "calibration": calib.to_dict(),
        }
    }
    Path(out).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def _report_calibration(args: argparse.Namespace, calib: Any, scores: list[Any]) -> None:
    rows = [
        {"measure": c.measure, "temperature": round(c.temperature, 4), "aurc": c.aurc, "bce": c.bce,
         "read_rate_at_error": c.read_rate_at_error}
        for c in scores
    ]
    if args.json:
        print_json({"chosen": {"measure": calib.measure, "temperature": calib.temperature},
                     "fitted_on": calib.fitted_on, "candidates": rows, "out_of_fold": calib.out_of_fold, "out": args.out})
        return
    print(f"{'measure':10s} {'T':>6s} {'AURC':>8s} {'BCE':>7s}  read rate at 1% error")
    for r in rows:
        print(f"{r['measure']:10s} {r['temperature']:6.3f} {r['aurc']:8.5f} {r['bce']:7.4f}  {r['read_rate_at_error']['0.01']:.3f}")
    print(f"chosen: {calib.measure} at T={calib.temperature:.3f} (fitted on {calib.fitted_on}); wrote {args.out}")
    for target, r in (calib.out_of_fold or {}).items():
        lo, hi = r["error_ci95"]
        print(f"out of fold ({r['folds']} folds), threshold for {float(target):.1%} error: read rate {r['read_rate']:.1%}, "
              f"{r['errors']} errors in {r['accepted']} accepted (error 95% interval {lo:.1%}-{hi:.1%})")


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
    c.add_argument("--out", required=True, help="the calibrated model file to write (a committee: a JSON record)")
    c.add_argument("--data-root", default=None)
    c.add_argument("--gt", default=None, help="calibrate on this '<file> <label>' list instead (with --images)")
    c.add_argument("--images", default=None)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=run_calibrate)

