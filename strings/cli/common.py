"""What every command shares: JSON and miss-list printers, input expansion, sharding, the
model and backend flags, and the training flags with the one override path."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "AMOUNT_MODEL", "add_model_args", "add_train_args", "backend_args", "expand_inputs", "parse_shard", "print_json", "train_with_args",
    "write_misses",
]


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def write_misses(path: str, misses: list[tuple[str, str, str, float]]) -> None:
    """Every miss of a benchmark as a TSV row: image, truth, prediction, confidence."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("image\ttruth\tprediction\tconfidence\n")
        for name, truth, pred, conf in misses:
            fh.write(f"{name}\t{truth}\t{pred}\t{conf:.6f}\n")


def expand_inputs(inputs: list[str], list_file: str | None) -> list[str]:
    """Image paths from arguments (files or folders, searched recursively) and a list file
    (one path per line, '#' comments; relative paths are relative to the list's folder)."""
    from strings.data.readers import IMAGE_SUFFIXES

    items: list[str] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                print(f"warning: no images ({', '.join(IMAGE_SUFFIXES)}) under {arg}", file=sys.stderr)
            items.extend(found)
        else:
            items.append(arg)  # a missing file is reported per item, like an unreadable one
    if list_file:
        base = Path(list_file).parent
        for line in Path(list_file).read_text(encoding="utf-8").splitlines():
            entry = line.strip()
            if entry and not entry.startswith("#"):
                items.append(entry if Path(entry).is_absolute() else str(base / entry))
    return items


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` -> (i, n): this job reads items i, i+n, i+2n, ... (0 <= i < n)."""
    if text is None:
        return 0, 1
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise SystemExit(f"error: --shard wants i/n such as 0/4, got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise SystemExit(f"error: --shard {text}: need n >= 1 and 0 <= i < n")
    return i, n


def add_model_args(sp: argparse.ArgumentParser) -> None:
    """--model, --beam, --backend, --threads: how a reading command loads its Recognizer."""
    sp.add_argument("--model", default=None, help="bundled model name or .safetensors path (default: default)")
    sp.add_argument("--beam", type=int, default=0, help="CTC beam width; 0 = greedy best path")
    sp.add_argument("--backend", choices=("torch", "torch-bf16", "onnx"), default="torch",
                    help="run the network in PyTorch (float32 or bfloat16) or in ONNX Runtime (CPU; exported at load time)")
    sp.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the backend's own)")


AMOUNT_MODEL = "default+amounts"  # what --amount reads with when no --model is given


def load_recognizer(args: argparse.Namespace) -> Any:
    """The Recognizer a reading command asks for (--model, --beam, --backend, --threads); with
    no --model: for --field, the bundled ``field`` model, and for --amount, the bundled amount
    reader (``AMOUNT_MODEL``: the default's digits, the separators of ``amounts``, a fitted
    operating point), where the package has them."""
    from strings.read.loading import load, member_names
    from strings.read.recognizer import list_models

    model = args.model
    if model is None and getattr(args, "field", False) and "field" in list_models():
        model = "field"
    elif model is None and getattr(args, "amount", False) and all(n in list_models() for n in member_names(AMOUNT_MODEL)):
        model = AMOUNT_MODEL
    return load(model, beam_size=args.beam, **backend_args(args))


def backend_args(args: argparse.Namespace) -> dict[str, Any]:
    """``load`` keywords from --backend / --threads (PyTorch's thread count is process-wide)."""
    import torch

    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.backend == "onnx":
        # PyTorch only decodes then: tiny tensors, for which its worker threads cost more than they
        # save (waiting on a busy core, one tiny op took milliseconds; benchmarks/speed.py).
        torch.set_num_threads(1)
    elif args.threads is not None:
        torch.set_num_threads(args.threads)
    return {"backend": args.backend, "threads": args.threads}


def add_train_args(t: argparse.ArgumentParser, model_help: str) -> None:
    """The flags every training command shares (``strings train``, ``strings digits train``):
    the run folder, the data root and the recipe overrides that ``train_with_args`` applies."""
    t.add_argument("--out", required=True)
    t.add_argument("--data-root", default=None)
    t.add_argument("--model", default=None, help=model_help)
    t.add_argument("--max-steps", type=int, default=None)
    t.add_argument("--max-minutes", type=float, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--num-workers", type=int, default=None)
    t.add_argument("--init", default=None, help="warm start from this model (same network and preprocessing)")
    t.add_argument("--no-resume", action="store_true")
    t.add_argument("--quiet", action="store_true", help="no progress bars")


def train_with_args(cfg: Any, args: argparse.Namespace, **overrides: Any) -> int:
    """Apply the shared command-line overrides (and a command's own) to ``cfg``, train, print the result."""
    from strings.config import replace
    from strings.train.loop import train

    cfg = replace(
        cfg, model=args.model, max_steps=args.max_steps, max_minutes=args.max_minutes, seed=args.seed,
        batch_size=args.batch_size, lr=args.lr, num_workers=args.num_workers, init=args.init, **overrides,
    )
    result = train(cfg, args.out, data_root=args.data_root, resume=not args.no_resume, progress=not args.quiet)
    print(json.dumps(result))
    return 0
