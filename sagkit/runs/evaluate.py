"""``evaluate_model``: a trained model (run folder or checkpoint file) scored on a dataset's test split, its own
or another one (cross-dataset), under that dataset's protocol; what ``sagkit eval`` and notebook 07 call.

The classifier is not used: the model's retrieval embedding is scored, so a model trained on one dataset can
be tested on any other, with any number of identities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from sagkit.config import sized_for_gpu
from sagkit.data import ReIDDataset, load_dataset
from sagkit.data.overlap import overlap_text, train_overlap

from sagkit.engine.device import resolve_device, retain_freed_memory
from sagkit.engine.feature_cache import FeatureCache
from sagkit.engine.retrieval import Retrieval, eval_model, retrieve_dataset
from sagkit.runs.folder import checkpoint_path, model_from_checkpoint, run_model

__all__ = ["evaluate_model", "split_name"]


def evaluate_model(path: str | Path, *, which: str = "best", dataset: Optional[str] = None,
                   data_root: Optional[str | Path] = None, options: Optional[dict] = None, device: str = "auto",
                   use_cache: bool = True, allow_train_overlap: bool = False,
                   **changes) -> tuple[Retrieval, ReIDDataset]:
    """``(retrieval, dataset)`` of the model at ``path`` (a run folder's ``which`` checkpoint, or a checkpoint
    file) on ``dataset``'s test split (default: the dataset it was trained on).

    ``data_root`` None: the training config's root for its own dataset, none for another (the synthetic
    set's cache); "" means none. ``options`` None: the training config's dataset options for its own
    dataset, none for another. ``use_cache``: read/write the features kept in the run folder. ``changes``:
    :class:`EvalSettings` fields (e.g. ``rerank=True``, ``flip=False``, ``multi_query=True``).
    A test split that shares people with the model's training split (another split of its own dataset) is
    refused with ValueError unless ``allow_train_overlap``; then ``retrieval.train_overlap`` says how much.
    """
    path = Path(path)
    cache = None
    if path.is_dir():
        model, config = run_model(path, which)
        cache = FeatureCache(checkpoint_path(path, which)) if use_cache else None
    elif path.is_file():
        model, config, _ = model_from_checkpoint(path)
    else:
        raise FileNotFoundError(f"{path} does not exist: give a run folder or a checkpoint file")
    dev = resolve_device(device, quiet=not sized_for_gpu(config))
    if dev.type == "cpu" and config.retain_memory:
        retain_freed_memory()
    model = eval_model(model, config, dev)
    name = dataset or config.dataset
    same = name == config.dataset
    root = (data_root or None) if data_root is not None else (config.data_root if same else None)
    chosen = options if options is not None else (config.dataset_options if same else {})
    data = load_dataset(name, root, **chosen)
    overlap = _train_overlap(data, config, root, chosen) if same else None
    if overlap and not allow_train_overlap:
        raise ValueError(overlap_text(overlap, split_name(name, chosen)) + ": evaluate on a split the model did "
                         "not train on, or pass --allow-train-overlap (allow_train_overlap=True) to score it marked")
    retrieval = retrieve_dataset(model, data, config, device=dev, cache=cache, **changes)
    retrieval.train_overlap = overlap
    return retrieval, data


def split_name(name: str, options: dict) -> str:
    """``cuhk01 split=1``: a dataset and its options, as the command line sets them."""
    return f"{name}" + "".join(f" {k}={v}" for k, v in sorted(options.items()))


def _train_overlap(dataset: ReIDDataset, config, root, options: dict) -> Optional[dict]:
    """How far ``dataset``'s test split shares people with the training split of ``config`` (same dataset)."""
    trained = dataset if (root, dict(options)) == (config.data_root, dict(config.dataset_options)) else \
        load_dataset(config.dataset, root, **config.dataset_options)
    return train_overlap(trained.train, dataset)
