"""Training engine: ``train(config)`` runs an experiment into ``runs/<name>/``; helpers read runs back.

Modules: ``trainer`` (train loop), ``evaluator`` (features, metrics), ``checkpoint`` (atomic files, RNG
states), ``device`` (device, mixed precision, seeds), ``distributed`` (DDP), ``optim`` (SGD, schedule, loss),
``run_dir`` (run folders), ``run_lock`` (one trainer per run folder), ``builders`` (model and data from a config),
``export`` (ONNX files; imported on its own, since it needs onnx and onnxruntime).
"""

from .checkpoint import load_checkpoint
from .device import DeviceUnavailableError, resolve_device, resolve_precision
from .distributed import DistInfo
from .evaluator import evaluate_model, extract_split_features
from .run_dir import code_version, find_runs, load_model_from_run, load_run
from .run_lock import RunLocked
from .trainer import TrainingDiverged, train, train_one_epoch

__all__ = [
    "DeviceUnavailableError",
    "DistInfo",
    "RunLocked",
    "TrainingDiverged",
    "code_version",
    "evaluate_model",
    "extract_split_features",
    "find_runs",
    "load_checkpoint",
    "load_model_from_run",
    "load_run",
    "main",
    "resolve_device",
    "resolve_precision",
    "train",
    "train_one_epoch",
]


def main(argv=None) -> int:
    """``python -m sagkit train ...`` (see ``sagkit.cli``)."""
    from sagkit.cli import main as cli_main

    return cli_main(["train", *(argv or [])])
