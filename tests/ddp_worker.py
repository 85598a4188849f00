"""Run by tests/test_distributed.py, alone or under torchrun: one short test_tiny training on
in-memory synthetic strings, then a digest of this process's final parameters in OUT/rank<r>.sha."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import synth_train_val, tiny_train_config  # noqa: E402

import strings.train as engine  # noqa: E402
import strings.train.ctc as ctc_task  # noqa: E402  (the CTC task builds the network)


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    sources, val = synth_train_val()
    models = []  # this process's own network, to digest its weights after training
    create = ctc_task.create_model
    ctc_task.create_model = lambda *a, **kw: models.append(create(*a, **kw)) or models[-1]
    result = engine.train(tiny_train_config(max_steps=int(sys.argv[2]) if len(sys.argv) > 2 else 300), out,
                          sources=[sources], validation=val, progress=False, resume=True, device="cpu",
                          log=lambda msg: None)
    state = dict(models[0].named_parameters())  # BN running stats are per process; rank 0's are saved
    digest = hashlib.sha256(b"".join(state[k].detach().numpy().tobytes() for k in sorted(state))).hexdigest()
    rank = os.environ.get("RANK", "0")
    (out / f"rank{rank}.sha").write_text(f"{digest} {result['step']} {result['best_accuracy']}\n")


if __name__ == "__main__":
    main()
