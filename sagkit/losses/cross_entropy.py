"""Identity cross-entropy with optional label smoothing; smoothing 0 is the paper's Eq. 2."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropyLoss(nn.Module):
    """Mean over the batch of ``-Σ_k q_k log softmax(logits)_k`` with ``q = (1-ε)·onehot(y) + ε/K``.

    logits: N×K, targets: N (class indices). ``smoothing`` ε in [0, 1); ε = 0 is plain cross-entropy
    (Eq. 2), ε = 0.1 is the BoT recipe's label smoothing.
    """

    reads = "logits"

    def __init__(self, smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= float(smoothing) < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {smoothing!r}")
        self.smoothing = float(smoothing)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.smoothing)


def build_cross_entropy(config, num_classes: int | None, feature_dim: int | None) -> nn.Module:
    """The loss as ``config`` sets it (``sagkit.choices.LOSS_BUILDERS`` names this builder)."""
    return CrossEntropyLoss(config.label_smoothing)
