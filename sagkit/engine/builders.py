"""Build the model and the data of a run from its config (the glue to ``sagkit.models`` and ``sagkit.data``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sagkit.config import ExperimentConfig
from sagkit.data import build_train_loader, build_transforms, holdout_validation, load_dataset
from sagkit.models import SAGNet
from sagkit.models.cost import count_parameters, forward_gflops

from sagkit.engine.retrieval import check_scorable

__all__ = ["RunData", "build_model", "model_cost", "build_data", "attach_transforms", "make_train_loader", "per_rank_batch_size",
           "convert_sync_batchnorm"]


def build_model(config: ExperimentConfig, num_classes: int, pretrained: bool = True) -> torch.nn.Module:
    """``SAGNet`` as the config describes it, with ``freeze_stages`` applied.

    ``pretrained=False`` skips the ImageNet weights (for loading a trained checkpoint over the model).
    """
    model = SAGNet(
        num_classes,
        depths=config.depths,
        backbone=config.backbone,
        pretrained=config.pretrained if pretrained else None,
        l2norm=config.l2norm,
        share_weights=config.share_weights,
        bn_stats=config.bn_stats,
        attention=config.attention,
        scale_factor=config.scale_factor,
        upsample=config.upsample,
        embedding=config.embedding,
        neck=config.neck,
        last_stride=config.last_stride,
        sag_output=config.sag_output,
        input_scale=config.input_scale,
        **config.model_options,
    )
    if config.freeze_stages >= 0:
        model.freeze_stages(config.freeze_stages)
    return model


@dataclass
class RunData:
    """The records and transforms of one run. ``train`` pids are 0..num_classes-1; ``val_query`` and
    ``val_gallery`` are the held-out training identities (empty when ``val_ids == 0``)."""

    dataset: Any
    train: list
    val_query: list
    val_gallery: list
    num_classes: int
    train_transform: Any = None
    test_transform: Any = None

    @property
    def query(self) -> list:
        return self.dataset.query

    @property
    def gallery(self) -> list:
        return self.dataset.gallery


def build_data(config: ExperimentConfig) -> RunData:
    """Load the dataset and hold out ``val_ids`` training identities for model selection. Data a run cannot
    learn or be scored on (one training identity; no query with a match) raises ValueError before training."""
    dataset = load_dataset(config.dataset, config.data_root, **config.dataset_options)
    if not dataset.train:
        raise ValueError(f"{config.dataset} at {dataset.root} has no train split: add train images (e.g. "
                         "root/train/<identity>/ or manifest rows with split=train) or use it with sagkit eval only")
    if config.val_ids > 0:
        try:
            train, val_query, val_gallery = holdout_validation(dataset.train, config.val_ids, seed=config.seed,
                                                               cameras=dataset.protocol.cameras)
        except ValueError as err:
            raise ValueError(f"ExperimentConfig.val_ids={config.val_ids} does not fit {config.dataset}: {err}; use "
                             "a smaller val_ids, or 0 to select the last epoch without validation") from None
    else:
        train, val_query, val_gallery = list(dataset.train), [], []
    num_classes = len({r.pid for r in train})
    where = f"{config.dataset} ({config.data_root or 'default folder'}, options {config.dataset_options})"
    if num_classes < 2:
        count = f"{num_classes} identit{'y' if num_classes == 1 else 'ies'}"
        raise ValueError(f"the training split of {where} has {count} after holding out val_ids={config.val_ids}: a "
                         "classifier over one class learns nothing (loss 0, accuracy 100); use data with more "
                         "identities, or a smaller val_ids")
    if dataset.query and dataset.gallery:
        check_scorable(dataset)
    return RunData(dataset, list(train), list(val_query), list(val_gallery), num_classes)


def attach_transforms(config: ExperimentConfig, data: RunData, mean: tuple, std: tuple) -> RunData:
    """Set the train/test transforms of ``data``, normalising pixels with the backbone's ``mean``/``std``."""
    data.train_transform = build_transforms(
        config.height, config.width, train=True, mean=mean, std=std,
        flip_prob=config.flip_prob, erase_prob=config.erase_prob, pad=config.pad_crop,
    )
    data.test_transform = build_transforms(config.height, config.width, train=False, mean=mean, std=std)
    return data


def _reachable_modules(model: torch.nn.Module) -> list:
    """Every module reachable from ``model``: registered children, and modules kept as plain attributes (the
    backbones' unregistered stage views), alone or in lists and tuples."""
    seen: dict = {}
    todo = [model]
    while todo:
        module = todo.pop()
        if id(module) in seen:
            continue
        seen[id(module)] = module
        for value in list(module._modules.values()) + list(vars(module).values()):
            items = value if isinstance(value, (list, tuple)) else [value]
            todo.extend(m for m in items if isinstance(m, torch.nn.Module))
    return list(seen.values())


def convert_sync_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """Replace every BatchNorm of ``model`` (in place, under every parent that holds it, stage views
    included) by a SyncBatchNorm with the same parameters and running statistics, and point SAGNet's
    per-branch statistics at the new modules. Outside a process group SyncBatchNorm computes what
    BatchNorm does."""
    replaced: dict = {}
    for parent in _reachable_modules(model):
        for name, child in list(parent._modules.items()):
            if isinstance(child, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(child, torch.nn.SyncBatchNorm):
                if id(child) not in replaced:
                    replaced[id(child)] = torch.nn.SyncBatchNorm.convert_sync_batchnorm(child)
                parent._modules[name] = replaced[id(child)]
    stats = getattr(model, "branch_stats", None)
    if stats is not None:
        stats.rebind(replaced)
    return model


def per_rank_batch_size(config: ExperimentConfig, world_size: int) -> int:
    """``batch_size`` is global; each of ``world_size`` processes takes an equal share."""
    if config.batch_size % world_size:
        raise ValueError(
            f"batch_size={config.batch_size} cannot be split over {world_size} processes: "
            "use a multiple of the number of processes"
        )
    return config.batch_size // world_size


def make_train_loader(config: ExperimentConfig, data: RunData, epoch: int, world_size: int):
    """A fresh training loader for ``epoch`` whose shuffling is seeded by ``seed + epoch``.

    Built anew every epoch so that the order and the worker RNG streams depend only on (seed, epoch):
    a resumed run sees exactly the batches an uninterrupted one would.
    """
    return build_train_loader(
        data.train,
        data.train_transform,
        per_rank_batch_size(config, world_size),
        sampler=config.sampler,
        num_instances=config.num_instances,
        num_workers=config.num_workers,
        seed=config.seed + epoch,
        distributed=world_size > 1,
        drop_last=True,
    )


def model_cost(config: ExperimentConfig, num_classes: int) -> dict:
    """``{"params_M", "gflops"}`` of the model a config trains: parameters in millions (classifier included) and
    forward GFLOPs per image at the config's height×width (``sagkit.models.cost``); no weights are read."""
    model = build_model(config, num_classes, pretrained=False)
    return {"params_M": count_parameters(model) / 1e6, "gflops": forward_gflops(model, config.height, config.width)}
