"""Kill -9 test of the training loop: is every checkpoint left behind usable, and does a run
that was killed N times and resumed end where an uninterrupted run ends?

``strings.train.loop.train`` runs the tiny ``test_tiny`` model on in-memory synthetic strings (as
in tests/test_training.py) in a subprocess, which is killed with SIGKILL at random moments
(during start-up, training, evaluation or a checkpoint write). After each kill:

- ``last.safetensors`` and ``best.safetensors``, if present, must load with
  ``strings.models.checkpoint.load_model`` and hold a step that is a multiple of ``eval_every``;
- ``log.jsonl`` must hold only whole JSON lines;
- stale temporary files (``.<name>.*.tmp`` from a write that was cut short) are counted;
  they must not stop the next run.

The run is then resumed. At the end the final evaluation row (validation accuracy, CER,
training loss) and the final weights are compared with an uninterrupted run of the same seed.

Usage::

    nice -n 19 python benchmarks/kill_test.py --kills 20          # prints a JSON summary
    python benchmarks/kill_test.py --kills 2 --max-steps 40 --n-train 128 --n-val 16

Exit status 0 when no checkpoint was corrupt, nothing broke a resume and the final metrics
match; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"


@dataclass(frozen=True)
class RunSpec:
    max_steps: int = 300
    eval_every: int = 10
    n_train: int = 512
    n_val: int = 48
    seed: int = 0


# --------------------------------------------------------------------------- the trainer


def _train(out: Path, spec: RunSpec, resume: bool) -> dict:
    """One call of strings.train.loop.train on the tiny model (in whatever process calls it)."""
    for p in (str(REPO), str(TESTS)):
        if p not in sys.path:
            sys.path.insert(0, p)
    import torch

    torch.set_num_threads(1)
    from conftest import SynthDigits, tiny_train_config
    from strings.train.loop import train

    src = SynthDigits(spec.n_train, seed=0, name="synth-test")
    val = SynthDigits(spec.n_val, seed=1, name="synth-val")
    cfg = tiny_train_config(max_steps=spec.max_steps, eval_every=spec.eval_every, seed=spec.seed)
    return train(cfg, out, sources=[src], validation=val, progress=False, resume=resume, device="cpu",
                 log=lambda msg: None)


def _child_main(argv: list[str]) -> None:
    out, spec_json, resume = Path(argv[0]), argv[1], argv[2] == "1"
    t0 = time.perf_counter()
    result = _train(out, RunSpec(**json.loads(spec_json)), resume)
    print(json.dumps({"train_call_seconds": time.perf_counter() - t0, "step": result["step"]}), flush=True)


def _launch(out: Path, spec: RunSpec, resume: bool) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(out), json.dumps(asdict(spec)), "1" if resume else "0"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(REPO))


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    return proc.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")


# --------------------------------------------------------------------------- checks


def _log_rows(out: Path) -> tuple[list[dict], bool]:
    """(rows of log.jsonl, whether every line was whole JSON)."""
    path = out / "log.jsonl"
    if not path.is_file():
        return [], True
    rows, whole = [], True
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            whole = False
    return rows, whole


def _check_after_kill(out: Path, spec: RunSpec) -> dict:
    from strings.models.checkpoint import CheckpointError, load_model

    report: dict = {"last_step": None, "corrupt": [], "stale_temp_files": 0, "log_whole": True}
    for name in ("last.safetensors", "best.safetensors"):
        path = out / name
        if not path.is_file():
            continue
        try:
            _, _, meta, _ = load_model(path)
            step = int(meta["train_state"]["step"])
            if step % spec.eval_every and step != spec.max_steps:
                report["corrupt"].append(f"{name}: step {step} is not at an evaluation")
            if name == "last.safetensors":
                report["last_step"] = step
        except (CheckpointError, KeyError, ValueError, OSError) as exc:
            report["corrupt"].append(f"{name}: {exc}")
    report["stale_temp_files"] = len(list(out.glob(".*.tmp")))
    report["log_whole"] = _log_rows(out)[1]
    return report


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def _final_state(out: Path) -> dict:
    from strings.models.checkpoint import load_model

    rows, _ = _log_rows(out)
    last = rows[-1] if rows else {}
    model, _, meta, _ = load_model(out / "last.safetensors")
    return {
        "step": meta["train_state"]["step"],
        "val_accuracy": last.get("val_accuracy"),
        "val_cer": last.get("val_cer"),
        "train_loss": last.get("train_loss"),
        "logged_steps": [r["step"] for r in rows],
        "_weights": {k: v.clone() for k, v in model.state_dict().items()},
    }


def _max_weight_diff(a: dict, b: dict) -> float:
    if set(a) != set(b):
        return float("inf")
    return max(float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0 for k in a)


# --------------------------------------------------------------------------- the test


def run_kill_test(kills: int = 20, spec: RunSpec = RunSpec(), workdir: Path | None = None, seed: int = 12345,
                  in_process: bool = False, moments: dict[str, float] | None = None, child_timeout: float = 300.0,
                  log=lambda msg: None) -> dict:
    """Kill a training run ``kills`` times, resume it, compare with an uninterrupted run.

    Each kill's moment is drawn from ``moments`` (kind -> weight):

    - ``launch``: a random time after launch (start-up, resume or training);
    - ``evaluation``: a random time within the evaluation period that follows the run's next
      evaluation (training, evaluation, checkpoint writes, plot), so the run moves on;
    - ``write``: as soon as a checkpoint's temporary file appears, i.e. in the middle of
      writing ``best``/``last.safetensors`` (if the write is missed, after the next evaluation).

    ``in_process=True`` runs the reference and the final resume in this process (no
    interpreter start-up); the killed runs are always subprocesses.
    """
    moments = moments or {"launch": 0.25, "evaluation": 0.5, "write": 0.25}
    rng = random.Random(seed)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="strings-kill-")
        workdir = Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    ref_dir, run_dir = workdir / "reference", workdir / "killed"
    started = time.perf_counter()
    try:
        # 1. The uninterrupted reference run, timed to pick kill moments.
        t0 = time.perf_counter()
        if in_process:
            _train(ref_dir, spec, resume=False)
            startup = 2.5  # a fresh interpreter's imports and data, typically
            train_seconds = time.perf_counter() - t0
        else:
            rc, stdout, stderr = _finish(_launch(ref_dir, spec, resume=False), child_timeout)
            if rc != 0:
                raise RuntimeError(f"reference run failed (exit {rc}): {stderr[-2000:]}")
            total = time.perf_counter() - t0
            train_seconds = json.loads(stdout.strip().splitlines()[-1])["train_call_seconds"]
            startup = max(0.1, total - train_seconds)
        reference = _final_state(ref_dir)
        log(f"reference: {total if not in_process else train_seconds:.1f} s, step {reference['step']}, "
            f"val accuracy {reference['val_accuracy']}")

        # 2. Kill at random moments; check; resume.
        events, corrupt, resume_failures, finished_early = [], [], [], 0
        max_stale = 0
        # A kill lands in start-up or in training; on average a run gets ~3/4 of 1/N of the
        # training done, so the N kills spread over the whole run.
        window = startup + 1.5 * train_seconds / max(1, kills)
        period = train_seconds / max(1, -(-spec.max_steps // spec.eval_every))  # seconds per evaluation period
        for k in range(kills):
            before = _check_after_kill(run_dir, spec)["last_step"] if run_dir.exists() else None
            rows_before = len(_log_rows(run_dir)[0])
            moment = rng.choices(list(moments), weights=list(moments.values()))[0]
            stale_before = {n for n in _listdir(run_dir) if n.endswith(".tmp")}
            proc = _launch(run_dir, spec, resume=True)
            t_start = time.perf_counter()
            delay = 0.0
            if moment == "write":  # poll hard for the n-th new temporary file, then kill at once
                target, seen = rng.randint(1, 3), set()
                while proc.poll() is None and time.perf_counter() - t_start < child_timeout:
                    seen |= {n for n in _listdir(run_dir) if n.startswith(".") and n.endswith(".tmp")} - stale_before
                    if len(seen) >= target:
                        break
                    if len(_log_rows(run_dir)[0]) > rows_before + target:  # missed the write: kill now
                        moment = "write (missed)"
                        break
                    time.sleep(0.0002)
                delay = time.perf_counter() - t_start
            elif moment == "evaluation":  # until the run logs one more evaluation (it resumed and trained)
                while proc.poll() is None and len(_log_rows(run_dir)[0]) <= rows_before:
                    if time.perf_counter() - t_start > child_timeout:
                        break
                    time.sleep(0.01)
                t_start = time.perf_counter()
                delay = rng.uniform(0.0, period)
            else:
                delay = rng.uniform(0.0, window)
            while time.perf_counter() - t_start < delay and proc.poll() is None:
                time.sleep(0.005)
            exited = proc.poll() is not None
            if not exited:
                os.kill(proc.pid, signal.SIGKILL)
            rc, stdout, stderr = _finish(proc, child_timeout)
            if exited:
                if rc != 0:
                    resume_failures.append(f"run {k}: exit {rc}: {stderr.strip().splitlines()[-1] if stderr.strip() else ''}")
                else:
                    finished_early += 1
            check = _check_after_kill(run_dir, spec)
            corrupt.extend(f"kill {k}: {c}" for c in check["corrupt"])
            if not check["log_whole"]:
                corrupt.append(f"kill {k}: log.jsonl holds a partial line")
            new_stale = check["stale_temp_files"] - (events[-1]["stale_temp_files"] if events else 0)
            max_stale = max(max_stale, check["stale_temp_files"])
            events.append({"kill": k, "moment": moment,
                           "after_s": round(delay, 3), "killed": not exited, "step_before": before,
                           "step_after": check["last_step"], "stale_temp_files": check["stale_temp_files"],
                           "cut_a_write_short": new_stale > 0})
            log(f"kill {k}: {moment} ({delay:.3f} s), "
                f"step {before} -> {check['last_step']}, stale temp files {check['stale_temp_files']}"
                + ("" if not exited else f" (exited first, rc {rc})"))

        # 3. Resume to the end, compare.
        if in_process:
            try:
                _train(run_dir, spec, resume=True)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                resume_failures.append(f"final resume: {type(exc).__name__}: {exc}")
        else:
            rc, stdout, stderr = _finish(_launch(run_dir, spec, resume=True), child_timeout)
            if rc != 0:
                resume_failures.append(f"final resume: exit {rc}: {stderr[-500:]}")
        final = _final_state(run_dir) if (run_dir / "last.safetensors").is_file() else None
        diff = _max_weight_diff(reference["_weights"], final["_weights"]) if final else float("inf")
        same_metrics = bool(final) and all(
            final[k] == reference[k] for k in ("step", "val_accuracy", "val_cer", "train_loss", "logged_steps")
        )
        stale_end = len(list(run_dir.glob(".*.tmp")))
        strip = lambda d: {k: v for k, v in d.items() if not k.startswith("_") and k != "logged_steps"}  # noqa: E731
        summary = {
            "kills_requested": kills,
            "kills": sum(e["killed"] for e in events),
            "runs_that_finished_before_their_kill": finished_early,
            "kills_with_a_checkpoint_present": sum(e["step_after"] is not None for e in events if e["killed"]),
            "kills_by_moment": {m: sum(e["moment"] == m for e in events) for m in sorted({e["moment"] for e in events})},
            "kills_that_cut_a_checkpoint_write_short": sum(e["cut_a_write_short"] for e in events),
            "corrupted_checkpoints": len(corrupt),
            "corruption_details": corrupt,
            "resume_failures": resume_failures,
            "max_stale_temp_files": max_stale,
            "stale_temp_files_at_end": stale_end,
            "reference": strip(reference),
            "killed_and_resumed": strip(final) if final else None,
            "metrics_identical": same_metrics,
            "logged_steps_identical": bool(final) and final["logged_steps"] == reference["logged_steps"],
            "max_abs_weight_difference": diff,
            "spec": asdict(spec),
            "seconds": round(time.perf_counter() - started, 1),
            "events": events,
        }
        summary["ok"] = (not corrupt and not resume_failures and same_metrics and diff == 0.0)
        return summary
    finally:
        if tmp is not None:
            tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        _child_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--max-steps", type=int, default=RunSpec.max_steps)
    ap.add_argument("--eval-every", type=int, default=RunSpec.eval_every)
    ap.add_argument("--n-train", type=int, default=RunSpec.n_train)
    ap.add_argument("--n-val", type=int, default=RunSpec.n_val)
    ap.add_argument("--seed", type=int, default=12345, help="seed of the kill moments")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--in-process", action="store_true", help="reference and final resume in this process")
    ap.add_argument("--moments", default="launch=0.25,evaluation=0.5,write=0.25",
                    help="weights of the kinds of kill moment (see run_kill_test)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    spec = RunSpec(args.max_steps, args.eval_every, args.n_train, args.n_val)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    moments = {k: float(v) for k, v in (kv.split("=") for kv in args.moments.split(","))}
    summary = run_kill_test(args.kills, spec, args.workdir, args.seed, args.in_process, moments, log=log)
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
