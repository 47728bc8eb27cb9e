"""A complete, valid ``results.json`` object for tests that write a run's results by hand."""
from __future__ import annotations

from typing import Any


def results_entries(**changes: Any) -> dict:
    """The entries of a finished run's results.json (a one-process tiny run), ``changes`` applied."""
    entries = {
        "complete": True, "name": "run", "run_dir": "runs/run", "run_key": "0123456789", "dataset": "synthetic",
        "backbone": "efficientnet_lite0", "depths": [], "rank1": 50.0, "rank5": 60.0, "rank10": 70.0, "mAP": 40.0,
        "best_epoch": 1, "select_metric": "mAP", "best_val": None, "epochs": 1, "final_train_loss": 1.0,
        "final_train_acc": 10.0, "num_classes": 8, "num_train_images": 32, "num_query": 8, "num_gallery": 16,
        "timings": {"total_s": 1.0}, "device": "cpu", "precision": "fp32", "world_size": 1, "torch": "2",
        "code_version": {}, "config": {}, "finished_at": "2026-01-01T00:00:00+00:00",
    }
    entries.update(changes)
    return entries
