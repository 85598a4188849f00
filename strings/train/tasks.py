"""Tasks of the one training loop, looked up by name (``TrainConfig.task``): the loop never
imports a task's module; each task registers itself here (``ctc`` in strings.train.ctc,
``classify`` in strings.digits.task)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from strings.config import TASKS as TASK_NAMES
from strings.config import TrainConfig
from strings.data.base import ImageDataset

__all__ = ["TASKS", "Task", "get_task", "register_task"]


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



TASKS: dict[str, Callable[[TrainConfig], Task]] = {}


def register_task(name: str, make: Callable[[TrainConfig], Task]) -> None:
    """Make task ``name`` available to the loop; ``make(cfg)`` builds it for one run."""
    if name not in TASK_NAMES:
        raise ValueError(f"task {name!r} is not one of strings.config.TASKS ({', '.join(TASK_NAMES)})")
    TASKS[name] = make


def get_task(cfg: TrainConfig) -> Task:
    """The task object for ``cfg.task``."""
    if cfg.task not in TASKS:
        hint = " (import strings.digits to register it)" if cfg.task == "classify" else ""
        raise ValueError(f"unknown task {cfg.task!r}{hint}; registered: {', '.join(sorted(TASKS))}")
    return TASKS[cfg.task](cfg)
