"""The one retrieval pipeline: model + query/gallery records -> features -> distances -> metrics under the
dataset's protocol -> optional re-ranking and multi-query pooling, returned as one :class:`Retrieval`.

The trainer's validation and final test, ``sagkit eval`` and every number, ranked list and table row of
the notebooks go through :func:`retrieve` (or :func:`retrieve_dataset`, which reads the settings from a
config), so one run cannot get two different numbers. Features are L2-normalised float32 on the CPU;
under DDP each rank extracts a shard and the shards are gathered back in record order, then rank 0 alone
scores them. Distances and re-ranking run on the GPU when features were extracted on one
(:func:`scoring_device`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch

from sagkit.data import JUNK_PID, build_test_loader, build_transforms
from sagkit.evaluation import (QueryResults, compute_distance_matrix, evaluate_queries, extract_features,
                               pool_multi_query, re_rank_features)
from sagkit.evaluation.bootstrap import SUMMARY_PREFIXES
from sagkit.evaluation.protocol import MARKET, Protocol
from sagkit.evaluation.threads import torch_threads

from sagkit.engine.distributed import DistInfo, gather_in_order, main_rank_threads, shard_range
from sagkit.engine.feature_cache import FeatureCache

log = logging.getLogger("sagkit.engine")

__all__ = ["EvalSettings", "Retrieval", "Scores", "check_scorable", "eval_transform",
           "extract_split_features", "people_only", "retrieve", "retrieve_dataset", "score", "scoring_device"]

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
    train_overlap: Optional[dict] = None  # set by evaluate_run when the split shares the model's training people

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


def people_only(q_pids: np.ndarray, g_pids: np.ndarray, distractor_pid: Optional[int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Ids with the non-people made unmatchable: a distractor or junk query gets an id no gallery image has
    (it has no valid match and never counts as a hit), a distractor gallery image an id no query has (a
    wrong match that stays in the ranking). ``distractor_pid`` None: every id but junk is a person."""
    q_pids, g_pids = np.asarray(q_pids, np.int64), np.asarray(g_pids, np.int64)
    if distractor_pid is None:
        return q_pids, g_pids
    nobody = min(int(q_pids.min(initial=0)), int(g_pids.min(initial=0)), JUNK_PID) - 1
    return (np.where((q_pids == distractor_pid) | (q_pids == JUNK_PID), nobody, q_pids),
            np.where(g_pids == distractor_pid, nobody - 1, g_pids))


def score(distmat, q_pids, q_cams, g_pids, g_cams, protocol: Protocol = MARKET,
          distractor_pid: Optional[int] = None) -> Scores:
    """:class:`Scores` of a distance matrix under ``protocol`` (CMC up to rank 50 or the gallery size);
    ``distractor_pid``: the id of distractor images (never a match, :func:`people_only`)."""
    q_pids, g_pids = people_only(q_pids, g_pids, distractor_pid)
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


def eval_transform(model: torch.nn.Module, input_size: tuple[int, int]):
    """The test transform of ``model``: resize to ``input_size`` (H, W), normalise with its mean and std."""
    return build_transforms(*input_size, train=False, mean=model.input_mean, std=model.input_std)


def _embedding_dim(model: torch.nn.Module) -> int:
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)
    return int(inner.embedding_dim)


def scoring_device(device) -> torch.device:
    """Where distances and re-ranking run: the extraction's CUDA device when there is one (at MSMT17 size
    seconds instead of minutes per re-ranking on the CPU; under DDP rank 0's GPU, the only one that
    scores), else the CPU."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    return device if device.type == "cuda" else torch.device("cpu")


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
            try:
                self.cache.save(split, records, key, feats)
            except OSError as err:  # a read-only or full run folder (WriteError): the features are still right
                log.warning("sagkit: %s features are not kept in %s: %s", split, self.cache.folder, err)
        return feats


def retrieve(model: ModelSource, query: Sequence, gallery: Sequence, transform=None, *, device,
             input_size: Optional[tuple[int, int]] = None, protocol: Protocol = MARKET, settings: EvalSettings = EvalSettings(),
             multi_query_records: Optional[Sequence] = None, dist_info: Optional[DistInfo] = None,
             cache: Optional[FeatureCache] = None, distractor_pid: Optional[int] = None) -> Optional[Retrieval]:
    """Evaluate ``model`` on ``query`` vs ``gallery`` (ImageRecord lists) under ``protocol``.

    ``transform``: the test transform (default: ``input_size`` (H, W) and the model's normalisation). With
    ``settings.multi_query`` the features of each query identity's images in one camera are pooled (mean,
    L2-normalised), over the queries plus ``multi_query_records`` (Market-1501's gt_bbox images) when given.
    ``cache``: a :class:`FeatureCache` of the run's checkpoint (features read from or written to disk).
    ``distractor_pid``: the id of the test split's distractors (the dataset's; None for validation splits,
    whose ids are all people).
    Under DDP every rank extracts its shard of each split, then rank 0 alone scores, with the threads its
    machine's waiting ranks leave idle (``main_rank_threads``); the other ranks get None and take what they
    need from rank 0 with ``distributed.share_from_main``.
    """
    features = _Features(model, transform, input_size, device, settings, dist_info, cache)
    q_feats, g_feats = features("query", query), features("gallery", gallery)
    extra = list(multi_query_records or []) if settings.multi_query else []
    extra_feats = features("multi_query", extra) if extra else q_feats[:0]  # a collective: on every rank
    info = dist_info or DistInfo()
    if not info.is_main:
        return None
    with torch_threads(main_rank_threads(info)):
        return _scored(list(query), list(gallery), q_feats, g_feats, scoring_device(device), protocol, settings,
                       extra, extra_feats, distractor_pid)


def _scored(query: list, gallery: list, q_feats: torch.Tensor, g_feats: torch.Tensor, on: torch.device,
            protocol: Protocol, settings: EvalSettings, extra: list, extra_feats: torch.Tensor,
            distractor_pid: Optional[int]) -> Retrieval:
    """:func:`retrieve`'s scoring of Q x D and G x D features on ``on``; ``extra`` (E x D) pool with the queries."""
    q_pids, q_cams, g_pids, g_cams = protocol.match_ids(query, gallery)
    distmat = compute_distance_matrix(q_feats.to(on), g_feats.to(on), metric="euclidean").cpu()
    result = Retrieval(query, gallery, q_feats, g_feats, distmat, protocol,
                       score(distmat, q_pids, q_cams, g_pids, g_cams, protocol, distractor_pid))
    rerank = dict(k1=settings.rerank_k1, k2=settings.rerank_k2, lambda_value=settings.rerank_lambda)
    if settings.rerank:
        result.single_rr = score(re_rank_features(q_feats.to(on), g_feats.to(on), **rerank), q_pids, q_cams, g_pids,
                                 g_cams, protocol, distractor_pid)
    if settings.multi_query:
        pooled, m_pids, m_cams = pool_multi_query(torch.cat([q_feats, extra_feats]),
                                                  *protocol.match_ids(query + extra, gallery)[:2], mode="mean",
                                                  normalize=True)
        multi_dist = compute_distance_matrix(pooled.to(on), g_feats.to(on), metric="euclidean").cpu()
        result.multi = score(multi_dist, m_pids, m_cams, g_pids, g_cams, protocol, distractor_pid)
        if settings.rerank:
            result.multi_rr = score(re_rank_features(pooled.to(on), g_feats.to(on), **rerank), m_pids, m_cams, g_pids,
                                    g_cams, protocol, distractor_pid)
    return result


def retrieve_dataset(model: ModelSource, dataset, config, *, device, transform=None,
                     dist_info: Optional[DistInfo] = None, cache: Optional[FeatureCache] = None,
                     **changes) -> Optional[Retrieval]:
    """:func:`retrieve` on ``dataset``'s test split with the settings of ``config`` (``changes`` override them,
    e.g. ``rerank=True``); the protocol and distractor id are the dataset's own; under DDP ranks other than 0
    get None. A test split none of whose queries is a person with an image in the gallery is refused."""
    check_scorable(dataset)
    settings = EvalSettings.from_config(config, **changes)
    return retrieve(model, dataset.query, dataset.gallery, transform, device=device,
                    input_size=(config.height, config.width), protocol=dataset.protocol, settings=settings,
                    multi_query_records=getattr(dataset, "multi_query", None), dist_info=dist_info, cache=cache,
                    distractor_pid=getattr(dataset, "distractor_pid", None))


def check_scorable(dataset) -> None:
    """Raise ValueError naming the dataset and ``dataset.root`` unless some query is a person (not junk or a
    distractor) with a gallery image of its identity that the protocol keeps (another camera; with no camera
    ids, another file): otherwise every metric would be a mean over no query, before or after training."""
    q_pids, q_cams, g_pids, g_cams = dataset.protocol.match_ids(dataset.query, dataset.gallery)
    q_pids, g_pids = people_only(q_pids, g_pids, getattr(dataset, "distractor_pid", None))
    cameras: dict[int, set] = {}
    for pid, cam in zip(g_pids.tolist(), g_cams.tolist()):
        cameras.setdefault(pid, set()).add(cam)
    if not any(pid != JUNK_PID and cameras.get(pid, set()) - {cam} for pid, cam in zip(q_pids.tolist(), q_cams.tolist())):
        raise ValueError(f"no query of {dataset.name} in {dataset.root} is a person with an image in the gallery that "
                         f"the protocol scores ({dataset.protocol.describe()}; {len(dataset.query)} queries, all "
                         "junk, distractors or unmatched): nothing can be scored; check that the query and gallery "
                         "folders hold the same people")
