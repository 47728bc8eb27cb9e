"""Parameters, forward FLOPs and CPU forward+backward time of SAGNet per attention depth vs the baseline.

    python benchmarks/bench_model.py [--quick] [--backbones resnet50 efficientnet_lite0]

FLOPs are counted by torch.utils.flop_counter.FlopCounterMode (2 per multiply-add; convolutions and
matrix products only) for one 160×64 image in eval mode (up to the 512-d embedding, no classifier).
Time: the fastest of a few train-mode forward+backward passes of a batch (the minimum is the least
disturbed by other processes on a shared CPU), as a ratio to the baseline of the same backbone.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from sagkit.models import SAGNet

CONFIGS = (("baseline", ()), ("D1", (1,)), ("D2", (2,)), ("D3", (3,)), ("D4", (4,)), ("D1-D4", (1, 2, 3, 4)))
NUM_CLASSES = 751  # Market-1501 training identities


@dataclass
class BenchConfig:
    backbones: tuple[str, ...] = ("resnet50", "efficientnet_lite0")
    height: int = 160
    width: int = 64
    batch_size: int = 8
    iters: int = 3
    warmup: int = 1
    threads: int = 0  # 0: leave torch's default


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Forward FLOPs of `model` on `x` (eval mode, no grad)."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def time_train_step(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, iters: int, warmup: int) -> float:
    """Seconds of the fastest of `iters` train-mode forward+backward passes, after `warmup` untimed ones."""
    model.train()
    times = []
    for i in range(warmup + iters):
        start = time.perf_counter()
        F.cross_entropy(model(x).logits, labels).backward()
        if i >= warmup:
            times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    return min(times)


def run_benchmark(config: BenchConfig) -> list[dict]:
    """One row per (backbone, configuration): params, GFLOPs per image, seconds per step, time ratio."""
    if config.threads:
        torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, config.height, config.width, generator=generator)
    batch = torch.randn(config.batch_size, 3, config.height, config.width, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (config.batch_size,), generator=generator)
    rows = []
    for backbone in config.backbones:
        base_time = None
        for label, depths in CONFIGS:
            torch.manual_seed(0)
            model = SAGNet(NUM_CLASSES, depths=depths, backbone=backbone)
            seconds = time_train_step(model, batch, labels, config.iters, config.warmup)
            base_time = seconds if base_time is None else base_time
            rows.append({"backbone": backbone, "config": label,
                         "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
                         "gflops": count_flops(model, image) / 1e9,
                         "step_s": seconds, "time_ratio": seconds / base_time})
    return rows


def format_table(rows: list[dict], config: BenchConfig) -> str:
    lines = [f"SAGNet at {config.height}×{config.width}, {NUM_CLASSES} classes; GFLOPs = eval forward to the embedding, 1 image; "
             f"step = train forward+backward, batch {config.batch_size}, best of {config.iters} "
             f"(threads {torch.get_num_threads()})",
             f"{'backbone':<20}{'config':<10}{'params (M)':>11}{'GFLOPs':>9}{'step (s)':>10}{'time ×base':>12}"]
    for r in rows:
        lines.append(f"{r['backbone']:<20}{r['config']:<10}{r['params_m']:>11.3f}{r['gflops']:>9.3f}"
                     f"{r['step_s']:>10.3f}{r['time_ratio']:>12.2f}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 2, one warm-up and one timed pass (smoke test)")
    parser.add_argument("--backbones", nargs="+", default=list(BenchConfig.backbones))
    parser.add_argument("--batch-size", type=int, default=BenchConfig.batch_size)
    parser.add_argument("--iters", type=int, default=BenchConfig.iters)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    config = BenchConfig(backbones=tuple(args.backbones), batch_size=args.batch_size, iters=args.iters,
                         threads=args.threads)
    if args.quick:
        config.batch_size, config.iters, config.warmup = 2, 1, 1
    return config


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    print(format_table(run_benchmark(config), config), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
