"""The checks of an ExperimentConfig: one rule per field (its type and allowed values, from ``sagkit.choices``), then
the rules that tie fields together. Torch-free, so that a bad config is refused before anything is built or written."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable, Optional

from sagkit.choices import (AMP_CHOICES, ATTENTIONS, BACKBONE_NAMES, BN_STATS, DEPTHS_RULE, DEVICE_RE, DEVICE_RULE,
                            EMBEDDINGS, GRID_SCALES, INPUT_MULTIPLE, INPUT_SCALES, L2NORM_DIMS, LAST_STRIDES,
                            LOSS_NAMES, LR_SCHEDULES, MODEL_OPTIONS, NECKS, OPTIMIZERS, SAG_OUTPUTS, SAMPLERS,
                            SELECT_METRICS, UPSAMPLE_MODES, VALID_DEPTHS, canonical_dataset, check_depths,
                            check_grid_options, check_head_options, dataset_names, parse_l2norm)

__all__ = ["RULES", "validate"]

# A rule returns None for an allowed value, else what the field accepts ("must be an integer", "use one of ...").
Rule = Callable[[Any], Optional[str]]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
_NOT_FINITE = "must be a finite number (not NaN or infinite)"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(low: int, high: Optional[int] = None, allowed: str = "must be a positive integer") -> Rule:
    """An int (never a bool) in low..high."""
    def rule(value: Any) -> Optional[str]:
        if not _is_int(value):
            return "must be an integer"
        return allowed if value < low or (high is not None and value > high) else None
    return rule


def number(ok: Callable[[float], bool], allowed: str) -> Rule:
    """A finite int or float (never a bool) for which ``ok`` holds."""
    def rule(value: Any) -> Optional[str]:
        if not _is_number(value):
            return "must be a number"
        if not math.isfinite(value):
            return _NOT_FINITE
        return None if ok(value) else allowed
    return rule


def flag(value: Any) -> Optional[str]:
    return None if isinstance(value, bool) else "must be true or false"


def text(pattern: Optional[re.Pattern] = None, allowed: str = "must not be empty") -> Rule:
    """A non-empty string, matching ``pattern`` when given."""
    def rule(value: Any) -> Optional[str]:
        if not isinstance(value, str):
            return "must be a string"
        return allowed if not value or (pattern is not None and not pattern.match(value)) else None
    return rule


def one_of(options: tuple, hint: str = "") -> Rule:
    """One of ``options`` (all strings or all ints), of their type."""
    kind = str if isinstance(options[0], str) else int

    def rule(value: Any) -> Optional[str]:
        if isinstance(value, bool) or not isinstance(value, kind):
            return f"must be {'a string' if kind is str else 'an integer'}: use one of {options}{hint}"
        return None if value in options else f"use one of {options}{hint}"
    return rule


def optional(rule: Rule, meaning: str) -> Rule:
    """None (``meaning``) or a value ``rule`` allows."""
    def check(value: Any) -> Optional[str]:
        complaint = None if value is None else rule(value)
        return complaint and f"{complaint}, or null ({meaning})"
    return check


def mapping(check_items: Callable[[dict], Optional[str]]) -> Rule:
    """A dict with string keys whose items ``check_items`` allows."""
    def rule(value: Any) -> Optional[str]:
        if not isinstance(value, dict):
            return "must be an object (a dict)"
        if any(not isinstance(k, str) for k in value):
            return "its keys must be strings"
        return check_items(value)
    return rule


def _dataset(value: Any) -> Optional[str]:
    if not isinstance(value, str):
        return "must be a string"
    try:
        canonical_dataset(value)
    except ValueError:
        return f"use one of {dataset_names()} (or an alias such as 'market')"
    return None


def _depths(value: Any) -> Optional[str]:
    if not isinstance(value, (list, tuple)):
        return "must be a list"
    try:
        check_depths(value)
    except ValueError:
        return DEPTHS_RULE
    return None


def _l2norm(value: Any) -> Optional[str]:
    try:
        parse_l2norm(value, VALID_DEPTHS)
    except (ValueError, TypeError) as err:
        return str(err)
    return None


_MODEL_OPTION_RULES = {
    "l2norm_dim": one_of(L2NORM_DIMS),
    "grid_scale": one_of(GRID_SCALES),
    "bottleneck_dim": optional(integer(1), "the paper head's 512"),
    "dropout": optional(number(lambda v: 0 <= v < 1, "must be in [0, 1)"), "the paper head's 0.5"),
}


def _model_options(options: dict) -> Optional[str]:
    unknown = [k for k in options if k not in MODEL_OPTIONS]
    if unknown:
        fields = [k for k in unknown if k in RULES]
        hint = f" ({', '.join(fields)}: set the ExperimentConfig field itself)" if fields else ""
        return f"unknown key(s) {', '.join(map(repr, unknown))}{hint}: SAGNet's options are {', '.join(MODEL_OPTIONS)}"
    for key, value in options.items():
        complaint = _MODEL_OPTION_RULES[key](value)
        if complaint:
            return f"{key}={value!r}: {complaint}"
    return None


def _losses(losses: dict) -> Optional[str]:
    if not losses or any(name not in LOSS_NAMES for name in losses):
        return f"a dict {{name: weight}} of losses from {LOSS_NAMES}, e.g. {{'ce': 1.0, 'triplet': 1.0}}"
    if any(not _is_number(w) or not math.isfinite(w) or not w > 0 for w in losses.values()):
        return "every weight must be a number > 0 (leave a loss out to turn it off)"
    return None


def _milestones(value: Any) -> Optional[str]:
    if not isinstance(value, (list, tuple)):
        return "must be a list"
    if any(not _is_int(m) or m < 1 for m in value) or list(value) != sorted(set(value)):
        return "increasing positive epochs, e.g. (40, 70)"
    return None


def _device(value: Any) -> Optional[str]:
    return None if isinstance(value, str) and DEVICE_RE.match(value) else DEVICE_RULE


_PROBABILITY = number(lambda v: 0 <= v <= 1, "must be a probability in [0, 1]")
_POSITIVE = number(lambda v: v > 0, "must be > 0")


def _side(value: Any) -> Optional[str]:
    """An image side in pixels: a positive multiple of the backbones' output stride."""
    if not _is_int(value):
        return "must be an integer"
    if value > 0 and value % INPUT_MULTIPLE == 0:
        return None
    return f"a positive multiple of {INPUT_MULTIPLE}, the backbones' output stride (e.g. 160×64 or 256×128)"


# One rule per ExperimentConfig field (a test checks that none is missing).
RULES: dict[str, Rule] = {
    "name": optional(text(_NAME_RE, "a folder name: letters, digits and . _ + = - (no slashes)"), "named by its key"),
    "dataset": _dataset,
    "data_root": optional(text(allowed="a dataset folder"), "none: the synthetic set's cache"),
    "dataset_options": mapping(lambda options: None),  # the data set's reader names the options it lacks
    "runs_dir": text(allowed="a folder that holds run folders"),
    "backbone": one_of(BACKBONE_NAMES),
    "pretrained": optional(text(allowed="'imagenet' or the path of a weights file"), "random initialisation"),
    "depths": _depths,
    "share_weights": flag,
    "bn_stats": one_of(BN_STATS),
    "attention": one_of(ATTENTIONS),
    "l2norm": _l2norm,
    "scale_factor": number(lambda v: v >= 2 and float(v).is_integer(),
                           "an integer >= 2 (the upper branch's upsampling factor and max-pool size)"),
    "upsample": one_of(UPSAMPLE_MODES),
    "embedding": one_of(EMBEDDINGS),
    "neck": one_of(NECKS),
    "last_stride": one_of(LAST_STRIDES, " (1: output stride 16)"),
    "sag_output": one_of(SAG_OUTPUTS),
    "input_scale": one_of(INPUT_SCALES, " (1: the image as given; 2: what D4's upper branch sees)"),
    "model_options": mapping(_model_options),
    "freeze_stages": integer(-1, 4, "an int in -1..4: -1 nothing frozen, 0 the stem, k the stem and stages 1..k"),
    "height": _side,
    "width": _side,
    "flip_prob": _PROBABILITY,
    "erase_prob": _PROBABILITY,
    "pad_crop": integer(0, allowed="pixels of padding before the random crop: >= 0 (0 turns it off)"),
    "sampler": one_of(SAMPLERS),
    "num_instances": integer(1),
    "batch_size": integer(2, allowed="at least 2 images per batch (BatchNorm needs more than one value per channel)"),
    "sync_bn": flag,
    "epochs": integer(1),
    "optimizer": one_of(OPTIMIZERS),
    "momentum": number(lambda v: 0 <= v < 1, "momentum in [0, 1)"),
    "weight_decay": number(lambda v: v >= 0, "decay >= 0"),
    "nesterov": flag,
    "lr_pretrained": _POSITIVE,
    "lr_new": _POSITIVE,
    "lr_sag": _POSITIVE,
    "lr_schedule": one_of(LR_SCHEDULES),
    "lr_step": integer(1),
    "lr_milestones": _milestones,
    "lr_gamma": _POSITIVE,
    "warmup_epochs": integer(0, allowed="a number of epochs >= 0"),
    "warmup_factor": number(lambda v: 0 < v <= 1, "the warm-up's first learning rate as a fraction of lr, in (0, 1]"),
    "losses": mapping(_losses),
    "label_smoothing": number(lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "triplet_margin": optional(number(lambda v: v >= 0, "a margin >= 0"), "the soft margin"),
    "center_alpha": number(lambda v: 0 < v <= 1, "the center update rate, in (0, 1]"),
    "max_train_batches": optional(integer(1), "every batch"),
    "val_ids": integer(0, allowed="must be a non-negative integer"),
    "select_metric": one_of(SELECT_METRICS),
    "eval_every": integer(1),
    "flip_eval": flag,
    "rerank": flag,
    "rerank_k1": integer(1),
    "rerank_k2": integer(1),
    "rerank_lambda": number(lambda v: 0 <= v <= 1, "the weight of the original distance in re-ranking, in [0, 1]"),
    "eval_batch_size": integer(1),
    "device": _device,
    "amp": one_of(AMP_CHOICES),
    "channels_last": flag,
    "compile": flag,
    "seed": integer(0, allowed="must be a non-negative integer"),
    "deterministic": flag,
    "num_workers": integer(0, allowed="must be a non-negative integer"),
    "num_threads": optional(integer(1), "torch's default"),
    "retain_memory": flag,
}


def validate(config: Any) -> None:
    """Raise ValueError naming the first bad field of ``config`` (an ExperimentConfig) and what it accepts."""

    def bad(name: str, allowed: str) -> None:
        raise ValueError(f"ExperimentConfig.{name}={getattr(config, name)!r} is invalid: {allowed}")

    for f in dataclasses.fields(config):
        if f.name not in RULES:
            raise TypeError(f"ExperimentConfig.{f.name} has no rule in sagkit.config.validation.RULES")
        complaint = RULES[f.name](getattr(config, f.name))
        if complaint:
            bad(f.name, complaint)
    if config.sampler == "identity" and config.batch_size % config.num_instances:
        bad("num_instances", f"must divide batch_size={config.batch_size} for the identity sampler")
    if config.lr_schedule == "multistep" and not config.lr_milestones:
        bad("lr_milestones", "lr_schedule='multistep' needs at least one epoch, e.g. (40, 70)")
    if config.warmup_epochs >= config.epochs:
        bad("warmup_epochs", f"a number of epochs in 0..epochs-1 ({config.epochs - 1})")
    if "triplet" in config.losses and config.sampler != "identity":
        bad("sampler", "the triplet loss needs P×K batches (each identity K times): set sampler='identity', "
            "with num_instances=K dividing batch_size")
    options = config.model_options
    try:
        check_head_options(config.neck, options.get("bottleneck_dim"), options.get("dropout"))
        check_grid_options(config.attention, options.get("grid_scale", "none"))
    except ValueError as err:
        bad("model_options", str(err))
