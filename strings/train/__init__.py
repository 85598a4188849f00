"""Training: the one loop, its tasks looked up by name, the CTC task, evaluation, DDP."""

from __future__ import annotations

from strings.train import ctc as _ctc  # noqa: F401  (registers the "ctc" task)
from strings.train.ctc import CTCTask, ctc_loss
from strings.train.evaluate import EvalReport, evaluate
from strings.train.loop import train
from strings.train.tasks import Task, get_task, register_task

__all__ = ["CTCTask", "EvalReport", "Task", "ctc_loss", "evaluate", "get_task", "register_task", "train"]
