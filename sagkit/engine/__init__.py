"""Training engine: the epoch loop, validation during training, optimisation, checkpoints and DDP; the one
retrieval pipeline. Running an experiment into its run folder is ``sagkit.runs.train``.

Modules: ``trainer`` (one training epoch), ``session`` (a training session: set-up, resume, the epochs and
their checkpoints), ``fault`` (the tests' kill switch), ``retrieval`` (the one evaluation pipeline: features,
distances, metrics, re-ranking, multi-query), ``feature_cache`` (features of a checkpoint on disk),
``checkpoint`` (atomic files, RNG states), ``device`` (device, model placement, mixed precision, seeds),
``distributed`` (DDP), ``optim`` (optimizers, schedules, the criterion), ``builders`` (model and data from a
config), ``tb_log`` (TensorBoard event files).
"""

from sagkit.engine.checkpoint import load_checkpoint
from sagkit.engine.device import DeviceUnavailableError, place_model, resolve_device, resolve_precision, run_device
from sagkit.engine.distributed import DistInfo
from sagkit.engine.feature_cache import FeatureCache
from sagkit.engine.retrieval import EvalSettings, Retrieval, extract_split_features, retrieve, retrieve_dataset
from sagkit.engine.trainer import TrainingDiverged, train_one_epoch

__all__ = [
    "DeviceUnavailableError",
    "DistInfo",
    "EvalSettings",
    "FeatureCache",
    "Retrieval",
    "TrainingDiverged",
    "extract_split_features",
    "load_checkpoint",
    "place_model",
    "resolve_device",
    "resolve_precision",
    "retrieve",
    "retrieve_dataset",
    "run_device",
    "train_one_epoch",
]
