"""Training engine: ``train(config)`` runs an experiment into ``runs/<name>/``; helpers read runs back.

Modules: ``trainer`` (train loop), ``retrieval`` (the one evaluation pipeline: features, distances, metrics,
re-ranking, multi-query), ``feature_cache`` (features of a checkpoint on disk), ``checkpoint`` (atomic files,
RNG states), ``device`` (device, mixed precision, seeds), ``distributed`` (DDP), ``optim`` (optimizers,
schedules, the criterion), ``run_dir`` (run folders), ``run_lock`` (one trainer per run folder), ``builders`` (model and data
from a config),
``tb_log`` (TensorBoard event files), ``export`` (ONNX files; imported on its own, since it needs onnx and
onnxruntime).
"""

from .checkpoint import load_checkpoint
from .device import DeviceUnavailableError, resolve_device, resolve_precision
from .distributed import DistInfo
from .feature_cache import FeatureCache
from .retrieval import EvalSettings, Retrieval, extract_split_features, retrieve, retrieve_dataset
from .run_dir import code_version, find_runs, load_model_from_run, load_run
from .run_lock import RunLocked
from .trainer import TrainingDiverged, train, train_one_epoch

__all__ = [
    "DeviceUnavailableError",
    "DistInfo",
    "EvalSettings",
    "FeatureCache",
    "Retrieval",
    "RunLocked",
    "TrainingDiverged",
    "code_version",
    "extract_split_features",
    "find_runs",
    "load_checkpoint",
    "load_model_from_run",
    "load_run",
    "resolve_device",
    "resolve_precision",
    "retrieve",
    "retrieve_dataset",
    "train",
    "train_one_epoch",
]
