"""Numerical agreement across devices and precisions: k-reciprocal re-ranking on the device against the
CPU, and evaluation features under autocast against fp32."""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

from sagkit.data import build_test_loader
from sagkit.evaluation import extract_features, re_rank_features
from sagkit.evaluation.rerank import TOLERANCE

from ..builders import build_model
from ..device import configure_determinism, resolve_precision, seed_everything
from ..optim import build_criterion, build_optimizer
from ..trainer import train_one_epoch
from .data import CheckData, CycledBatches, check_config
from .plan import FEATURE_COSINE_MIN, CheckPlan, model_name
from .report import failure

__all__ = ["random_features", "compare_rerank", "rerank_section", "compare_features", "features_section"]


def _finite(value: float) -> float | None:
    """``value``, or None when it is NaN or infinite (the report stays strict JSON)."""
    return value if math.isfinite(value) else None


def random_features(n: int, dim: int, seed: int) -> torch.Tensor:
    """n×dim float32 standard-normal features, the same on every machine for a seed."""
    return torch.randn((n, dim), generator=torch.Generator().manual_seed(seed), dtype=torch.float32)


def compare_rerank(reference: np.ndarray, other: np.ndarray, tolerance: float = TOLERANCE) -> dict:
    """``ok`` when both q×g results have the same shape and differ by at most ``tolerance`` anywhere."""
    if reference.shape != other.shape:
        return {"ok": False, "error": f"shapes differ: {reference.shape} on the reference, {other.shape} here"}
    diff = np.abs(reference.astype(np.float64) - other.astype(np.float64))
    worst = float(np.nan_to_num(diff, nan=np.inf).max())
    return {"ok": worst <= tolerance, "max_abs_diff": _finite(worst), "tolerance": tolerance,
            "entries_over_tolerance": int((~(diff <= tolerance)).sum())}


def rerank_section(plan: CheckPlan, device: torch.device, reference: torch.device = torch.device("cpu")) -> dict:
    """``re_rank_features`` (the engine's k1=20, k2=6, lambda=0.3) of seeded random features on ``device``
    against the same call on ``reference``; times both (the device after one small warm-up call)."""
    q = random_features(plan.rerank_query, plan.rerank_dim, plan.seed)
    g = random_features(plan.rerank_gallery, plan.rerank_dim, plan.seed + 1)
    start = time.perf_counter()
    expected = re_rank_features(q.to(reference), g.to(reference))
    reference_s = time.perf_counter() - start
    re_rank_features(q[:32].to(device), g[:128].to(device))
    start = time.perf_counter()
    got = re_rank_features(q.to(device), g.to(device))  # returns a CPU array: the device work is finished
    device_s = time.perf_counter() - start
    return {"query": plan.rerank_query, "gallery": plan.rerank_gallery, "dim": plan.rerank_dim,
            "reference_device": str(reference), "reference_s": round(reference_s, 3), "device": str(device),
            "device_s": round(device_s, 3), "speedup": round(reference_s / max(device_s, 1e-9), 2),
            **compare_rerank(expected, got)}


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
    model = build_model(config, data.num_classes, pretrained=False).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
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
    return {"ok": bool(entries) and all(e["ok"] for e in entries), "cases": entries}
