"""Numerical agreement across devices and precisions: k-reciprocal re-ranking on the device and on the CPU
against a float64 result, and evaluation features under autocast against fp32."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from sagkit.data import build_test_loader
from sagkit.evaluation import extract_features, re_rank_features
from sagkit.evaluation.protocol import MARKET
from sagkit.evaluation.rerank.k_reciprocal import TOLERANCE

from sagkit.engine.builders import build_model
from sagkit.engine.device import configure_determinism, place_model, resolve_precision, seed_everything
from sagkit.engine.optim import build_criterion, build_optimizer
from sagkit.engine.trainer import train_one_epoch
from sagkit.diagnostics.gpu_check.data import CheckData, CycledBatches, check_config
from sagkit.engine.retrieval import score
from sagkit.diagnostics.gpu_check.plan import FEATURE_COSINE_MIN, RERANK_METRIC_DELTA_MAX, RERANK_CHANGED_MAX, CheckPlan, model_name
from sagkit.diagnostics.gpu_check.report import failure

__all__ = ["random_features", "RerankInputs", "rerank_inputs", "compare_rerank", "rerank_section", "compare_features",
           "features_section"]


def _finite(value: float) -> float | None:
    """``value``, or None when it is NaN or infinite (the report stays strict JSON)."""
    return value if math.isfinite(value) else None


def random_features(n: int, dim: int, seed: int) -> torch.Tensor:
    """n×dim float32 standard-normal features, the same on every machine for a seed."""
    return torch.randn((n, dim), generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


@dataclass
class RerankInputs:
    """Query (q×D) and gallery (g×D) L2-normalised float32 features drawn around one random centre per
    identity, with their identity and camera ids (so retrieval metrics mean something)."""

    query: torch.Tensor
    gallery: torch.Tensor
    q_pids: np.ndarray
    q_cams: np.ndarray
    g_pids: np.ndarray
    g_cams: np.ndarray


def rerank_inputs(plan: CheckPlan) -> RerankInputs:
    """The plan's re-ranking inputs: ``rerank_ids`` identities (every one queried), ``rerank_noise`` the
    spread of an image around its identity's centre (both standard normal per dimension), 6 cameras."""
    gen = torch.Generator().manual_seed(plan.seed)
    q, g, ids = plan.rerank_query, plan.rerank_gallery, min(plan.rerank_ids, plan.rerank_query)
    centres = torch.randn((ids, plan.rerank_dim), generator=gen)
    q_pids = torch.arange(q) % ids
    g_pids = torch.cat([torch.arange(ids), torch.randint(ids, (max(0, g - ids),), generator=gen)])[:g]

    def around(pids: torch.Tensor) -> torch.Tensor:
        noise = torch.randn((len(pids), plan.rerank_dim), generator=gen)
        return torch.nn.functional.normalize(centres[pids] + plan.rerank_noise * noise, dim=1)

    query, gallery = around(q_pids), around(g_pids)
    cams = torch.randint(6, (q + g,), generator=gen).numpy()
    return RerankInputs(query, gallery, q_pids.numpy(), cams[:q], g_pids.numpy(), cams[q:])


def compare_rerank(reference: np.ndarray, other: np.ndarray, tolerance: float = TOLERANCE,
                   changed_max: float = RERANK_CHANGED_MAX, ids: RerankInputs | None = None,
                   metric_delta_max: float = RERANK_METRIC_DELTA_MAX) -> dict:
    """Two q×g re-ranked results compared as retrieval sees them. k-reciprocal sets change at ties, so two
    healthy float32 summation orders (the CPU's one matrix product, a GPU's row-chunk ``addmm``) differ by
    up to ~0.07 in the entries of the few gallery items that have a neighbour at the edge of a set; a broken
    path changes a large share of the entries, or the metrics. ``ok`` when the shapes agree, ``other`` is
    finite, at most ``changed_max`` of the entries are off by more than ``tolerance``, and (with ``ids``)
    rank-1 and mAP under the Market protocol differ by at most ``metric_delta_max`` points."""
    if reference.shape != other.shape:
        return {"ok": False, "error": f"shapes differ: {reference.shape} on the reference, {other.shape} here"}
    diff = np.abs(reference.astype(np.float64) - other.astype(np.float64))
    over = ~(diff <= tolerance)  # NaN counts as over
    changed = float(over.mean()) if over.size else 0.0
    out = {"max_abs_diff": _finite(float(np.nan_to_num(diff, nan=np.inf).max())), "tolerance": tolerance,
           "entries_over_tolerance": int(over.sum()), "changed": changed, "changed_max": changed_max,
           "rows_changed": round(float(over.any(axis=1).mean()) if over.size else 0.0, 6),
           "top1_agreement": round(float((reference.argmin(axis=1) == other.argmin(axis=1)).mean()), 6)}
    ok = bool(np.isfinite(other).all()) and changed <= changed_max
    if ids is not None:
        ref = score(reference, ids.q_pids, ids.q_cams, ids.g_pids, ids.g_cams, MARKET).metrics
        got = score(np.nan_to_num(other, nan=np.inf), ids.q_pids, ids.q_cams, ids.g_pids, ids.g_cams,
                    MARKET).metrics
        deltas = {name: round(abs(got[name] - ref[name]), 6) for name in ("rank1", "mAP")}
        out.update(reference_metrics={k: round(ref[k], 4) for k in deltas},
                   metrics={k: round(got[k], 4) for k in deltas}, metric_deltas=deltas,
                   metric_delta_max=metric_delta_max)
        ok = ok and max(deltas.values()) <= metric_delta_max
    out["ok"] = ok
    return out


def rerank_section(plan: CheckPlan, device: torch.device, reference: torch.device = torch.device("cpu"),
                   device_rerank: Callable = re_rank_features) -> dict:
    """``re_rank_features`` (the engine's k1=20, k2=6, lambda=0.3) of :func:`rerank_inputs` in float32 on
    ``device`` and on ``reference`` (today's CPU path), each compared with the float64 result on ``reference``
    (on which all paths agree exactly); times the float32 runs (the device after one small warm-up call).
    ``device_rerank`` runs the device's call (tests pass the row-chunk path forced on CPU tensors)."""
    ids = rerank_inputs(plan)
    q, g = ids.query, ids.gallery
    exact = re_rank_features(q.to(reference, torch.float64), g.to(reference, torch.float64))
    start = time.perf_counter()
    expected = re_rank_features(q.to(reference), g.to(reference))
    reference_s = time.perf_counter() - start
    device_rerank(q[:32].to(device), g[:128].to(device))
    start = time.perf_counter()
    got = device_rerank(q.to(device), g.to(device))  # returns a CPU array: the device work is finished
    device_s = time.perf_counter() - start
    on_device, on_reference = compare_rerank(exact, got, ids=ids), compare_rerank(exact, expected, ids=ids)
    return {"compared": f"re_rank_features of {plan.rerank_query} query and {plan.rerank_gallery} gallery "
                        f"{plan.rerank_dim}-d features of {min(plan.rerank_ids, plan.rerank_query)} identities, "
                        f"float32 on {device} and on {reference}, each against float64 on {reference}: share "
                        f"of entries off by more than {TOLERANCE:g} (at most {RERANK_CHANGED_MAX:g}), rank-1 "
                        f"and mAP under the Market protocol (within {RERANK_METRIC_DELTA_MAX:g} points)",
            "query": plan.rerank_query, "gallery": plan.rerank_gallery, "dim": plan.rerank_dim,
            "reference_device": str(reference), "reference_s": round(reference_s, 3), "device": str(device),
            "device_s": round(device_s, 3), "speedup": round(reference_s / max(device_s, 1e-9), 2),
            "tolerance": TOLERANCE, "max_abs_diff": on_device.get("max_abs_diff"),
            "device_vs_float64": on_device, "reference_float32_vs_float64": on_reference,
            "ok": on_device["ok"] and on_reference["ok"]}


def compare_features(reference: torch.Tensor, other: torch.Tensor, minimum: float = FEATURE_COSINE_MIN) -> dict:
    """Row-wise cosine similarity of two N×D sets of L2-normalised embeddings. ``ok`` when the worst row reaches
    ``minimum`` and the two differ at all (identical features mean that autocast did not take effect)."""
    if reference.shape != other.shape:
        return {"ok": False, "error": f"shapes differ: {tuple(reference.shape)} and {tuple(other.shape)}"}
    ref, got = reference.double(), other.double()
    cosine = torch.nn.functional.cosine_similarity(ref, got, dim=1)
    worst = float(torch.nan_to_num(cosine, nan=-1.0).min())
    max_diff = float((ref - got).abs().max())
    return {"ok": worst >= minimum and max_diff > 0, "worst_cosine": worst,
            "mean_cosine": _finite(float(cosine.mean())), "max_abs_diff": _finite(max_diff),
            "min_cosine_required": minimum, "images": int(ref.shape[0])}


def _feature_case(plan: CheckPlan, data: CheckData, device: torch.device, depths: tuple) -> list[dict]:
    """Train ``depths`` briefly in fp32 (so BatchNorm statistics are real), then compare its evaluation
    features (``extract_features``) in fp32 with those under each of ``plan.feature_precisions``."""
    config = check_config(plan, depths=depths, amp="off")
    configure_determinism(config.deterministic)
    seed_everything(config.seed)
    model = place_model(build_model(config, data.num_classes, pretrained=False), config, device)
    if plan.feature_warmup_steps:
        train_one_epoch(model, build_criterion(config), build_optimizer(model, config),
                        CycledBatches(data.batches, 0, plan.feature_warmup_steps), device, 1,
                        channels_last=config.channels_last, progress=False)
    loader = build_test_loader(data.test_records, data.test_transform, config.eval_batch_size,
                               num_workers=config.num_workers)
    kwargs = dict(flip=False, normalize=True, device=device, channels_last=config.channels_last)
    fp32 = extract_features(model, loader, **kwargs)[0]
    entries = []
    for amp in plan.feature_precisions:
        entry = {"model": model_name(depths), "amp": amp}
        try:
            dtype = resolve_precision(amp, device).dtype  # fp16 on the CPU is refused here, not silently fp32
            if dtype is None:
                raise ValueError(f"feature_precisions holds {amp!r}, which is no autocast precision; "
                                 "use 'fp16' or 'bf16'")
            entry.update(compare_features(fp32, extract_features(model, loader, amp=True, amp_dtype=dtype,
                                                                 **kwargs)[0]))
        except Exception as err:  # noqa: BLE001 - recorded; the other precisions still run
            entry.update(failure(err))
        entries.append(entry)
    return entries


def features_section(plan: CheckPlan, data: Callable[[], CheckData], device: torch.device) -> dict:
    """:func:`_feature_case` for every model of ``plan.feature_models``; ``data()`` gives the inputs."""
    inputs = data()
    entries = []
    for depths in plan.feature_models:
        try:
            entries.extend(_feature_case(plan, inputs, device, depths))
        except Exception as err:  # noqa: BLE001 - recorded; the other models still run
            entries.append({"model": model_name(depths), **failure(err)})
    return {"compared": "evaluation embeddings (extract_features) of the test split after a short fp32 warm-up, "
                        f"under each of {list(plan.feature_precisions)} autocast against fp32: worst row cosine >= "
                        f"{FEATURE_COSINE_MIN}, and not identical (autocast took effect)",
            "ok": bool(entries) and all(e["ok"] for e in entries), "cases": entries}
