"""Data-parallel training: torchrun with 2 CPU processes (gloo) against one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from strings.models.checkpoint import load_model
from strings.train.distributed import Dist

WORKER = Path(__file__).resolve().parent / "ddp_worker.py"
STEPS = 300


def _run(cmd: list[str], out: Path, attempts: int = 1) -> list[list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    for attempt in range(attempts):
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.run(cmd + [str(WORKER), str(out), str(STEPS)], env=env, capture_output=True, text=True, timeout=300)
        # Known, not yet explained: about one 2-process run in ten on the 2-core box, a gloo rank
        # dies with SIGABRT ("terminate called without an active exception"). One more try then;
        # any other failure, or the same one twice, fails the test.
        if proc.returncode == 0 or "SIGABRT" not in proc.stderr:
            break
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [p.read_text().split() for p in sorted(out.glob("rank*.sha"))]


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    single = _run([sys.executable], tmp_path / "one")
    double = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"], tmp_path / "two", attempts=2)
    assert len(single) == 1 and len(double) == 2
    assert double[0][0] == double[1][0], "the two processes ended with different parameters"
    assert int(double[0][1]) == int(single[0][1]) == STEPS
    # Same global batch and schedule, different draws: the same accuracy up to noise.
    assert abs(float(double[0][2]) - float(single[0][2])) <= 0.15
    assert float(double[0][2]) >= 0.7
    rows = [json.loads(x) for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(50, STEPS + 1, 50))  # rank 0 alone logs, once per evaluation
    model, _, meta, _ = load_model(tmp_path / "two" / "best.safetensors")
    assert meta["train_state"]["step"] <= STEPS


def test_dist_defaults_and_batch_split():
    d = Dist()
    assert not d.enabled and d.is_main and d.local_batch(32) == 32 and d.rank_seed(5) == 5
    assert d.from_main([1.0, 2.0]) == [1.0, 2.0]
    four = Dist(rank=3, world=4)
    assert four.local_batch(32) == 8 and four.rank_seed(5) != 5 and not four.is_main
    with pytest.raises(ValueError, match="divisible"):
        four.local_batch(30)
