"""Inputs of the GPU check: its configs, its synthetic data set and training batches held on the device.

The training cases step over a few pre-loaded batches, so img/s measures the model on the device, not
the JPEG decoding of the input pipeline (``benchmarks/bench_input_pipeline.py`` measures that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sagkit.config import ExperimentConfig, get_profile
from sagkit.data import make_synthetic_reid

from sagkit.engine.builders import attach_transforms, build_data, build_model, make_train_loader
from sagkit.diagnostics.gpu_check.plan import CheckPlan

__all__ = ["check_config", "make_check_data", "CheckData", "load_check_data", "CycledBatches"]


def check_config(plan: CheckPlan, data_root: str | Path | None = None, depths: tuple = (4,), amp: str = "off",
                 compile: bool = False) -> ExperimentConfig:
    """The plan's profile on its synthetic set: random initial weights (no ImageNet file is needed on the
    machine under test), no validation split (the check selects no model), then the plan's overrides."""
    fields = dict(dataset="synthetic", data_root=None if data_root is None else str(data_root),
                  dataset_options=dict(plan.synthetic), pretrained=None, val_ids=0, depths=tuple(depths),
                  amp=amp, compile=compile, seed=plan.seed)
    return get_profile(plan.profile, **{**fields, **plan.overrides})


def make_check_data(plan: CheckPlan, folder: str | Path) -> Path:
    """Generate the plan's synthetic set into ``folder/synthetic`` and return that folder."""
    return make_synthetic_reid(Path(folder) / "synthetic", seed=plan.seed, **plan.synthetic)


@dataclass
class CheckData:
    """Training batches ``(images B×3×H×W, pids B)`` on the device, the number of identities, and the test
    split (query then gallery records) with its transform, for the feature comparison."""

    batches: list
    num_classes: int
    test_records: list
    test_transform: Any


def load_check_data(config: ExperimentConfig, device: torch.device, count: int) -> CheckData:
    """``count`` augmented training batches drawn by the engine's own loader, moved to ``device``."""
    data = build_data(config)
    probe = build_model(config, data.num_classes, pretrained=False)
    attach_transforms(config, data, probe.input_mean, probe.input_std)
    batches: list = []
    epoch = 1
    while len(batches) < count:
        loader = make_train_loader(config, data, epoch, world_size=1)
        if len(loader) == 0:
            raise ValueError(f"the check's synthetic set has {len(data.train)} training images, fewer than one "
                             f"batch of {config.batch_size}; raise num_train_ids or images_per_id")
        for images, pids, *_ in loader:
            batches.append((images.to(device), pids.to(device)))
            if len(batches) == count:
                break
        epoch += 1
    return CheckData(batches, data.num_classes, list(data.query) + list(data.gallery), data.test_transform)


class CycledBatches:
    """A loader for ``train_one_epoch``: ``length`` batches taken in turn from ``batches``, from ``start`` on."""

    def __init__(self, batches: list, start: int, length: int):
        if not batches:
            raise ValueError("CycledBatches needs at least one batch")
        self.batches, self.start, self.length = batches, start, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        for i in range(self.length):
            yield self.batches[(self.start + i) % len(self.batches)]
