"""Training cases of the GPU check: one model × precision × (eager or ``torch.compile``) trained for a few
hundred steps through the engine's own ``train_one_epoch``, reporting img/s, peak device memory and
whether the loss stays finite and falls (mean of the first window of steps against the last)."""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

import torch

from sagkit.engine.builders import build_model
from sagkit.engine.device import configure_determinism, make_grad_scaler, place_model, resolve_precision, seed_everything
from sagkit.engine.optim import build_criterion, build_optimizer
from sagkit.engine.trainer import train_one_epoch
from sagkit.diagnostics.gpu_check.data import CheckData, CycledBatches, check_config
from sagkit.diagnostics.gpu_check.plan import COMPILED_COSINE_MIN, CheckPlan, model_name
from sagkit.diagnostics.gpu_check.report import failure

__all__ = ["loss_trend", "training_cases", "run_case", "compare_embeddings", "compiled_matches_eager",
           "training_section"]

log = logging.getLogger("sagkit.diagnostics.gpu_check")


def loss_trend(window_losses: list) -> dict:
    """First and last window's mean loss; ``loss_falling`` only when every window is finite and last < first."""
    if len(window_losses) < 2:
        raise ValueError(f"need the losses of at least two windows, got {len(window_losses)}")
    first, last = float(window_losses[0]), float(window_losses[-1])
    finite = all(math.isfinite(float(v)) for v in window_losses)
    return {"loss_first": first, "loss_last": last, "loss_finite": finite, "loss_falling": finite and last < first}


def training_cases(plan: CheckPlan) -> list[tuple]:
    """``(depths, amp, compile)`` in the order they run: every eager case, then the compiled ones, each
    compiled model once before any twice (precisions alternating), so a tight budget still covers both."""
    eager = [(d, amp, False) for d in plan.models for amp in plan.precisions]
    count = len(plan.precisions)
    compiled = [(d, plan.precisions[(i + shift) % count], True)
                for shift in range(count) for i, d in enumerate(plan.compile_models)]
    return eager + compiled


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_case(plan: CheckPlan, data: CheckData, device: torch.device, depths: tuple, amp: str,
             compiled: bool) -> dict:
    """Train one case for ``plan.steps`` steps (windows of ``plan.window``); raises on failure."""
    config = check_config(plan, depths=depths, amp=amp, compile=compiled)
    precision = resolve_precision(config.amp, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    configure_determinism(config.deterministic)
    seed_everything(config.seed)
    model = place_model(build_model(config, data.num_classes, pretrained=False), config, device)
    optimizer, criterion, scaler = build_optimizer(model, config), build_criterion(config), make_grad_scaler(precision)
    train_model = torch.compile(model) if config.compile else model
    losses, walls, images = [], [], []
    try:
        for w in range(plan.steps // plan.window):
            start = time.perf_counter()
            stats = train_one_epoch(train_model, criterion, optimizer,
                                    CycledBatches(data.batches, w * plan.window, plan.window), device, w + 1,
                                    precision=precision, scaler=scaler, channels_last=config.channels_last,
                                    progress=False)
            _synchronize(device)
            walls.append(time.perf_counter() - start)
            losses.append(stats["loss"])
            images.append(stats["images"])
    finally:
        if config.compile:
            torch.compiler.reset()  # fresh dynamo caches: the next model is not a recompile of this one
    params_finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    same = compiled_matches_eager(model, train_model, data.batches[0][0], config.channels_last) if compiled else None
    out = {
        "precision": precision.name,
        "steps": plan.steps,
        "img_per_s": round(sum(images[1:]) / sum(walls[1:]), 1),  # the first window (warm-up, compile) left out
        "first_window_s": round(walls[0], 3),
        "peak_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None,
        **loss_trend(losses),
        "window_losses": [round(v, 5) for v in losses],
        "params_finite": params_finite,
    }
    if precision.use_scaler:
        out["grad_scale"] = float(scaler.get_scale())
    out["ok"] = out["loss_falling"] and params_finite
    if same is not None:
        out["compiled_vs_eager"] = same
        out["ok"] = out["ok"] and same["ok"]
    return out


def compare_embeddings(eager: torch.Tensor, other: torch.Tensor, minimum: float = COMPILED_COSINE_MIN) -> dict:
    """Row-wise cosine similarity of two N×D embeddings; ``ok`` when every row reaches ``minimum``."""
    if eager.shape != other.shape:
        return {"ok": False, "error": f"shapes differ: {tuple(eager.shape)} and {tuple(other.shape)}"}
    cosine = torch.nn.functional.cosine_similarity(eager.double(), other.double(), dim=1)
    worst = float(torch.nan_to_num(cosine, nan=-1.0).min())
    diff = float(torch.nan_to_num((eager.double() - other.double()).abs(), nan=float("inf")).max())
    return {"ok": worst >= minimum, "worst_cosine": worst, "min_cosine_required": minimum,
            "max_abs_diff": diff if math.isfinite(diff) else None}


def compiled_matches_eager(model: torch.nn.Module, compiled: torch.nn.Module, images: torch.Tensor,
                           channels_last: bool) -> dict:
    """Eval-mode fp32 embeddings of one batch from the eager model and its ``torch.compile`` wrapper (same
    weights), compared with :func:`compare_embeddings`; the model is put back in train mode."""
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    model.eval()
    try:
        with torch.no_grad():
            return compare_embeddings(model(images).float(), compiled(images).float())
    finally:
        model.train()


def training_section(plan: CheckPlan, data: Callable[[], CheckData], device: torch.device,
                     deadline: float) -> dict:
    """Every case of :func:`training_cases` that fits before ``deadline`` (``time.monotonic()``); a case that
    fails is recorded with its error and the next one runs. ``data()`` gives the inputs (made on first use).
    Not ``ok`` when a case failed or when a precision has no eager or no compiled case that ran: a budget
    too short to reach a path is no pass."""
    inputs = data()
    expected = {False: 0.0, True: float(plan.compile_estimate_s)}
    cases = []
    for depths, amp, compiled in training_cases(plan):
        entry = {"model": model_name(depths), "amp": amp, "compile": compiled}
        left = deadline - time.monotonic()
        if expected[compiled] > left:
            entry.update(skipped=f"time budget: {left:.0f} s left of budget_s={plan.budget_s:g}, "
                                 f"a case like this takes about {expected[compiled]:.0f} s")
            cases.append(entry)
            continue
        start = time.monotonic()
        try:
            entry.update(run_case(plan, inputs, device, depths, amp, compiled))
        except Exception as err:  # noqa: BLE001 - recorded; the other cases still run
            entry.update(failure(err))
        entry["time_s"] = round(time.monotonic() - start, 3)
        expected[compiled] = entry["time_s"]
        log.info("sagkit bench gpu: %s %s%s: %s", entry["model"], amp, " compiled" if compiled else "",
                 f"{entry['img_per_s']} img/s" if entry.get("ok") else entry.get("error", "FAILED (see the report)"))
        cases.append(entry)
    ran = [c for c in cases if "skipped" not in c]
    wanted = {(amp, compiled) for _, amp, compiled in training_cases(plan)}
    missing = sorted(wanted - {(c["amp"], c["compile"]) for c in ran})
    problems = [f"no {amp} {'compiled' if compiled else 'eager'} case ran (time budget)" for amp, compiled in missing]
    problems += [f"{c['model']} {c['amp']}{' compiled' if c['compile'] else ''} failed" for c in ran if not c["ok"]]
    return {"compared": "each case: mean loss of the first window of steps against the last (must fall), "
                        "parameters finite, compiled cases' eval embeddings against eager ones (worst cosine "
                        f">= {COMPILED_COSINE_MIN}); every precision must have run eager and compiled",
            "ok": bool(ran) and not problems, "problems": problems, "ran": len(ran),
            "skipped": len(cases) - len(ran), "batch_size": len(inputs.batches[0][1]),
            "preloaded_batches": len(inputs.batches), "cases": cases}
