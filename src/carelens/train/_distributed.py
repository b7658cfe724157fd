"""Distributed training with PyTorch DistributedDataParallel, launched by torchrun (`carelens train --nproc N`, which
starts torchrun from the CLI without importing torch itself, or `torchrun --nproc_per_node N -m carelens.cli train ...`
on each machine of a cluster).

Every process reads the data and builds the same seeded model. The epoch's order comes from the task's sampler
(the imbalance strategy: balanced sampler, weights) drawn with the same seed in every process; each global batch of
``batch_size`` is then shared out (process r takes positions r, r + N, ...), so the gradient DDP averages is that of
the one-process batch, and the imbalance strategy is kept exactly. The head phase (on cached features) and the
validation after each epoch run identically in every process (DDP keeps weights and BatchNorm buffers equal), so
every process takes the same early-stopping decision. Only process 0 writes the run folder.
Backends: gloo on CPU, nccl on GPUs (process r on GPU ``LOCAL_RANK``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from carelens.train._runtime import device

__all__ = ["Dist", "setup", "teardown"]


@dataclass(frozen=True)
class Dist:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, value: float) -> float:
        """``value`` summed over the processes."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t.item())

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def setup() -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT in the
    environment); (Dist(), the default device) when there is none."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1:
        return Dist(), device()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return Dist(torch.distributed.get_rank(), torch.distributed.get_world_size()), dev


def teardown(d: Dist) -> None:
    if d.world > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
