"""``load_dataset(name, root, **protocol_options)``: one entry point for every reader."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

from sagkit.choices import DATASET_READERS, canonical_dataset, load_entry, register_dataset_name
from sagkit.data.records import ReIDDataset

# Each reader as sagkit.choices.DATASET_READERS names it, then those added by register_dataset.
DATASETS: dict[str, Callable[..., ReIDDataset]] = {name: load_entry(spec) for name, spec in DATASET_READERS.items()}


def load_dataset(name: str, root: str | Path | None = None, **protocol_options) -> ReIDDataset:
    """Read dataset ``name`` from ``root`` with its protocol options.

    * ``market1501``: ``multi_query`` (bool).
    * ``dukemtmc``: none.
    * ``cuhk03``: ``image_type`` ("detected"|"labeled"), ``protocol`` ("classic"|"new"), ``split``,
      ``classic_query`` ("all"|"cross_view"), ``cache_dir``.
    * ``cuhk01``: ``split``, ``seed``, ``num_train_ids``, ``num_splits``, ``query_camera``.
    * ``msmt17``: ``include_val`` (bool: add ``list_val.txt`` to train), ``version`` ("V1"|"V2"|None).
    * ``folder``: ``layout`` ("auto"|"identities"|"manifest"|"market"), ``check_images`` (bool): your own
      images (:mod:`sagkit.data.folder`).
    * ``synthetic``: ``seed``, ``cache_root`` and the size options of ``SyntheticConfig``;
      ``root=None`` uses the cache (``$SAGKIT_CACHE`` or ``~/.cache/sagkit``).
    """
    key = canonical_dataset(name)
    if root is None and key != "synthetic":
        raise ValueError(f"load_dataset({name!r}) needs root= the folder that holds the dataset")
    check_options(key, protocol_options)
    return DATASETS[key](root, **protocol_options)


def check_options(key: str, options: dict) -> None:
    """Raise ValueError naming options the reader of ``key`` does not take (a reader with ``**options``
    checks its own)."""
    params = list(inspect.signature(DATASETS[key]).parameters.values())[1:]  # after root
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    unknown = sorted(set(options) - {p.name for p in params})
    if unknown:
        raise ValueError(f"unknown {key} option(s) {unknown} in the dataset options: {key} accepts "
                         f"{[p.name for p in params] or 'none'}")


def register_dataset(name: str, reader: Callable[..., ReIDDataset]) -> None:
    """Add a reader ``reader(root, **options) -> ReIDDataset`` under ``name``."""
    DATASETS[name.lower()] = reader
    register_dataset_name(name.lower())
