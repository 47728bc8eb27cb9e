"""The one retrieval pipeline: model + query/gallery records -> features -> distances -> metrics under the
dataset's protocol -> optional re-ranking and multi-query pooling, returned as one :class:`Retrieval`.

The trainer's validation and final test, ``sagkit eval`` and every number, ranked list and table row of
the notebooks go through :func:`retrieve` (or :func:`retrieve_dataset`, which reads the settings from a
config), so one run cannot get two different numbers. Features are L2-normalised float32 on the CPU;
under DDP each rank extracts a shard and the shards are gathered back in record order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from sagkit.data import build_test_loader, build_transforms
from sagkit.evaluation import (QueryResults, compute_distance_matrix, evaluate_queries, extract_features,
                               pool_multi_query, re_rank_features)
from sagkit.evaluation.bootstrap import SUMMARY_PREFIXES
from sagkit.evaluation.protocol import MARKET, Protocol

from .distributed import DistInfo, gather_in_order, shard_range
from .feature_cache import FeatureCache

__all__ = ["EvalSettings", "Retrieval", "Scores", "eval_model", "eval_transform", "extract_split_features", "retrieve",
           "retrieve_dataset", "score"]

MAX_RANK = 50


@dataclass(frozen=True)
class EvalSettings:
    """How features are extracted and scored; :meth:`from_config` reads them from an ExperimentConfig."""

    flip: bool = False
    channels_last: bool = False
    batch_size: int = 128
    num_workers: int = 0
    rerank: bool = False
    rerank_k1: int = 20
    rerank_k2: int = 6
    rerank_lambda: float = 0.3
    multi_query: bool = False

    @classmethod
    def from_config(cls, config, **changes) -> "EvalSettings":
        values = dict(flip=config.flip_eval, channels_last=config.channels_last, batch_size=config.eval_batch_size,
                      num_workers=config.num_workers, rerank=config.rerank, rerank_k1=config.rerank_k1,
                      rerank_k2=config.rerank_k2, rerank_lambda=config.rerank_lambda)
        values.update(changes)
        return cls(**values)

    def feature_key(self) -> str:
        """What changes the features (not the scoring): part of the feature cache's key."""
        return f"flip={int(self.flip)}"


@dataclass
class Scores:
    """Metrics of one query x gallery distance matrix: ``metrics`` in percent (rank1/5/10, mAP, mINP),
    ``cmc`` (max_rank,) fractions, ``queries`` the per-query results behind them."""

    metrics: dict
    cmc: np.ndarray
    queries: QueryResults


@dataclass
class Retrieval:
    """One evaluation: records, features (Q x D, G x D), distances (Q x G), single-query scores, and when
    asked the re-ranked (``single_rr``), multi-query (``multi``) and re-ranked multi-query (``multi_rr``) ones."""

    query: list
    gallery: list
    query_feats: torch.Tensor
    gallery_feats: torch.Tensor
    distmat: torch.Tensor
    protocol: Protocol
    single: Scores
    single_rr: Optional[Scores] = None
    multi: Optional[Scores] = None
    multi_rr: Optional[Scores] = None

    def evaluations(self) -> dict:
        """``{"single": {...}, "single_rr": ..., "multi": ..., "multi_rr": ...}`` metrics (those computed)."""
        names = ("single", "single_rr", "multi", "multi_rr")
        return {name: dict(getattr(self, name).metrics) for name in names if getattr(self, name) is not None}

    def summary(self) -> dict:
        """Flat metrics as results.json and ``sagkit eval --json`` store them: ``rank1`` ... ``mINP``, then
        ``rerank_``, ``multi_`` and ``multi_rerank_`` prefixed copies."""
        out = {}
        for name, prefix in SUMMARY_PREFIXES.items():
            if getattr(self, name) is not None:
                out.update({prefix + k: v for k, v in getattr(self, name).metrics.items()})
        return out


def score(distmat, q_pids, q_cams, g_pids, g_cams, protocol: Protocol = MARKET) -> Scores:
    """:class:`Scores` of a distance matrix under ``protocol`` (CMC up to rank 50 or the gallery size)."""
    cmc, m_ap, m_inp, queries = evaluate_queries(distmat, q_pids, g_pids, q_cams, g_cams,
                                                 max_rank=min(MAX_RANK, len(g_pids)), **protocol.options())
    cmc = np.asarray(cmc, dtype=np.float64)
    metrics = {f"rank{k}": 100.0 * float(cmc[min(k, len(cmc)) - 1]) for k in (1, 5, 10)}
    metrics.update(mAP=100.0 * float(m_ap), mINP=100.0 * float(m_inp))
    return Scores(metrics, cmc, queries)


def extract_split_features(model: torch.nn.Module, records: Sequence, transform, *, device: torch.device,
                           settings: EvalSettings = EvalSettings(),
                           dist_info: Optional[DistInfo] = None) -> torch.Tensor:
    """N x D float32 L2-normalised features of ``records``, in their order, on the CPU.

    Under DDP each rank extracts a contiguous shard (``shard_range``) and the shards are all-gathered, so
    every rank ends with the same full matrix.
    """
    info = dist_info or DistInfo()
    shard = shard_range(len(records), info.rank, info.world_size)
    mine = [records[i] for i in shard]
    model.eval()
    if mine:
        loader = build_test_loader(mine, transform, settings.batch_size, num_workers=settings.num_workers)
        feats, _, _ = extract_features(model, loader, flip=settings.flip, normalize=True, device=device,
                                       channels_last=settings.channels_last)
        feats = feats.float().cpu()
    else:
        feats = torch.zeros((0, _embedding_dim(model)), dtype=torch.float32)
    if info.is_distributed:
        feats = gather_in_order(feats, info, len(records))
    return feats


def eval_model(model: torch.nn.Module, config, device) -> torch.nn.Module:
    """``model`` on ``device`` in eval mode, in channels-last layout when ``config.channels_last`` (as the
    trainer holds it), so that every evaluation extracts features from the same layout."""
    model = model.to(device).eval()
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def eval_transform(model: torch.nn.Module, input_size: tuple[int, int]):
    """The test transform of ``model``: resize to ``input_size`` (H, W), normalise with its mean and std."""
    return build_transforms(*input_size, train=False, mean=model.input_mean, std=model.input_std)


def _embedding_dim(model: torch.nn.Module) -> int:
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    return int(inner.embedding_dim)


ModelSource = Union[torch.nn.Module, Callable[[], torch.nn.Module]]


class _Features:
    """Features of record lists from one model, read from ``cache`` when there, else extracted (and
    stored). ``model`` may be a callable that loads it, so that cached features need no model at all."""

    def __init__(self, model: ModelSource, transform, input_size, device, settings: EvalSettings, dist_info, cache):
        if transform is None and input_size is None:
            raise ValueError("retrieve needs transform= (the test transform) or input_size=(height, width)")
        self._model, self._transform, self.input_size, self.device = model, transform, input_size, device
        self.settings, self.dist_info, self.cache = settings, dist_info, cache

    def model(self) -> torch.nn.Module:
        if not isinstance(self._model, torch.nn.Module):
            self._model = self._model()
        return self._model

    def __call__(self, split: str, records: Sequence) -> torch.Tensor:
        key = self.settings.feature_key()
        if self.cache is not None:
            found = self.cache.load(split, records, key)
            if found is not None:
                return found
        model = self.model()
        transform = self._transform or eval_transform(model, self.input_size)
        feats = extract_split_features(model, list(records), transform, device=self.device,
                                       settings=self.settings, dist_info=self.dist_info)
        if self.cache is not None and (self.dist_info is None or self.dist_info.is_main):
            self.cache.save(split, records, key, feats)
        return feats


def retrieve(model: ModelSource, query: Sequence, gallery: Sequence, transform=None, *, device,
             input_size: Optional[tuple[int, int]] = None, protocol: Protocol = MARKET, settings: EvalSettings = EvalSettings(),
             multi_query_records: Optional[Sequence] = None, dist_info: Optional[DistInfo] = None,
             cache: Optional[FeatureCache] = None) -> Retrieval:
    """Evaluate ``model`` on ``query`` vs ``gallery`` (ImageRecord lists) under ``protocol``.

    ``transform``: the test transform (default: ``input_size`` (H, W) and the model's normalisation). With
    ``settings.multi_query`` the features of each query identity's images in one camera are pooled (mean,
    L2-normalised), over the queries plus ``multi_query_records`` (Market-1501's gt_bbox images) when given.
    ``cache``: a :class:`FeatureCache` of the run's checkpoint (features read from or written to disk).
    """
    features = _Features(model, transform, input_size, device, settings, dist_info, cache)
    q_feats, g_feats = features("query", query), features("gallery", gallery)
    q_pids, q_cams, g_pids, g_cams = protocol.match_ids(query, gallery)
    distmat = compute_distance_matrix(q_feats, g_feats, metric="euclidean")
    result = Retrieval(list(query), list(gallery), q_feats, g_feats, distmat, protocol,
                       score(distmat, q_pids, q_cams, g_pids, g_cams, protocol))
    rerank = dict(k1=settings.rerank_k1, k2=settings.rerank_k2, lambda_value=settings.rerank_lambda)
    if settings.rerank:
        result.single_rr = score(re_rank_features(q_feats, g_feats, **rerank), q_pids, q_cams, g_pids, g_cams,
                                 protocol)
    if settings.multi_query:
        records, feats = list(query), q_feats
        extra = list(multi_query_records or [])
        if extra:
            records += extra
            feats = torch.cat([feats, features("multi_query", extra)])
        pooled, m_pids, m_cams = pool_multi_query(feats, *protocol.match_ids(records, gallery)[:2], mode="mean",
                                                  normalize=True)
        multi_dist = compute_distance_matrix(pooled, g_feats, metric="euclidean")
        result.multi = score(multi_dist, m_pids, m_cams, g_pids, g_cams, protocol)
        if settings.rerank:
            result.multi_rr = score(re_rank_features(pooled, g_feats, **rerank), m_pids, m_cams, g_pids, g_cams,
                                    protocol)
    return result


def retrieve_dataset(model: ModelSource, dataset, config, *, device, transform=None,
                     dist_info: Optional[DistInfo] = None, cache: Optional[FeatureCache] = None,
                     **changes) -> Retrieval:
    """:func:`retrieve` on ``dataset``'s test split with the settings of ``config`` (``changes`` override them,
    e.g. ``rerank=True``); the protocol is the dataset's own."""
    settings = EvalSettings.from_config(config, **changes)
    return retrieve(model, dataset.query, dataset.gallery, transform, device=device,
                    input_size=(config.height, config.width), protocol=dataset.protocol, settings=settings, multi_query_records=getattr(dataset, "multi_query", None),
                    dist_info=dist_info, cache=cache)
