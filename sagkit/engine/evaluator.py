"""Evaluate a model on query/gallery records: features (sharded over ranks under DDP, gathered back in
dataset order), Euclidean distances, CMC rank-1/5/10 and mAP, optionally with k-reciprocal re-ranking."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from .distributed import DistInfo, gather_in_order, shard_range

__all__ = ["extract_split_features", "evaluate_model", "metrics_from_distmat", "protocol_for"]


def extract_split_features(
    model: torch.nn.Module,
    records: Sequence,
    transform,
    *,
    device: torch.device,
    batch_size: int = 128,
    num_workers: int = 0,
    flip: bool = False,
    dist_info: Optional[DistInfo] = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """N×D float32 features of ``records`` (L2-normalised, fp32 even when training used autocast), in the
    order of ``records``, on the CPU.

    Under DDP each rank extracts a contiguous shard (``shard_range``) and the shards are all-gathered
    (padded to equal length, then trimmed), so every rank ends with the same full matrix.
    """
    from sagkit.data import build_test_loader
    from sagkit.evaluation import extract_features

    info = dist_info or DistInfo()
    shard = shard_range(len(records), info.rank, info.world_size)
    mine = [records[i] for i in shard]
    model.eval()
    if mine:
        loader = build_test_loader(mine, transform, batch_size, num_workers=num_workers)
        feats, _, _ = extract_features(model, loader, flip=flip, normalize=True, device=device,
                                       channels_last=channels_last)
        feats = feats.float().cpu()
    else:
        feats = torch.zeros((0, _embedding_dim(model)), dtype=torch.float32)
    if info.is_distributed:
        feats = gather_in_order(feats, info, len(records))
    return feats


def _embedding_dim(model: torch.nn.Module) -> int:
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    return int(inner.embedding_dim)


def metrics_from_distmat(distmat, query: Sequence, gallery: Sequence, protocol: str = "market") -> dict:
    """``{"rank1", "rank5", "rank10", "mAP"}`` in percent from a query×gallery distance matrix."""
    from sagkit.evaluation import evaluate

    q_pids = np.array([r.pid for r in query])
    g_pids = np.array([r.pid for r in gallery])
    q_cams = np.array([r.camid for r in query])
    g_cams = np.array([r.camid for r in gallery])
    distmat = distmat.numpy() if isinstance(distmat, torch.Tensor) else np.asarray(distmat)
    cmc, mAP = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=min(50, len(gallery)),
                        protocol=protocol)[:2]
    cmc = np.asarray(cmc, dtype=np.float64)

    def rank(k: int) -> float:
        return float(cmc[min(k, len(cmc)) - 1]) * 100.0

    return {"rank1": rank(1), "rank5": rank(5), "rank10": rank(10), "mAP": float(mAP) * 100.0}


def evaluate_model(
    model: torch.nn.Module,
    query: Sequence,
    gallery: Sequence,
    transform,
    *,
    device: torch.device,
    batch_size: int = 128,
    num_workers: int = 0,
    flip: bool = False,
    rerank: bool = False,
    rerank_k1: int = 20,
    rerank_k2: int = 6,
    rerank_lambda: float = 0.3,
    protocol: str = "market",
    dist_info: Optional[DistInfo] = None,
    channels_last: bool = False,
) -> dict:
    """Rank-1/5/10 and mAP (percent) of ``model`` on ``query`` vs ``gallery`` (lists of ImageRecord).

    With ``rerank`` the k-reciprocal re-ranked metrics are added as ``rerank_rank1`` ... ``rerank_mAP``.
    """
    from sagkit.evaluation import compute_distance_matrix, re_rank_features

    kwargs = dict(device=device, batch_size=batch_size, num_workers=num_workers, flip=flip,
                  dist_info=dist_info, channels_last=channels_last)
    q = extract_split_features(model, query, transform, **kwargs)
    g = extract_split_features(model, gallery, transform, **kwargs)
    distmat = compute_distance_matrix(q, g, metric="euclidean")
    out = metrics_from_distmat(distmat, query, gallery, protocol)
    if rerank:
        rr = re_rank_features(q, g, k1=rerank_k1, k2=rerank_k2, lambda_value=rerank_lambda)
        out.update({f"rerank_{k}": v for k, v in metrics_from_distmat(rr, query, gallery, protocol).items()})
    return out


def protocol_for(dataset) -> str:
    """Evaluation protocol of a ``ReIDDataset`` for ``sagkit.evaluation.evaluate``: the classic single-shot
    CMC for CUHK03's classic protocol, the Market-1501 rule (same id and camera left out) otherwise."""
    info = getattr(dataset, "info", None) or {}
    if getattr(dataset, "name", "") == "cuhk03" and info.get("protocol", "classic") == "classic":
        return "cuhk03"
    return "market"
