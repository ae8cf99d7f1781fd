"""torchrun/DDP plumbing: one process per GPU; one process (rank 0 of 1) on a single GPU or the CPU."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    """Where this process runs and how many run beside it."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str | None = None) -> Context:
    """Join the torchrun process group if launched by torchrun; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    target = torch.device(device)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    return Context(rank=rank, world_size=world_size, device=target)


def barrier() -> None:
    """Wait for all processes (no-op without a process group)."""
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over processes (identity without a process group)."""
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def gather_arrays(local: torch.Tensor) -> list[torch.Tensor]:
    """Every process's tensor, on every process (a list of one without a process group)."""
    if not dist.is_initialized():
        return [local]
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, local.cpu())
    return parts


def gather_interleaved(local: np.ndarray) -> np.ndarray:
    """Every process's rows of ``items[rank::world_size]``, back in item order, on every process (``local``
    itself without a process group)."""
    parts = [part.numpy() for part in gather_arrays(torch.from_numpy(np.ascontiguousarray(local)))]
    out = np.empty((sum(len(part) for part in parts),) + parts[0].shape[1:], parts[0].dtype)
    for rank, part in enumerate(parts):
        out[rank::len(parts)] = part
    return out


def cleanup() -> None:
    """Leave the process group."""
    if dist.is_initialized():
        dist.destroy_process_group()


def device_name(device: torch.device) -> str:
    """Human name of the device: the GPU model, or 'cpu (N threads)'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def relaunch_with_torchrun(module: str, argv: list[str]) -> None:
    """Re-execute ``python -m module argv`` under torchrun over all visible GPUs when there are several.

    A no-op inside torchrun, on one GPU, on the CPU, or with DIFFBENCH_NPROC=1.
    """
    if "WORLD_SIZE" in os.environ or not torch.cuda.is_available():
        return
    count = int(os.environ.get("DIFFBENCH_NPROC", torch.cuda.device_count()))
    if count <= 1:
        return
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={count}",
               "-m", module, *argv]
    print("launching:", " ".join(command), flush=True)
    os.execvp(command[0], command)
