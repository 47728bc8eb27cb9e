"""``train(config)``: an experiment run into its folder (``sagkit.runs.folder``), from the lock to the results.

The life cycle of the folder: the run lock is held throughout; a finished run is reused; an interrupted one
resumes from ``checkpoint_last.pt`` once it is checked to be this experiment's; the training itself is the
engine's (``sagkit.engine.session``); the final test scores the selected checkpoint with
``sagkit.runs.evaluate.score_test_split`` and writes ``per_query.npz`` then ``results.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from functools import partial
from typing import Optional

import torch

from sagkit.atomic import check_folder, remove_stale_temporaries
from sagkit.config import ExperimentConfig, sized_for_gpu
from sagkit.evaluation.bootstrap import interval_method, run_intervals
from sagkit.evaluation.threads import torch_threads

from sagkit.engine.checkpoint import MODEL_ENTRIES, load_checkpoint
from sagkit.engine.device import run_device
from sagkit.engine.distributed import (DistInfo, barrier, cleanup_distributed, env_dist_info, init_distributed,
                                       share_from_main)
from sagkit.engine.feature_cache import FEATURES_DIR, FeatureCache
from sagkit.engine.session import Progress, RunFiles, Session, fit, restore, setup_session
from sagkit.runs import folder as rd
from sagkit.runs import lock as run_lock
from sagkit.runs.evaluate import score_test_split
from sagkit.runs.per_query import retrieval_queries, write_per_query
from sagkit.runs.record import RunResults, is_complete, read_results, write_results

__all__ = ["RESUME_ENTRIES", "train"]

log = logging.getLogger("sagkit.engine")
RESUME_ENTRIES = MODEL_ENTRIES + ("optimizer", "lr_scheduler", "rng", "epoch", "best_metric", "best_epoch")


def train(
    config: ExperimentConfig | dict,
    *,
    resume: bool = True,
    retrain: bool = False,
    progress: bool = True,
    wait: bool = True,
    any_world_size: bool = False,
) -> RunResults:
    """Train ``config`` and return its results record (``results.json``, :class:`RunResults`).

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
        device = run_device(config, local_rank=pre.local_rank, world_size=pre.world_size,
                            quiet=not (pre.is_main and sized_for_gpu(config)))
        with torch_threads(config.num_threads or torch.get_num_threads()):
            info = init_distributed(device)
            try:
                barrier(info)  # under DDP the other ranks go on once rank 0 holds the lock
                finished = _finished_run(config, retrain, info, any_world_size) if info.is_distributed else None
                if finished is not None:
                    return finished
                return _train(config, device, info, resume=resume and not retrain, retrain=retrain,
                              progress=progress)
            finally:
                cleanup_distributed(info)


def _finished_run(config: ExperimentConfig, retrain: bool, info: DistInfo,
                  any_world_size: bool = False) -> Optional[RunResults]:
    """The results of the finished run of ``config`` when it is to be reused, else None; ValueError when it
    was trained by another number of processes (unless ``any_world_size``)."""
    if retrain or not is_complete(config.run_dir()):
        return None
    if rd.differing_fields(rd.read_config(config.run_dir()), config):
        return None
    results = read_results(config.run_dir())
    trained = results.processes
    if trained != info.world_size and not any_world_size:
        raise ValueError(
            f"the finished run {config.run_dir()} was trained by {trained} process(es), this job has "
            f"{info.world_size}: batch_size is split over the processes (and BatchNorm is per process unless "
            "sync_bn), so it is another recipe. Reuse it anyway with train(..., any_world_size=True) "
            "(sagkit train --any-world-size), or train it again here with retrain=True (--retrain)")
    if info.is_main:
        log.info("sagkit: reusing the finished run %s (retrain=True trains it again)", config.run_dir())
    return results


def _train(config: ExperimentConfig, device: torch.device, info: DistInfo, *, resume: bool, retrain: bool,
           progress: bool) -> RunResults:
    wall_start = time.perf_counter()
    run_dir = config.run_dir()
    files = RunFiles(run_dir / rd.CHECKPOINT_LAST, run_dir / rd.CHECKPOINT_BEST, run_dir / rd.TENSORBOARD_DIR,
                     partial(rd.write_metrics, run_dir))
    # Data, model and optimiser before the run folder: a bad data root, option or model leaves no folder.
    s = setup_session(config, device, info, files)
    if info.is_main:
        _prepare_folder(config, retrain)
    barrier(info)
    p = _resume(s) if resume and files.last.is_file() else Progress()
    wall_start = fit(s, p, progress, wall_start)
    return _test(s, p, wall_start)


def _prepare_folder(config: ExperimentConfig, retrain: bool) -> None:
    """Create the run folder (``retrain``: emptied) and remove what a killed write left there."""
    run_dir = rd.prepare_run_dir(config, retrain=retrain)
    removed = remove_stale_temporaries(run_dir) + remove_stale_temporaries(run_dir / FEATURES_DIR)
    if removed:
        log.info("sagkit: removed %d temporary file(s) left in %s by a write that was killed: %s", len(removed),
                 run_dir, ", ".join(p.name for p in removed))


def _resume(s: Session) -> Progress:
    """``checkpoint_last.pt`` checked against the session before anything is loaded (unreadable, of another
    experiment or of another number of classes: ValueError naming it, and nothing changes), then loaded; the
    metrics rows after its epoch are dropped."""
    path, run_dir = s.files.last, s.config.run_dir()
    again = "train with resume=False (--no-resume) to start the run again"
    try:
        ckpt = load_checkpoint(path, required=RESUME_ENTRIES)
        changed = rd.differing_fields(ExperimentConfig.from_run(ckpt["config"]), s.config)
    except ValueError as err:
        raise ValueError(f"cannot resume the run in {run_dir}: {err}; or {again}") from None
    if changed:
        raise ValueError(f"cannot resume from {path}: it was written by another experiment (fields {changed} "
                         f"differ); put back this run's checkpoint, or {again}")
    if ckpt["num_classes"] != s.data.num_classes:
        raise ValueError(f"cannot resume from {path}: it has {ckpt['num_classes']} classes but the training data "
                         f"now has {s.data.num_classes} identities (did data_root change?); use the data the run "
                         f"started with, or {again}")
    progress = restore(s, ckpt, rd.read_metrics(run_dir))
    if s.info.is_main:
        log.info("sagkit: resuming %s after epoch %d", run_dir, progress.epoch)
    return progress


def _test(s: Session, p: Progress, wall_start: float) -> RunResults:
    """Evaluate the selected checkpoint on the test split; write ``per_query.npz`` then ``results.json``
    (with bootstrap intervals over the queries). Under DDP every rank extracts its shard of the features,
    rank 0 alone scores and writes, and the other ranks return its results once they are written."""
    config, run_dir = s.config, s.config.run_dir()
    t0 = time.perf_counter()
    best = load_checkpoint(s.files.best, map_location=s.device)
    s.model.load_state_dict(best["model"])
    # The test features are kept beside the checkpoint: the notebooks and `sagkit eval` score the same ones.
    retrieval = score_test_split(s.model, config, s.data.dataset, device=s.device, dist_info=s.info,
                                 cache=FeatureCache(s.files.best))
    if not s.info.is_main:
        return share_from_main(None, s.info)
    queries = retrieval_queries(retrieval, config)
    p.timings["test_s"] += time.perf_counter() - t0
    p.timings["total_s"] += time.perf_counter() - wall_start
    rows = p.rows
    trained = [r for r in rows if r.get("time_s")]
    results = RunResults(
        complete=True,
        name=config.run_name(),
        run_dir=str(run_dir),
        run_key=config.run_key(),
        dataset=config.dataset,
        backbone=config.backbone,
        depths=tuple(config.depths),
        metrics=retrieval.summary(),
        cmc=retrieval.single.cmc.tolist(),
        intervals=run_intervals(queries.scores),
        interval_method=interval_method(),
        protocol=retrieval.protocol.describe(),
        best_epoch=best.get("best_epoch", best["epoch"]),
        select_metric=config.select_metric,
        best_val=best.get("best_val"),
        epochs=config.epochs,
        final_train_loss=rows[-1]["loss"] if rows else None,
        final_train_acc=rows[-1]["acc"] if rows else None,
        num_classes=s.data.num_classes,
        num_train_images=len(s.data.train),
        num_query=len(s.data.query),
        num_gallery=len(s.data.gallery),
        timings={
            **{k: round(v, 3) for k, v in p.timings.items()},
            "epoch_s_mean": round(sum(r["time_s"] for r in trained) / len(trained), 3) if trained else None,
            "img_per_s_mean": round(sum(r["img_per_s"] for r in trained) / len(trained), 2) if trained else None,
        },
        device=str(s.device),
        precision=s.precision.name,
        world_size=s.info.world_size,
        torch=torch.__version__,
        code_version=rd.code_version(),
        config=json.loads(config.to_json()),
        finished_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    write_per_query(run_dir, queries)  # before results.json, whose presence marks the run finished
    write_results(run_dir, results)
    return share_from_main(results, s.info)
