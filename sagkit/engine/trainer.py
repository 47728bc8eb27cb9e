"""The training loop: ``train_one_epoch`` and ``train(config)``, which runs (or resumes, or reuses) a whole
experiment and writes its run folder (see ``sagkit.runs.folder``).

Testing hook: when the environment variable ``SAGKIT_TEST_EXIT_AFTER_BATCHES=N`` is set, the process
exits abruptly (``os._exit(3)``, no clean-up, like a kill) after its N-th optimisation step.

This module is longer than ~300 lines: set-up, resume, one epoch, checkpoints and the final test share one
session's objects and are read in the order a run goes through them.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from sagkit.atomic import check_folder, remove_stale_temporaries
from sagkit.config import ExperimentConfig, sized_for_gpu
from sagkit.evaluation.bootstrap import interval_method, run_intervals

from sagkit.runs import folder as rd
from sagkit.runs import lock as run_lock
from sagkit.engine.builders import (attach_transforms, build_data, build_model, convert_sync_batchnorm,
                       make_train_loader)
from sagkit.engine.checkpoint import MODEL_ENTRIES, atomic_torch_save, load_checkpoint, load_weights, make_checkpoint, set_rng_state
from sagkit.engine.device import (
    Precision,
    autocast,
    configure_determinism,
    epoch_seed,
    make_grad_scaler,
    resolve_device,
    resolve_precision,
    retain_freed_memory,
    seed_everything,
)
from sagkit.engine.distributed import (DistInfo, all_reduce_min, barrier, broadcast_buffers, cleanup_distributed, env_dist_info,
                          init_distributed, share_from_main)
from sagkit.engine.feature_cache import FEATURES_DIR, FeatureCache
from sagkit.engine.optim import build_criterion, build_optimizer, build_scheduler, current_lrs
from sagkit.runs.per_query import retrieval_queries, write_per_query
from sagkit.engine.retrieval import EvalSettings, retrieve, retrieve_dataset
from sagkit.engine.tb_log import ScalarLog

__all__ = ["TrainingDiverged", "train_one_epoch", "train"]

log = logging.getLogger("sagkit.engine")
FAULT_ENV = "SAGKIT_TEST_EXIT_AFTER_BATCHES"
NONFINITE_CHECK_EVERY = 25  # steps between reads of the non-finite-loss flag on a GPU


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run stops, its last good checkpoint stays on disk."""

    def __init__(self, epoch: int, batch: int, lr: float, loss: float, checkpoint: Optional[str] = None):
        self.epoch, self.batch, self.lr, self.loss, self.checkpoint = epoch, batch, lr, loss, checkpoint
        kept = (
            f"The last good checkpoint is kept at {checkpoint}."
            if checkpoint
            else "No checkpoint had been saved yet."
        )
        super().__init__(
            f"training diverged: the loss is {loss} at epoch {epoch}, batch {batch} (learning rate {lr:g}). "
            f"Lower the learning rate (lr_new / lr_pretrained) and train again (retrain=True). {kept}"
        )


def _progress_bar(iterable, enabled: bool, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not enabled, dynamic_ncols=True, **kwargs)


def _fault_hook() -> Callable[[], None]:
    """Counts optimisation steps and kills the process after ``$SAGKIT_TEST_EXIT_AFTER_BATCHES`` of them."""
    limit = os.environ.get(FAULT_ENV)
    if not limit:
        return lambda: None
    try:
        remaining = [int(limit)]
    except ValueError:
        raise ValueError(f"environment variable {FAULT_ENV}={limit!r} must be a number of optimisation steps (a "
                         "testing hook that kills the run): unset it") from None

    def step() -> None:
        remaining[0] -= 1
        if remaining[0] <= 0:
            os._exit(3)

    return step


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader,
    device: torch.device,
    epoch: int,
    *,
    precision: Optional[Precision] = None,
    scaler: Optional[torch.amp.GradScaler] = None,
    channels_last: bool = False,
    max_batches: Optional[int] = None,
    progress: bool = True,
    dist_info: Optional[DistInfo] = None,
    on_step: Optional[Callable[[], None]] = None,
    check_every: Optional[int] = None,
) -> dict:
    """One pass over ``loader`` (items ``(images N×3×H×W, pids N, camids N, index N)``).

    ``criterion(model output, pids)`` gives ``(loss, {name: value})`` (``sagkit.losses.Criterion``); the
    model's training output has ``logits`` (``sagkit.models.TrainOutput``).
    Returns ``{"loss", "acc" (percent), "parts" ({loss name: mean value}), "img_per_s", "images",
    "batches", "time_s"}`` over all ranks.
    Raises :class:`TrainingDiverged` (on every rank) when a loss is NaN or infinite, naming the first such
    batch. ``check_every`` steps between those checks (default: 1 on the CPU, where reading the loss costs
    nothing; :data:`NONFINITE_CHECK_EVERY` on a GPU, where each check waits for the device and, under DDP,
    all-reduces): between checks a flag stays on the device, and the steps after a bad loss still run.
    """
    info = dist_info or DistInfo()
    precision = precision or Precision(device.type, None, False)
    model.train()
    total = len(loader) if max_batches is None else min(len(loader), max_batches)
    if total == 0:
        raise ValueError(
            "the training loader yields no batch: batch_size is larger than the training set "
            f"({len(getattr(loader, 'dataset', []))} images); lower batch_size"
        )
    every = int(check_every or (1 if device.type == "cpu" else NONFINITE_CHECK_EVERY))
    first_bad = torch.full((), -1, dtype=torch.long, device=device)  # batch index of the first bad loss
    bad_loss = torch.zeros((), dtype=torch.float64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    part_sums: dict[str, torch.Tensor] = {}
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    start = time.perf_counter()
    bar = _progress_bar(loader, progress and info.is_main, total=total, desc=f"epoch {epoch}", leave=False)
    for index, batch in enumerate(bar):
        if index >= total:
            break
        images, targets = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(precision):
            output = model(images)
            loss, parts = criterion(output, targets)
        if every == 1:
            finite = bool(torch.isfinite(loss).item())
            if not all_reduce_min(finite, info):
                bar.close()
                raise TrainingDiverged(epoch, index + 1, max(current_lrs(optimizer)), float(loss.item()))
        else:
            first = ~torch.isfinite(loss.detach()) & (first_bad < 0)
            first_bad = torch.where(first, index, first_bad)
            bad_loss = torch.where(first, loss.detach().double(), bad_loss)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        n = images.shape[0]
        seen += n
        loss_sum += loss.detach().double() * n
        for name, value in parts.items():
            part_sums[name] = part_sums.get(name, 0.0) + value.double() * n
        correct += (output.logits.detach().argmax(dim=1) == targets).sum()
        if every > 1 and ((index + 1) % every == 0 or index == total - 1):
            bad = int(first_bad.item())
            if not all_reduce_min(bad < 0, info):
                bar.close()
                # another rank's loss was bad: this one reports the batch of the check
                batch, value = (bad + 1, float(bad_loss.item())) if bad >= 0 else (index + 1, float("nan"))
                raise TrainingDiverged(epoch, batch, max(current_lrs(optimizer)), value)
        if info.is_main and progress and (index % (5 if every == 1 else every) == 0 or index == total - 1):
            elapsed = max(time.perf_counter() - start, 1e-9)
            shown = {name: f"{value.item() / seen:.3f}" for name, value in part_sums.items()} if len(parts) > 1 else {}
            bar.set_postfix(
                loss=f"{loss_sum.item() / seen:.3f}",
                **shown,
                acc=f"{100.0 * correct.item() / seen:.1f}",
                img_s=f"{seen * info.world_size / elapsed:.0f}",
            )
        if on_step is not None:
            on_step()
    bar.close()
    elapsed = time.perf_counter() - start
    names = sorted(part_sums)
    totals = torch.stack([loss_sum, correct.double(), torch.tensor(float(seen), device=device, dtype=torch.float64),
                          *(part_sums[name] for name in names)])
    if info.is_distributed:
        totals = _all_reduce_sum(totals)
    loss_total, correct_total, seen_total, *part_totals = (float(v) for v in totals.tolist())
    return {
        "loss": loss_total / seen_total,
        "acc": 100.0 * correct_total / seen_total,
        "parts": {name: value / seen_total for name, value in zip(names, part_totals)},
        "img_per_s": seen_total / max(elapsed, 1e-9),
        "images": int(seen_total),
        "batches": total,
        "time_s": elapsed,
    }


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    comm = tensor if dist.get_backend() == "nccl" else tensor.cpu()
    dist.all_reduce(comm)
    return comm


def _all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


def train(
    config: ExperimentConfig | dict,
    *,
    resume: bool = True,
    retrain: bool = False,
    progress: bool = True,
    wait: bool = True,
    any_world_size: bool = False,
) -> dict:
    """Train ``config`` and return its results (the content of ``results.json``).

    - A finished run with the same key is reused (its ``results.json`` returned) unless ``retrain=True``; it is
      only read, without taking the lock, so a read-only runs folder serves it.
    - ``resume=True`` continues an interrupted run from ``checkpoint_last.pt`` (epoch granularity); the
      result equals that of an uninterrupted run with the same seed (bit-exact on CPU).
    - The run folder's lock (``sagkit.runs.lock``) is held throughout: while another process trains
      the run, this one waits for it (then reuses its results), or raises ``RunLocked`` with ``wait=False``.
    - Under ``torchrun`` the same call trains with DDP (see ``sagkit.engine.distributed``); rank 0 takes the
      lock; the other ranks wait at the first barrier (up to the process group's timeout) and then decide.
    - A finished run trained by another number of processes (``world_size`` in results.json, 1 when absent)
      is not reused: ``batch_size`` is split over the processes, so it is another recipe. ``ValueError``
      unless ``any_world_size=True`` (reuse it anyway) or ``retrain=True``.
    """
    if isinstance(config, dict):
        config = ExperimentConfig.from_dict(config)
    check_folder(config.runs_dir, "runs_dir")
    pre = env_dist_info()
    if not pre.is_distributed:  # a finished run is only read: no lock file, so a read-only runs folder serves it
        finished = _finished_run(config, retrain, pre, any_world_size)
        if finished is not None:
            return finished
    with run_lock.hold(config.run_dir(), wait=wait, enabled=pre.is_main):
        finished = None if pre.is_distributed else _finished_run(config, retrain, pre, any_world_size)
        if finished is not None:
            return finished
        device = resolve_device(config.device, pre.local_rank, quiet=not (pre.is_main and sized_for_gpu(config)),
                                world_size=pre.world_size)
        if device.type == "cpu" and config.retain_memory:
            retain_freed_memory()
        threads = torch.get_num_threads()
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        info = init_distributed(device)
        try:
            barrier(info)  # under DDP the other ranks go on once rank 0 holds the lock
            finished = _finished_run(config, retrain, info, any_world_size) if info.is_distributed else None
            if finished is not None:
                return finished
            return _train(config, device, info, resume=resume and not retrain, retrain=retrain, progress=progress)
        finally:
            cleanup_distributed(info)
            torch.set_num_threads(threads)


def _finished_run(config: ExperimentConfig, retrain: bool, info: DistInfo,
                  any_world_size: bool = False) -> Optional[dict]:
    """The results of the finished run of ``config`` when it is to be reused, else None; ValueError when it
    was trained by another number of processes (unless ``any_world_size``)."""
    if retrain or not rd.is_complete(config.run_dir()):
        return None
    if rd.differing_fields(rd.read_config(config.run_dir()), config):
        return None
    results = rd.read_results(config.run_dir())
    trained = int(results.get("world_size", 1))
    if trained != info.world_size and not any_world_size:
        raise ValueError(
            f"the finished run {config.run_dir()} was trained by {trained} process(es), this job has "
            f"{info.world_size}: batch_size is split over the processes (and BatchNorm is per process unless "
            "sync_bn), so it is another recipe. Reuse it anyway with train(..., any_world_size=True) "
            "(sagkit train --any-world-size), or train it again here with retrain=True (--retrain)")
    if info.is_main:
        log.info("sagkit: reusing the finished run %s (retrain=True trains it again)", config.run_dir())
    return results


@dataclass
class _Progress:
    """What a run has achieved so far; restored from ``checkpoint_last.pt`` on resume."""

    epoch: int = 0
    best_metric: Optional[float] = None
    best_epoch: Optional[int] = None
    best_val: Optional[dict] = None
    timings: dict = field(default_factory=lambda: {"train_s": 0.0, "val_s": 0.0, "test_s": 0.0, "total_s": 0.0})
    rows: list = field(default_factory=list)


@dataclass
class _Session:
    """The objects of one training session."""

    config: ExperimentConfig
    device: torch.device
    info: DistInfo
    precision: Precision
    data: object
    model: nn.Module  # model_without_ddp
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: object
    scaler: torch.amp.GradScaler
    run_dir: Path
    scalars: ScalarLog  # TensorBoard copy of metrics.csv (rank 0)

    @property
    def last_path(self) -> Path:
        return self.run_dir / rd.CHECKPOINT_LAST

    @property
    def best_path(self) -> Path:
        return self.run_dir / rd.CHECKPOINT_BEST

    def validate(self) -> dict:
        """Metrics (percent) on the held-out training identities, under the dataset's protocol, no re-ranking.
        Under DDP every rank first takes rank 0's buffers, so all shards are scored by one model; rank 0
        scores, and every rank gets its metrics (model selection runs on each)."""
        broadcast_buffers(self.model, self.info)
        retrieval = retrieve(self.model, self.data.val_query, self.data.val_gallery, self.data.test_transform,
                             device=self.device, protocol=self.data.dataset.protocol, dist_info=self.info,
                             settings=EvalSettings.from_config(self.config, rerank=False))
        return share_from_main(retrieval.summary() if self.info.is_main else None, self.info)


def _setup(config: ExperimentConfig, device: torch.device, info: DistInfo, retrain: bool) -> _Session:
    precision = resolve_precision(config.amp, device)
    if config.sync_bn and info.is_distributed and device.type != "cuda":
        raise ValueError("sync_bn=True needs CUDA devices (SyncBatchNorm runs on GPUs only); set sync_bn=False "
                         "for DDP on the CPU")
    configure_determinism(config.deterministic)
    # Data, model and optimiser before the run folder: a bad data root, option or model leaves no folder.
    data = build_data(config)
    seed_everything(config.seed)  # the same initial weights on every rank and every resume
    model = build_model(config, data.num_classes)
    if config.sync_bn and info.is_distributed:
        model = convert_sync_batchnorm(model)  # after build_model: the per-branch statistics follow (rebind)
    model = model.to(device)
    attach_transforms(config, data, model.input_mean, model.input_std)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_criterion(config, data.num_classes, model.feature_dim).to(device)
    optimizer = build_optimizer(model, config)
    if info.is_main:
        run_dir = rd.prepare_run_dir(config, retrain=retrain)
        removed = remove_stale_temporaries(run_dir) + remove_stale_temporaries(run_dir / FEATURES_DIR)
        if removed:
            log.info("sagkit: removed %d temporary file(s) left in %s by a write that was killed: %s", len(removed),
                     run_dir, ", ".join(p.name for p in removed))
    barrier(info)
    return _Session(config, device, info, precision, data, model, criterion, optimizer,
                    build_scheduler(optimizer, config), make_grad_scaler(precision), config.run_dir(),
                    ScalarLog(config.run_dir() / rd.TENSORBOARD_DIR, enabled=info.is_main))


RESUME_ENTRIES = MODEL_ENTRIES + ("optimizer", "lr_scheduler", "rng", "epoch", "best_metric", "best_epoch")


def _resume_checkpoint(s: _Session) -> dict:
    """``checkpoint_last.pt`` checked against the session before anything is loaded: unreadable, of another
    experiment or of another number of classes, it raises ValueError naming it, and nothing changes."""
    path = s.last_path
    again = "train with resume=False (--no-resume) to start the run again"
    try:
        ckpt = load_checkpoint(path, required=RESUME_ENTRIES)
        changed = rd.differing_fields(ExperimentConfig.from_run(ckpt["config"]), s.config)
    except ValueError as err:
        raise ValueError(f"cannot resume the run in {s.run_dir}: {err}; or {again}") from None
    if changed:
        raise ValueError(f"cannot resume from {path}: it was written by another experiment (fields {changed} "
                         f"differ); put back this run's checkpoint, or {again}")
    if ckpt["num_classes"] != s.data.num_classes:
        raise ValueError(f"cannot resume from {path}: it has {ckpt['num_classes']} classes but the training data "
                         f"now has {s.data.num_classes} identities (did data_root change?); use the data the run "
                         f"started with, or {again}")
    return ckpt


def _resume(s: _Session) -> _Progress:
    """Load ``checkpoint_last.pt`` into the session; metrics rows after that epoch are dropped."""
    ckpt = _resume_checkpoint(s)
    load_weights(s.model, ckpt["model"], s.last_path)
    s.optimizer.load_state_dict(ckpt["optimizer"])
    s.lr_scheduler.load_state_dict(ckpt["lr_scheduler"])
    if ckpt.get("criterion"):
        s.criterion.load_state_dict(ckpt["criterion"])
    if ckpt.get("scaler") is not None and s.scaler.is_enabled():
        s.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    progress = _Progress(ckpt["epoch"], ckpt["best_metric"], ckpt["best_epoch"], ckpt.get("best_val"))
    progress.timings.update(ckpt.get("timings") or {})
    progress.rows = [r for r in rd.read_metrics(s.run_dir) if int(r["epoch"]) <= progress.epoch]
    if s.info.is_main:
        log.info("sagkit: resuming %s after epoch %d", s.run_dir, progress.epoch)
    return progress


def _named_lrs(optimizer: torch.optim.Optimizer) -> dict:
    """{group name (None when unnamed): its learning rate}."""
    return {g.get("name"): float(g["lr"]) for g in optimizer.param_groups}


def _group_lrs(optimizer: torch.optim.Optimizer) -> tuple[float, Optional[float]]:
    """(lr of the head, lr of the pre-trained layers or None when they are all frozen)."""
    named = _named_lrs(optimizer)
    lrs = current_lrs(optimizer)
    return named.get("head", max(lrs)), named.get("backbone", min(lrs) if len(lrs) > 1 else None)


def _save_epoch(s: _Session, p: _Progress, improved: bool) -> None:
    """Rank 0 writes checkpoint_best (if improved), metrics.csv and its TensorBoard copy, then checkpoint_last
    (checkpoints and metrics.csv atomically; a resume hides TensorBoard steps past checkpoint_last as it drops
    the metrics rows past it)."""
    if not s.info.is_main:
        return
    common = dict(model=s.model, config=s.config.to_dict(), num_classes=s.data.num_classes,
                  best_metric=p.best_metric, best_epoch=p.best_epoch, epoch=p.epoch)
    if improved:
        atomic_torch_save(make_checkpoint(optimizer=None, lr_scheduler=None, scaler=None,
                                          extra={"best_val": p.best_val}, **common), s.best_path)
    rd.write_metrics(s.run_dir, p.rows)
    s.scalars.write(p.epoch, {k: v for k, v in p.rows[-1].items() if k != "epoch"})
    atomic_torch_save(make_checkpoint(optimizer=s.optimizer, lr_scheduler=s.lr_scheduler, scaler=s.scaler,
                                      extra={"best_val": p.best_val, "timings": dict(p.timings),
                                             "criterion": s.criterion.state_dict()}, **common),
                      s.last_path)


def _run_epoch(s: _Session, p: _Progress, train_model: nn.Module, epoch: int, progress: bool,
               on_step) -> tuple[bool, dict]:
    """Train one epoch and validate when due; returns (validation score improved, metrics row)."""
    config = s.config
    seed_everything(epoch_seed(config.seed, epoch) + s.info.rank)
    loader = make_train_loader(config, s.data, epoch, s.info.world_size)
    lr_new, lr_pre = _group_lrs(s.optimizer)
    lr_sag = _named_lrs(s.optimizer).get("sag")
    kept = str(s.last_path) if s.last_path.is_file() else None
    try:
        stats = train_one_epoch(
            train_model, s.criterion, s.optimizer, loader, s.device, epoch, precision=s.precision, scaler=s.scaler,
            channels_last=config.channels_last, max_batches=config.max_train_batches, progress=progress,
            dist_info=s.info, on_step=on_step,
        )
    except TrainingDiverged as err:
        raise TrainingDiverged(err.epoch, err.batch, err.lr, err.loss, kept) from None
    del loader
    if not _all_finite(s.model):
        raise TrainingDiverged(epoch, stats["batches"], lr_new, float("nan"), kept)
    s.lr_scheduler.step()
    p.epoch = epoch
    p.timings["train_s"] += stats["time_s"]
    row = {"epoch": epoch, "lr": lr_new, "lr_pretrained": lr_pre, "loss": stats["loss"],
           **{f"loss_{name}": value for name, value in stats["parts"].items()}, "acc": stats["acc"],
           "img_per_s": stats["img_per_s"], "time_s": stats["time_s"]}
    if lr_sag is not None:
        row["lr_sag"] = lr_sag
    improved = False
    has_val = bool(s.data.val_query) and bool(s.data.val_gallery)
    if has_val and (epoch % config.eval_every == 0 or epoch == config.epochs):
        t0 = time.perf_counter()
        val = s.validate()
        p.timings["val_s"] += time.perf_counter() - t0
        row.update({f"val_{k}": v for k, v in val.items()})
        score = val[config.select_metric]
        if p.best_metric is None or score > p.best_metric:
            p.best_metric, p.best_epoch, p.best_val, improved = score, epoch, val, True
    elif not has_val and epoch == config.epochs:
        p.best_epoch, improved = epoch, True
    p.rows.append(row)
    return improved, row


def _train(config: ExperimentConfig, device: torch.device, info: DistInfo, *, resume: bool, retrain: bool,
           progress: bool) -> dict:
    wall_start = time.perf_counter()
    s = _setup(config, device, info, retrain)
    p = _resume(s) if resume and s.last_path.is_file() else _Progress()

    train_model: nn.Module = s.model
    if info.is_distributed:
        train_model = nn.parallel.DistributedDataParallel(
            s.model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        train_model = torch.compile(train_model)
    on_step = _fault_hook()
    epochs = _progress_bar(range(p.epoch + 1, config.epochs + 1), progress and info.is_main,
                           initial=p.epoch, total=config.epochs, desc=config.run_name())
    for epoch in epochs:
        improved, row = _run_epoch(s, p, train_model, epoch, progress, on_step)
        p.timings["total_s"] += time.perf_counter() - wall_start
        wall_start = time.perf_counter()
        _save_epoch(s, p, improved)
        if info.is_main:
            log.info("sagkit: epoch %d/%d %s", epoch, config.epochs,
                     " ".join(f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float)))
        barrier(info)
        epochs.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['acc']:.1f}",
                           **({"val": f"{p.best_metric:.1f}"} if p.best_metric is not None else {}))
    epochs.close()
    s.scalars.close()
    return _test(s, p, wall_start)


def _test(s: _Session, p: _Progress, wall_start: float) -> dict:
    """Evaluate the selected checkpoint on the test split; write ``per_query.npz`` then ``results.json``
    (with bootstrap intervals over the queries). Under DDP every rank extracts its shard of the features,
    rank 0 alone scores and writes, and the other ranks return its results once they are written."""
    config = s.config
    t0 = time.perf_counter()
    best = load_checkpoint(s.best_path, map_location=s.device)
    s.model.load_state_dict(best["model"])
    # The test features are kept beside the checkpoint: the notebooks and `sagkit eval` score the same ones.
    retrieval = retrieve_dataset(s.model, s.data.dataset, config, device=s.device, transform=s.data.test_transform,
                                 dist_info=s.info, cache=FeatureCache(s.best_path), multi_query=True)
    if not s.info.is_main:
        return share_from_main(None, s.info)
    queries = retrieval_queries(retrieval, config)
    p.timings["test_s"] += time.perf_counter() - t0
    p.timings["total_s"] += time.perf_counter() - wall_start
    rows = p.rows
    trained = [r for r in rows if r.get("time_s")]
    results = {
        "complete": True,
        "name": config.run_name(),
        "run_dir": str(s.run_dir),
        "run_key": config.run_key(),
        "dataset": config.dataset,
        "backbone": config.backbone,
        "depths": list(config.depths),
        **retrieval.summary(),
        "cmc": retrieval.single.cmc.tolist(),
        "intervals": run_intervals(queries.scores),
        "interval_method": interval_method(),
        "protocol": retrieval.protocol.describe(),
        "best_epoch": best.get("best_epoch", best["epoch"]),
        "select_metric": config.select_metric,
        "best_val": best.get("best_val"),
        "epochs": config.epochs,
        "final_train_loss": rows[-1]["loss"] if rows else None,
        "final_train_acc": rows[-1]["acc"] if rows else None,
        "num_classes": s.data.num_classes,
        "num_train_images": len(s.data.train),
        "num_query": len(s.data.query),
        "num_gallery": len(s.data.gallery),
        "timings": {
            **{k: round(v, 3) for k, v in p.timings.items()},
            "epoch_s_mean": round(sum(r["time_s"] for r in trained) / len(trained), 3) if trained else None,
            "img_per_s_mean": round(sum(r["img_per_s"] for r in trained) / len(trained), 2) if trained else None,
        },
        "device": str(s.device),
        "precision": s.precision.name,
        "world_size": s.info.world_size,
        "torch": torch.__version__,
        "code_version": rd.code_version(),
        "config": json.loads(config.to_json()),
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_per_query(s.run_dir, queries)  # before results.json, whose presence marks the run finished
    rd.write_results(s.run_dir, results)
    return share_from_main(results, s.info)
