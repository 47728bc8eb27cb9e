"""Training throughput on this machine: the baseline and SAG at each depth, next to their FLOP ratio.

For each backbone setting (EfficientNet-Lite0 with the ``cpu`` profile's frozen stages, Lite0 fully trained,
ResNet50 as in the paper) it times SGD steps (forward + backward + update) on a random batch and counts
forward + backward FLOPs with ``torch.utils.flop_counter.FlopCounterMode``. The two-branch design should cost
what its FLOPs say: ``time ratio / FLOP ratio`` (both versus the baseline of the same setting) near 1 means no
hidden overhead; above 1 means the extra branch is slower per FLOP than the baseline (memory-bound layers at
the doubled resolution count no FLOPs). It runs as the ``cpu`` profile trains: channels_last and glibc malloc
retaining freed memory (``--memory-format`` and ``--malloc`` switch either off to see what each buys).
Grouped (depthwise) convolution backward FLOPs are counted with our own formula, torch's overcounts them.
Where everything trains, ``time/parts`` compares a SAG step with the baseline step plus the upper branch
timed alone (stem..Di at 2× the input, forward + backward): near 1 means the two-branch wiring adds nothing
beyond its two branches, so any time/FLOP excess comes from the kind of layers the upper branch runs. It also times the ``cpu`` profile's input pipeline alone (decode,
augment, collate) against a training step, to check that the loader is not the bottleneck.

Usage: ``python benchmarks/bench_training.py [--quick] [--freeze 3,2,1]`` or ``python -m sagkit bench --only training``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

DEPTHS = ((), (1,), (2,), (3,), (4,))


def _model(backbone: str, depths: tuple, freeze: int, num_classes: int, channels_last: bool) -> nn.Module:
    from sagkit.models import SAGNet

    model = SAGNet(num_classes, depths=depths, backbone=backbone, pretrained=None)
    if freeze >= 0:
        model.freeze_stages(freeze)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.train()


def _optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed,
                         output_padding, groups, output_mask, out_shape=None, **kwargs) -> int:
    """FLOPs of a (non-transposed) convolution's backward: each requested gradient (input, weight) costs
    as much as the forward, 2·N·prod(weight shape)·prod(output spatial size). torch's own formula (2.14)
    ignores ``groups`` in the weight gradient and overcounts a depthwise conv's by its channel count."""
    forward = 2 * grad_out_shape[0] * math.prod(w_shape) * math.prod(grad_out_shape[2:])
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def train_flops_per_image(model: nn.Module, height: int, width: int, num_classes: int, batch: int = 2) -> float:
    """Forward + backward FLOPs of one training image (counted on a small batch, then divided)."""
    x = torch.randn(batch, 3, height, width)
    y = torch.randint(0, num_classes, (batch,))
    mapping = {torch.ops.aten.convolution_backward: _conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        nn.functional.cross_entropy(model(x).logits, y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def seconds_per_step(model: nn.Module, batch: int, height: int, width: int, num_classes: int,
                     steps: int, warmup: int = 1, channels_last: bool = False) -> float:
    """Median wall time of one SGD step (forward, backward, update) on a random batch."""
    opt = _optimizer(model)
    x = torch.randn(batch, 3, height, width)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,))
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x).logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def upper_branch_seconds(backbone: str, depth: int, batch: int, height: int, width: int, steps: int,
                         channels_last: bool, warmup: int = 1) -> float:
    """Median time of the upper branch alone, fully trained: stem and stages 1..depth of a one-branch
    backbone on the 2×-upsampled input (N×3×2H×2W), forward + backward into its weights."""
    model = _model(backbone, (), -1, 2, channels_last)
    stages = model.backbone.stages()[:depth + 1]
    x = torch.randn(batch, 3, 2 * height, 2 * width)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        out = x
        for stage in stages:
            out = stage(out)
        model.zero_grad(set_to_none=True)
        out.mean().backward()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def loader_images_per_second(config, batches: int) -> tuple[float, int]:
    """Images/s of the ``config``'s training loader alone (decode + augment + collate), and its workers."""
    from sagkit.engine.builders import attach_transforms, build_data, make_train_loader
    from sagkit.models import SAGNet

    data = build_data(config)
    stats = SAGNet(2, depths=(), backbone=config.backbone, pretrained=None)
    attach_transforms(config, data, stats.input_mean, stats.input_std)
    loader = make_train_loader(config, data, epoch=1, world_size=1)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    seen, start = 0, time.perf_counter()
    for _, batch in zip(range(batches), it):
        seen += batch[0].shape[0]
    return seen / (time.perf_counter() - start), config.num_workers


def run(quick: bool, batch: int, steps: int, height: int, width: int, num_classes: int = 80,
        channels_last: bool = True, freezes: Optional[Sequence[int]] = None) -> dict:
    """``freezes``: Lite0 only, with each of these ``freeze_stages`` (default: the cpu profile's, then
    Lite0 and ResNet50 fully trained)."""
    from sagkit.config import get_profile

    cpu = get_profile("cpu")
    settings = [("efficientnet_lite0", cpu.freeze_stages)]
    if freezes:
        settings = [("efficientnet_lite0", f) for f in freezes]
    elif not quick:
        settings += [("efficientnet_lite0", -1), ("resnet50", -1)]
    depth_list = ((), (4,)) if quick else DEPTHS
    rows = []
    for backbone, freeze in settings:
        base = None
        for depths in depth_list:
            model = _model(backbone, depths, freeze, num_classes, channels_last)
            flops = train_flops_per_image(model, height, width, num_classes)
            n_steps = max(1, steps // 2) if backbone == "resnet50" else steps
            sec = seconds_per_step(model, batch, height, width, num_classes, n_steps, channels_last=channels_last)
            row = {"backbone": backbone, "frozen": freeze, "depths": "baseline" if not depths else f"D{depths[0]}",
                   "img_per_s": batch / sec, "gflop_per_img": flops / 1e9, "step_s": sec}
            if base is None:
                base = row
            row["time_ratio"] = sec / base["step_s"]
            row["flop_ratio"] = flops / (base["gflop_per_img"] * 1e9)
            row["time_per_flop"] = row["time_ratio"] / row["flop_ratio"]
            if depths and freeze < 0:
                # Everything trains, so the lower branch is the baseline's: SAG = baseline + upper branch.
                upper = upper_branch_seconds(backbone, depths[-1], batch, height, width, n_steps, channels_last)
                row["parts_ratio"] = sec / (base["step_s"] + upper)
            rows.append(row)
            print(_format_row(row), flush=True)
            del model
    cpu_sag = next(r for r in rows if r["backbone"] == "efficientnet_lite0" and r["depths"] == "D4"
                   and r["frozen"] == settings[0][1])
    loader_rate, workers = loader_images_per_second(cpu.replace(height=height, width=width, batch_size=batch),
                                                    batches=4 if quick else 10)
    return {
        "threads": torch.get_num_threads(), "channels_last": channels_last, "batch": batch,
        "input": [height, width], "rows": rows,
        "loader": {"img_per_s": loader_rate, "num_workers": workers, "cpu_profile_D4_step_img_per_s":
                   cpu_sag["img_per_s"], "loader_to_step_ratio": loader_rate / cpu_sag["img_per_s"]},
    }


HEADER = (f"{'backbone':<19}{'frozen':>7}{'model':>9}{'img/s':>8}{'GFLOP/img':>11}"
          f"{'time x':>8}{'FLOP x':>8}{'time/FLOP':>10}{'time/parts':>11}")


def _format_row(r: dict) -> str:
    frozen = "-" if r["frozen"] < 0 else f"0..{r['frozen']}"
    return (f"{r['backbone']:<19}{frozen:>7}{r['depths']:>9}{r['img_per_s']:>8.1f}{r['gflop_per_img']:>11.2f}"
            f"{r['time_ratio']:>8.2f}{r['flop_ratio']:>8.2f}{r['time_per_flop']:>10.2f}"
            + (f"{r['parts_ratio']:>11.2f}" if "parts_ratio" in r else f"{'-':>11}"))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Lite0 (cpu-profile freezing) baseline and D4 only")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per model (default 3, quick 2)")
    parser.add_argument("--height", type=int, default=None, help="input height (default: the cpu profile's)")
    parser.add_argument("--width", type=int, default=None, help="input width (default: the cpu profile's)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--memory-format", choices=("channels_last", "contiguous"), default=None,
                        help="activation and weight layout (default: the cpu profile's)")
    parser.add_argument("--malloc", choices=("retain", "default"), default=None,
                        help="glibc malloc: 'retain' freed memory as the engine does on CPU (retain_memory=True), "
                             "or glibc's 'default' (default: the cpu profile's setting)")
    parser.add_argument("--freeze", default=None, metavar="N[,N...]",
                        help="Lite0 only, with these freeze_stages values (-1: everything trains), e.g. 3,2,1")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    try:
        freezes = None if args.freeze is None else [int(f) for f in args.freeze.split(",") if f.strip()]
    except ValueError:
        parser.error(f"--freeze takes comma-separated integers from -1 to 4, got {args.freeze!r}")
    if freezes is not None and (not freezes or any(not -1 <= f <= 4 for f in freezes)):
        parser.error(f"--freeze takes comma-separated integers from -1 to 4, got {args.freeze!r}")

    from sagkit.config import get_profile

    cpu = get_profile("cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    height, width = args.height or cpu.height, args.width or cpu.width
    steps = args.steps or (2 if args.quick else 3)
    channels_last = cpu.channels_last if args.memory_format is None else args.memory_format == "channels_last"
    retain = cpu.retain_memory if args.malloc is None else args.malloc == "retain"
    if retain:
        from sagkit.engine.device import retain_freed_memory

        retain = retain_freed_memory()
    print(f"training throughput, batch {args.batch_size}, input {height}x{width}, "
          f"{torch.get_num_threads()} threads, {'channels_last' if channels_last else 'contiguous'}, "
          f"malloc {'retain' if retain else 'default'}; "
          f"ratios versus the baseline of the same backbone setting")
    print(HEADER, flush=True)
    result = run(args.quick, args.batch_size, steps, height, width, channels_last=channels_last, freezes=freezes)
    result["malloc"] = "retain" if retain else "default"
    ld = result["loader"]
    verdict = "not the bottleneck" if ld["loader_to_step_ratio"] > 1.5 else "a possible bottleneck"
    print(f"input pipeline alone (cpu profile, {ld['num_workers']} workers): {ld['img_per_s']:.0f} img/s vs "
          f"{ld['cpu_profile_D4_step_img_per_s']:.1f} img/s for a D4 training step -> {verdict}")
    if args.out:
        from sagkit.engine.checkpoint import atomic_write_json

        atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
