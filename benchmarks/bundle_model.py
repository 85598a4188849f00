"""Copy a trained checkpoint into the package as a bundled model and record its sha256.

    python benchmarks/bundle_model.py runs/default/best.safetensors --name default

Only the model weights and metadata are kept (training state is dropped), so the shipped
file stays small.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from strings.checkpoint import atomic_write, load_model, save_model, sha256_file
from strings.predictor import WEIGHTS_DIR


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("checkpoint")
    p.add_argument("--name", default="default")
    args = p.parse_args()
    model, pre, meta, _ = load_model(args.checkpoint)
    meta = {k: v for k, v in meta.items() if k not in ("optimizer", "format", "model", "height", "preprocess", "alphabet")}
    meta["name"] = args.name
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
