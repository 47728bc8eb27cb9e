"""Stable orders of integer keys for the re-ranking's index work, fast on the CPU.

torch's CPU sort takes about 100 ns per int64 key, numpy's (vectorised quicksort) about 10, but
numpy's argsort is slow again. So on the CPU the position is packed into the low bits of each key
and the packed keys are sorted by value: equal keys stay in position order (a stable sort).
"""

from __future__ import annotations

import numpy as np
import torch


def _packable(keys: torch.Tensor, positions: int) -> int:
    """Bits needed for positions, or 0 when keys are not CPU int64 that leave room for them."""
    if keys.device.type != "cpu" or keys.dtype != torch.int64 or keys.numel() == 0:
        return 0
    bits = max(1, (positions - 1).bit_length())
    low, high = int(keys.min()), int(keys.max())
    return bits if low >= 0 and high < 1 << (62 - bits) else 0


def stable_argsort(keys: torch.Tensor) -> torch.Tensor:
    """Positions that order the 1-D integer ``keys`` ascending, ties in position order (int64)."""
    bits = _packable(keys, keys.numel())
    if not bits:
        return torch.sort(keys, stable=True).indices
    packed = (keys.numpy() << bits) | np.arange(keys.numel(), dtype=np.int64)
    packed.sort()
    return torch.from_numpy(packed & ((1 << bits) - 1))


def sort_rows(keys: torch.Tensor):
    """(values, indices) of each row of the 2-D integer ``keys`` sorted ascending, ties by column."""
    bits = _packable(keys, keys.shape[1])
    if not bits:
        return torch.sort(keys, dim=1, stable=True)
    packed = (keys.numpy() << bits) | np.arange(keys.shape[1], dtype=np.int64)
    packed.sort(axis=1)
    return torch.from_numpy(packed >> bits), torch.from_numpy(packed & ((1 << bits) - 1))
