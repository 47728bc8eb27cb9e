"""The Self Attention Grid module (paper Section 3.2, Eqs. 4-7).

A 1×1 conv + BN + ReLU + spatial softmax on the lower branch's feature map gives a grid G that sums to
1 per image; the upper branch's map, max-pooled back to the grid's size, is weighted by G on every
channel and optionally L2-normalised.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sagkit.choices import ATTENTIONS, GRID_SCALES, L2NORM_DIMS, check_choice, check_grid_options

L2_EPS = 1e-12


class SelfAttentionGrid(nn.Module):
    """SAG at one depth: (lower N×C×h×w, upper N×C×sh×sw) → (v N×C×h×w, grid N×1×h×w).

    softmax: G = softmax_{h·w}(ReLU(BN(conv1×1(lower)))) (Eqs. 4-5; sums to 1 per image).
    sigmoid: G = sigmoid(BN(conv1×1(lower))), each cell gated on its own (no ReLU, which would keep
    every gate ≥ 0.5). uniform: G = 1/(h·w) in every cell, no learned parameters: a control that keeps the
upper branch and the max filter and takes the learned grid away. v = maxpool_{s×s}(upper) ⊙ G on every channel (Eq. 6); with `grid_scale="area"`
    the softmax grid is multiplied by h·w first so its mean weight is 1. With `l2norm`, v ← v / max(‖v‖₂,
    1e-12) (Eq. 7) where ‖v‖₂ is taken over the whole map of each image (`l2norm_dim="map"`, C·h·w values)
    or over channels at each position (`"channel"`; note this cancels G exactly, since G is one positive
    number per position). The conv has no bias: the BN that follows would cancel it.
    """

    def __init__(self, in_channels: int, attention: str = "softmax", l2norm: bool = False,
                 l2norm_dim: str = "map", scale_factor: int = 2, grid_scale: str = "none"):
        super().__init__()
        check_choice("attention", attention, ATTENTIONS)
        check_choice("l2norm_dim", l2norm_dim, L2NORM_DIMS)
        check_choice("grid_scale", grid_scale, GRID_SCALES)
        check_grid_options(attention, grid_scale)
        self.attention = attention
        self.l2norm = bool(l2norm)
        self.l2norm_dim = l2norm_dim
        self.scale_factor = int(scale_factor)
        self.grid_scale = grid_scale
        if attention != "uniform":
            self.conv = nn.Conv2d(in_channels, 1, kernel_size=1, bias=False)
            self.bn = nn.BatchNorm2d(1)

    def extra_repr(self) -> str:
        return (f"attention={self.attention!r}, l2norm={self.l2norm}, l2norm_dim={self.l2norm_dim!r}, "
                f"scale_factor={self.scale_factor}, grid_scale={self.grid_scale!r}")

    def grid(self, lower: torch.Tensor) -> torch.Tensor:
        """Attention grid N×1×h×w from the lower branch's map N×C×h×w."""
        if self.attention == "uniform":
            n, _, h, w = lower.shape
            return lower.new_full((n, 1, h, w), 1.0 / (h * w))
        score = self.bn(self.conv(lower))
        if self.attention == "sigmoid":
            return torch.sigmoid(score)
        n, _, h, w = score.shape
        return torch.softmax(F.relu(score).flatten(1), dim=1).view(n, 1, h, w)

    def forward(self, lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.scale_factor
        pooled = F.max_pool2d(upper, kernel_size=s, stride=s)
        if pooled.shape != lower.shape:
            raise ValueError(f"upper-branch map {tuple(upper.shape)} max-pooled by {s} gives "
                             f"{tuple(pooled.shape)}, which does not match the lower-branch map "
                             f"{tuple(lower.shape)}")
        grid = self.grid(lower)
        weight = grid * (grid.shape[-2] * grid.shape[-1]) if self.grid_scale == "area" else grid
        v = pooled * weight
        if self.l2norm:
            if self.l2norm_dim == "channel":
                v = F.normalize(v, p=2.0, dim=1, eps=L2_EPS)
            else:
                v = F.normalize(v.flatten(1), p=2.0, dim=1, eps=L2_EPS).view_as(v)
        return v, grid
