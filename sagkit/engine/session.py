"""A training session: the objects of one run (model, data, optimiser, schedule; :func:`setup_session`), restored
from a checkpoint (:func:`restore`), trained epoch by epoch with validation when due, each epoch's checkpoints
and metrics saved (:func:`fit`). Where the files go, and whether a checkpoint may be resumed, the caller decides
(``sagkit.runs.training``)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from sagkit.config import ExperimentConfig
from sagkit.engine.builders import (attach_transforms, build_data, build_model,
                                    convert_sync_batchnorm, make_train_loader)
from sagkit.engine.checkpoint import atomic_torch_save, load_weights, make_checkpoint, set_rng_state
from sagkit.engine.device import (Precision, configure_determinism, epoch_seed, make_grad_scaler, place_model,
                                  resolve_precision, seed_everything)
from sagkit.engine.distributed import DistInfo, barrier, broadcast_buffers, share_from_main
from sagkit.engine.fault import fault_hook
from sagkit.engine.optim import build_criterion, build_optimizer, build_scheduler, current_lrs
from sagkit.engine.retrieval import EvalSettings, retrieve
from sagkit.engine.tb_log import ScalarLog
from sagkit.engine.trainer import TrainingDiverged, progress_bar, train_one_epoch

__all__ = ["Progress", "RunFiles", "Session", "fit", "restore", "setup_session"]

log = logging.getLogger("sagkit.engine")


@dataclass(frozen=True)
class RunFiles:
    """Where a session keeps its files: ``checkpoint_last`` (resume point), ``checkpoint_best`` (selected on
    validation), the TensorBoard folder, and ``write_metrics(rows)``, which rewrites the metrics table."""

    last: Path
    best: Path
    tensorboard: Path
    write_metrics: Callable[[list], object]


@dataclass
class Progress:
    """What a run has achieved so far; restored from ``checkpoint_last.pt`` on resume."""

    epoch: int = 0
    best_metric: Optional[float] = None
    best_epoch: Optional[int] = None
    best_val: Optional[dict] = None
    timings: dict = field(default_factory=lambda: {"train_s": 0.0, "val_s": 0.0, "test_s": 0.0, "total_s": 0.0})
    rows: list = field(default_factory=list)


@dataclass
class Session:
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
    files: RunFiles
    scalars: ScalarLog  # TensorBoard copy of the metrics rows (rank 0)

    def validate(self) -> dict:
        """Metrics (percent) on the held-out training identities, under the dataset's protocol, no re-ranking.
        Under DDP every rank first takes rank 0's buffers, so all shards are scored by one model; rank 0
        scores, and every rank gets its metrics (model selection runs on each)."""
        broadcast_buffers(self.model, self.info)
        retrieval = retrieve(self.model, self.data.val_query, self.data.val_gallery, self.data.test_transform,
                             device=self.device, protocol=self.data.dataset.protocol, dist_info=self.info,
                             settings=EvalSettings.from_config(self.config, rerank=False))
        return share_from_main(retrieval.summary() if self.info.is_main else None, self.info)


def setup_session(config: ExperimentConfig, device: torch.device, info: DistInfo, files: RunFiles) -> Session:
    """Data, model (seeded with ``config.seed``: the same initial weights on every rank and every resume),
    criterion, optimiser and schedule of ``config``; nothing is written. ValueError for options that cannot run."""
    precision = resolve_precision(config.amp, device)
    if config.sync_bn and info.is_distributed and device.type != "cuda":
        raise ValueError("sync_bn=True needs CUDA devices (SyncBatchNorm runs on GPUs only); set sync_bn=False "
                         "for DDP on the CPU")
    configure_determinism(config.deterministic)
    data = build_data(config)
    seed_everything(config.seed)
    model = build_model(config, data.num_classes)
    if config.sync_bn and info.is_distributed:
        model = convert_sync_batchnorm(model)  # after build_model: the per-branch statistics follow (rebind)
    model = place_model(model, config, device)
    attach_transforms(config, data, model.input_mean, model.input_std)
    criterion = build_criterion(config, data.num_classes, model.feature_dim).to(device)
    optimizer = build_optimizer(model, config)
    return Session(config, device, info, precision, data, model, criterion, optimizer,
                   build_scheduler(optimizer, config), make_grad_scaler(precision), files,
                   ScalarLog(files.tensorboard, enabled=info.is_main))


def restore(s: Session, ckpt: dict, rows: list[dict]) -> Progress:
    """Load a checked ``checkpoint_last`` into the session; of the metrics ``rows`` those after its epoch are
    dropped."""
    load_weights(s.model, ckpt["model"], s.files.last)
    s.optimizer.load_state_dict(ckpt["optimizer"])
    s.lr_scheduler.load_state_dict(ckpt["lr_scheduler"])
    if ckpt.get("criterion"):
        s.criterion.load_state_dict(ckpt["criterion"])
    if ckpt.get("scaler") is not None and s.scaler.is_enabled():
        s.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    progress = Progress(ckpt["epoch"], ckpt["best_metric"], ckpt["best_epoch"], ckpt.get("best_val"))
    progress.timings.update(ckpt.get("timings") or {})
    progress.rows = [r for r in rows if int(r["epoch"]) <= progress.epoch]
    return progress


def _all_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


def _named_lrs(optimizer: torch.optim.Optimizer) -> dict:
    """{group name (None when unnamed): its learning rate}."""
    return {g.get("name"): float(g["lr"]) for g in optimizer.param_groups}


def _group_lrs(optimizer: torch.optim.Optimizer) -> tuple[float, Optional[float]]:
    """(lr of the head, lr of the pre-trained layers or None when they are all frozen)."""
    named = _named_lrs(optimizer)
    lrs = current_lrs(optimizer)
    return named.get("head", max(lrs)), named.get("backbone", min(lrs) if len(lrs) > 1 else None)


def _save_epoch(s: Session, p: Progress, improved: bool) -> None:
    """Rank 0 writes checkpoint_best (if improved), the metrics table and its TensorBoard copy, then
    checkpoint_last (checkpoints and metrics atomically; a resume hides TensorBoard steps past checkpoint_last as
    it drops the metrics rows past it)."""
    if not s.info.is_main:
        return
    common = dict(model=s.model, config=s.config.to_dict(), num_classes=s.data.num_classes,
                  best_metric=p.best_metric, best_epoch=p.best_epoch, epoch=p.epoch)
    if improved:
        atomic_torch_save(make_checkpoint(optimizer=None, lr_scheduler=None, scaler=None,
                                          extra={"best_val": p.best_val}, **common), s.files.best)
    s.files.write_metrics(p.rows)
    s.scalars.write(p.epoch, {k: v for k, v in p.rows[-1].items() if k != "epoch"})
    atomic_torch_save(make_checkpoint(optimizer=s.optimizer, lr_scheduler=s.lr_scheduler, scaler=s.scaler,
                                      extra={"best_val": p.best_val, "timings": dict(p.timings),
                                             "criterion": s.criterion.state_dict()}, **common),
                      s.files.last)


def _run_epoch(s: Session, p: Progress, train_model: nn.Module, epoch: int, progress: bool,
               on_step) -> tuple[bool, dict]:
    """Train one epoch and validate when due; returns (validation score improved, metrics row)."""
    config = s.config
    seed_everything(epoch_seed(config.seed, epoch) + s.info.rank)
    loader = make_train_loader(config, s.data, epoch, s.info.world_size)
    lr_new, lr_pre = _group_lrs(s.optimizer)
    lr_sag = _named_lrs(s.optimizer).get("sag")
    kept = str(s.files.last) if s.files.last.is_file() else None
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


def fit(s: Session, p: Progress, progress: bool, wall_start: float) -> float:
    """Train the epochs after ``p.epoch`` up to ``config.epochs`` (under DDP and ``torch.compile`` as the config
    says), saving each; ``wall_start`` is when the session began. Returns when the last epoch ended."""
    config, info = s.config, s.info
    train_model: nn.Module = s.model
    if info.is_distributed:
        train_model = nn.parallel.DistributedDataParallel(
            s.model, device_ids=[s.device.index] if s.device.type == "cuda" else None
        )
    if config.compile:
        train_model = torch.compile(train_model)
    on_step = fault_hook()
    epochs = progress_bar(range(p.epoch + 1, config.epochs + 1), progress and info.is_main,
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
    return wall_start
