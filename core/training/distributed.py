"""Device choice and optional DistributedDataParallel set-up (torchrun environment variables)."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    """Where this process trains: its rank among `world` processes and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def pick_device(local_rank: int = 0) -> torch.device:
    """CUDA (one GPU per local rank), then Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def setup() -> Context:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Context(rank=rank, world=world, device=device)


def teardown(ctx: Context) -> None:
    """Leave the process group together, after the caller dropped its DistributedDataParallel modules.

    A module that outlives the group aborts the process at exit (gloo: "terminate called without an
    active exception"), so they are collected first; then every rank waits for the others (rank 0 may
    still be saving).
    """
    if ctx.distributed and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def any_rank(ctx: Context, flag: bool) -> bool:
    """True on every rank when `flag` is true on any rank (so all ranks stop at the same step)."""
    if not ctx.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def average(ctx: Context, values: dict[str, float]) -> dict[str, float]:
    """Mean of scalar losses over ranks (for logging only)."""
    if not ctx.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], device=ctx.device)
    dist.all_reduce(tensor)
    return {k: float(v) / ctx.world for k, v in zip(keys, tensor.tolist())}
