"""Pairwise distance matrices between feature sets, in torch, computed in row chunks."""

from __future__ import annotations

import numpy as np
import torch

METRICS = ("euclidean", "sqeuclidean", "cosine")


def as_tensor(x, name: str) -> torch.Tensor:
    """Return ``x`` (numpy array or tensor) as a torch tensor without copying where possible."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    try:
        return torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}") from exc


def _check_features(x, name: str) -> torch.Tensor:
    t = as_tensor(x, name)
    if t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D array of features (N x D), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.float()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t


def prepare_right(b: torch.Tensor, metric: str) -> torch.Tensor:
    """Per-row quantity of the right-hand set that every chunk reuses: |b|^2 (m,), or unit rows for cosine."""
    if metric == "cosine":
        return torch.nn.functional.normalize(b, dim=1)
    return (b * b).sum(1)


def distance_block(a: torch.Tensor, b: torch.Tensor, metric: str, right: torch.Tensor | None = None,
                   out: torch.Tensor | None = None) -> torch.Tensor:
    """Distances between rows of ``a`` (n x D) and rows of ``b`` (m x D) -> (n x m), in ``a``'s dtype.

    euclidean: sqrt(max(|b|^2 - 2 a.b + |a|^2, 0)); sqeuclidean: the same without the square root;
    cosine: 1 - a.b / (|a| |b|) (zero rows stay zero vectors). ``right`` is ``prepare_right(b, metric)``;
    ``out`` (n x m, contiguous) receives the result without any other n x m temporary.
    """
    if right is None:
        right = prepare_right(b, metric)
    if metric == "cosine":
        an = torch.nn.functional.normalize(a, dim=1)
        one = torch.ones((1, 1), dtype=a.dtype, device=a.device)
        return torch.addmm(one, an, right.t(), beta=1, alpha=-1, out=out)
    out = torch.addmm(right[None, :], a, b.t(), beta=1, alpha=-2, out=out)
    out.add_((a * a).sum(1)[:, None]).clamp_(min=0)
    if metric == "euclidean":
        out.sqrt_()
    return out


def paired_distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """Distance between row i of ``a`` and row i of ``b`` (both n x D) -> (n,), same formula as distance_block."""
    if metric == "cosine":
        an = torch.nn.functional.normalize(a, dim=1)
        bn = torch.nn.functional.normalize(b, dim=1)
        return 1 - (an * bn).sum(1)
    out = ((b * b).sum(1) - 2 * (a * b).sum(1) + (a * a).sum(1)).clamp_(min=0)
    if metric == "euclidean":
        out.sqrt_()
    return out


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def compute_distance_matrix(a, b, metric: str = "euclidean", chunk: int | None = None) -> torch.Tensor:
    """Distance matrix (n x m) between features ``a`` (n x D) and ``b`` (m x D).

    Computed with one matrix product per chunk of ``chunk`` rows of ``a`` (default: about 16M
    elements per chunk), written straight into the result, so that temporaries stay small; the
    result lives on ``a``'s device, float32 unless an input is float64.
    ``metric``: "euclidean" (the plain L2 distance, as in the paper), "sqeuclidean" (squared L2; what
    torchreid calls "euclidean") or "cosine" (1 - cosine similarity).
    """
    check_metric(metric)
    a = _check_features(a, "a")
    b = _check_features(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same feature dimension, got {a.shape[1]} and {b.shape[1]}")
    if chunk is None:
        chunk = max(1, (1 << 24) // max(b.shape[0], 1))
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    a = a.to(dtype)
    b = b.to(device=a.device, dtype=dtype)
    right = prepare_right(b, metric)
    out = torch.empty((a.shape[0], b.shape[0]), dtype=dtype, device=a.device)
    for start in range(0, a.shape[0], chunk):
        stop = min(start + chunk, a.shape[0])
        distance_block(a[start:stop], b, metric, right, out=out[start:stop])
    return out
