"""Center loss (Wen et al., ECCV 2016): pulls each feature towards a running center of its identity."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class CenterLoss(nn.Module):
    """Mean over the batch of ``‖x_i − c_{y_i}‖²`` (features N×D, targets N), as BoT defines it.

    The centers (``num_classes``×D buffer, starting at 0) are not learned by the optimiser: in training,
    after each loss, they move by Wen et al.'s rule ``c_j ← c_j − α·Σ_{y_i=j}(c_j − x_i) / (1 + n_j)``
    (n_j = images of identity j in the batch), summed over all processes under DDP so every rank keeps
    the same centers. BoT instead runs SGD (lr 0.5) on them; the rule here needs no second optimiser.
    """

    reads = "features"

    def __init__(self, num_classes: int, feature_dim: int, alpha: float = 0.5):
        super().__init__()
        if not 0.0 < float(alpha) <= 1.0:
            raise ValueError(f"center loss alpha must be in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        self.register_buffer("centers", torch.zeros(num_classes, feature_dim))

    def forward(self, features: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = features.float()
        if x.shape[1] != self.centers.shape[1]:
            raise ValueError(f"center loss expects {self.centers.shape[1]}-d features, got {x.shape[1]}-d")
        loss = (x - self.centers[targets]).pow(2).sum(dim=1).mean()
        if self.training and torch.is_grad_enabled():
            self._update(x.detach(), targets)
        return loss

    @torch.no_grad()
    def _update(self, x: torch.Tensor, targets: torch.Tensor) -> None:
        """One step of Wen et al.'s center update from this batch (all ranks' batches under DDP)."""
        delta = torch.zeros_like(self.centers).index_add_(0, targets, self.centers[targets] - x)
        counts = torch.zeros(len(self.centers), device=x.device, dtype=x.dtype).index_add_(
            0, targets, torch.ones_like(targets, dtype=x.dtype))
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(delta)
            dist.all_reduce(counts)
        self.centers -= self.alpha * delta / (1.0 + counts)[:, None]


def build_center(config, num_classes: int | None, feature_dim: int | None) -> nn.Module:
    """The loss as ``config`` sets it (``sagkit.choices.LOSS_BUILDERS`` names this builder)."""
    return CenterLoss(num_classes, feature_dim, config.center_alpha)
