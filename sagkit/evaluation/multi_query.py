"""Multi-query pooling (Market-1501 Table 3): features of one identity seen by one camera, pooled."""

from __future__ import annotations

import numpy as np
import torch

from sagkit.evaluation.distance import as_tensor

POOL_MODES = ("mean", "max")


def pool_multi_query(q_feats, q_pids, q_camids, mode: str = "mean", normalize: bool = False):
    """Pool query features sharing (pid, camera) -> (pooled Tensor K x D, pids ndarray K, camids ndarray K).

    Groups come in order of first appearance. ``mode`` "mean" (as in the Market-1501 multi-query
    baseline) or "max" (element-wise). ``normalize`` L2-normalises the pooled vectors. Market's
    official multi-query setting pools each query with the gt_bbox images of the same identity and
    camera; this function pools whatever feature set it is given (e.g. query + gt_bbox features), and
    the pooled queries are then evaluated as usual (same-camera gallery images of the id left out).
    """
    if mode not in POOL_MODES:
        raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}")
    feats = as_tensor(q_feats, "q_feats")
    if feats.dim() != 2:
        raise ValueError(f"q_feats must be 2-D (N x D), got shape {tuple(feats.shape)}")
    if not feats.is_floating_point():
        feats = feats.float()
    pids = np.asarray(as_tensor(q_pids, "q_pids").cpu()).astype(np.int64).reshape(-1)
    cams = np.asarray(as_tensor(q_camids, "q_camids").cpu()).astype(np.int64).reshape(-1)
    if not (len(pids) == len(cams) == feats.shape[0]):
        raise ValueError(f"q_feats ({feats.shape[0]} rows), q_pids ({len(pids)}) and q_camids ({len(cams)}) "
                         "must have the same length")
    if feats.shape[0] == 0:
        raise ValueError("q_feats is empty")
    _, first, inverse = np.unique(np.stack([pids, cams], 1), axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = torch.from_numpy(rank[inverse.reshape(-1)]).to(feats.device)
    num = len(order)
    if mode == "mean":
        pooled = torch.zeros((num, feats.shape[1]), dtype=feats.dtype, device=feats.device).index_add_(0, group, feats)
        pooled /= torch.bincount(group, minlength=num).to(feats.dtype)[:, None]
    else:
        index = group[:, None].expand(-1, feats.shape[1])
        pooled = torch.full((num, feats.shape[1]), float("-inf"), dtype=feats.dtype, device=feats.device)
        pooled.scatter_reduce_(0, index, feats, "amax")
    if normalize:
        pooled = torch.nn.functional.normalize(pooled, dim=1)
    keep = first[order]
    return pooled, pids[keep], cams[keep]
