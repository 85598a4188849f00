"""The CUDA path, checked and timed on a GPU: cuDNN CTC, mixed precision, inference and training.

Each check runs on its own and records a result or the error it met, so one failure does not
hide the rest:

- ``env``: torch, CUDA, cuDNN and the device.
- ``ctc``: ``strings.train.loop.ctc_loss`` on CUDA with each kernel (PyTorch's native one and
  cuDNN's) against a float64 CPU reference: loss and gradient error for the engine's loss, a
  plain sum and a batch holding one impossible item; the CTC kernels the profiler saw; the
  time of loss + backward.
- ``overfit``: a fresh small model trained on one fixed real batch with each kernel, in float32
  and bfloat16: the loss curve shows whether the whole training step works.
- ``amp``: one real training batch through the bundled default model in float32, bfloat16 and
  float16 autocast: loss difference and the cosine between each gradient and float32's.
- ``inference``: the bundled default model reads the real test crops on the GPU (torch and
  torch-bf16 backends): accuracy beside the CPU's, strings/s batched and the network alone.
- ``train_step``: optimiser steps per second of each named model config on fixed batches
  (network + CTC + AdamW, no data loading), float32 and bfloat16 autocast.

    python benchmarks/gpu.py --data-root ../shared/data --out gpu.json

Timings use CUDA events after warm-up and are the median of several windows.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

DATASET = "car-a-partial"


def cuda_ms(fn: Callable[[], Any], repeats: int = 20, windows: int = 5) -> float:
    """Median milliseconds per call of ``fn`` on the current CUDA stream, after a warm-up."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    per_call = []
    for _ in range(windows):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            fn()
        end.record()
        torch.cuda.synchronize()
        per_call.append(start.elapsed_time(end) / repeats)
    return float(statistics.median(per_call))


def check_env() -> dict[str, Any]:
    p = torch.cuda.get_device_properties(0)
    return {
        "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "device": p.name, "multiprocessors": p.multi_processor_count, "memory_gib": round(p.total_memory / 2**30, 1),
        "bf16": torch.cuda.is_bf16_supported(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def check_ctc(batch: int = 64, frames: int = 48, classes: int = 11, max_len: int = 8) -> dict[str, Any]:
    """Both CUDA kernels against a float64 CPU reference: the engine's loss (per-symbol mean,
    per-item weights), a plain sum (every item's upstream gradient 1), and a batch holding one
    impossible item (more labels than frames), which ``zero_infinity`` must silence."""
    from torch.profiler import ProfilerActivity, profile

    from strings.train.ctc import CTC_KERNELS, ctc_loss, cudnn_ctc_eligible

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, frames, classes, generator=g, dtype=torch.float64)  # (B, T, C)
    lengths = torch.randint(1, max_len + 1, (batch,), generator=g, dtype=torch.int32)  # (B,)
    targets = torch.randint(1, classes, (int(lengths.sum()),), generator=g, dtype=torch.int32)  # (sum L,)
    bad_lengths = lengths.clone()
    bad_lengths[0] = frames + 1  # one impossible item
    bad_targets = torch.randint(1, classes, (int(bad_lengths.sum()),), generator=g, dtype=torch.int32)

    def plain_sum(lp: torch.Tensor, tg: torch.Tensor, tl: torch.Tensor, kernel: str) -> torch.Tensor:
        lp = lp.float().transpose(0, 1) if lp.is_cuda else lp.transpose(0, 1)  # (T, B, C)
        il = torch.full((lp.shape[1],), lp.shape[0], dtype=torch.int32)
        if lp.is_cuda and kernel == "native":
            tg, tl, il = tg.to(lp.device, torch.long), tl.to(lp.device, torch.long), il.to(lp.device, torch.long)
        return torch.nn.functional.ctc_loss(lp, tg, il, tl, blank=0, reduction="sum", zero_infinity=True)

    losses: dict[str, Callable[..., torch.Tensor]] = {
        "engine": lambda lp, tg, tl, k: ctc_loss(lp, tg, tl, kernel=k)[0],
        "sum": plain_sum,
    }
    cases = {"finite": (targets, lengths), "one_impossible": (bad_targets, bad_lengths)}
    out: dict[str, Any] = {"shape": [batch, frames, classes]}
    for case, (tg, tl) in cases.items():
        for lname, fn in losses.items():
            ref_in = logits.clone().requires_grad_(True)
            ref = fn(ref_in.log_softmax(-1), tg, tl, "native")  # float64 on the CPU
            ref.backward()
            for kernel in CTC_KERNELS:
                x = logits.float().cuda().requires_grad_(True)
                loss = fn(x.log_softmax(-1), tg, tl, kernel)
                loss.backward()
                grad = x.grad.double().cpu()
                out[f"{case}/{lname}/{kernel}"] = {
                    "loss": float(loss.detach()), "loss_ref": float(ref.detach()),
                    "grad_max_abs_err": float((grad - ref_in.grad).abs().max()),
                    "grad_max_abs_ref": float(ref_in.grad.abs().max()),
                    "grad_finite": bool(torch.isfinite(grad).all()),
                }
    lp = logits.float().cuda().log_softmax(-1)
    out["cudnn_eligible"] = cudnn_ctc_eligible(lp, targets, lengths)
    for kernel in CTC_KERNELS:
        x = logits.float().cuda().requires_grad_(True)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            ctc_loss(x.log_softmax(-1), targets, lengths, kernel=kernel)[0].backward()
            torch.cuda.synchronize()
        out[f"kernels/{kernel}"] = sorted({e.key[:90] for e in prof.key_averages() if "ctc" in e.key.lower()})

        def step(k: str = kernel) -> None:
            y = logits.float().cuda().requires_grad_(True)
            ctc_loss(y.log_softmax(-1), targets, lengths, kernel=k)[0].backward()

        out[f"ms_loss_and_backward/{kernel}"] = cuda_ms(step)
    return out


def check_overfit(data_root: str | None, steps: int = 150) -> dict[str, Any]:
    """Train a fresh small model on one fixed real batch with each CTC kernel, in float32 and
    bfloat16 autocast: a working path drives the loss near zero, a broken one does not."""
    from strings.train.ctc import CTC_KERNELS, ctc_loss
    from strings.models import create_model

    _, (images, widths, targets, lengths, _) = _real_batch(data_root, 32)
    images = images.cuda()
    out: dict[str, Any] = {}
    for kernel in CTC_KERNELS:
        for dtype in (None, torch.bfloat16):
            torch.manual_seed(0)
            model = create_model("densenet_ctc_small").cuda().train()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            curve = []
            for i in range(steps):
                with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                    lp = model(images, widths)  # (B, T, C)
                loss, _ = ctc_loss(lp, targets, lengths, kernel=kernel)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if i % 25 == 0 or i == steps - 1:
                    curve.append(round(float(loss.detach()), 4))
            out[f"{kernel}/{'bf16' if dtype else 'fp32'}"] = curve
    return out


def _real_batch(data_root: str | None, size: int) -> tuple[Any, Any]:
    """The bundled default model and one augmented batch of real CAR-A training strings."""
    from strings.models.checkpoint import load_model
    from strings.data import open_dataset
    from strings.train.ctc import TrainStrings, collate_train
    from strings.read.recognizer import resolve_model

    model, pre, _, _ = load_model(resolve_model("default"))
    data = TrainStrings([open_dataset(DATASET, "train", data_root)], model, pre, augment=True)
    data.reseed(0)
    return model, collate_train([data[i] for i in range(size)], model.stride)


def check_amp(data_root: str | None) -> dict[str, Any]:
    from strings.train.ctc import ctc_loss

    model, (images, widths, targets, lengths, _) = _real_batch(data_root, 64)
    model = model.cuda().train()
    torch.backends.cudnn.deterministic = True  # the three runs differ only in precision
    out: dict[str, Any] = {}
    grads: dict[str, torch.Tensor] = {}
    for name, dtype in (("float32", None), ("bfloat16", torch.bfloat16), ("float16", torch.float16)):
        torch.manual_seed(0)  # the same dropout masks
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            lp = model(images.cuda(), widths)  # (B, T, C)
        loss, _ = ctc_loss(lp, targets, lengths)
        loss.backward()
        grads[name] = torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])
        out[name] = {"loss": loss.item(), "log_probs_dtype": str(lp.dtype)}
    torch.backends.cudnn.deterministic = False
    for name in ("bfloat16", "float16"):
        out[name]["loss_rel_diff"] = abs(out[name]["loss"] - out["float32"]["loss"]) / out["float32"]["loss"]
        out[name]["grad_cosine"] = float(torch.nn.functional.cosine_similarity(grads[name], grads["float32"], dim=0))
    return out


def check_inference(data_root: str | None) -> dict[str, Any]:
    from strings.data import open_dataset
    from strings.metrics import StringMetrics
    from strings.read.loading import load

    ds = open_dataset(DATASET, "test", data_root)
    samples = [ds[i] for i in range(len(ds))]
    greys, labels = [s.image for s in samples], [s.label for s in samples]
    out: dict[str, Any] = {"n": len(greys)}
    for device, backend in (("cpu", "torch"), ("cuda", "torch"), ("cuda", "torch-bf16")):
        rec = load("default", device=device, backend=backend)
        texts = [r.text for r in rec.recognize_greys(greys, batch_size=128)]
        m = StringMetrics()
        for truth, pred in zip(labels, texts):
            m.update(truth, pred)
        row: dict[str, Any] = {"accuracy": float(m.summary()["accuracy"])}
        if device == "cuda":
            t = time.perf_counter()
            for _ in range(5):
                rec.recognize_greys(greys, batch_size=128)
            row["strings_per_s_end_to_end"] = 5 * len(greys) / (time.perf_counter() - t)
            for b in (64, 512):
                x = torch.rand(b, 1, rec.model.height, 128, device="cuda")  # (B, 1, H, W)
                w = torch.full((b,), 128)
                row[f"network_strings_per_s_batch{b}"] = b / cuda_ms(lambda: rec.backend.logits(x, w)) * 1e3
        out[f"{device}/{backend}"] = row
    return out


def check_train_step(batch: int = 64, width: int = 128) -> dict[str, Any]:
    from strings.train.ctc import ctc_loss
    from strings.models import MODEL_CONFIGS, create_model

    out: dict[str, Any] = {}
    for name in (n for n in MODEL_CONFIGS if not n.startswith("test_")):
        model = create_model(name).cuda().train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        h = model.height
        x = torch.rand(batch, 1, h, int(width * h / 32), device="cuda")  # (B, 1, H, W)
        n_digits = 6
        targets = torch.randint(1, model.num_classes, (batch * n_digits,), dtype=torch.int32)
        lengths = torch.full((batch,), n_digits, dtype=torch.int32)
        for dtype in (None, torch.bfloat16):
            def step() -> None:
                with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
                    lp = model(x)  # (B, T, C)
                loss, _ = ctc_loss(lp, targets, lengths)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            ms = cuda_ms(step, repeats=10)
            out[f"{name}/{'bf16' if dtype else 'fp32'}"] = {"ms_per_step": ms, "strings_per_s": batch / ms * 1e3}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default="gpu.json")
    ap.add_argument("--only", nargs="*", default=None, help="run only these checks")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA device; torch.cuda.is_available() is False")
    checks: dict[str, Callable[[], dict[str, Any]]] = {
        "env": check_env, "ctc": check_ctc, "amp": lambda: check_amp(args.data_root),
        "overfit": lambda: check_overfit(args.data_root),
        "inference": lambda: check_inference(args.data_root), "train_step": check_train_step,
    }
    results: dict[str, Any] = {}
    for name, fn in checks.items():
        if args.only and name not in args.only:
            continue
        t = time.perf_counter()
        try:
            results[name] = fn()
        except Exception as exc:  # record and go on: one broken check must not hide the others
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        results[name]["seconds"] = round(time.perf_counter() - t, 1)
        print(name, json.dumps(results[name], indent=1, default=str), flush=True)
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
