"""``python -m sagkit bench gpu``: every GPU path of sagkit run once, on one command, into one JSON report.

Modules: ``plan`` (sizes, budgets, tolerances), ``data`` (the synthetic set and device-resident batches),
``training`` (model × precision × compile cases), ``numerics`` (re-ranking and evaluation features across
devices and precisions), ``ddp`` and ``ddp_worker`` (a torchrun step over NCCL), ``train_run`` (the real
``sagkit train`` under torchrun: killed, resumed, reused), ``report`` (sections recorded on their own, each
saying what it compared), ``runner`` (the whole check). Prose: docs/gpu.md. Every section takes its device, so the tests run
them on the CPU.
"""

from sagkit.diagnostics.gpu_check.plan import CheckPlan, full_plan, quick_plan
from sagkit.diagnostics.gpu_check.runner import NO_CUDA_MESSAGE, require_cuda, run_gpu_check

__all__ = ["CheckPlan", "NO_CUDA_MESSAGE", "full_plan", "quick_plan", "require_cuda", "run_gpu_check"]
