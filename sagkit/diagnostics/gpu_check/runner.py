"""The whole GPU check: every section in turn on one device, each recorded on its own, into one report."""

from __future__ import annotations

import datetime as _dt
import tempfile
import time
from typing import Callable, Optional, TypeVar

import torch

from sagkit.engine.device import DeviceUnavailableError
from sagkit.diagnostics.gpu_check.data import check_config, load_check_data, make_check_data
from sagkit.diagnostics.gpu_check.ddp import ddp_section
from sagkit.diagnostics.gpu_check.numerics import features_section, rerank_section
from sagkit.diagnostics.gpu_check.plan import CheckPlan, full_plan
from sagkit.diagnostics.gpu_check.report import environment, run_section
from sagkit.diagnostics.gpu_check.train_run import train_run_section
from sagkit.diagnostics.gpu_check.training import training_section

__all__ = ["NO_CUDA_MESSAGE", "require_cuda", "run_gpu_check"]

T = TypeVar("T")

NO_CUDA_MESSAGE = (
    "no CUDA device was found (torch.cuda.is_available() is False). `sagkit bench gpu` runs sagkit's GPU "
    "paths (fp16 with GradScaler and bf16 training with and without torch.compile, re-ranking on CUDA "
    "tensors, evaluation features under AMP, DDP over NCCL, sagkit train under torchrun) and prints one JSON "
    "report; run it on a machine "
    "with at least one CUDA GPU"
)


def require_cuda() -> None:
    """Raise :class:`DeviceUnavailableError` (a one-line user error in the CLI) when there is no CUDA device."""
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(NO_CUDA_MESSAGE)


def _once(make: Callable[[], T]) -> Callable[[], T]:
    """``make()`` on the first call, its result (or its exception, raised again) on every later one."""
    memo: dict = {}

    def get() -> T:
        if "error" in memo:
            raise memo["error"]
        if "value" not in memo:
            try:
                memo["value"] = make()
            except Exception as err:
                memo["error"] = err
                raise
        return memo["value"]

    return get


def run_gpu_check(plan: Optional[CheckPlan] = None, device: Optional[torch.device] = None) -> dict:
    """Run every section of ``plan`` (default :func:`full_plan`) on ``device`` (default ``cuda:0``, which must
    exist) and return the report: ``ok`` is True only when every section is; each section says what it
    ``compared``. The features, re-ranking, DDP and train-run sections come first; the training cases then
    fill ``plan.budget_s`` from their own start (the check fails when that leaves a precision or compile
    mode untried)."""
    plan = plan or full_plan()
    if device is None:
        require_cuda()
        device = torch.device("cuda", 0)
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sagkit-gpu-check-") as tmp:
        root = _once(lambda: make_check_data(plan, tmp))
        data = _once(lambda: load_check_data(check_config(plan, root()), device, plan.num_batches))
        sections = {
            "features": run_section("features", features_section, plan, data, device),
            "rerank": run_section("rerank", rerank_section, plan, device),
            "ddp": run_section("ddp", ddp_section, plan, device.type),
            "train_run": run_section("train_run", lambda: train_run_section(plan, device.type, root())),
            "training": run_section("training", lambda: training_section(plan, data, device,
                                                                         time.monotonic() + plan.budget_s)),
        }
    return {
        "ok": all(s["ok"] for s in sections.values()),
        "failed": [name for name, s in sections.items() if not s["ok"]],
        "started_at": started,
        "total_s": round(time.monotonic() - start, 1),
        "environment": environment(device),
        "plan": plan.to_dict(),
        "sections": sections,
    }
