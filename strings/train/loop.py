"""The one training loop, for every registered task.

Training writes into an output folder:
- ``last.safetensors``: model + optimizer + RNG state, rewritten atomically at every
  evaluation, so ``kill -9`` at any moment loses at most one evaluation period;
- ``best.safetensors``: the model with the best validation string accuracy so far;
- ``log.jsonl`` (one JSON object per evaluation) and ``curves.png``.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from strings._version import __version__
from strings.config import FieldConfig, TrainConfig, to_dict
from strings.data.base import ImageDataset
from strings.data.sources import TrainingData, training_data
from strings.models.checkpoint import CheckpointError, atomic_write
from strings.train.distributed import Dist, init_distributed
from strings.train.tasks import Task, get_task

__all__ = ["train"]


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
    for key in sorted(k for k in history[-1] if k.startswith("val_") and k.endswith("accuracy") and k != "val_accuracy"):
        ax2.plot(minutes, [h.get(key, float("nan")) for h in history], marker=".", label=key[4:])
    if "val_selection" in history[-1]:
        ax2.plot(minutes, [h.get("val_selection", float("nan")) for h in history], color="black", label="chosen on (mean)")
    if len(ax2.get_lines()) > 1:
        ax2.legend(loc="lower right", fontsize="small")
    ax2.set_ylabel("validation accuracy", color="tab:red")
    ax2.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


@dataclass
class _Run:
    """Everything one training run carries from period to period."""

    cfg: TrainConfig
    out: Path
    model: nn.Module
    preprocess: Any
    opt: torch.optim.Optimizer
    data: TrainingData
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
            "training_data": [f"{s.name} ({len(s)} samples, weight {w})" for s, w in zip(self.data.sources, self.data.weights)],
            "validation_data": ", ".join(f"{d.name} ({len(d)} samples)" for d in [self.data.validation, *self.data.extra]),
            "validation": metrics,
            "augmentation": self.task.augmentation(self.preprocess) if self.cfg.augment else None,
            "train_state": self.state,
            # a model taught on loose crops records the field search it was taught through
            **({"field": to_dict(FieldConfig())} if self.cfg.reads_fields else {}),
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


def _warm_start(run: _Run, log: Callable[[str], None]) -> None:
    """Start from another model's weights (``cfg.init``); the optimizer and schedule start afresh."""
    path = run.task.resolve(run.cfg.init)
    m, pre, _, _ = run.task.load(path)
    if pre != run.preprocess:
        raise CheckpointError(f"cannot warm-start from {path}: it holds a different preprocessing than {run.cfg.model!r}")
    if m.cfg == run.model.cfg and m.height == run.model.height:
        run.model.load_state_dict(m.state_dict())
        log(f"warm start from {path}")
    elif getattr(run.model, "load_grown", None) is not None and run.model.load_grown(m):
        log(f"warm start from {path}, its alphabet {m.cfg.alphabet!r} grown to {run.model.cfg.alphabet!r}")
    else:
        raise CheckpointError(f"cannot warm-start from {path}: it holds a different network than {run.cfg.model!r}")


def _inherit_split(cfg: TrainConfig, task: Any, log: Callable[[str], None]) -> TrainConfig:
    """A warm start that leaves ``split_seed`` at -1 validates on its parent's slice: with its
    own seed it would validate on crops the parent trained on (the general model's stage 2 did:
    seed 1 after a seed-0 parent, so its cheque validation score was inflated). An explicit
    ``split_seed`` is kept as given."""
    if not cfg.init or cfg.split_seed != -1:
        return cfg
    _, _, meta, _ = task.load(task.resolve(cfg.init))  # the task's own format (string or digit model)
    parent = meta.get("train_config") or {}
    if parent.get("validation") != cfg.validation or parent.get("val_fraction") != cfg.val_fraction:
        return cfg  # chosen on other data: its slice says nothing about this one
    seed = parent["seed"] if parent.get("split_seed", -1) == -1 else parent["split_seed"]
    if seed != cfg.seed:
        log(f"validation slice: seed {seed}, the one {cfg.init} was chosen on (split_seed = {seed})")
    return replace(cfg, split_seed=seed)


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
    metrics = task.validate(run.model, run.preprocess, run.data.validation, dev)
    if run.data.extra:  # chosen on the mean accuracy over every validation set
        accuracies = [metrics["accuracy"]]
        for ds in run.data.extra:
            extra = task.validate(run.model, run.preprocess, ds, dev)
            metrics.update({f"{ds.name}_{k}": v for k, v in extra.items() if k != "n"})
            accuracies.append(extra["accuracy"])
        metrics["selection"] = float(np.mean(accuracies))
    run.model.train()
    score = metrics.get("selection", metrics["accuracy"])
    improved = score > run.state["best_accuracy"]
    if improved:
        run.state["best_accuracy"] = score
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
    extra_validation: list[ImageDataset] | None = None,
) -> dict[str, Any]:
    """Train a model; returns the final state summary. ``sources``/``validation`` (and the
    sources' batch shares, ``weights``, and the further validation sets, ``extra_validation``)
    override the datasets named in ``cfg``: tests and experiments pass datasets built in memory.

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
    cfg = _inherit_split(cfg, task, log)
    td = training_data(cfg, data_root, sources, validation, weights, extra_validation)
    data = task.train_data(td.sources, model, pre, cfg.augment)
    opt = _make_optimizer(model, cfg)
    state = {"step": 0, "epoch": 0, "best_accuracy": -1.0, "bad_evals": 0, "minutes": 0.0}
    fp16 = cfg.amp and dev.type == "cuda" and not torch.cuda.is_bf16_supported()
    run = _Run(cfg, out, model, pre, opt, td, state,
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
            loader = td.loader(data, n_batches, local_batch, gen, task.collate(model), cfg.num_workers, _worker_init)
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
