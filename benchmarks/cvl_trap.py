"""The CVL trap, reproduced: train on strings of only 10 fixed digit sequences (as CVL HDS's
training set is), with and without a share of random-sequence synthetic strings, and test on
random sequences.

Training strings are composed by the generator from MNIST *train* digits; the test strings
are random sequences composed from MNIST *test* digits, so writer style is new too. The model
is selected on held-out strings of the same 10 sequences, as a CVL user would do.

    python benchmarks/cvl_trap.py --data-root ../shared/data --shares 0 0.1 0.5 --steps 2000
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from strings.config import TrainConfig
from strings.data import ImageDataset, Sample
from strings.train.evaluate import evaluate
from strings.train.loop import train
from strings.read.loading import load
from strings.data.synth import Backgrounds, GlyphBank, SynthStrings


class FixedSequences(ImageDataset):
    """Renders of a few fixed digit sequences, each image in a new hand (new glyphs)."""

    def __init__(self, synth: SynthStrings, sequences: list[str], n: int, seed: int, name: str) -> None:
        self.synth, self.sequences, self.n, self.seed, self.name = synth, sequences, n, seed, name

    def __len__(self) -> int:
        return self.n

    def label(self, index: int) -> str:
        return self.sequences[index % len(self.sequences)]

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        img, label = self.synth.render(np.random.default_rng([self.seed, index]), self.label(index))
        return Sample(img, label, f"{self.name}[{index}]")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None)
    p.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.1, 0.5], help="synthetic share of each batch")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--model", default="densenet_ctc_fast")
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--out", default="runs/cvl_trap")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    rng = np.random.default_rng(args.seed)
    sequences = ["".join(map(str, rng.integers(0, 10, int(rng.integers(4, 7))))) for _ in range(10)]
    train_bank = GlyphBank.from_data(args.data_root, sources=("mnist",), split="train")
    test_bank = GlyphBank.from_data(args.data_root, sources=("mnist",), split="test")
    paper = Backgrounds.synthetic()
    train_synth = SynthStrings(train_bank, paper, n=1_000_000, seed=args.seed + 1)
    fixed = FixedSequences(train_synth, sequences, 1262, args.seed + 2, "fixed-10-train")  # CVL's train size
    fixed_val = FixedSequences(train_synth, sequences, 200, args.seed + 3, "fixed-10-val")
    test = SynthStrings(test_bank, paper, n=args.n_test, seed=args.seed + 4)
    test.name = "random-sequences-mnist-test"

    print(f"# {time.strftime('%Y-%m-%d')} {platform.machine()} training sequences: {sequences}")
    for share in args.shares:
        sources = [fixed] + ([train_synth] if share > 0 else [])
        weights = [1.0 - share] + ([share] if share > 0 else [])
        cfg = TrainConfig(model=args.model, max_steps=args.steps, eval_every=max(1, args.steps // 8), patience=100, seed=args.seed)
        out = Path(args.out) / f"share_{share:g}"
        start = time.time()
        train(cfg, out, sources=sources, weights=weights, validation=fixed_val, progress=False, log=lambda m: None)
        rec = load(out / "best.safetensors")
        on_fixed = evaluate(rec, fixed_val)
        on_random = evaluate(rec, test)
        print(json.dumps({
            "synthetic_share": share, "steps": args.steps, "model": args.model,
            "minutes": round((time.time() - start) / 60, 1),
            "val_fixed_sequences_accuracy": round(on_fixed.accuracy, 4),
            "test_random_sequences_accuracy": round(on_random.accuracy, 4), "test_cer": round(on_random.cer, 4),
        }), flush=True)


if __name__ == "__main__":
    main()
