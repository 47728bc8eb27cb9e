"""``ExperimentConfig``: every field one training run needs, the paper's settings as defaults (Section 4.3),
round-tripping through JSON (``to_json`` / ``from_json``; tuples stay tuples); checked in full on construction."""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from sagkit.atomic import atomic_write_text
from sagkit.config import keys
from sagkit.config.keys import LEGACY_VALUES
from sagkit.config.validation import validate

__all__ = ["ExperimentConfig"]


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
    l2norm: object = None  # None, a bool, depths or {depth: bool} (sagkit.choices.parse_l2norm)
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
        self.validate()
        self.depths = tuple(sorted(self.depths))
        self.lr_milestones = tuple(self.lr_milestones)
        self.losses = dict(self.losses)
        self.dataset_options = dict(self.dataset_options)
        self.model_options = dict(self.model_options)

    def validate(self) -> None:
        """Raise ValueError naming the first bad field and what values it accepts (``sagkit.config.validation``)."""
        validate(self)

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
        """The fields that change what a run computes, JSON-ready (``sagkit.config.keys.result_fields``)."""
        return keys.result_fields(self.to_dict())

    def run_key(self) -> str:
        """Short hash (10 hex digits) of ``result_fields()``."""
        return keys.run_key(self.to_dict())

    def run_name(self) -> str:
        """``name`` if set, else e.g. ``synthetic-efficientnet_lite0-D4-<hash>`` or ``...-baseline-<hash>``."""
        return keys.run_name(self.to_dict())

    def run_dir(self) -> Path:
        """``runs_dir / run_name()``."""
        return Path(self.runs_dir) / self.run_name()


def _copy_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_value(v) for v in value]
    return value
