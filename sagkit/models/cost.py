"""What a model costs: parameters and forward FLOPs per image, counted rather than estimated (issue 22)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "forward_gflops"]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each shared tensor once); ``trainable_only``: those with requires_grad."""
    seen = {id(p): p for p in model.parameters()}
    return sum(p.numel() for p in seen.values() if p.requires_grad or not trainable_only)


@torch.no_grad()
def forward_gflops(model: nn.Module, height: int, width: int) -> float:
    """GFLOPs (10⁹ floating-point operations, a multiply-add counted as 2) of one eval-mode forward pass of one
    3×height×width image, as ``torch.utils.flop_counter`` counts them (convolutions and matrix products;
    element-wise work such as BatchNorm, activations and pooling is not counted). The model is left in the
    mode it was in."""
    was_training = model.training
    model.eval()
    try:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        x = torch.zeros(1, 3, int(height), int(width), device=device)
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
        return counter.get_total_flops() / 1e9
    finally:
        model.train(was_training)
