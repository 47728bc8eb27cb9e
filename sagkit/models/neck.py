"""Re-id heads ("necks") on the pooled backbone feature, and the model's output in training.

- ``"paper"`` (``EmbeddingHead``): Linear(C, 512) → BatchNorm1d → LeakyReLU(0.1) → Dropout(0.5) →
  Linear(512, classes). The embedding after the neck is the 512-d BatchNorm output.
- ``"bnneck"`` (``BNNeckHead``, BoT, Luo et al. 2019): BatchNorm1d(C) without a learned bias →
  Linear(C, classes) without bias. The embedding after the neck is the C-d BatchNorm output.

In training a head returns a ``TrainOutput``: the triplet and center losses read ``features`` (before the
neck, as BoT puts its triplet loss), cross-entropy reads ``logits`` (after it).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn

from sagkit.choices import check_head_options

# The paper head's bottleneck width and dropout (Section 4.3 and the authors' code).
PAPER_DIM = 512
PAPER_DROPOUT = 0.5


class TrainOutput(NamedTuple):
    """What a model gives in train mode: ``logits`` N×classes, ``features`` N×C (the pooled feature before
    the neck) and ``embedding`` N×dim (after the neck). A NamedTuple, so DDP and torch.compile pass it on."""

    logits: torch.Tensor
    features: torch.Tensor
    embedding: torch.Tensor


class EmbeddingHead(nn.Module):
    """Baseline re-id head: pooled N×C → Linear → BN1d (N×dim embedding) → LeakyReLU(0.1) → Dropout → logits."""

    def __init__(self, in_features: int, num_classes: int, dim: int = PAPER_DIM, dropout: float = PAPER_DROPOUT):
        super().__init__()
        self.fc = nn.Linear(in_features, dim)
        self.bn = nn.BatchNorm1d(dim)
        self.act = nn.LeakyReLU(0.1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(dim, num_classes)
        self.dim = dim
        nn.init.kaiming_normal_(self.fc.weight, a=0.0, mode="fan_out")
        nn.init.zeros_(self.fc.bias)
        nn.init.normal_(self.bn.weight, 1.0, 0.02)
        nn.init.zeros_(self.bn.bias)
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    def embed(self, pooled: torch.Tensor) -> torch.Tensor:
        """N×C → N×dim (after Linear and BN, before the activation and dropout)."""
        return self.bn(self.fc(pooled))

    def forward(self, pooled: torch.Tensor) -> TrainOutput:
        embedding = self.embed(pooled)
        return TrainOutput(self.classifier(self.dropout(self.act(embedding))), pooled, embedding)


class BNNeckHead(nn.Module):
    """BoT's BNNeck: pooled N×C → BatchNorm1d(C) (bias fixed at 0) → N×C embedding → Linear(C, classes, no bias).

    The BatchNorm separates the two losses: the triplet loss shapes the feature before it (in Euclidean
    space), cross-entropy the normalised feature after it, which is also the retrieval embedding.
    """

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(in_features)
        self.bn.bias.requires_grad_(False)
        self.classifier = nn.Linear(in_features, num_classes, bias=False)
        self.dim = in_features
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def embed(self, pooled: torch.Tensor) -> torch.Tensor:
        """N×C → N×C (BatchNorm output)."""
        return self.bn(pooled)

    def forward(self, pooled: torch.Tensor) -> TrainOutput:
        embedding = self.embed(pooled)
        return TrainOutput(self.classifier(embedding), pooled, embedding)


def build_neck(neck: str, in_features: int, num_classes: int, bottleneck_dim: Optional[int] = None,
               dropout: Optional[float] = None) -> nn.Module:
    """The head named ``neck``. ``bottleneck_dim`` and ``dropout`` are options of the paper's head only
    (None: ``PAPER_DIM``, ``PAPER_DROPOUT``)."""
    check_head_options(neck, bottleneck_dim, dropout)
    if neck == "bnneck":
        return BNNeckHead(in_features, num_classes)
    return EmbeddingHead(in_features, num_classes, dim=PAPER_DIM if bottleneck_dim is None else bottleneck_dim,
                         dropout=PAPER_DROPOUT if dropout is None else dropout)
