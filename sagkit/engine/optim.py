"""Optimiser, learning-rate schedule and loss of a run: the paper's (Section 4.3, Eq. 2) by default, BoT's
Adam, warm-up and multi-step or cosine decay, and the losses of ``sagkit.losses`` when the config names them."""

from __future__ import annotations

import bisect
import math

import torch
from torch import nn

from sagkit.losses import build_criterion

__all__ = ["build_optimizer", "build_scheduler", "build_criterion", "current_lrs", "lr_factor"]


def build_optimizer(model: nn.Module, config) -> torch.optim.Optimizer:
    """``config.optimizer`` ("sgd": momentum and Nesterov from the config; "adam": L2 weight decay added to
    the gradient, as BoT; "adamw": decoupled decay) with ``lr_pretrained`` for ImageNet-initialised layers,
    ``lr_sag`` for the SAG modules and ``lr_new`` for the head. Frozen parameters and empty groups are left out."""
    if hasattr(model, "param_groups"):
        groups = model.param_groups(config.lr_pretrained, config.lr_new, lr_sag=config.lr_sag)
    else:
        groups = [{"params": list(model.parameters()), "lr": config.lr_new}]
    kept = []
    for group in groups:
        params = [p for p in group["params"] if p.requires_grad]
        if params:
            kept.append({**group, "params": params})
    if not kept:
        raise ValueError("no trainable parameters: freeze_stages froze the whole model")
    if config.optimizer == "adam":
        return torch.optim.Adam(kept, lr=config.lr_new, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(kept, lr=config.lr_new, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        kept,
        lr=config.lr_new,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )


def lr_factor(epoch: int, config) -> float:
    """Multiplier of every group's learning rate after ``epoch`` completed epochs (0 = the first epoch).

    warm-up (``epoch < warmup_epochs`` = W): ``warmup_factor + (1 − warmup_factor)·epoch / W``, times
    - "step": ``lr_gamma ** (epoch // lr_step)``;
    - "multistep": ``lr_gamma ** (number of lr_milestones <= epoch)``;
    - "cosine": ``(1 + cos(π·(epoch − W) / (epochs − W))) / 2`` after the warm-up, 1 during it.
    """
    warm = config.warmup_epochs
    factor = 1.0
    if epoch < warm:
        factor = config.warmup_factor + (1.0 - config.warmup_factor) * epoch / warm
    if config.lr_schedule == "step":
        return factor * config.lr_gamma ** (epoch // config.lr_step)
    if config.lr_schedule == "multistep":
        return factor * config.lr_gamma ** bisect.bisect_right(config.lr_milestones, epoch)
    progress = max(epoch - warm, 0) / (config.epochs - warm)
    return factor * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, config) -> torch.optim.lr_scheduler.LRScheduler:
    """The schedule of ``lr_factor``, stepped once per epoch. The paper's plain step decay stays a ``StepLR``
    (×``lr_gamma`` every ``lr_step`` epochs), so checkpoints written before the other schedules existed resume."""
    if config.lr_schedule == "step" and config.warmup_epochs == 0:
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: lr_factor(epoch, config))


def current_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    """Learning rate of each parameter group."""
    return [float(g["lr"]) for g in optimizer.param_groups]
