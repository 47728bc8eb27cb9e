"""Optimiser, learning-rate schedule and loss of the paper (Section 4.3, Eq. 2)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["build_optimizer", "build_scheduler", "build_criterion", "current_lrs"]


def build_optimizer(model: nn.Module, config) -> torch.optim.SGD:
    """SGD with ``lr_pretrained`` for ImageNet-initialised layers, ``lr_sag`` for the SAG modules and
    ``lr_new`` for the head. Frozen parameters and empty groups are left out."""
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
    return torch.optim.SGD(
        kept,
        lr=config.lr_new,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config) -> torch.optim.lr_scheduler.StepLR:
    """×``lr_gamma`` every ``lr_step`` epochs (stepped once per epoch)."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)


def build_criterion(config) -> nn.Module:
    """Cross-entropy over identities (Eq. 2), optionally label-smoothed (0 = the paper)."""
    return nn.CrossEntropyLoss(label_smoothing=float(config.label_smoothing))


def current_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    """Learning rate of each parameter group."""
    return [float(g["lr"]) for g in optimizer.param_groups]
