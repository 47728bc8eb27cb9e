"""Training engine: ``train(config)`` runs an experiment into ``runs/<name>/``; helpers read runs back.

Modules: ``trainer`` (train loop), ``retrieval`` (the one evaluation pipeline: features, distances, metrics,
re-ranking, multi-query), ``feature_cache`` (features of a checkpoint on disk), ``checkpoint`` (atomic files,
RNG states), ``device`` (device, mixed precision, seeds), ``distributed`` (DDP), ``optim`` (optimizers,
schedules, the criterion), ``run_dir`` (run folders), ``run_lock`` (one trainer per run folder), ``builders`` (model and data
from a config),
``tb_log`` (TensorBoard event files), ``export`` (ONNX files; imported on its own, since it needs onnx and
onnxruntime).
"""

from sagkit.engine.checkpoint import load_checkpoint
from sagkit.engine.device import DeviceUnavailableError, resolve_device, resolve_precision
from sagkit.engine.distributed import DistInfo
from sagkit.engine.feature_cache import FeatureCache
from sagkit.engine.retrieval import EvalSettings, Retrieval, extract_split_features, retrieve, retrieve_dataset
from sagkit.engine.trainer import TrainingDiverged, train, train_one_epoch

__all__ = [
    "DeviceUnavailableError",
    "DistInfo",
    "EvalSettings",
    "FeatureCache",
    "Retrieval",
    "TrainingDiverged",
    "extract_split_features",
    "load_checkpoint",
    "resolve_device",
    "resolve_precision",
    "retrieve",
    "retrieve_dataset",
    "train",
    "train_one_epoch",
]
