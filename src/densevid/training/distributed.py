"""This process's place in a torchrun job, and what the processes exchange.

Without torchrun (WORLD_SIZE unset or 1) a run is rank 0 of 1 and every collective
here is a no-op, so the training loop reads the same in one process or many.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from densevid.training.state import rng_state


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device_kind: str) -> Dist:
    """Joins the torchrun job when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if device_kind == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank, world, local)


def barrier(d: Dist) -> None:
    """Waits for every process (nothing to wait for without torchrun)."""
    if d.enabled:
        dist.barrier()


def gather_rng_states(d: Dist) -> tuple[dict[str, torch.Tensor], list[Any]] | None:
    """Every rank's RNG state (a collective: all ranks call it), so that rank 0's
    checkpoint resumes each rank's dropout where it was; None without torchrun.

    Returns the other ranks' tensors keyed ``rank<r>.<name>`` and every rank's JSON
    part, rank 0's first.
    """
    if not d.enabled:
        return None
    states: list[Any] = [None] * d.world
    dist.all_gather_object(states, rng_state())
    tensors = {
        f"rank{r}.{k}": v.cpu()
        for r, (ts, _) in enumerate(states)
        if r > 0
        for k, v in ts.items()
    }
    return tensors, [meta for _, meta in states]


def shutdown(d: Dist) -> None:
    """Leaves the process group: without it gloo processes can abort at exit
    (docs/design.md, "Distributed training")."""
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
