"""Where a recognizer's network runs: eager PyTorch or ONNX Runtime.

A backend maps a padded batch to logits and nothing else; preprocessing and CTC decoding stay
in ``Recognizer`` and are the same for every backend.

- ``"torch"``: the network with its batch norms folded (``strings.read.export.fold_for_inference``)
  in channels-last memory order, under ``torch.inference_mode``. The thread count is PyTorch's
  (``torch.set_num_threads``).
- ``"torch-bf16"``: the same in bfloat16 (the head in float32), for CPUs with bfloat16
  instructions; see ``TorchBackend``.
- ``"onnx"``: the same folded network exported to ONNX (in memory, at load time) and run by
  ONNX Runtime's CPU provider, with denormal floats flushed to zero. About half eager
  PyTorch's latency on one image, where per-operator overhead dominates
  (``benchmarks/speed.py``). ``threads``: the cores it uses (default: all).

Lanes: where a call holds several width batches, ``in_lanes`` reads them at once on
single-threaded runs of each ONNX session instead of one after another on all threads (a
``Recognizer`` does this by itself when its backend says it ``lanes`` > 1). One small
batch keeps two cores busy badly, two batches keep them busy well: on the 2-core machine this
read 1.18x (the default) and 1.26x (``fast``) as many strings per second, preprocessing and
decoding included (``benchmarks/speed.py``). A single image still gets every thread.

Example:
    >>> import strings
    >>> rec = strings.load(backend="onnx")                 # doctest: +SKIP
    >>> rec.recognize("amount.png").text                   # doctest: +SKIP
    '1500'
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from strings.config import PreprocessConfig
from strings.models import DenseNetCTC
from strings.read.export import export_onnx, fold_for_inference

__all__ = ["BACKENDS", "Backend", "OnnxBackend", "TorchBackend", "in_lanes", "make_backend", "onnx_parity"]

BACKENDS = ("torch", "torch-bf16", "onnx")
T = TypeVar("T")
R = TypeVar("R")


@runtime_checkable
class Backend(Protocol):
    """Padded images (B, 1, H, W) float32 and valid widths (B,) int64 -> logits (B, T, C)."""

    name: str

    def logits(self, images: Tensor, widths: Tensor) -> Tensor: ...


_LANE = threading.local()  # .active: this thread is one of ``in_lanes``'s workers
_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _mark_lane() -> None:
    _LANE.active = True


def in_lane() -> bool:
    """True on a worker of ``in_lanes``: an ONNX backend then runs single-threaded."""
    return bool(getattr(_LANE, "active", False))


def in_lanes(fn: Callable[[T], R], items: Sequence[T], lanes: int) -> list[R]:
    """``[fn(x) for x in items]``, computed ``lanes`` at a time on a shared pool of worker threads.

    On those threads every ``OnnxBackend`` runs its single-threaded session, so ``lanes``
    workers use ``lanes`` cores. With fewer than two lanes or items, or when already on a
    lane (no nesting, hence no deadlock), it runs in the calling thread.
    """
    if lanes < 2 or len(items) < 2 or in_lane():
        return [fn(x) for x in items]
    with _POOLS_LOCK:
        pool = _POOLS.get(lanes)
        if pool is None:
            pool = _POOLS[lanes] = ThreadPoolExecutor(lanes, thread_name_prefix="strings-lane", initializer=_mark_lane)
    return list(pool.map(fn, items))


class TorchBackend:
    """Eager PyTorch. ``fold``: run the folded inference twin (same results within float
    rounding, fewer ops); ``channels_last``: NHWC memory order, which oneDNN's convolutions and
    pooling prefer on CPU. With both off this is exactly ``DenseNetCTC.logits``.

    ``bf16``: run the network body in bfloat16 (the final 1x1 head stays float32, so logits keep
    float32 resolution). About twice the speed where the CPU has bfloat16 instructions
    (AVX512-BF16, AMX); emulated, hence slow, where it has not. Readings may differ from float32
    in rare close cases, and confidences by about 1%: measure on your data before using it.
    """

    name = "torch"
    lanes = 1  # PyTorch's thread count is process-wide: no single-threaded runs beside others

    def __init__(
        self, model: DenseNetCTC, device: str | torch.device = "cpu", fold: bool = True, channels_last: bool = True,
        bf16: bool = False,
    ) -> None:
        self.device = torch.device(device)
        if bf16 and not fold:
            raise ValueError("bf16 runs the folded network: pass fold=True")
        net: torch.nn.Module = fold_for_inference(model) if fold else model.eval()
        if bf16:
            net = net.to(torch.bfloat16)
            net.head.float()  # type: ignore[union-attr]
            self.name = "torch-bf16"
        self.channels_last = channels_last
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net.to(self.device)
        self.fold = fold
        self.bf16 = bf16

    @torch.inference_mode()
    def logits(self, images: Tensor, widths: Tensor) -> Tensor:
        x = images.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net.logits(x, widths.to(self.device)).float().contiguous()  # (B, T, C)


class OnnxBackend:
    """ONNX Runtime on the CPU. ``model`` is an ONNX graph as ``strings.read.export.export_onnx``
    writes it (bytes or a path).

    ``threads``: CPU cores to use (default: all usable), as ONNX Runtime intra-op threads.
    ``lanes``: how many width batches a recognizer may read at once (``in_lanes``), each on a
    single-threaded run of a second session (opened on first use; sessions are thread-safe);
    ``threads`` by default, 1 turns it off.
    ``split_batches``: cut one batch of at least ``2 * MIN_SPLIT_ROWS`` images into
    ``threads`` row blocks read at once by single-threaded runs. On the 2-core machine this
    was 1.3x faster while another job held the cores and 1.3x slower on a quiet machine
    (``benchmarks/speed.py``): halved batches run worse, so it is off by default.
    Each image's logits do not depend on its neighbours (column masks), so either way only
    float rounding changes. ``flush_denormals``: treat denormal floats as zero
    (``session.set_denormal_as_zero``).
    """

    name = "onnx"
    MIN_SPLIT_ROWS = 2

    def __init__(
        self, model: bytes | str | os.PathLike, threads: int | None = None, flush_denormals: bool = True,
        split_batches: bool = False, lanes: int | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("the onnx backend needs onnxruntime: pip install 'strings[onnx]'") from None
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if lanes is not None and lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        self.threads = threads or _usable_cores()
        self.lanes = self.threads if lanes is None else lanes
        source = model if isinstance(model, bytes) else os.fspath(model)

        def session(intra: int) -> Any:
            """A session of ``intra`` threads."""
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.intra_op_num_threads = intra
            opts.inter_op_num_threads = 1
            if flush_denormals:
                opts.add_session_config_entry("session.set_denormal_as_zero", "1")
            return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])

        self.session = session(self.threads)
        names = [i.name for i in self.session.get_inputs()]
        if names != ["images", "widths"]:
            raise ValueError(f"not a strings ONNX graph: inputs {names}, expected ['images', 'widths']")
        self._open = session
        self._single: Any = None  # the single-threaded session, opened on first use
        self.split_batches = split_batches and self.threads > 1
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _single_session(self) -> Any:
        if self.threads == 1:
            return self.session
        with self._lock:
            if self._single is None:
                self._single = self._open(1)
        return self._single

    @classmethod
    def from_model(
        cls,
        model: DenseNetCTC,
        preprocess: PreprocessConfig,
        metadata: dict[str, Any] | None = None,
        threads: int | None = None,
        flush_denormals: bool = True,
        lanes: int | None = None,
    ) -> OnnxBackend:
        """Export ``model`` in memory (about a second) and open a session on it."""
        graph = export_onnx(model, preprocess, None, metadata)
        return cls(graph, threads=threads, flush_denormals=flush_denormals, lanes=lanes)

    @staticmethod
    def _run(session: Any, images: np.ndarray, widths: np.ndarray) -> np.ndarray:
        return session.run(["logits"], {"images": images, "widths": widths})[0]

    def logits(self, images: Tensor, widths: Tensor) -> Tensor:
        x = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)  # (B, 1, H, W)
        w = widths.detach().cpu().numpy().astype(np.int64)  # (B,)
        b = x.shape[0]
        if in_lane():
            return torch.from_numpy(self._run(self._single_session(), x, w))  # (B, T, C)
        if not self.split_batches or b < 2 * self.MIN_SPLIT_ROWS:
            return torch.from_numpy(self._run(self.session, x, w))  # (B, T, C)
        single = self._single_session()
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="strings-onnx")
        k = min(self.threads, b // self.MIN_SPLIT_ROWS)
        bounds = np.linspace(0, b, k + 1).astype(int)
        parts = self._pool.map(lambda i: self._run(single, x[bounds[i] : bounds[i + 1]], w[bounds[i] : bounds[i + 1]]),
                               range(k))
        return torch.from_numpy(np.concatenate(list(parts), axis=0))  # (B, T, C)


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def make_backend(
    kind: str | Backend,
    model: DenseNetCTC,
    preprocess: PreprocessConfig,
    metadata: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    threads: int | None = None,
) -> Backend:
    """A backend by name (``BACKENDS``), or ``kind`` itself if it already is one."""
    if not isinstance(kind, str):
        if not isinstance(kind, Backend):
            raise TypeError(f"backend must be one of {BACKENDS} or a Backend, got {type(kind).__name__}")
        return kind
    if kind in ("torch", "torch-bf16"):
        return TorchBackend(model, device, bf16=kind == "torch-bf16")
    if kind == "onnx":
        if torch.device(device).type != "cpu":
            raise ValueError(f"the onnx backend runs on the CPU only, not {device}")
        return OnnxBackend.from_model(model, preprocess, metadata, threads=threads)
    raise ValueError(f"unknown backend {kind!r}; choose from {', '.join(BACKENDS)}")


def onnx_parity(model: DenseNetCTC, onnx_model: bytes | str | os.PathLike, seed: int = 0) -> float:
    """Largest |logit difference| between ``model`` (eager, unfolded) and an ONNX graph of it,
    over random batches of different widths and compositions (alone, mixed, all padded)."""
    backend = OnnxBackend(onnx_model, threads=1)
    gen = torch.Generator().manual_seed(seed)
    s = model.stride
    worst = 0.0
    for widths in ([8 * s], [3 * s, 11 * s, 5 * s], [s, 2 * s], [40 * s]):
        w = torch.tensor(widths, dtype=torch.long)
        images = torch.rand(len(widths), 1, model.height, max(widths), generator=gen)
        for i, wi in enumerate(widths):
            images[i, :, :, wi:] = 0.0  # right padding is background, as collate_images makes it
        was_training = model.training
        model.eval()
        with torch.inference_mode():
            ref = model.logits(images, w)
        model.train(was_training)
        worst = max(worst, float((backend.logits(images, w) - ref).abs().max()))
    return worst
