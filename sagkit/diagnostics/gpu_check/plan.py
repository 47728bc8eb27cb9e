"""What the GPU check runs: sizes, step counts, time budgets and tolerances, each defined once here.

``full_plan()`` is ``python -m sagkit bench gpu`` (a 5-minute budget), ``quick_plan()`` its ``--quick``
variant (2.5 minutes); tests shrink a plan with ``dataclasses.replace`` (tiny profile, a few steps).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["MODELS", "COMPILE_ORDER", "MARKET_QUERY", "MARKET_GALLERY", "MARKET_TEST_IDS", "FEATURE_COSINE_MIN",
           "RERANK_CHANGED_MAX", "RERANK_METRIC_DELTA_MAX", "COMPILED_COSINE_MIN", "CHECK_SYNTHETIC",
           "CheckPlan", "full_plan", "quick_plan", "model_name"]

MODELS = ((), (1,), (2,), (3,), (4,))  # the baseline and D1..D4
COMPILE_ORDER = ((4,), (), (1,), (2,), (3,))  # compiled: D4 (the costliest graph) and the baseline first
MARKET_QUERY, MARKET_GALLERY = 3368, 15913  # Market-1501's query and gallery sizes
MARKET_TEST_IDS = 750  # Market-1501's test identities
# Evaluation features under autocast count as equal to the fp32 ones when every L2-normalised embedding has
# at least this cosine similarity with its fp32 counterpart.
FEATURE_COSINE_MIN = 0.999
# Re-ranking in float32 counts as equal to the float64 result when at most this share of the q×g entries is
# off by more than rerank.TOLERANCE (healthy summation orders differ only in the columns of gallery items
# with a neighbour tied at the edge of a k-reciprocal set: 1158 of 53.6M entries at Market size, issue 27)
# and rank-1 and mAP differ by at most RERANK_METRIC_DELTA_MAX points.
RERANK_CHANGED_MAX = 1e-3
# A compiled model's eval embeddings count as equal to the eager model's when every row has at least this
# cosine similarity (on the CPU they agree within 1e-5; GPU kernels may differ in summation order).
COMPILED_COSINE_MIN = 0.9999
RERANK_METRIC_DELTA_MAX = 0.1

# The synthetic set the check trains on: 40 identities at the paper's 160x64, generated in seconds.
CHECK_SYNTHETIC = {
    "num_train_ids": 40,
    "num_test_ids": 16,
    "images_per_id": 8,
    "query_per_id": 2,
    "gallery_per_id": 4,
    "height": 160,
    "width": 64,
}


def model_name(depths: tuple) -> str:
    """``()`` → ``"baseline"``, ``(4,)`` → ``"D4"``."""
    return "D" + "-".join(str(d) for d in depths) if depths else "baseline"


@dataclass(frozen=True)
class CheckPlan:
    """One run of the check.

    ``profile`` (with config fields ``overrides``) is the experiment each case trains, on the synthetic set
    of options ``synthetic``.

    Training: every model of ``models`` under every precision of ``precisions`` in eager mode, then the
    ``compile_models`` under ``torch.compile``; ``steps`` optimisation steps each (a multiple of ``window``)
    over ``num_batches`` pre-loaded batches of the synthetic set. A case is started only while its expected
    time fits before ``budget_s`` (counted from the start of the training section); the others are reported
    as skipped.
    ``compile_estimate_s`` is the expected time of the first compiled case (later ones use the last one's).
    Re-ranking: ``rerank_query`` + ``rerank_gallery`` ``rerank_dim``-d features of ``rerank_ids`` identities,
    each image its identity's random centre plus ``rerank_noise`` times standard-normal noise, L2-normalised.
    Features: each of ``feature_models`` after ``feature_warmup_steps`` fp32 steps, fp32 against each of ``feature_precisions``.
    DDP: ``ddp_steps`` steps in ``ddp_procs`` processes (None: one per GPU) under torchrun. Train run: the real
    ``sagkit train`` in as many processes, 2 epochs of ``run_batches`` batches, killed, resumed and reused
    (each launch within ``run_timeout_s``).
    """

    profile: str = "paper"
    overrides: dict = field(default_factory=dict)
    synthetic: dict = field(default_factory=lambda: dict(CHECK_SYNTHETIC))
    models: tuple = MODELS
    precisions: tuple = ("fp16", "bf16")
    compile_models: tuple = COMPILE_ORDER
    steps: int = 240
    window: int = 16
    num_batches: int = 8
    budget_s: float = 300.0
    compile_estimate_s: float = 60.0
    rerank_query: int = MARKET_QUERY
    rerank_gallery: int = MARKET_GALLERY
    rerank_dim: int = 512
    rerank_ids: int = MARKET_TEST_IDS
    rerank_noise: float = 3.0
    feature_models: tuple = ((), (4,))
    feature_precisions: tuple = ("fp16", "bf16")
    feature_warmup_steps: int = 16
    ddp_steps: int = 6
    ddp_procs: Optional[int] = None
    ddp_timeout_s: float = 120.0
    run_batches: int = 4
    run_timeout_s: float = 300.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.window < 1 or self.steps < 2 * self.window or self.steps % self.window:
            raise ValueError(f"CheckPlan.steps={self.steps} must be a multiple of window={self.window} and at "
                             "least two windows (the loss of the first window is compared with the last)")
        if self.num_batches < 1 or self.ddp_steps < 1 or self.run_batches < 1 or self.feature_warmup_steps < 0:
            raise ValueError("CheckPlan.num_batches, ddp_steps and run_batches must be >= 1, feature_warmup_steps >= 0")

    def to_dict(self) -> dict:
        """JSON-ready copy (tuples become lists), for the report."""
        return dataclasses.asdict(self)


def full_plan() -> CheckPlan:
    """``python -m sagkit bench gpu``: 240 steps per case, all ten cases compiled too, a budget of 5 minutes."""
    return CheckPlan()


def quick_plan() -> CheckPlan:
    """``--quick``: 48 steps per case, only D4 and the baseline compiled, a budget of 2.5 minutes."""
    return CheckPlan(steps=48, compile_models=COMPILE_ORDER[:2], budget_s=150.0, ddp_steps=3)
