"""The one training loop and the one evaluation loop.

Training writes into an output folder:
- ``last.safetensors``: model + optimizer + RNG state, rewritten atomically at every
  evaluation, so ``kill -9`` at any moment loses at most one evaluation period;
- ``best.safetensors``: the model with the best validation string accuracy so far;
- ``log.jsonl`` (one JSON object per evaluation) and ``curves.png``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from strings import __version__
from strings.alphabet import SCRIPT_DIGITS, Alphabet
from strings.checkpoint import CheckpointError, atomic_write, load_model, save_model
from strings.config import TrainConfig, split_seed, to_dict
from strings.datasets import ImageDataset, open_dataset, resolve_data_root, split_train_val
from strings.distributed import Dist, init_distributed
from strings.metrics import StringMetrics
from strings.models import MODEL_CONFIGS, DenseNetCTC, create_model
from strings.predictor import Recognizer
from strings.transforms import collate_images, prepare

__all__ = ["CTCTask", "EvalReport", "Task", "evaluate", "get_task", "train", "ctc_loss"]


@dataclass
class EvalReport:
    dataset: str
    n: int
    accuracy: float
    cer: float
    images_per_second: float
    seconds: float
    misses: list[tuple[str, str, str, float]] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)  # per image, in dataset order
    correct: list[bool] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("misses", "confidences", "correct")}


def evaluate(rec: Recognizer, dataset: ImageDataset, batch_size: int = 64, progress: bool = False) -> EvalReport:
    """Exact-match accuracy, CER and throughput (image decoding included) over a dataset.

    ``rec`` is anything with ``recognize_greys(greys, names, batch_size)`` returning results
    with ``text`` and ``confidence``: a ``Recognizer``, or a ``strings.digits.DigitClassifier``
    (whose ``text`` is the digit's value, so accuracy is classification accuracy)."""
    from tqdm import tqdm

    metrics = StringMetrics()
    confidences: list[float] = []
    correct: list[bool] = []
    start = time.perf_counter()
    bar = tqdm(total=len(dataset), desc=f"eval {dataset.name}", unit="img", disable=not progress, leave=False)
    for lo in range(0, len(dataset), batch_size):
        samples = [dataset[i] for i in range(lo, min(lo + batch_size, len(dataset)))]
        readings = rec.recognize_greys([s.image for s in samples], [s.name for s in samples], batch_size)
        for s, r in zip(samples, readings):
            metrics.update(s.label, r.text, s.name, r.confidence)
            confidences.append(r.confidence)
            correct.append(r.text == s.label)
        bar.update(len(samples))
    bar.close()
    secs = time.perf_counter() - start
    summary = metrics.summary()
    return EvalReport(
        dataset.name, int(summary["n"]), float(summary["accuracy"]), float(summary["cer"]),
        len(dataset) / secs if secs > 0 else 0.0, secs, metrics.misses, confidences, correct,
    )


CTC_KERNELS = ("native", "cudnn")


def ctc_loss(
    log_probs: Tensor, targets: Tensor, target_lengths: Tensor, kernel: str = "native"
) -> tuple[Tensor, int]:
    """Mean per-symbol CTC loss over a batch, and the number of items whose loss was infinite
    (zeroed, so they add no gradient).

    Args:
        log_probs: (B, T, C) from the model.
        targets: 1-D int32 concatenated labels (on the CPU).
        target_lengths: (B,) int32.
        kernel: on CUDA, ``"native"`` (the default) hands PyTorch int64 targets on the GPU, which
            selects its own kernel; ``"cudnn"`` keeps the int32 CPU layout that selects cuDNN's
            (``cudnn_ctc_eligible``). cuDNN's gradient was measured wrong (torch 2.11, cuDNN
            9.19, H100: off by more than the gradient itself, and a model trained with it does
            not learn; ``benchmarks/gpu.py``), so it is kept only for that check. The CPU has
            one kernel and ignores this.
    Every input length is the full T: the right padding of a batch is blank paper, which the
    model must read as blank anyway.
    """
    if kernel not in CTC_KERNELS:
        raise ValueError(f"unknown CTC kernel {kernel!r}; choose from {', '.join(CTC_KERNELS)}")
    lp = log_probs.float().transpose(0, 1)  # (T, B, C)
    t, b, _ = lp.shape
    input_lengths = torch.full((b,), t, dtype=torch.int32)
    if lp.is_cuda and kernel == "native":
        targets, target_lengths = targets.to(lp.device, torch.long), target_lengths.to(lp.device, torch.long)
        input_lengths = input_lengths.to(lp.device, torch.long)
    per_item = nn.functional.ctc_loss(
        lp, targets, input_lengths, target_lengths, blank=0, reduction="none", zero_infinity=True
    )  # (B,)
    lengths = target_lengths.to(per_item.device)
    infinite = int(((per_item == 0) & (lengths > 0)).sum())
    return (per_item / lengths.clamp_min(1)).mean(), infinite


def cudnn_ctc_eligible(log_probs: Tensor, targets: Tensor, target_lengths: Tensor) -> bool:
    """Whether ``ctc_loss(..., kernel="cudnn")`` takes cuDNN's kernel, mirroring PyTorch's own
    check (``_use_cudnn_ctc_loss``): blank 0, float32 CUDA log-probs, int32 CPU targets, equal
    input lengths, every target shorter than 256 frames and not longer than T."""
    return bool(
        log_probs.is_cuda
        and torch.backends.cudnn.is_available()
        and targets.device.type == "cpu"
        and targets.dtype == torch.int32
        and target_lengths.dtype == torch.int32
        and int(target_lengths.max()) < 256
        and int(target_lengths.max()) <= log_probs.shape[1]
    )


class TrainStrings(Dataset):
    """Training view over several sources: augment, normalise, widen to the CTC minimum."""

    def __init__(self, sources: list[ImageDataset], model: DenseNetCTC, preprocess, augment: bool) -> None:
        self.sources = sources
        self.offsets = np.cumsum([0] + [len(s) for s in sources])
        self.preprocess = preprocess
        self.alphabet = Alphabet(model.cfg.alphabet)
        self.stride = model.stride
        self.min_width = model.min_width
        self.augment = augment
        self._aug: Any = None
        self._aug_seed = 0

    def reseed(self, seed: int) -> None:
        """Restart the augmentation stream; called per period (and per worker) so that a
        resumed run augments exactly as an uninterrupted one would."""
        self._aug_seed = seed
        self._aug = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> tuple[np.ndarray, list[int]]:
        src = int(np.searchsorted(self.offsets, index, side="right") - 1)
        sample = self.sources[src][index - int(self.offsets[src])]
        img = sample.image
        if self.augment:
            if self._aug is None:
                from strings.augment import string_augmenter

                self._aug = string_augmenter(seed=self._aug_seed)
            img = self._aug(image=img)["image"]
        x, _ = prepare(img, self.preprocess)  # (H, W)
        need = self.min_width(sample.label)
        if x.shape[1] < need:
            x = np.pad(x, ((0, 0), (0, need - x.shape[1])))
        return x, self.alphabet.encode(sample.label)


def collate_train(batch: list[tuple[np.ndarray, list[int]]], multiple: int = 1) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    images, widths = collate_images([b[0] for b in batch], multiple)
    targets = torch.tensor([k for _, t in batch for k in t], dtype=torch.int32)
    lengths = torch.tensor([len(t) for _, t in batch], dtype=torch.int32)
    return images, widths, targets, lengths


class Task(Protocol):
    """What the one training loop needs to know about a task (``TrainConfig.task``): how to
    build the network, turn samples into batches, score a batch, validate, and store models."""

    name: str
    loss_name: str

    def build(self, cfg: TrainConfig) -> tuple[nn.Module, Any]: ...
    def train_data(self, sources: list[ImageDataset], model: nn.Module, preprocess: Any, augment: bool) -> Dataset: ...
    def augmentation(self, preprocess: Any) -> dict[str, Any]: ...
    def collate(self, model: nn.Module) -> Callable[[list[Any]], Any]: ...
    def loss(
        self, model: nn.Module, batch: Any, dev: torch.device, autocast: Any, first_step: bool, log: Callable[[str], None],
    ) -> tuple[Tensor, int]: ...
    def validate(self, model: nn.Module, preprocess: Any, dataset: ImageDataset, dev: torch.device) -> dict[str, Any]: ...
    def save(self, path: Path, model: nn.Module, preprocess: Any, extra: dict[str, Any],
             tensors: dict[str, Tensor] | None = None) -> None: ...
    def load(self, path: str | os.PathLike) -> tuple[nn.Module, Any, dict[str, Any], dict[str, Tensor]]: ...
    def resolve(self, name_or_path: str) -> Path: ...


class CTCTask:
    """Digit strings: DenseNet-CTC, CTC loss, validation by string accuracy and CER."""

    name = "ctc"
    loss_name = "CTC loss"

    def build(self, cfg: TrainConfig) -> tuple[DenseNetCTC, Any]:
        _, pre = MODEL_CONFIGS[cfg.model]
        alphabet = SCRIPT_DIGITS[cfg.script] if cfg.script != "latin" else None  # latin: the config's own
        return create_model(cfg.model, alphabet=alphabet), pre

    def train_data(self, sources: list[ImageDataset], model: nn.Module, preprocess: Any, augment: bool) -> Dataset:
        return TrainStrings(sources, model, preprocess, augment)  # type: ignore[arg-type]

    def augmentation(self, preprocess: Any) -> dict[str, Any]:
        from strings.augment import describe, string_augmenter

        return describe(string_augmenter())

    def collate(self, model: nn.Module) -> Callable[[list[Any]], Any]:
        return functools.partial(collate_train, multiple=model.stride)  # type: ignore[arg-type]

    def loss(
        self, model: nn.Module, batch: Any, dev: torch.device, autocast: Any, first_step: bool, log: Callable[[str], None],
    ) -> tuple[Tensor, int]:
        images, widths, targets, target_lengths = batch
        with autocast:
            log_probs = model(images.to(dev, non_blocking=True), widths)  # (B, T, C)
        return ctc_loss(log_probs, targets, target_lengths)

    def validate(self, model: nn.Module, preprocess: Any, dataset: ImageDataset, dev: torch.device) -> dict[str, Any]:
        report = evaluate(Recognizer(model, preprocess, device=dev), dataset, batch_size=64)  # type: ignore[arg-type]
        return {"accuracy": report.accuracy, "cer": report.cer, "n": report.n}

    def save(self, path: Path, model: nn.Module, preprocess: Any, extra: dict[str, Any],
             tensors: dict[str, Tensor] | None = None) -> None:
        save_model(path, model, preprocess, extra, tensors=tensors)  # type: ignore[arg-type]

    def load(self, path: str | os.PathLike) -> tuple[nn.Module, Any, dict[str, Any], dict[str, Tensor]]:
        return load_model(path)

    def resolve(self, name_or_path: str) -> Path:
        from strings.predictor import resolve_model

        return resolve_model(name_or_path)


def get_task(cfg: TrainConfig) -> Task:
    """The task object for ``cfg.task``: ``"ctc"`` here, ``"classify"`` in strings.digit_task."""
    if cfg.task == "ctc":
        return CTCTask()
    if cfg.task == "classify":
        from strings.digit_task import ClassifyTask

        return ClassifyTask(label_smoothing=cfg.label_smoothing)
    raise ValueError(f"unknown task {cfg.task!r}")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32  # derived by the DataLoader from the period's generator
    random.seed(seed)
    np.random.seed(seed)
    info = torch.utils.data.get_worker_info()
    if info is not None and hasattr(info.dataset, "reseed"):  # TrainStrings, TrainDigits
        info.dataset.reseed(seed)


def _lr_at(step: int, cfg: TrainConfig, minutes: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 1% by max_steps or, when a time budget is set, by
    max_minutes, whichever comes first: a run cut by its budget still ends annealed.
    (With a time budget the schedule depends on the machine's speed, so runs repeat exactly
    only without one.)"""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    if cfg.max_minutes:
        progress = max(progress, min(1.0, minutes / cfg.max_minutes))
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer the config names; its learning rate is then set by ``_lr_at`` every step."""
    params = model.parameters()
    if cfg.optimizer == "adadelta":  # the choice of several DenseNet-CTC re-implementations
        return torch.optim.Adadelta(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split an optimizer state into safetensors-friendly tensors and JSON-friendly rest."""
    sd = opt.state_dict()
    tensors = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"optim.{pid}.{k}"] = v if isinstance(v, Tensor) else torch.tensor(v)
    return tensors, {"param_groups": sd["param_groups"]}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], groups: list[dict[str, Any]]) -> None:
    state: dict[int, dict[str, Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


def _plot(history: list[dict[str, Any]], path: Path, loss_name: str = "CTC loss") -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    minutes = [h["minutes"] for h in history]
    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax1 = fig.add_subplot()
    ax1.plot(minutes, [h["train_loss"] for h in history], color="tab:blue", label=f"train {loss_name}")
    ax1.set_xlabel(f"training minutes (step {history[-1]['step']} at the end)")
    ax1.set_ylabel(f"train {loss_name}", color="tab:blue")
    ax1.set_yscale("log")
    ax2 = ax1.twinx()
    ax2.plot(minutes, [h["val_accuracy"] for h in history], color="tab:red", marker=".", label="val accuracy")
    ax2.set_ylabel("validation accuracy", color="tab:red")
    ax2.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _held_out_names(val: ImageDataset) -> set[str]:
    """File names of the validation crops, which the synthetic generator must not draw from.
    Fails closed: a validation set whose files cannot be named is an error, not an empty set."""
    items = getattr(getattr(val, "base", None), "items", None)
    indices = getattr(val, "indices", None)
    if items is None or indices is None:
        raise ValueError(f"cannot name the files of validation set {val.name!r}, so cannot keep them out of synthetic data")
    return {Path(items[i][0]).name for i in indices}


def build_sources(
    cfg: TrainConfig, root: Path, fit: ImageDataset, val: ImageDataset
) -> tuple[list[ImageDataset], list[float]]:
    """Open every training source; the validation dataset's train split is replaced by its fit part."""
    sources, weights = [], []
    for src in cfg.sources:
        if src.dataset == "synth":
            from strings.synth import Backgrounds, GlyphBank, SynthStrings

            # Digits and paper of the validation crops stay out of the synthetic strings.
            held_out = _held_out_names(val) if cfg.validation == "car-a-partial" else set()
            if cfg.script == "latin":
                bank = GlyphBank.from_data(root, exclude=held_out)
            else:  # another script's numerals: composed from its own isolated digits (train split)
                from strings.script_synth import script_glyph_bank

                bank = script_glyph_bank(cfg.script, root, "train")
            ds: ImageDataset = SynthStrings(
                bank,
                Backgrounds.from_data(root, exclude=held_out),
                n=cfg.synth_pool,
                seed=cfg.seed,
                charset=SCRIPT_DIGITS[cfg.script],
            )
        elif src.dataset == cfg.validation and src.split == "train":
            ds = fit
        else:
            ds = open_dataset(src.dataset, src.split, root)
        sources.append(ds)
        weights.append(src.weight)
    return sources, weights


@dataclass
class _Run:
    """Everything one training run carries from period to period."""

    cfg: TrainConfig
    out: Path
    model: DenseNetCTC
    preprocess: Any
    opt: torch.optim.Optimizer
    sources: list[ImageDataset]
    weights: list[float]
    validation: ImageDataset
    state: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    scaler: Any = None  # torch.amp.GradScaler: fp16 autocast on CUDA only (bf16 needs none)
    dist: Dist = field(default_factory=Dist)
    net: Any = None  # what the training step calls: the model, or its DistributedDataParallel wrapper

    @property
    def task(self) -> Task:
        return get_task(self.cfg)

    @property
    def last(self) -> Path:
        return self.out / "last.safetensors"

    @property
    def best(self) -> Path:
        return self.out / "best.safetensors"

    @property
    def log_path(self) -> Path:
        return self.out / "log.jsonl"

    def metadata(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": self.out.name,
            "version": __version__,
            "train_config": to_dict(self.cfg),
            "training_data": [f"{s.name} ({len(s)} samples, weight {w})" for s, w in zip(self.sources, self.weights)],
            "validation_data": f"{self.validation.name} ({len(self.validation)} samples)",
            "validation": metrics,
            "augmentation": self.task.augmentation(self.preprocess) if self.cfg.augment else None,
            "train_state": self.state,
        }


def _resume(run: _Run, log: Callable[[str], None]) -> None:
    """Load model, optimizer, RNG and progress from ``last.safetensors``; trim the log to it."""
    try:
        m, _, meta, tensors = run.task.load(run.last)
    except CheckpointError as exc:
        raise CheckpointError(f"cannot resume from {run.last}: {exc}") from None
    if m.cfg != run.model.cfg or m.height != run.model.height:
        raise CheckpointError(
            f"cannot resume from {run.last}: it holds a different network ({meta.get('train_config', {}).get('model')!r}, "
            f"{m.cfg}) than config {run.cfg.model!r} builds; use a new output folder or --no-resume"
        )
    run.model.load_state_dict(m.state_dict())
    _restore_optimizer(run.opt, tensors, meta["optimizer"]["param_groups"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    if meta.get("grad_scaler") and run.scaler is not None and run.scaler.is_enabled():
        run.scaler.load_state_dict(meta["grad_scaler"])
    run.state = meta["train_state"]
    if run.log_path.is_file() and run.dist.is_main:
        rows = []
        for line in run.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by the crash
        run.history = [h for h in rows if isinstance(h, dict) and h.get("step", 1 << 62) <= run.state["step"]]
        text = "".join(json.dumps(h) + "\n" for h in run.history)
        atomic_write(run.log_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    log(f"resumed from {run.last} at step {run.state['step']} (best val accuracy {run.state['best_accuracy']:.4f})")


def validation_split(cfg: TrainConfig, data_root: str | os.PathLike | None = None) -> tuple[ImageDataset, ImageDataset]:
    """The (fit, validation) halves of ``cfg.validation``'s train split that ``cfg`` trains and
    chooses its model on; rebuilt the same from a checkpoint's stored config."""
    root = resolve_data_root(data_root)
    return split_train_val(open_dataset(cfg.validation, "train", root), cfg.val_fraction, split_seed(cfg))


def _warm_start(run: _Run, log: Callable[[str], None]) -> None:
    """Start from another model's weights (``cfg.init``); the optimizer and schedule start afresh."""
    path = run.task.resolve(run.cfg.init)
    m, pre, _, _ = run.task.load(path)
    if m.cfg != run.model.cfg or m.height != run.model.height or pre != run.preprocess:
        raise CheckpointError(f"cannot warm-start from {path}: it holds a different network or preprocessing than {run.cfg.model!r}")
    run.model.load_state_dict(m.state_dict())
    log(f"warm start from {path}")


def _train_period(
    run: _Run, loader: DataLoader, n_batches: int, dev: torch.device, progress: bool, t_start: float,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Optimise for one evaluation period; returns the period's mean loss and infinite-loss count."""
    from tqdm import tqdm

    cfg, model, opt = run.cfg, run.model, run.opt
    use_amp = cfg.amp and dev.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = run.scaler
    model.train()
    task = run.task
    losses, infinite = [], 0
    bar = tqdm(loader, total=n_batches, desc=f"train step {run.state['step']}", unit="batch", disable=not progress, leave=False)
    for batch in bar:
        lr = _lr_at(run.state["step"], cfg, (time.time() - t_start) / 60.0)
        if run.dist.enabled:
            lr = run.dist.from_main([lr])[0]  # rank 0's clock sets the schedule for all
        for g in opt.param_groups:
            g["lr"] = lr
        autocast = torch.autocast(dev.type, dtype=amp_dtype, enabled=use_amp)
        # run.net: the model or its DistributedDataParallel wrapper
        loss, n_inf = task.loss(run.net, batch, dev, autocast, run.state["step"] == 0, log)
        infinite += n_inf
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
        run.state["step"] += 1
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    bar.close()
    return {"train_loss": float(np.mean(losses)) if losses else float("nan"), "infinite_losses": infinite}


def _evaluate_and_save(run: _Run, period: dict[str, Any], dev: torch.device) -> tuple[dict[str, Any], bool]:
    """Validate, log, keep the best model, and checkpoint everything atomically."""
    task = run.task
    metrics = task.validate(run.model, run.preprocess, run.validation, dev)
    run.model.train()
    improved = metrics["accuracy"] > run.state["best_accuracy"]
    if improved:
        run.state["best_accuracy"] = metrics["accuracy"]
        run.state["bad_evals"] = 0
    else:
        run.state["bad_evals"] += 1
    row = {
        "step": run.state["step"], "epoch": run.state["epoch"], "minutes": round(run.state["minutes"], 2),
        **period, "lr": run.opt.param_groups[0]["lr"], **{f"val_{k}": v for k, v in metrics.items() if k != "n"},
    }
    run.history.append(row)
    with open(run.log_path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    if improved:
        task.save(run.best, run.model, run.preprocess, run.metadata(metrics))
    opt_tensors, opt_json = _optimizer_tensors(run.opt)
    rng = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["rng.cuda"] = torch.cuda.get_rng_state()
    scaler = run.scaler.state_dict() if run.scaler is not None and run.scaler.is_enabled() else {}
    task.save(
        run.last, run.model, run.preprocess, {**run.metadata(metrics), "optimizer": opt_json, "grad_scaler": scaler},
        tensors={**opt_tensors, **rng},
    )
    _plot(run.history, run.out / "curves.png", task.loss_name)
    return row, improved


def train(
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool = True,
    device: str | None = None,
    sources: list[ImageDataset] | None = None,
    validation: ImageDataset | None = None,
    log: Callable[[str], None] = print,
    weights: list[float] | None = None,
) -> dict[str, Any]:
    """Train a model; returns the final state summary. ``sources``/``validation`` (and the
    sources' batch shares, ``weights``) override the datasets named in ``cfg``: tests and
    experiments pass datasets built in memory.

    Example:
        >>> from strings.config import load_train_file
        >>> train(load_train_file("configs/default.toml"), "runs/default")  # doctest: +SKIP
    """
    out = Path(out_dir)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ddp = init_distributed(dev)
    if ddp.enabled and dev.type == "cuda":
        dev = torch.device("cuda", ddp.local_rank)
    if not ddp.is_main:
        log, progress = (lambda msg: None), False
    if ddp.is_main:
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(".*.tmp"):  # atomic_write temp files left by a kill during a write
            stale.unlink(missing_ok=True)
    ddp.barrier()
    # Small weights and gradients drift into denormal floats, which x86 CPUs process 3-7x
    # slower (measured: 0.96 s vs 3.2-7.2 s per step); flushing them to zero costs nothing.
    torch.set_flush_denormal(True)
    _seed_everything(cfg.seed)
    task = get_task(cfg)
    model, pre = task.build(cfg)
    model = model.to(dev)
    root = resolve_data_root(data_root)
    if validation is None or sources is None:
        fit, val = validation_split(cfg, root)
        validation = validation or val
        if sources is None:
            sources, _ = build_sources(cfg, root, fit, val)
    if weights is None:
        weights = [s.weight for s in cfg.sources] if len(sources) == len(cfg.sources) else [1.0] * len(sources)
    if len(weights) != len(sources):
        raise ValueError(f"{len(weights)} weights for {len(sources)} sources")
    data = task.train_data(sources, model, pre, cfg.augment)
    per_sample = torch.cat([torch.full((len(s),), w / len(s), dtype=torch.double) for s, w in zip(sources, weights)])
    opt = _make_optimizer(model, cfg)
    state = {"step": 0, "epoch": 0, "best_accuracy": -1.0, "bad_evals": 0, "minutes": 0.0}
    fp16 = cfg.amp and dev.type == "cuda" and not torch.cuda.is_bf16_supported()
    run = _Run(cfg, out, model, pre, opt, sources, weights, validation, state,
               scaler=torch.amp.GradScaler("cuda", enabled=fp16), dist=ddp, net=model)
    if resume and run.last.is_file():
        _resume(run, log)
    else:
        if run.log_path.is_file() and ddp.is_main:
            run.log_path.unlink()  # a fresh run starts a fresh log
        if cfg.init:
            _warm_start(run, log)
    if ddp.enabled:
        from torch.nn.parallel import DistributedDataParallel

        run.net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
        log(f"data-parallel over {ddp.world} processes ({'nccl' if dev.type == 'cuda' else 'gloo'}), "
            f"{ddp.local_batch(cfg.batch_size)} strings each per step")

    t_start = time.time() - run.state["minutes"] * 60.0
    try:
        while (reason := _stop_reason(run)) is None:
            # Each period draws its batches and augmentations from a generator seeded by
            # (seed, period), so a resumed run sees exactly what the interrupted one would have.
            period_seed = cfg.seed * 100_003 + run.state["epoch"]
            gen = torch.Generator().manual_seed(ddp.rank_seed(period_seed))
            data.reseed(ddp.rank_seed(period_seed))
            n_batches = min(cfg.eval_every, cfg.max_steps - run.state["step"])
            local_batch = ddp.local_batch(cfg.batch_size)
            sampler = WeightedRandomSampler(per_sample, n_batches * local_batch, replacement=True, generator=gen)
            loader = DataLoader(
                data, batch_size=local_batch, sampler=sampler,
                collate_fn=task.collate(model),
                num_workers=cfg.num_workers, worker_init_fn=_worker_init, generator=gen,
            )
            period = _train_period(run, loader, n_batches, dev, progress, t_start, log)
            run.state["epoch"] += 1
            run.state["minutes"] = (time.time() - t_start) / 60.0
            if not ddp.is_main:  # rank 0 validates and saves; the others take its verdict
                s = run.state
                s["minutes"], s["best_accuracy"], s["bad_evals"] = ddp.from_main([0.0, 0.0, 0.0])
                s["bad_evals"] = int(s["bad_evals"])
                continue
            row, improved = _evaluate_and_save(run, period, dev)
            ddp.from_main([run.state["minutes"], run.state["best_accuracy"], float(run.state["bad_evals"])])
            log(
                f"step {run.state['step']:6d}  {run.state['minutes']:6.1f} min  loss {row['train_loss']:.4f}  "
                f"val acc {row['val_accuracy']:.4f}"
                + "".join(f"  {k[4:]} {v:.4f}" for k, v in row.items() if k.startswith("val_") and k != "val_accuracy")
                + ("  *" if improved else "")
            )
        # Every rank reaches the end before any tears the group down: a gloo rank that left
        # while its peer still had traffic in flight was seen to abort (SIGABRT) at exit.
        ddp.barrier()
    finally:
        torch.set_flush_denormal(False)  # the process-wide default, for the caller's own work
        ddp.close()
    return {**run.state, "stop_reason": reason, "best": str(run.best), "last": str(run.last)}


def _stop_reason(run: _Run) -> str | None:
    """Why training must stop now, or None. Checked before every period, so rerunning a
    finished run's command changes nothing."""
    cfg, state = run.cfg, run.state
    if state["step"] >= cfg.max_steps:
        return "max_steps"
    if state["bad_evals"] >= cfg.patience:
        return "early_stopping"
    if cfg.max_minutes and state["minutes"] >= cfg.max_minutes:
        return "max_minutes"
    return None
