"""Image transforms of the paper (Section 4.3) and the paper's pixel normalisation.

Training: resize to 160x64, random horizontal flip, scale pixels to [-1, 1] and zero-centre
by the mean pixel, random erasing.  Evaluation: resize and normalise only.  Optionally (BoT, not
the paper) ``pad`` pixels of zero padding on each side after the flip and a random crop back to
height x width.

Normalisation: with x in [0, 1], the paper computes ``(2x - 1) - m`` where ``m`` is the
ImageNet mean pixel mapped to [-1, 1] (``m = 2 * IMAGENET_MEAN - 1``).  That equals
``(x - mean) / std`` with ``std = 0.5`` and ``mean = 0.5 + 0.5 * m = IMAGENET_MEAN``, which is
what ``PAPER_MEAN`` / ``PAPER_STD`` hold.  A backbone that expects other statistics can pass
its own ``mean``/``std`` (e.g. ``SAGNet.input_mean``/``input_std``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAPER_MEAN = tuple(0.5 + 0.5 * (2 * m - 1) for m in IMAGENET_MEAN)  # == IMAGENET_MEAN, see module doc
PAPER_STD = (0.5, 0.5, 0.5)


def build_transforms(height: int = 160, width: int = 64, train: bool = True,
                     mean: Sequence[float] = PAPER_MEAN, std: Sequence[float] = PAPER_STD,
                     flip_prob: float = 0.5, erase_prob: float = 0.5, erase_value: float | str = 0,
                     erase_scale: tuple[float, float] = (0.02, 0.33),
                     erase_ratio: tuple[float, float] = (0.3, 3.3), pad: int = 0) -> T.Compose:
    """PIL image -> normalised float tensor 3 x height x width.

    ``erase_value=0`` fills erased boxes with the mean pixel (0 after normalisation);
    ``"random"`` uses per-pixel noise.  Probabilities of 0 drop the step.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    for name, p in (("flip_prob", flip_prob), ("erase_prob", erase_prob)):
        if not 0 <= p <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad must be a non-negative number of pixels, got {pad!r}")
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError("mean and std must be 3 values, std positive")
    steps: list = [T.Resize((height, width), interpolation=T.InterpolationMode.BILINEAR, antialias=True)]
    if train and flip_prob > 0:
        steps.append(T.RandomHorizontalFlip(flip_prob))
    if train and pad > 0:
        steps += [T.Pad(pad, fill=0), T.RandomCrop((height, width))]
    steps += [T.ToTensor(), T.Normalize(tuple(mean), tuple(std))]
    if train and erase_prob > 0:
        steps.append(T.RandomErasing(p=erase_prob, scale=erase_scale, ratio=erase_ratio, value=erase_value))
    return T.Compose(steps)


def denormalize(x: torch.Tensor, mean: Sequence[float] = PAPER_MEAN, std: Sequence[float] = PAPER_STD) -> torch.Tensor:
    """Undo the normalisation (N x 3 x H x W or 3 x H x W) back to [0, 1] pixels, for display."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x * s + m).clamp(0, 1)
