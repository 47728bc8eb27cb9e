"""Scoring a trained model on a test split, one way for every caller: :func:`score_test_split` (the retrieval
pipeline with a run's settings, multi-query included), which the trainer's final test calls with its model in
memory, and :func:`evaluate_run` (a run folder or checkpoint file), which ``sagkit eval``, the per-query back-fill
and the workbook call.

The classifier is not used: the model's retrieval embedding is scored, so a model trained on one dataset can
be tested on any other, with any number of identities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from sagkit.data import ReIDDataset, load_dataset
from sagkit.data.overlap import overlap_text, train_overlap

from sagkit.engine.device import place_model, run_device
from sagkit.engine.distributed import DistInfo
from sagkit.engine.feature_cache import FeatureCache
from sagkit.engine.retrieval import ModelSource, Retrieval, retrieve_dataset
from sagkit.runs.folder import checkpoint_path, is_complete, model_from_checkpoint, read_config, run_model
from sagkit.runs.lock import check_not_training

__all__ = ["evaluate_run", "score_test_split", "split_name"]


def score_test_split(model: ModelSource, config, dataset: ReIDDataset, *, device: torch.device,
                     cache: Optional[FeatureCache] = None, dist_info: Optional[DistInfo] = None,
                     **changes) -> Retrieval:
    """``model`` (or a callable that loads it, placed on ``device``) on ``dataset``'s test split with the
    evaluation settings of ``config``, multi-query pooling included: a run's final test. ``changes``:
    :class:`EvalSettings` fields that differ (e.g. ``rerank=True``); ``cache``: the checkpoint's kept features."""
    return retrieve_dataset(model, dataset, config, device=device, dist_info=dist_info, cache=cache,
                            **{"multi_query": True, **changes})


def evaluate_run(path: str | Path, *, which: str = "best", device: str | torch.device = "auto",
                 dataset: Optional[str] = None, data_root: Optional[str | Path] = None,
                 options: Optional[dict] = None, use_cache: bool = True, allow_train_overlap: bool = False,
                 model: Optional[ModelSource] = None, **changes) -> tuple[Retrieval, ReIDDataset]:
    """``(retrieval, dataset)`` of the model at ``path`` (a run folder's ``which`` checkpoint, or a checkpoint
    file) on ``dataset``'s test split (default: the dataset it was trained on), as :func:`score_test_split`.

    ``device``: a name (resolved with the run's memory settings) or a prepared ``torch.device``. ``data_root``
    None: the training config's root for its own dataset, none for another (the synthetic set's cache); ""
    means none. ``options`` None: the training config's dataset options for its own dataset, none for
    another. ``use_cache``: read/write the features kept in the run folder; a run folder's model is loaded
    only when they are not there (``model``: the run's model already loaded, or a callable loading it).
    A test split that shares people with the model's training split (another split of its own dataset) is
    refused with ValueError unless ``allow_train_overlap``; then ``retrieval.train_overlap`` says how much.
    """
    path = Path(path)
    cache = None
    if path.is_dir():
        check_not_training(path, is_complete(path))
        config = read_config(path)
        if use_cache:
            ckpt = checkpoint_path(path, which)
            cache = FeatureCache(ckpt) if ckpt.is_file() else None
        source = model if model is not None else (lambda: run_model(path, which)[0])
    elif path.is_file():
        loaded, config, _ = model_from_checkpoint(path)
        source = model if model is not None else loaded
    else:
        raise FileNotFoundError(f"{path} does not exist: give a run folder or a checkpoint file")
    dev = device if isinstance(device, torch.device) else run_device(config, device)
    placed = source if model is not None else _placed(source, config, dev)
    name = dataset or config.dataset
    same = name == config.dataset
    root = (data_root or None) if data_root is not None else (config.data_root if same else None)
    chosen = options if options is not None else (config.dataset_options if same else {})
    data = load_dataset(name, root, **chosen)
    overlap = _train_overlap(data, config, root, chosen) if same else None
    if overlap and not allow_train_overlap:
        raise ValueError(overlap_text(overlap, split_name(name, chosen)) + ": evaluate on a split the model did "
                         "not train on, or pass --allow-train-overlap (allow_train_overlap=True) to score it marked")
    retrieval = score_test_split(placed, config, data, device=dev, cache=cache, **changes)
    retrieval.train_overlap = overlap
    return retrieval, data


def _placed(source: ModelSource, config, device: torch.device) -> ModelSource:
    """``source`` (a model, or a callable loading one) placed on ``device`` in eval mode when it is needed."""
    if isinstance(source, torch.nn.Module):
        return place_model(source, config, device).eval()
    return lambda: place_model(source(), config, device).eval()


def split_name(name: str, options: dict) -> str:
    """``cuhk01 split=1``: a dataset and its options, as the command line sets them."""
    return f"{name}" + "".join(f" {k}={v}" for k, v in sorted(options.items()))


def _train_overlap(dataset: ReIDDataset, config, root, options: dict) -> Optional[dict]:
    """How far ``dataset``'s test split shares people with the training split of ``config`` (same dataset)."""
    trained = dataset if (root, dict(options)) == (config.data_root, dict(config.dataset_options)) else \
        load_dataset(config.dataset, root, **config.dataset_options)
    return train_overlap(trained.train, dataset)
