"""Processes for data-parallel training: how many, how to launch them, and each one's place in the group.

One process per visible GPU (NCCL), or ``num_processes`` CPU processes (gloo) where there is no GPU. More
than one process is launched with torchrun (``python -m torch.distributed.run``), which sets ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE`` in each process's environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist


def resolve_num_processes(requested: int, device: str = "auto") -> int:
    """``requested`` when positive; otherwise one per visible GPU, or 1 on CPU."""
    if requested > 0:
        return requested
    return (torch.cuda.device_count() if device != "cpu" else 0) or 1


def torchrun_command(num_processes: int, module: str, arguments: list[str]) -> list[str]:
    """The torchrun command line that runs ``python -m module arguments`` in ``num_processes`` local processes."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # one node; the rendezvous picks a free local port
        f"--nproc_per_node={num_processes}",
        "-m",
        module,
        *arguments,
    ]


@dataclass(frozen=True)
class ProcessContext:
    """This process's place in the training group (rank 0 of 1 when not launched by torchrun)."""

    rank: int
    local_rank: int
    world_size: int

    @classmethod
    def from_environment(cls) -> ProcessContext:
        return cls(
            rank=int(os.environ.get("RANK", "0")),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            world_size=int(os.environ.get("WORLD_SIZE", "1")),
        )

    @staticmethod
    def launched_by_torchrun() -> bool:
        return "LOCAL_RANK" in os.environ

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def device(self, kind: str = "auto") -> torch.device:
        """This process's device: ``kind`` "cpu", "cuda" (an error without a GPU) or "auto" (a GPU when visible)."""
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for, but no GPU is visible")
        if kind == "cpu" or not torch.cuda.is_available():
            return torch.device("cpu")
        # WORLD_SIZE counts every node's processes; only this node's GPUs are visible here.
        if self.local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"local rank {self.local_rank} has no GPU: {torch.cuda.device_count()} visible on this node; "
                "use one process per GPU (num_processes=0)"
            )
        return torch.device("cuda", self.local_rank)

    @contextmanager
    def process_group(self, device: torch.device) -> Iterator[None]:
        """Join the group (NCCL on GPUs, gloo on CPUs) for the duration of the block, when there is one."""
        if not self.distributed:
            yield
            return
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            device_id=device if device.type == "cuda" else None,
        )
        try:
            yield
        finally:
            dist.destroy_process_group()
