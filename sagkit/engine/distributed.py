"""Distributed data parallel helpers: process-group set-up from torchrun's environment, rank queries and
gathering per-rank results back into dataset order.

Launch: ``torchrun --nproc_per_node=N -m sagkit train ...`` (multi-node with torchrun's ``--nnodes``,
``--node_rank``, ``--rdzv_endpoint`` flags). Each process reads RANK / WORLD_SIZE / LOCAL_RANK; the backend
is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "env_dist_info",
    "init_distributed",
    "cleanup_distributed",
    "barrier",
    "shard_range",
    "all_gather_padded",
    "gather_in_order",
    "all_reduce_min",
    "broadcast_buffers",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (a single process is rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_dist_info() -> DistInfo:
    """Rank information from an initialised process group, else from torchrun's environment variables."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, False)
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo()


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group described by the environment (no-op for a single process).

    Reuses a group the caller already initialised; otherwise initialises one with ``env://`` (NCCL for
    CUDA, gloo for CPU) and marks it as owned, so :func:`cleanup_distributed` destroys it afterwards.
    """
    info = env_dist_info()
    if dist.is_available() and dist.is_initialized():
        return info
    if info.world_size <= 1:
        return DistInfo(0, 1, info.local_rank, False)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, init_method="env://")
    return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank, True)


def cleanup_distributed(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op for a single process)."""
    if info.is_distributed:
        dist.barrier()


def shard_range(n: int, rank: int, world_size: int) -> range:
    """Contiguous slice of ``range(n)`` owned by ``rank``: ranks take ``ceil(n / world_size)`` items in
    order, the last ones fewer (possibly none). Concatenating the shards in rank order gives ``range(n)``."""
    per = math.ceil(n / world_size) if world_size > 0 else n
    start = min(n, rank * per)
    return range(start, min(n, start + per))


def _comm_device(info: DistInfo) -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_gather_padded(tensor: torch.Tensor, info: DistInfo) -> list[torch.Tensor]:
    """Gather one tensor per rank whose first dimension may differ (``n_r × ...``).

    Each rank pads its tensor to the largest ``n_r`` (all_gather needs equal shapes), gathers, then trims
    every piece back to its true length. Returns the per-rank tensors, in rank order, on ``tensor``'s device.
    """
    if not info.is_distributed:
        return [tensor]
    comm = _comm_device(info)
    local = tensor.detach().to(comm).contiguous()
    size = torch.tensor([local.shape[0]], dtype=torch.long, device=comm)
    sizes = [torch.zeros_like(size) for _ in range(info.world_size)]
    dist.all_gather(sizes, size)
    lengths = [int(s.item()) for s in sizes]
    longest = max(lengths)
    if local.shape[0] < longest:
        pad = local.new_zeros((longest - local.shape[0],) + tuple(local.shape[1:]))
        local = torch.cat([local, pad], dim=0)
    pieces = [torch.empty_like(local) for _ in range(info.world_size)]
    dist.all_gather(pieces, local)
    return [p[:n].to(tensor.device) for p, n in zip(pieces, lengths)]


def gather_in_order(tensor: torch.Tensor, info: DistInfo, total: int) -> torch.Tensor:
    """Rebuild the full ``total × ...`` tensor from contiguous per-rank shards (see :func:`shard_range`)."""
    full = torch.cat(all_gather_padded(tensor, info), dim=0)
    if full.shape[0] != total:
        raise RuntimeError(f"gathered {full.shape[0]} rows from {info.world_size} ranks, expected {total}")
    return full


def all_reduce_min(flags: Sequence[bool] | bool, info: DistInfo) -> bool:
    """True only if the flag is True on every rank (used to stop all ranks together on a bad loss)."""
    value = bool(flags) if isinstance(flags, bool) else all(flags)
    if not info.is_distributed:
        return value
    t = torch.tensor([1 if value else 0], dtype=torch.int32, device=_comm_device(info))
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


@torch.no_grad()
def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics, per-branch statistics, centers).

    DDP broadcasts buffers only at the start of a forward pass, so after the last training step each rank
    keeps the statistics of its own batches; an evaluation right then would score each shard with another
    model. No-op for a single process."""
    if not info.is_distributed:
        return
    comm = _comm_device(info)
    for buffer in module.buffers():
        moved = buffer.to(comm)
        dist.broadcast(moved, src=0)
        if moved is not buffer:
            buffer.copy_(moved)
