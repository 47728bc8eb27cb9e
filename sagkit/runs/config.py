"""Which config a profile, a dataset, SAG depths and a seed mean: :func:`run_config`, the one rule that the command
line (``sagkit train``, ``sagkit results``), the workbook and the results folder follow, so that a run trained by
one is found by the others. Torch-free."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sagkit.config import ExperimentConfig, get_profile

__all__ = ["run_config"]


def run_config(profile: str | ExperimentConfig, dataset: str | None = None, depths: Sequence[int] | None = None,
               seed: int | None = None, **overrides: Any) -> ExperimentConfig:
    """The ExperimentConfig that ``profile`` (a profile name, or a base config such as a ``--config`` file)
    trains on ``dataset`` with SAG ``depths`` and ``seed``, with other fields from ``overrides``.

    The rule: a dataset other than the base's starts with no ``dataset_options`` (the base's are for its own
    dataset); a dict given for a dict field (``dataset_options``, ``model_options``, ``losses``) updates the
    base's dict key by key, as ``--set dataset_options.num_train_ids=20`` does; the named arguments win over
    ``overrides``, and None leaves a field as the base and ``overrides`` have it. Unknown fields raise
    ValueError naming them."""
    base = get_profile(profile) if isinstance(profile, str) else profile
    fields = dict(overrides)
    named = {"dataset": dataset, "depths": depths, "seed": seed}  # as given: the config checks their types
    fields.update({key: value for key, value in named.items() if value is not None})
    merged = base.to_dict()
    if fields.get("dataset", base.dataset) != base.dataset:
        merged["dataset_options"] = {}
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return ExperimentConfig.from_dict(merged)
