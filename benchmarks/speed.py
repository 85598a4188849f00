"""Speed benchmark on real images: strings, its fast paths and Tesseract, side by side.

Every system reads the same real crops (the CAR-A subset test split, 128 images, decoded to
grey arrays once) and is scored on them, so each speed has its accuracy beside it:

- ``strings`` through ``Recognizer.recognize_greys`` (preprocessing + network + greedy
  decoding + digit boxes), with the PyTorch backend and the ONNX Runtime backend, each at 1
  and 2 intra-op threads (ONNX at 2 threads also with its width batches read one after
  another instead of two at once on single-threaded lanes), and ONNX Runtime with 2
  processes of 1 thread;
- the ONNX graph quantized to int8 (static, QDQ; calibrated on 256 crops of the fit part of the
  training split; which layers stay float is chosen on the validation slice, never on test),
  measured to decide whether it may ship (only if accuracy stays within 0.2 points);
- Tesseract 5 (``tesseract`` command, one process per image, digits whitelist), skipped with a
  message when it is not installed.

For each: strings/s batched (batch 64, widths sorted), per-image latency p50 / p95 (one image
per call), the network alone (``model_*``), accuracy and CER, peak resident memory of the
process that ran it (each system runs in its own fresh process). Then the fast paths one by
one on the network alone (``ablations``), the network's FLOPs per image, and this machine's
measured fp32 matrix-multiply FLOP/s, to show how far the network is from the hardware limit.
Image file decoding (JPEG) is excluded everywhere and reported on its own.

    python benchmarks/speed.py --data-root ../shared/data --out benchmarks/speed.json

Writes the JSON and a Markdown table beside it (``.md``). Timings are only meaningful on a
quiet machine: the load average at start and end is recorded so that a contended run shows.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

DATASET = "car-a-partial"
BATCH = 64
CALIBRATION_IMAGES = 256


# --------------------------------------------------------------------------- shared helpers


def load_images(data_root: str | None, split: str = "test", limit: int | None = None) -> tuple[list[np.ndarray], list[str], float]:
    """Grey images and labels of the real split, and the mean JPEG decode time per image (ms)."""
    from strings.data import open_dataset

    ds = open_dataset(DATASET, split, data_root)
    n = len(ds) if limit is None else min(limit, len(ds))
    t = time.perf_counter()
    samples = [ds[i] for i in range(n)]
    decode_ms = (time.perf_counter() - t) / max(1, n) * 1e3
    return [s.image for s in samples], [s.label for s in samples], decode_ms


def score(labels: list[str], texts: list[str]) -> dict[str, float]:
    from strings.metrics import StringMetrics

    m = StringMetrics()
    for truth, pred in zip(labels, texts):
        m.update(truth, pred)
    s = m.summary()
    return {"n": int(s["n"]), "accuracy": float(s["accuracy"]), "cer": float(s["cer"])}


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def throughput(fn: Callable[[], int], seconds: float, windows: int = 3) -> float:
    """Items per second of ``fn`` (which returns how many items it did): the median over
    ``windows`` back-to-back windows of at least ``seconds / windows`` each, after a warm-up.
    A configuration whose one call already takes longer than ``seconds`` is timed once."""
    t = time.perf_counter()
    fn()
    if time.perf_counter() - t > seconds:
        t = time.perf_counter()
        done = fn()
        return done / (time.perf_counter() - t)
    rates = []
    for _ in range(windows):
        done, start = 0, time.perf_counter()
        while True:
            done += fn()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / windows:
                rates.append(done / elapsed)
                break
    return float(statistics.median(rates))


def latencies_ms(fn: Callable[[Any], Any], items: list[Any], warm: int = 10, passes: int = 2,
                 budget_s: float = 15.0) -> dict[str, float]:
    """One call per item, ``passes`` times over the items: p50, p95 and mean in ms. Stops
    early (after at least 20 calls) once ``budget_s`` is spent, so that a pathologically slow
    configuration cannot stall the run; ``n`` says how many calls were timed."""
    for x in items[:warm]:
        fn(x)
    ts: list[float] = []
    start = time.perf_counter()
    for x in items * passes:
        t = time.perf_counter()
        fn(x)
        ts.append((time.perf_counter() - t) * 1e3)
        if len(ts) >= 20 and time.perf_counter() - start > budget_s:
            break
    return {"p50_ms": float(np.percentile(ts, 50)), "p95_ms": float(np.percentile(ts, 95)),
            "mean_ms": statistics.fmean(ts), "n": len(ts)}


def batch_groups(normed: list[np.ndarray], stride: int, batch: int, mode: str = "bucketed") -> list[list[int]]:
    """Image indices per batch: ``bucketed`` as ``Recognizer`` groups them
    (``strings.read.batching.width_batches``), ``sorted`` by width in fixed-size batches, or in
    ``arrival`` order."""
    from strings.read.batching import width_batches

    if mode == "bucketed":
        return width_batches([x.shape[1] for x in normed], batch, stride)
    order = sorted(range(len(normed)), key=lambda i: normed[i].shape[1]) if mode == "sorted" else list(range(len(normed)))
    return [order[s : s + batch] for s in range(0, len(order), batch)]


def make_batches(normed: list[np.ndarray], stride: int, batch: int, mode: str = "bucketed") -> list[tuple[Any, Any]]:
    """Padded (images, widths) batches, grouped as ``batch_groups`` says."""
    from strings.image import collate_images

    return [collate_images([normed[i] for i in g], stride) for g in batch_groups(normed, stride, batch, mode)]


def in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` in a fresh spawned process (own imports, own peak memory)."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


# --------------------------------------------------------------------------- strings systems


def _recognizer(backend: str, threads: int, model: str | None, graph: bytes | None = None) -> Any:
    """``strings.load`` with this backend; ``graph``: run this ONNX graph instead (int8)."""
    import torch

    import strings

    # The onnx backend leaves only small decoding tensors to PyTorch: one thread is enough,
    # and its OpenMP workers would otherwise wait on a busy core for each tiny op.
    torch.set_num_threads(threads if backend == "torch" else 1)
    if graph is not None:
        from strings.read.backends import OnnxBackend
        from strings.read.recognizer import Recognizer

        base = strings.load(model)
        return Recognizer(base.model, base.preprocess, base.metadata, backend=OnnxBackend(graph, threads=threads))
    return strings.load(model, backend=backend, threads=threads)


# Layers that may stay float in the int8 graph, tried in this order (fewest first). Which one
# ships is decided on the validation slice (choose_float_layers), never on the test split.
FLOAT_LAYER_CANDIDATES: tuple[tuple[str, ...], ...] = (
    (),
    ("/head/Conv",),
    ("/stem/Conv", "/head/Conv"),
    ("/stem/Conv", "/sequence/Conv", "/head/Conv"),
)


def selection_split(model: str | None, data_root: str | None) -> tuple[Any, Any]:
    """The (fit, validation) halves the model was trained and chosen on (its recorded recipe):
    int8 calibration reads the fit part, the float-layer choice the validation slice."""
    import strings
    from strings.config import TrainConfig, from_dict
    from strings.data.sources import validation_split

    meta = strings.load(model).metadata
    cfg = from_dict(TrainConfig, meta["train_config"]) if "train_config" in meta else TrainConfig()
    return validation_split(cfg, data_root)


def quantized_graph(model: str | None, data_root: str | None, float_layers: tuple[str, ...] = FLOAT_LAYER_CANDIDATES[-1],
                    calibration: Any = None) -> bytes:
    """The ONNX graph quantized to int8 (QDQ, per-channel weights, uint8 activations), calibrated
    on crops of the fit part of the training split (``calibration``, else the model's own fit
    part); ``float_layers`` stay float."""
    import logging
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    import strings
    from strings.read.export import export_onnx
    from strings.image import prepare

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer warns once per batch-norm weight
    rec = strings.load(model)
    fit = calibration if calibration is not None else selection_split(model, data_root)[0]
    rng = np.random.default_rng(0)
    picks = rng.choice(len(fit), min(CALIBRATION_IMAGES, len(fit)), replace=False)
    normed = [prepare(fit[int(i)].image, rec.preprocess)[0] for i in picks]
    stride = rec.model.stride
    width = max(-(-x.shape[1] // stride) * stride for x in normed)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(make_batches(normed, stride, 16, "sorted"))

        def get_next(self) -> dict[str, np.ndarray] | None:
            nxt = next(self.batches, None)
            if nxt is None:
                return None
            images = np.zeros((nxt[0].shape[0], 1, nxt[0].shape[2], width), np.float32)  # one shape for the calibrator
            images[..., : nxt[0].shape[3]] = nxt[0].numpy()
            return {"images": images, "widths": nxt[1].numpy()}

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_onnx(rec.model, rec.preprocess, src, rec.metadata)
        quantize_static(
            str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=list(float_layers),
        )
        return dst.read_bytes()


def choose_float_layers(model: str | None, data_root: str | None) -> dict[str, Any]:
    """The int8 graph to measure: the fewest float layers (FLOAT_LAYER_CANDIDATES, in order)
    whose graph reads the validation slice as well as the float network does; the last
    candidate when none does. Returns the graph and every candidate's validation score."""
    import strings
    from strings.read.backends import OnnxBackend
    from strings.read.recognizer import Recognizer

    fit, val = selection_split(model, data_root)
    greys, labels = zip(*[(val[i].image, val[i].label) for i in range(len(val))])
    base = strings.load(model, backend="onnx", threads=1)
    reference = score(list(labels), [r.text for r in base.recognize_greys(list(greys), batch_size=BATCH)])
    tried, chosen = [], None
    for layers in FLOAT_LAYER_CANDIDATES:
        graph = quantized_graph(model, data_root, layers, calibration=fit)
        rec = Recognizer(base.model, base.preprocess, base.metadata, backend=OnnxBackend(graph, threads=1))
        got = score(list(labels), [r.text for r in rec.recognize_greys(list(greys), batch_size=BATCH)])
        tried.append({"float_layers": list(layers), **got})
        if got["accuracy"] >= reference["accuracy"]:
            chosen = (layers, graph)
            break
    if chosen is None:
        chosen = (FLOAT_LAYER_CANDIDATES[-1], graph)
    return {"graph": chosen[1], "float_layers": list(chosen[0]), "validation": val.name, "fp32_validation": reference,
            "candidates": tried}


def measure_strings(backend: str, threads: int, model: str | None, data_root: str | None, seconds: float,
                    n: int | None, graph: bytes | None = None) -> dict[str, Any]:
    """One backend at one thread count, in its own process."""
    greys, labels, _ = load_images(data_root, limit=n)
    rec = _recognizer(backend, threads, model, graph)
    rss_loaded = rss_mb()
    texts = [r.text for r in rec.recognize_greys(greys, batch_size=BATCH)]
    out: dict[str, Any] = {"system": f"strings {backend}", "backend": backend, "threads": threads, **score(labels, texts)}
    out["strings_per_s"] = throughput(lambda: len(rec.recognize_greys(greys, batch_size=BATCH)), seconds)
    if rec.lanes > 1:  # the same with the width batches read one after another on all threads
        from strings.read.backends import OnnxBackend
        from strings.read.recognizer import Recognizer

        one = OnnxBackend(graph, threads=threads, lanes=1) if graph is not None else OnnxBackend.from_model(
            rec.model, rec.preprocess, rec.metadata, threads=threads, lanes=1)
        serial = Recognizer(rec.model, rec.preprocess, rec.metadata, backend=one)
        out["lanes"] = rec.lanes
        out["strings_per_s_one_lane"] = throughput(lambda: len(serial.recognize_greys(greys, batch_size=BATCH)), seconds)
    out.update({f"latency_{k}": v for k, v in latencies_ms(lambda g: rec.recognize_greys([g]), greys).items()})
    from strings.image import prepare

    normed = [prepare(g, rec.preprocess)[0] for g in greys]
    batches = make_batches(normed, rec.model.stride, BATCH)
    out["model_strings_per_s"] = throughput(lambda: sum(rec.backend.logits(b, w).shape[0] for b, w in batches), seconds)
    singles = make_batches(normed, rec.model.stride, 1, "arrival")
    out.update({f"model_latency_{k}": v for k, v in latencies_ms(lambda bw: rec.backend.logits(*bw), singles).items()})
    out["rss_after_load_mb"] = rss_loaded
    out["peak_rss_mb"] = peak_rss_mb()
    out["texts"] = texts
    return out


def _parallel_worker(threads: int, model: str | None, data_root: str | None, seconds: float, n: int | None,
                     barrier: Any) -> float:
    greys, _, _ = load_images(data_root, limit=n)
    rec = _recognizer("onnx", threads, model)
    rec.recognize_greys(greys, batch_size=BATCH)
    barrier.wait()
    return throughput(lambda: len(rec.recognize_greys(greys, batch_size=BATCH)), seconds)


def measure_processes(procs: int, model: str | None, data_root: str | None, seconds: float, n: int | None) -> dict[str, Any]:
    """ONNX backend in ``procs`` processes of 1 thread each, all reading at once (as
    ``strings recognize --shard`` runs would): the sum of their rates."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(procs)
        with ctx.Pool(procs) as pool:
            rates = pool.starmap(_parallel_worker, [(1, model, data_root, seconds, n, barrier)] * procs)
    return {"system": f"strings onnx, {procs} processes x 1 thread", "backend": "onnx", "threads": 1,
            "processes": procs, "strings_per_s": sum(rates)}


# --------------------------------------------------------------------------- Tesseract


def tesseract_command() -> list[str] | None:
    """Tesseract on one crop: page segmentation 8 (a single word), which scored best of 7, 8 and
    13 on these crops (12.5% exact vs 8.6% for 7), digits whitelist, text on stdout."""
    exe = shutil.which("tesseract")
    if exe is None:
        return None
    return [exe, "stdin", "stdout", "--psm", "8", "-l", "eng", "-c", "tessedit_char_whitelist=0123456789"]


def measure_tesseract(data_root: str | None, workers: int, n: int | None) -> dict[str, Any]:
    import cv2

    cmd = tesseract_command()
    assert cmd is not None
    greys, labels, _ = load_images(data_root, limit=n)
    pngs = [cv2.imencode(".png", g)[1].tobytes() for g in greys]
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}  # one core per process; parallelism comes from processes

    def read(png: bytes) -> str:
        res = subprocess.run(cmd, input=png, capture_output=True, env=env, check=False)
        return "".join(ch for ch in res.stdout.decode("utf-8", "replace") if ch.isdigit())

    texts = [read(p) for p in pngs]
    out: dict[str, Any] = {"system": "tesseract", "threads": 1, **score(labels, texts)}
    version = subprocess.run([cmd[0], "--version"], capture_output=True, text=True, check=False)
    out["version"] = (version.stdout or version.stderr).splitlines()[0].strip()
    out["command"] = " ".join(cmd[1:])
    out.update({f"latency_{k}": v for k, v in latencies_ms(read, pngs, warm=3, passes=1).items()})
    with ThreadPoolExecutor(workers) as pool:
        start = time.perf_counter()
        list(pool.map(read, pngs))
        out["strings_per_s"] = len(pngs) / (time.perf_counter() - start)
    out["processes"] = workers
    out["peak_rss_mb"] = peak_rss_mb(resource.RUSAGE_CHILDREN)  # the largest tesseract process
    out["texts"] = texts
    return out


# --------------------------------------------------------------------------- fast paths, FLOPs


def measure_ablations(model: str | None, data_root: str | None, seconds: float, n: int | None) -> dict[str, Any]:
    """The network alone (no preprocessing or decoding) on the same real images, one fast path
    at a time. Each row: strings/s in sorted batches of 64, and single-image p50."""
    import onnxruntime as ort
    import torch

    import strings
    from strings.read.backends import OnnxBackend, TorchBackend
    from strings.read.export import export_onnx
    from strings.models import create_model
    from strings.image import prepare

    greys, _, _ = load_images(data_root, limit=n)
    rec = strings.load(model)
    normed = [prepare(g, rec.preprocess)[0] for g in greys]
    stride = rec.model.stride
    batches = make_batches(normed, stride, BATCH)
    singles = make_batches(normed, stride, 1, "arrival")
    rows: list[dict[str, Any]] = []

    def row(name: str, fn: Callable[[Any, Any], Any], threads: int, **extra: Any) -> None:
        r = {"variant": name, "threads": threads, **extra}
        r["strings_per_s"] = throughput(lambda: sum(fn(b, w).shape[0] for b, w in batches), seconds)
        r["p50_ms"] = latencies_ms(lambda bw: fn(*bw), singles, passes=1, budget_s=5.0)["p50_ms"]
        rows.append(r)
        print(f"  {name:44s} t{threads}  {r['strings_per_s']:8.1f}/s  p50 {r['p50_ms']:.2f} ms", file=sys.stderr, flush=True)

    graph = export_onnx(rec.model, rec.preprocess, None, rec.metadata)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        plain = TorchBackend(rec.model, fold=False, channels_last=False)
        folded = TorchBackend(rec.model, fold=True, channels_last=False)
        fast = TorchBackend(rec.model, fold=True, channels_last=True)
        row("torch: as trained (NCHW)", plain.logits, threads)
        row("torch: + BN folded, pool before transition conv", folded.logits, threads)
        row("torch: + channels-last (the torch backend)", fast.logits, threads)
        torch.set_flush_denormal(True)
        row("torch backend, flush denormals", fast.logits, threads)
        torch.set_flush_denormal(False)
        with torch.no_grad():
            row("torch backend, no_grad instead of inference_mode", lambda b, w: fast.net(b.contiguous(memory_format=torch.channels_last), w), threads)
        row("torch backend in bfloat16 (torch-bf16)", TorchBackend(rec.model, bf16=True).logits, threads)
        ox = OnnxBackend(graph, threads=threads)
        row("onnx (the onnx backend)", ox.logits, threads)
        row("onnx, denormals not flushed", OnnxBackend(graph, threads=threads, flush_denormals=False).logits, threads)
        if threads > 1:
            row("onnx, batch rows split over single-threaded runs",
                OnnxBackend(graph, threads=threads, split_batches=True).logits, threads)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        sess = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        row("onnx, graph optimizations EXTENDED (no NCHWc)", lambda b, w: sess.run(None, {"images": b.numpy(), "widths": w.numpy()})[0], threads)
    torch.set_num_threads(2)
    ox = OnnxBackend(graph, threads=2)

    # Width bucketing: padding-bounded groups (the recognizer's), sorted fixed-size, arrival order.
    torch.set_num_threads(1)
    fast1, ox1 = TorchBackend(rec.model), OnnxBackend(graph, threads=1)
    bucket: dict[str, Any] = {}
    real = sum(-(-x.shape[1] // stride) * stride for x in normed)
    grouped = {mode: batch_groups(normed, stride, BATCH, mode) for mode in ("bucketed", "sorted", "arrival")}
    for mode, groups in grouped.items():
        bs = make_batches(normed, stride, BATCH, mode)
        bucket[mode] = {
            "batches": len(bs),
            "padded_columns_over_real": sum(b.shape[0] * b.shape[3] for b, _ in bs) / real,
            "onnx_t1_strings_per_s": throughput(lambda bs=bs: sum(ox1.logits(b, w).shape[0] for b, w in bs), seconds),
            "onnx_t2_strings_per_s": throughput(lambda bs=bs: sum(ox.logits(b, w).shape[0] for b, w in bs), seconds),
            "torch_t1_strings_per_s": throughput(lambda bs=bs: sum(fast1.logits(b, w).shape[0] for b, w in bs), seconds),
        }
    by_size = {}
    for size in (1, 8, 16, 32, 64, 128):
        bs = make_batches(normed, stride, size)
        by_size[str(size)] = throughput(lambda bs=bs: sum(ox.logits(b, w).shape[0] for b, w in bs), seconds)
    bucket["onnx_t2_strings_per_s_by_batch_size_bucketed"] = by_size

    # Grouping must not change results: each image's logits alone vs inside each kind of batch.
    alone = [fast1.logits(b, w)[0] for b, w in singles]
    worst = {"torch": 0.0, "onnx": 0.0}
    for name, backend in (("torch", fast1), ("onnx", ox)):
        for mode, groups in grouped.items():
            for g, (b, w) in zip(groups, make_batches(normed, stride, BATCH, mode)):
                out = backend.logits(b, w)
                for j, i in enumerate(g):
                    worst[name] = max(worst[name], float((out[j, : alone[i].shape[0]] - alone[i]).abs().max()))
    bucket["max_logit_difference_batched_vs_alone"] = worst
    torch.set_num_threads(2)

    # The lighter config, untrained (speed does not depend on the weights once denormals are flushed).
    fast_cfg: dict[str, Any] = {}
    for name in ("densenet_ctc_fast",):
        m = create_model(name).eval()
        with torch.no_grad():
            for mod in m.modules():  # realistic BN statistics instead of the identity
                if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                    mod.running_var.uniform_(0.5, 2.0)
        g = export_onnx(m, rec.preprocess, None, {})
        ob2, ob1 = OnnxBackend(g, threads=2), OnnxBackend(g, threads=1)
        fast_cfg[name] = {
            "untrained": True,
            "onnx_t2_model_strings_per_s": throughput(lambda: sum(ob2.logits(b, w).shape[0] for b, w in batches), seconds),
            "onnx_t1_model_strings_per_s": throughput(lambda: sum(ob1.logits(b, w).shape[0] for b, w in batches), seconds),
            "onnx_t1_model_p50_ms": latencies_ms(lambda bw: ob1.logits(*bw), singles)["p50_ms"],
            "mflops_per_image": flops_per_image(m, normed)["mean_mflops"],
        }
    return {"rows": rows, "bucketing": bucket, "other_configs": fast_cfg}


def measure_profile(model: str | None, data_root: str | None, n: int | None) -> dict[str, Any]:
    """Where the time goes, 1 thread: the stages of a batched read (ONNX backend), and ONNX
    Runtime's own per-operator-type profile of the network on a sorted batch of 64."""
    import collections
    import tempfile

    import onnxruntime as ort
    import torch

    import strings
    from strings.read.boxes import digit_boxes
    from strings.decode.ctc import greedy_decode
    from strings.read.export import export_onnx
    from strings.image import collate_images, prepare

    torch.set_num_threads(1)
    greys, _, _ = load_images(data_root, limit=n)
    rec = strings.load(model, backend="onnx", threads=1)
    stride = rec.model.stride
    stages = dict.fromkeys(("trim + normalize", "collate", "network", "log_softmax + greedy decode", "digit boxes"), 0.0)
    for _ in range(3):
        t = time.perf_counter()
        prepared = [prepare(g, rec.preprocess) for g in greys]
        normed = [ink for ink, _ in prepared]
        stages["trim + normalize"] += time.perf_counter() - t
        order = sorted(range(len(normed)), key=lambda i: normed[i].shape[1])
        for lo in range(0, len(order), BATCH):
            idx = order[lo : lo + BATCH]
            t = time.perf_counter()
            images, widths = collate_images([normed[i] for i in idx], stride)
            stages["collate"] += time.perf_counter() - t
            t = time.perf_counter()
            logits = rec.backend.logits(images, widths)
            stages["network"] += time.perf_counter() - t
            t = time.perf_counter()
            decoded = greedy_decode(logits.double().log_softmax(-1), rec.model.output_lengths(widths), rec.alphabet)
            stages["log_softmax + greedy decode"] += time.perf_counter() - t
            t = time.perf_counter()
            for i, d in zip(idx, decoded):
                x0, y0, x1, y1 = prepared[i][1]
                digit_boxes(normed[i], d.spans, stride, (y1 - y0, x1 - x0))
            stages["digit boxes"] += time.perf_counter() - t
    total = sum(stages.values())
    out: dict[str, Any] = {"batched_read_stages_share": {k: v / total for k, v in stages.items()},
                           "batched_read_ms_per_image": total / 3 / len(greys) * 1e3}

    images, widths = make_batches([prepare(g, rec.preprocess)[0] for g in greys], stride, BATCH, "sorted")[0]
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(export_onnx(rec.model, rec.preprocess), opts, providers=["CPUExecutionProvider"])
        for _ in range(5):
            sess.run(None, {"images": images.numpy(), "widths": widths.numpy()})
        events = json.loads(Path(sess.end_profiling()).read_text())
    by_op: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            by_op[e["args"]["op_name"]] += e["dur"]
    total_us = sum(by_op.values())
    out["onnx_operator_share"] = {k: v / total_us for k, v in by_op.most_common(12)}
    return out


def flops_per_image(model: Any, normed: list[np.ndarray]) -> dict[str, float]:
    """FLOPs (2 x multiply-adds, convolutions) of each image at its own width, unpadded."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from strings.image import collate_images

    cache: dict[int, int] = {}
    per = []
    with torch.inference_mode():
        for x in normed:
            b, w = collate_images([x], model.stride)
            width = b.shape[-1]
            if width not in cache:
                with FlopCounterMode(display=False) as fc:
                    model.logits(b, w)
                cache[width] = fc.get_total_flops()
            per.append(cache[width])
    return {"mean_mflops": float(np.mean(per)) / 1e6, "min_mflops": min(per) / 1e6, "max_mflops": max(per) / 1e6}


def measure_flops(model: str | None, data_root: str | None, n: int | None) -> dict[str, Any]:
    import torch

    import strings
    from strings.read.export import fold_for_inference
    from strings.image import prepare

    greys, _, _ = load_images(data_root, limit=n)
    rec = strings.load(model)
    normed = [prepare(g, rec.preprocess)[0] for g in greys]
    out: dict[str, Any] = {
        "model_as_trained": flops_per_image(rec.model, normed),
        "model_folded": flops_per_image(fold_for_inference(rec.model), normed),
        "params": sum(p.numel() for p in rec.model.parameters()),
        "mean_input_width": float(np.mean([x.shape[1] for x in normed])),
    }
    mm = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        n = 2048
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(7))
        mm[str(threads)] = 2 * n**3 / best / 1e9
    out["matmul_fp32_gflops_2048"] = mm
    return out


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# --------------------------------------------------------------------------- report


def machine_info() -> dict[str, Any]:
    import numpy
    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


def table(result: dict[str, Any]) -> str:
    rows = ["| system | threads | exact | CER | strings/s batched | p50 ms | p95 ms | network alone: strings/s, p50 ms | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|"]
    for s in result["systems"]:
        model = (f"{s['model_strings_per_s']:.0f}, {s['model_latency_p50_ms']:.2f}" if "model_strings_per_s" in s else "")
        acc = f"{s['accuracy']:.2%}" if "accuracy" in s else ""
        cer = f"{s['cer']:.3f}" if "cer" in s else ""
        p50 = f"{s['latency_p50_ms']:.2f}" if "latency_p50_ms" in s else ""
        p95 = f"{s['latency_p95_ms']:.2f}" if "latency_p95_ms" in s else ""
        rss = f"{s['peak_rss_mb']:.0f}" if "peak_rss_mb" in s else ""
        thr = f"{s.get('processes', 1)}x{s['threads']}" if s.get("processes") else str(s["threads"])
        rows.append(f"| {s['system']} | {thr} | {acc} | {cer} | {s['strings_per_s']:.0f} | {p50} | {p95} | {model} | {rss} |")
    f = result.get("flops", {})
    lines = ["\n".join(rows)]
    for s in result["systems"]:
        if "strings_per_s_one_lane" in s:
            lines.append(f"- {s['system']}, {s['threads']} threads: {s['strings_per_s']:.0f} strings/s batched with width batches "
                         f"read {s['lanes']} at once on single-threaded lanes, {s['strings_per_s_one_lane']:.0f}/s one after another")
    if f:
        mf = f["model_as_trained"]["mean_mflops"]
        mm = f["matmul_fp32_gflops_2048"]
        lines.append(
            f"\nNetwork: {mf:.1f} MFLOP per image as trained ({f['model_folded']['mean_mflops']:.1f} folded), mean input width "
            f"{f['mean_input_width']:.0f} px. fp32 matmul 2048^3: {mm['1']:.0f} GFLOP/s (1 thread), {mm['2']:.0f} GFLOP/s (2 threads)."
        )
        for key, value in result.get("roofline", {}).items():
            lines.append(f"- {key}: {value}")
    v = result.get("int8_verdict")
    if v:
        ratios = ", ".join(f"{x:.2f}x at {t} thread(s)" for t, x in v["speedup_batched_vs_fp32_onnx_same_threads"].items())
        lines.append(f"- int8 (ONNX Runtime static QDQ): accuracy {0.0 - v['accuracy_drop_points']:+.2f} points vs float32 "
                     f"({'within' if v['within_0.2_points'] else 'outside'} the 0.2-point bar); speed vs float32 onnx: {ratios}")
    abl = result.get("ablations")
    if abl:
        buckets = abl["bucketing"]
        parts = [f"{m}: {buckets[m]['batches']} batches, {buckets[m]['padded_columns_over_real'] - 1:.0%} padding, "
                 f"onnx {buckets[m]['onnx_t1_strings_per_s']:.0f}/s, torch {buckets[m]['torch_t1_strings_per_s']:.0f}/s"
                 for m in ("bucketed", "sorted", "arrival")]
        lines.append("- width grouping, batch <= 64, network alone, 1 thread: " + "; ".join(parts))
        for name, c in abl["other_configs"].items():
            lines.append(f"- {name} (untrained, speed only): {c['mflops_per_image']:.0f} MFLOP/image, onnx network alone "
                         f"{c['onnx_t1_model_strings_per_s']:.0f}/s (1 thread), {c['onnx_t2_model_strings_per_s']:.0f}/s (2), "
                         f"p50 {c['onnx_t1_model_p50_ms']:.2f} ms")
    prof = result.get("profile")
    if prof:
        stages = ", ".join(f"{k} {v:.0%}" for k, v in prof["batched_read_stages_share"].items())
        ops = ", ".join(f"{k} {v:.0%}" for k, v in list(prof["onnx_operator_share"].items())[:8])
        lines.append(f"- batched read, 1 thread, {prof['batched_read_ms_per_image']:.2f} ms per image: {stages}")
        lines.append(f"- ONNX Runtime operators, batch of 64: {ops}")
    if abl:
        rows: dict[str, dict[int, dict[str, Any]]] = {}
        for r in abl["rows"]:
            rows.setdefault(r["variant"], {})[r["threads"]] = r
        lines.append("\n| fast path (network alone) | 1 thread: strings/s, p50 ms | 2 threads: strings/s, p50 ms |\n|---|---|---|")
        for name, by_t in rows.items():
            cells = [f"{by_t[t]['strings_per_s']:.0f}, {by_t[t]['p50_ms']:.2f}" if t in by_t else "" for t in (1, 2)]
            lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    info = result["machine"]
    start, end = result["load_average_start"][0], result["load_average_end"][0]
    if start > 1.0 or end > info["cores_usable"] + 1.0:  # this run alone adds at most about the core count
        lines.append(f"\n**Contended run**: 1-minute load average {start:.1f} at start, {end:.1f} at end, on "
                     f"{info['cores_usable']} cores; these timings are not speed figures.")
    lines.append(
        f"\n{info['date_utc']}, {info['cpu']}, {info['cores_usable']} cores, torch {info['torch']}, onnxruntime "
        f"{info['onnxruntime']}; load average {result['load_average_start']} at start, {result['load_average_end']} at end."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None, help="data root (default: $STRINGS_DATA or data/)")
    p.add_argument("--model", default=None, help="bundled model name or .safetensors path (default: default)")
    p.add_argument("--out", default="benchmarks/speed.json")
    p.add_argument("--seconds", type=float, default=2.0, help="time per throughput figure (3 windows, median)")
    p.add_argument("--no-tesseract", action="store_true")
    p.add_argument("--no-int8", action="store_true")
    p.add_argument("--no-ablations", action="store_true")
    p.add_argument("--n", type=int, default=None, help="use only the first N test images (a quick check, not a result)")
    args = p.parse_args(argv)

    result: dict[str, Any] = {"command": "python benchmarks/speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                              "machine": machine_info(), "load_average_start": [round(x, 2) for x in os.getloadavg()],
                              "dataset": f"{DATASET} test", "batch_size": BATCH}
    _, labels, decode_ms = load_images(args.data_root, limit=args.n)
    result["n_images"] = len(labels)
    result["jpeg_decode_ms_per_image"] = decode_ms
    systems: list[dict[str, Any]] = []

    def log(s: dict[str, Any]) -> None:
        acc = f"exact {s['accuracy']:.2%} " if "accuracy" in s else ""
        lat = f"p50 {s['latency_p50_ms']:.2f} ms " if "latency_p50_ms" in s else ""
        print(f"{s['system']} t{s['threads']}: {acc}{s['strings_per_s']:.1f} strings/s {lat}", file=sys.stderr, flush=True)

    int8 = None
    if not args.no_int8:
        choice = in_child(choose_float_layers, args.model, args.data_root)
        int8 = choice.pop("graph")
        result["int8_choice"] = choice
        print(f"int8: float layers {choice['float_layers']} chosen on {choice['validation']}", file=sys.stderr)
    plan = [("torch", 1), ("torch", 2), ("torch-bf16", 1), ("torch-bf16", 2), ("onnx", 1), ("onnx", 2)] + ([] if int8 is None else [("onnx-int8", 1), ("onnx-int8", 2)])
    for backend, threads in plan:
        graph = int8 if backend == "onnx-int8" else None
        s = in_child(measure_strings, backend, threads, args.model, args.data_root, args.seconds, args.n, graph)
        systems.append(s)
        log(s)
    s = measure_processes(2, args.model, args.data_root, args.seconds, args.n)
    systems.append(s)
    log(s)
    if args.no_tesseract:
        result["tesseract"] = "skipped (--no-tesseract)"
    elif tesseract_command() is None:
        msg = "skipped: the tesseract command is not installed (Debian: apt-get install tesseract-ocr)"
        result["tesseract"] = msg
        print(msg, file=sys.stderr)
    else:
        s = in_child(measure_tesseract, args.data_root, 2, args.n)
        systems.append(s)
        log(s)

    reference = next(s for s in systems if s["system"] == "strings torch")["texts"]
    for s in systems:
        if "texts" in s:
            s["same_texts_as_torch"] = sum(a == b for a, b in zip(s.pop("texts"), reference))
    result["systems"] = systems
    result["flops"] = in_child(measure_flops, args.model, args.data_root, args.n)
    result["profile"] = in_child(measure_profile, args.model, args.data_root, args.n)
    if not args.no_ablations:
        print("ablations (network alone):", file=sys.stderr)
        result["ablations"] = in_child(measure_ablations, args.model, args.data_root, args.seconds, args.n)

    mf = result["flops"]["model_as_trained"]["mean_mflops"]
    mm2 = result["flops"]["matmul_fp32_gflops_2048"]["2"]
    best_model = max((s for s in systems if "model_strings_per_s" in s and s["backend"] in ("torch", "onnx")),
                     key=lambda s: s["model_strings_per_s"])
    achieved = mf * best_model["model_strings_per_s"] / 1e3
    roof = {
        "fp32 limit at 2-thread matmul speed": f"{mm2 * 1e3 / mf:.0f} strings/s",
        "best fp32 network alone": f"{best_model['model_strings_per_s']:.0f} strings/s ({best_model['system']}, "
                                   f"{best_model['threads']} threads) = {achieved:.1f} GFLOP/s, {mm2 / achieved:.2f}x below the matmul rate",
    }
    tess = next((s for s in systems if s["system"] == "tesseract"), None)
    best = max((s for s in systems if s["system"].startswith("strings") and "int8" not in s["system"]), key=lambda s: s["strings_per_s"])
    if tess:
        roof["throughput vs tesseract"] = f"{best['strings_per_s'] / tess['strings_per_s']:.0f}x ({best['system']})"
    result["roofline"] = roof
    fp32 = next(s for s in systems if s["system"] == "strings onnx")
    int8 = [s for s in systems if s["system"] == "strings onnx-int8"]
    if int8:
        drop = (fp32["accuracy"] - int8[0]["accuracy"]) * 100
        result["int8_verdict"] = {
            "accuracy_drop_points": drop,
            "within_0.2_points": drop <= 0.2,
            "speedup_batched_vs_fp32_onnx_same_threads": {
                str(s["threads"]): s["strings_per_s"] / next(f["strings_per_s"] for f in systems
                                                            if f["system"] == "strings onnx" and f["threads"] == s["threads"])
                for s in int8
            },
        }
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    md = table(result)
    out.with_suffix(".md").write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
