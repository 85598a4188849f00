"""Data-parallel training under ``torchrun``: one process per CPU group or GPU.

``torchrun --nproc_per_node N -m strings train ...`` sets ``WORLD_SIZE``/``RANK``; the
training loop then wraps its model in ``DistributedDataParallel`` (gloo on CPU, NCCL on CUDA),
splits each global batch of ``batch_size`` strings across the processes, and lets rank 0 alone
validate, write checkpoints and logs. Everything that decides the course of training
(learning rate, stop conditions) is taken from rank 0, so the processes never disagree.
Without ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing here does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

__all__ = ["Dist", "init_distributed"]

RANK_SEED_STRIDE = 7_919_993  # rank r draws its batches from seed + r * stride (rank 0: the single-process stream)
TIMEOUT = timedelta(minutes=30)  # rank 0 validates while the others wait at the next collective


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rank_seed(self, seed: int) -> int:
        return seed + self.rank * RANK_SEED_STRIDE

    def local_batch(self, batch_size: int) -> int:
        """This process's share of a global batch (the same global batch as one process)."""
        if batch_size % self.world:
            raise ValueError(f"batch_size {batch_size} must be divisible by the {self.world} processes")
        return batch_size // self.world

    def from_main(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank (float64 on the CPU; gloo and NCCL both take it
        through a CPU or device tensor as the backend needs)."""
        if not self.enabled:
            return values
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.broadcast(t, src=0)
        return t.cpu().tolist()

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: torch.device) -> Dist:
    """Join the process group ``torchrun`` describes in the environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
    return Dist(rank, world, local_rank)
