"""Distributed data parallel helpers: process-group set-up from torchrun's environment, rank queries,
gathering per-rank results back into dataset order, and handing rank 0's scores to the other ranks.

Launch: ``torchrun --nproc_per_node=N -m sagkit train ...`` (multi-node with torchrun's ``--nnodes``,
``--node_rank``, ``--rdzv_endpoint`` flags). Each process reads RANK / WORLD_SIZE / LOCAL_RANK; the backend
is NCCL on CUDA and gloo on CPU. Test-time scoring runs on rank 0 alone; the other ranks wait for its
result on a gloo group of their own (:data:`SCORING_WAIT_TIMEOUT`, :func:`share_from_main`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Optional, Sequence, TypeVar

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
    "SCORING_WAIT_TIMEOUT",
    "share_from_main",
    "main_rank_threads",
]

T = TypeVar("T")

# How long the other ranks wait for rank 0's scoring (distances, metrics, re-ranking, bootstrap intervals)
# before their collective fails. On the CPU with one thread an MSMT17-size re-ranking alone took about
# 5 minutes, and the default NCCL timeout is 10 minutes; a rank that dies instead ends the wait at once
# (its sockets close and torchrun stops the others), so a long bound costs nothing when something breaks.
SCORING_WAIT_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (a single process is rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False
    local_world_size: int = 1  # ranks on this machine (torchrun's LOCAL_WORLD_SIZE)
    wait_group: Optional[dist.ProcessGroup] = field(default=None, compare=False, repr=False)  # see init_distributed

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
        world = dist.get_world_size()
        return DistInfo(dist.get_rank(), world, local, False, int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        world = int(os.environ["WORLD_SIZE"])
        return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", 0)), False,
                        int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    return DistInfo()


def init_distributed(device: torch.device, wait_timeout: timedelta = SCORING_WAIT_TIMEOUT) -> DistInfo:
    """Join the process group described by the environment (no-op for a single process).

    Reuses a group the caller already initialised; otherwise initialises one with ``env://`` (NCCL for
    CUDA, gloo for CPU) and marks it as owned, so :func:`cleanup_distributed` destroys it afterwards.
    Either way every rank also joins ``wait_group``: a gloo group of all ranks whose collectives time out
    after ``wait_timeout``, where the ranks wait while rank 0 scores (:func:`share_from_main`), so that
    the default group's timeout (NCCL: 10 minutes) never fires during a long scoring.
    """
    info = env_dist_info()
    if dist.is_available() and dist.is_initialized():
        return replace(info, wait_group=_wait_group(wait_timeout)) if info.is_distributed else info
    if info.world_size <= 1:
        return DistInfo(0, 1, info.local_rank, False)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, init_method="env://")
    return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank, True, info.local_world_size,
                    _wait_group(wait_timeout))


def _wait_group(timeout: timedelta) -> dist.ProcessGroup:
    return dist.new_group(backend="gloo", timeout=timeout)


def cleanup_distributed(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it, else only its wait group."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if info.owns_group:
        dist.destroy_process_group()
    elif info.wait_group is not None:
        dist.destroy_process_group(info.wait_group)


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


def share_from_main(value: T, info: DistInfo) -> T:
    """Rank 0's ``value`` (any picklable object) on every rank; the other ranks' ``value`` is ignored.

    Broadcast over ``info.wait_group`` (gloo, :data:`SCORING_WAIT_TIMEOUT`): the ranks that arrive while
    rank 0 is still scoring wait there without a GPU collective pending. No-op for a single process."""
    if not info.is_distributed:
        return value
    if info.wait_group is None:
        raise ValueError(f"rank {info.rank} of {info.world_size} has no wait group: get its DistInfo from "
                         "init_distributed, which creates one")
    box = [value if info.is_main else None]
    dist.broadcast_object_list(box, src=0, group=info.wait_group)
    return box[0]


def main_rank_threads(info: DistInfo) -> int:
    """Torch threads for work rank 0 does alone while the other ranks wait (test-time scoring).

    The waiting ranks of its machine leave their threads idle (torchrun starts each rank with
    OMP_NUM_THREADS=1 so that training ranks do not compete for cores), so rank 0 takes its own count once
    per local rank, at most the cores it may run on (its CPU affinity). One process: its own count."""
    own = torch.get_num_threads()
    if not info.is_distributed:
        return own
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(own, min(own * info.local_world_size, cores))
