"""Copy a trained checkpoint into the package as a bundled model and record its sha256.

    python benchmarks/bundle_model.py runs/default/best.safetensors --name default

Only the model weights and metadata are kept (training state is dropped), so the shipped
file stays small. ``--set-preprocess trim=true`` changes a reading setting of the model (one
chosen on validation after training; the metadata records the change), and ``--out FILE``
writes the result there instead of bundling it, e.g. to calibrate it first:

    python benchmarks/bundle_model.py default --set-preprocess trim=true --out runs/default_trim.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from strings.models.checkpoint import atomic_write, load_model, save_model, sha256_file
from strings.config import FieldConfig, PreprocessConfig, TrainConfig, from_dict, to_dict
from strings.read.recognizer import WEIGHTS_DIR, resolve_model


def parse_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` for a PreprocessConfig field, VALUE parsed as that field's type."""
    key, sep, value = text.partition("=")
    fields = {f.name: f.type for f in dataclasses.fields(PreprocessConfig)}
    if not sep or key not in fields:
        raise SystemExit(f"error: --set-preprocess takes KEY=VALUE with KEY one of {', '.join(fields)}; got {text!r}")
    kind = fields[key] if isinstance(fields[key], str) else fields[key].__name__
    if kind == "bool":
        if value.lower() not in ("true", "false"):
            raise SystemExit(f"error: {key} takes true or false, not {value!r}")
        return key, value.lower() == "true"
    return key, {"int": int, "float": float}[kind](value)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("checkpoint")
    p.add_argument("--name", default="default")
    p.add_argument("--set-preprocess", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default=None, help="write the model file here instead of bundling it")
    args = p.parse_args()
    model, pre, meta, _ = load_model(resolve_model(args.checkpoint))
    meta = {k: v for k, v in meta.items() if k not in ("optimizer", "format", "model", "height", "preprocess", "alphabet")}
    changes = dict(parse_setting(t) for t in args.set_preprocess)
    if changes:
        meta["preprocess_changed_after_training"] = {
            **meta.get("preprocess_changed_after_training", {}), **{k: [getattr(pre, k), v] for k, v in changes.items()},
        }  # field: [as trained, as now]
        meta.pop("calibration", None)  # fitted on the old input: calibrate again
        pre = dataclasses.replace(pre, **changes)
    meta["name"] = args.name
    trained = from_dict(TrainConfig, meta["train_config"]) if "train_config" in meta else None
    if trained is not None and trained.reads_fields and "field" not in meta:  # trained before runs recorded it
        meta["field"] = to_dict(FieldConfig())
    if args.out:
        save_model(args.out, model, pre, meta)
        print(f"wrote {args.out}" + (" (uncalibrated: run strings calibrate)" if changes else ""))
        return
    out = WEIGHTS_DIR / f"{args.name}.safetensors"
    save_model(out, model, pre, meta)
    manifest_path = WEIGHTS_DIR / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest[args.name] = {"file": out.name, "sha256": sha256_file(out), "source": Path(args.checkpoint).as_posix()}
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write(manifest_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    print(f"bundled {args.name}: {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
