"""TensorBoard event files of a training run: the metrics.csv values per epoch, a resume without duplicate
steps, the ordering of a new session's file, and training without tensorboard installed."""

import logging
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from sagkit.config import get_profile
from sagkit.engine import session as session_module
from sagkit.engine import tb_log
from sagkit.runs import train
from sagkit.runs.folder import CHECKPOINT_LAST, TENSORBOARD_DIR, prepare_run_dir, read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")
EventAccumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator").EventAccumulator


def _scalars(log_dir: Path) -> dict:
    """{tag: [(step, value), ...]} as TensorBoard's Python loader reads the folder."""
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _expected(rows: list[dict]) -> dict:
    """{tag: [(epoch, value as float32), ...]} from metrics.csv rows (empty cells have no point)."""
    out: dict = {}
    for row in rows:
        for key, value in row.items():
            if key != "epoch" and value is not None:
                out.setdefault(tb_log.tag_for(key), []).append((row["epoch"], float(np.float32(value))))
    return out


def _event_files(log_dir: Path) -> list[Path]:
    return sorted(p for p in log_dir.iterdir() if "tfevents" in p.name)


def test_tags_group_the_metrics_fields():
    assert [tb_log.tag_for(k) for k in ("loss", "loss_triplet", "acc", "img_per_s", "lr", "lr_pretrained",
                                         "lr_sag", "val_mAP", "val_rank1")] == [
        "loss/loss", "loss/loss_triplet", "train/acc", "train/img_per_s", "lr/lr", "lr/lr_pretrained",
        "lr/lr_sag", "val/mAP", "val/rank1"]


@pytest.mark.slow
def test_a_run_writes_its_metrics_csv_values_as_scalars(data_root, tmp_path):
    cfg = get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path), max_train_batches=2, device="cpu")
    train(cfg, progress=False)
    rows = read_metrics(cfg.run_dir())
    log_dir = cfg.run_dir() / TENSORBOARD_DIR
    assert len(_event_files(log_dir)) == 1
    got = _scalars(log_dir)
    assert got == _expected(rows)
    assert {"loss/loss", "train/acc", "train/img_per_s", "lr/lr", "lr/lr_pretrained", "lr/lr_sag",
            "val/mAP", "val/rank1"} <= set(got)  # a SAG run: three parameter groups, validated each epoch
    assert [step for step, _ in got["loss/loss"]] == [1, 2]
    assert rows[0]["lr_sag"] == cfg.lr_sag


class _Killed(Exception):
    pass


@pytest.mark.slow
def test_a_resumed_run_continues_without_duplicate_steps(data_root, tmp_path, monkeypatch):
    cfg = get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path), depths=(), epochs=3,
                      max_train_batches=2, device="cpu")
    real_save = session_module.atomic_torch_save

    def dies_before_the_epoch_2_checkpoint(obj, path):
        if Path(path).name == CHECKPOINT_LAST and obj["epoch"] == 2:
            raise _Killed  # metrics.csv and the event file already hold epoch 2, the checkpoint does not
        return real_save(obj, path)

    monkeypatch.setattr(session_module, "atomic_torch_save", dies_before_the_epoch_2_checkpoint)
    with pytest.raises(_Killed):
        train(cfg, progress=False)
    log_dir = cfg.run_dir() / TENSORBOARD_DIR
    first = _scalars(log_dir)
    assert [step for step, _ in first["loss/loss"]] == [1, 2]

    monkeypatch.setattr(session_module, "atomic_torch_save", real_save)
    train(cfg, progress=False)  # resumes after epoch 1 and trains epochs 2 and 3 again
    rows = read_metrics(cfg.run_dir())
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert len(_event_files(log_dir)) == 2  # one file per session, the second read last
    got = _scalars(log_dir)
    assert got == _expected(rows)  # one point per epoch; epoch 2 from the resumed session
    assert got["train/time_s"][1] != first["train/time_s"][1]


def test_a_new_session_file_is_read_after_an_older_one_of_the_same_second(tmp_path):
    old = tb_log.ScalarLog(tmp_path)
    for step in (1, 2, 3):
        old.write(step, {"loss": 10.0 + step})
    old.close()
    (path,) = _event_files(tmp_path)
    # another process's file from this very second whose pid sorts after ours
    renamed = tmp_path / f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{'9' * 12}.0"
    os.replace(path, renamed)
    new = tb_log.ScalarLog(tmp_path)
    for step in (2, 3):
        new.write(step, {"loss": 20.0 + step})
    new.close()
    assert _event_files(tmp_path)[0] == renamed
    assert _scalars(tmp_path) == {"loss/loss": [(1, 11.0), (2, 22.0), (3, 23.0)]}


def test_a_disabled_writer_writes_nothing(tmp_path):
    log = tb_log.ScalarLog(tmp_path / "tb", enabled=False)  # a DDP rank other than 0
    log.write(1, {"loss": 1.0})
    log.close()
    assert not (tmp_path / "tb").exists()


def test_retrain_removes_the_earlier_event_files(data_root, tmp_path):
    cfg = get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path), device="cpu")
    tb_log.ScalarLog(cfg.run_dir() / TENSORBOARD_DIR).write(1, {"loss": 1.0})
    prepare_run_dir(cfg)
    assert _event_files(cfg.run_dir() / TENSORBOARD_DIR)
    prepare_run_dir(cfg, retrain=True)
    assert not (cfg.run_dir() / TENSORBOARD_DIR).exists()


@pytest.mark.slow
def test_without_tensorboard_training_works_and_writes_no_event_files(data_root, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(tb_log, "AVAILABLE", False)
    monkeypatch.setattr(tb_log, "_told_unavailable", False)
    cfg = get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path), depths=(), max_train_batches=2,
                      device="cpu")
    with caplog.at_level(logging.INFO, logger="sagkit.engine"):
        results = train(cfg, progress=False)
    assert results["complete"] and [r["epoch"] for r in read_metrics(cfg.run_dir())] == [1, 2]
    assert not (cfg.run_dir() / TENSORBOARD_DIR).exists()
    told = [r for r in caplog.records if "tensorboard is not installed" in r.getMessage()]
    assert len(told) == 1  # once, not once per epoch
