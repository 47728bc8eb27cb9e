"""The losses a config can name, and the criterion that sums them with their weights.

``losses={"ce": 1.0}`` (the paper) or e.g. ``{"ce": 1.0, "triplet": 1.0, "center": 0.0005}`` (BoT).
Each loss reads one field of the model's training output (``sagkit.models.TrainOutput``): "ce" the
logits, "triplet" and "center" the pooled feature before the neck.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from sagkit.choices import LOSS_BUILDERS, LOSS_NAMES, load_entry

__all__ = ["LOSS_NAMES", "Criterion", "build_criterion"]

# name -> builder(config, num_classes, feature_dim), as sagkit.choices.LOSS_BUILDERS names them
_BUILDERS: dict[str, Callable[..., nn.Module]] = {name: load_entry(spec) for name, spec in LOSS_BUILDERS.items()}


class Criterion(nn.Module):
    """Weighted sum of named losses over a model's training output.

    ``forward(output, targets)`` → ``(total, parts)``: the scalar to back-propagate and ``{name: value}``
    of each loss before its weight (detached), for the progress bar and ``metrics.csv``.
    """

    def __init__(self, losses: dict[str, nn.Module], weights: dict[str, float]):
        super().__init__()
        if not losses or set(losses) != set(weights):
            raise ValueError("a criterion needs at least one loss and one weight per loss")
        self.losses = nn.ModuleDict(losses)
        self.weights = {name: float(weights[name]) for name in losses}

    def forward(self, output, targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total, parts = None, {}
        for name, loss in self.losses.items():
            value = loss(getattr(output, loss.reads), targets)
            parts[name] = value.detach()
            weighted = self.weights[name] * value
            total = weighted if total is None else total + weighted
        return total, parts


def build_criterion(config, num_classes: Optional[int] = None, feature_dim: Optional[int] = None) -> Criterion:
    """The criterion of ``config.losses``; the center loss also needs ``num_classes`` and the model's
    ``feature_dim`` (the size of the pooled feature before the neck)."""
    if "center" in config.losses and (num_classes is None or feature_dim is None):
        raise ValueError("the center loss needs num_classes and feature_dim (build_criterion(config, "
                         "num_classes, model.feature_dim))")
    unknown = sorted(set(config.losses) - set(LOSS_NAMES))
    if unknown:
        raise ValueError(f"ExperimentConfig.losses names unknown losses {unknown}: use {list(LOSS_NAMES)}")
    modules = {name: _BUILDERS[name](config, num_classes, feature_dim) for name in config.losses}
    return Criterion(modules, dict(config.losses))
