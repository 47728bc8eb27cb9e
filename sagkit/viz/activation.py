"""Activation maps for any SAGNet, the baseline included: what the last stage responds to.

Two maps over the last feature map A (N×C×h×w, h×w = H/32×W/32), both taken in eval mode:
- channel norm: ‖A[:, :, i, j]‖₂ over the C channels, where the features are strong;
- Grad-CAM (Selvaraju et al., 2017) on one identity logit y_k of the model's classifier:
  relu(Σ_c α_c · A_c) with α_c = mean_{i,j} ∂y_k/∂A_c[i, j], where the evidence for identity k lies.
Each is min-max scaled to [0, 1] per image. The baseline has no attention grid, so these are what
Figure 4 and the explorer show for it beside the SAG grids; :func:`upsample_maps` brings them to the
image size for :func:`~sagkit.viz.heatmaps.overlay_heatmap`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from sagkit.viz.heatmaps import normalize_map, upsample_grid

ACTIVATION_METHODS = ("norm", "gradcam")
ACTIVATION_LABELS = {"norm": "channel norm", "gradcam": "Grad-CAM"}
# A map whose values spread less than this fraction of their magnitude counts as constant (float32 noise).
RELATIVE_FLAT = 1e-5


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a normalised N×3×H×W tensor; got {shape}")


def _check_model(model, needs_logits: bool) -> None:
    wanted = ("forward_features", "forward_logits") if needs_logits else ("forward_features",)
    missing = [name for name in wanted if not callable(getattr(model, name, None))]
    if missing:
        raise TypeError(f"activation maps need a model with {' and '.join(wanted)} (a sagkit.models.SAGNet); "
                        f"{type(model).__name__} has no {', '.join(missing)}")


@contextlib.contextmanager
def _eval_mode(model):
    """The model in eval mode (BatchNorm running statistics, no dropout), its mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _normalized(maps: torch.Tensor) -> torch.Tensor:
    """N×h×w → N×h×w float32 on the CPU, each map min-max scaled to [0, 1]; constant maps become 0.

    "Constant" is relative to the map's own scale (RELATIVE_FLAT), since features and gradients can be
    tiny (an untrained Lite0's last map is ~1e-8) and still have a shape worth showing.
    """
    flat = maps.detach().double().cpu().flatten(1)
    low, high = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    spread = high - low
    scale = torch.maximum(high.abs(), low.abs())
    varies = (spread > RELATIVE_FLAT * scale) & (spread > 0)
    scaled = torch.where(varies, (flat - low) / torch.where(varies, spread, torch.ones_like(spread)), 0.0)
    return scaled.float().view_as(maps).clamp_(0.0, 1.0)


def last_features(model, images: torch.Tensor) -> torch.Tensor:
    """Eval-mode last feature map N×C×h×w of normalised ``images`` N×3×H×W, without gradients."""
    _check_images(images)
    _check_model(model, needs_logits=False)
    with _eval_mode(model), torch.no_grad():
        return model.forward_features(images)


def channel_norm_map(features: torch.Tensor) -> torch.Tensor:
    """N×C×h×w feature map → N×h×w: the L2 norm over channels at each position, scaled to [0, 1]."""
    if not isinstance(features, torch.Tensor) or features.ndim != 4:
        raise ValueError(f"features must be an N×C×h×w tensor; got {getattr(features, 'shape', type(features))}")
    return _normalized(torch.linalg.vector_norm(features.float(), ord=2, dim=1))


def _identity_index(identities, logits: torch.Tensor) -> torch.Tensor:
    """N int64 indices: each image's top logit (None), one identity for all (int) or one per image."""
    n, classes = logits.shape
    if identities is None:
        return logits.argmax(dim=1)
    values = [identities] * n if isinstance(identities, (int, np.integer)) else list(identities)
    if len(values) != n:
        raise ValueError(f"identities has {len(values)} entries for {n} images: give one per image, one int "
                         f"for all, or None for each image's top-scoring identity")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < classes:
            raise ValueError(f"identity {value!r} is not a class of this model's classifier: use an int in "
                             f"0..{classes - 1} (training identities), or None for each image's top-scoring identity")
    return torch.as_tensor([int(v) for v in values], dtype=torch.int64, device=logits.device)


def grad_cam_from_features(model, features: torch.Tensor, identities=None) -> torch.Tensor:
    """Grad-CAM N×h×w in [0, 1] from the eval-mode last feature map N×C×h×w (see :func:`grad_cam`)."""
    _check_model(model, needs_logits=True)
    features = features.detach().float().requires_grad_(True)
    with _eval_mode(model), torch.enable_grad():
        logits = model.forward_logits(features)
        index = _identity_index(identities, logits.detach())
        score = logits.gather(1, index[:, None]).sum()
        (grad,) = torch.autograd.grad(score, features)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    return _normalized(torch.relu((weights * features.detach()).sum(dim=1)))


def grad_cam(model, images: torch.Tensor, identities: int | Sequence[int] | None = None) -> torch.Tensor:
    """Grad-CAM N×h×w in [0, 1] of identity logits on the last feature map (eval mode, weights untouched).

    ``identities``: the class index scored for each image (int for all, a sequence of N, or None for
    each image's top-scoring identity; query identities of a test split are not classes).
    """
    _check_model(model, needs_logits=True)
    return grad_cam_from_features(model, last_features(model, images), identities)


def _maps_from_features(model, features: torch.Tensor, method: str, identities=None) -> torch.Tensor:
    """N×h×w map of a method already checked against ACTIVATION_METHODS."""
    if method == "norm":
        return channel_norm_map(features)
    return grad_cam_from_features(model, features, identities)


def activation_maps(model, images: torch.Tensor, method: str = "gradcam", identities=None) -> torch.Tensor:
    """N×h×w map in [0, 1] of ``images`` under ``method`` ("norm" or "gradcam", see the module docstring)."""
    if method not in ACTIVATION_METHODS:
        raise ValueError(f"activation method {method!r} is not known; choose one of {ACTIVATION_METHODS}")
    return _maps_from_features(model, last_features(model, images), method, identities)


def named_activation_maps(model, batches: Iterable[torch.Tensor], methods: Sequence[str] = ACTIVATION_METHODS,
                          prefix: str = "baseline") -> dict[str, torch.Tensor]:
    """{"<prefix> <label>": N×h×w} for each method over image batches (each B×3×H×W), concatenated in order.

    One forward pass per batch serves every method. The names label the columns of Figure 4 and the
    explorer's choices, e.g. "baseline Grad-CAM".
    """
    unknown = [m for m in methods if m not in ACTIVATION_METHODS]
    if unknown or not methods:
        raise ValueError(f"activation methods {list(methods)!r}: choose one or more of {ACTIVATION_METHODS}")
    parts: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    for batch in batches:
        features = last_features(model, batch)
        for method in methods:
            parts[method].append(_maps_from_features(model, features, method))
    if not parts[methods[0]]:
        raise ValueError("named_activation_maps got no image batches")
    return {f"{prefix} {ACTIVATION_LABELS[m]}".strip(): torch.cat(parts[m]) for m in methods}


def upsample_maps(maps, size: tuple[int, int]) -> np.ndarray:
    """N×h×w maps → N×H×W float32 in [0, 1] at ``size`` = (H, W): bilinear, then min-max per map again."""
    return np.stack([normalize_map(upsample_grid(m, size)) for m in maps]).astype(np.float32)
