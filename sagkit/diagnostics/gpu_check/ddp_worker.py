"""The rank process of the GPU check's DDP section, started by ``torchrun`` (see ``ddp.py``): a few training
steps of the plan's model on seeded random batches (different on each rank), through the engine's own
process-group set-up, DDP wrapping and ``train_one_epoch``.

It writes ``rank<r>.json``: its backend, the loss ``train_one_epoch`` reduced over the ranks (equal on all of
them), the loss of its own last batch, how far its parameters are from rank 0's afterwards (zero when
the gradients were averaged correctly), how far its BatchNorm buffers are after training (each rank its
own) and after the trainer's pre-evaluation broadcast (zero), and whether the feature gather is exact.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from sagkit.atomic import atomic_write_text

from sagkit.engine.builders import build_model, per_rank_batch_size
from sagkit.engine.device import make_grad_scaler, place_model, resolve_device, resolve_precision, seed_everything
from sagkit.engine.distributed import (DistInfo, broadcast_buffers, cleanup_distributed, env_dist_info, gather_in_order,
                           init_distributed, shard_range)
from sagkit.engine.optim import build_criterion, build_optimizer
from sagkit.engine.trainer import train_one_epoch
from sagkit.diagnostics.gpu_check.data import CycledBatches, check_config
from sagkit.diagnostics.gpu_check.plan import CheckPlan

__all__ = ["DDP_CLASSES", "main"]

DDP_CLASSES = 16  # identities of the random labels the DDP step trains on


def _join_group(device: torch.device) -> DistInfo:
    """The engine's ``init_distributed``; a single process joins a group of one, so DDP still communicates."""
    info = init_distributed(device)
    if dist.is_initialized():
        return info
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
    return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank, owns_group=True)


def _rank_step(args: argparse.Namespace) -> dict:
    """``args.steps`` DDP steps on seeded random batches (different on each rank); returns this rank's record."""
    plan = CheckPlan(profile=args.profile, overrides=json.loads(args.overrides), seed=args.seed)
    local = env_dist_info()
    device = resolve_device("cuda" if args.device_type == "cuda" else "cpu", local.local_rank)
    info = _join_group(device)
    try:
        config = check_config(plan)
        seed_everything(config.seed)
        model = place_model(build_model(config, DDP_CLASSES, pretrained=False), config, device)
        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        precision = resolve_precision(config.amp, device)
        optimizer, criterion = build_optimizer(model, config), build_criterion(config)
        gen = torch.Generator().manual_seed(config.seed + 1000 * (info.rank + 1))
        n = per_rank_batch_size(config, info.world_size)
        batches = [(torch.randn((n, 3, config.height, config.width), generator=gen).to(device),
                    torch.randint(DDP_CLASSES, (n,), generator=gen).to(device)) for _ in range(args.steps)]
        stats = train_one_epoch(ddp, criterion, optimizer, CycledBatches(batches, 0, args.steps), device, 1,
                                precision=precision, scaler=make_grad_scaler(precision),
                                channels_last=config.channels_last, progress=False, dist_info=info)
        images, targets = batches[-1]
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            local_loss = float(criterion(model(images), targets)[0])
        buffers_before = _max_diff_vs_rank0([b for b in model.buffers() if b.is_floating_point()])
        broadcast_buffers(model, info)  # what the trainer does before it evaluates
        return {"rank": dist.get_rank(), "world_size": dist.get_world_size(), "backend": dist.get_backend(),
                "device": str(device), "precision": precision.name, "batch_per_rank": n, "steps": args.steps,
                "reduced_loss": stats["loss"], "local_loss": local_loss,
                "params_max_diff_vs_rank0": _max_diff_vs_rank0(list(model.parameters())),
                "buffers_max_diff_vs_rank0_after_training": buffers_before,
                "buffers_max_diff_vs_rank0_at_evaluation": _max_diff_vs_rank0(
                    [b for b in model.buffers() if b.is_floating_point()]),
                "feature_gather_exact": _gather_is_exact(info, device)}
    finally:
        cleanup_distributed(info)


def _max_diff_vs_rank0(tensors: list) -> float:
    """Largest difference between this rank's per-tensor sums and rank 0's (0 when all ranks agree)."""
    sums = torch.stack([t.detach().double().sum() for t in tensors])
    gathered = [torch.zeros_like(sums) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, sums)
    return float(max((g - gathered[0]).abs().max() for g in gathered))


def _gather_is_exact(info: DistInfo, device: torch.device) -> bool:
    """The evaluation's feature gather (``gather_in_order``): uneven per-rank shards of a seeded matrix on the
    device come back whole and in order on every rank."""
    total = 2 * info.world_size + 1  # uneven shards (the last rank may have none)
    full = torch.randn((total, 8), generator=torch.Generator().manual_seed(7)).to(device)
    shard = shard_range(total, info.rank, info.world_size)
    got = gather_in_order(full[shard.start:shard.stop], info, total)
    return bool(torch.equal(got.cpu(), full.cpu()))


def main(argv=None) -> int:
    """Entry point under torchrun: ``python -m sagkit.diagnostics.gpu_check.ddp_worker --out DIR ...``."""
    parser = argparse.ArgumentParser(prog="sagkit.diagnostics.gpu_check.ddp_worker", description=__doc__)
    parser.add_argument("--out", required=True, help="folder for rank<r>.json")
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--overrides", default="{}", help="config fields as a JSON object")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device-type", choices=("cuda", "cpu"), default="cuda")
    args = parser.parse_args(argv)
    record = _rank_step(args)
    atomic_write_text(Path(args.out) / f"rank{record['rank']}.json", json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
