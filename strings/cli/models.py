"""``strings export`` and ``strings models``: model files out and in."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from strings.cli.common import print_json

__all__ = ["add_parser", "run_export", "run_models"]


def run_export(args: argparse.Namespace) -> int:
    """Write the model as an ONNX graph (batch norms folded, dynamic batch and width) and
    check it against the PyTorch network on random batches before reporting success."""
    from strings.read.export import export_onnx
    from strings.read.backends import onnx_parity
    from strings.read.committee import Committee
    from strings.read.loading import load

    rec = load(args.model)
    if isinstance(rec, Committee):
        raise ValueError(f"{args.model!r} is a committee; export one model at a time (its members read apart)")
    data = export_onnx(rec.model, rec.preprocess, args.onnx, rec.metadata)
    diff = onnx_parity(rec.model, data)
    if diff > 1e-3:
        Path(args.onnx).unlink(missing_ok=True)
        raise ValueError(f"the exported graph differs from the PyTorch model by {diff:.3g} in a logit; removed it")
    print_json({"onnx": args.onnx, "bytes": len(data), "model": rec.metadata.get("path", rec.name),
                 "max_logit_difference": diff})
    return 0


def run_models(args: argparse.Namespace) -> int:
    from strings.models.checkpoint import read_metadata
    from strings.models import list_configs
    from strings.read.recognizer import list_models, resolve_model

    import json

    from strings.read.loading import COMMITTEES_FILE

    for name in list_models():
        meta = read_metadata(resolve_model(name))
        val = meta.get("validation", {})
        cal = meta.get("calibration")
        conf = f"confidence {cal['measure']} at T={cal['temperature']:.2f}" if cal else "confidence path (uncalibrated)"
        print(f"{name}\t{meta['train_config']['model']}\tval accuracy {val.get('accuracy', float('nan')):.4f}\t"
              f"{conf}{_out_of_fold(cal)}")
    if COMMITTEES_FILE.is_file():
        for name, entry in json.loads(COMMITTEES_FILE.read_text(encoding="utf-8")).items():
            cal = entry["calibration"]
            print(f"{name}\tcommittee\tconfidence {cal['measure']} (fitted on {cal['fitted_on']}){_out_of_fold(cal)}")
    print("configs: " + ", ".join(list_configs()))
    return 0


def _out_of_fold(cal: dict[str, Any] | None) -> str:
    """The operating point at 1% error as held-out folds saw it (strings calibrate), if recorded."""
    oof = (cal or {}).get("out_of_fold", {}).get("0.01")
    if not oof:
        return ""
    return f"; at 1% error, out of fold: read rate {oof['read_rate']:.1%}, {oof['errors']}/{oof['accepted']} wrong"


def add_parser(sub: Any) -> None:
    e = sub.add_parser("export", help="export a model to ONNX (for ONNX Runtime and other runtimes)")
    e.add_argument("--onnx", required=True, help="the .onnx file to write")
    e.add_argument("--model", default=None, help="bundled model name or .safetensors path (default: default)")
    e.set_defaults(func=run_export)

    m = sub.add_parser("models", help="list bundled models and model configs")
    m.set_defaults(func=run_models)

