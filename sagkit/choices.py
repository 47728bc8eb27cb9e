"""Every value a user may choose (depths, seeds, devices, datasets, backbones, heads, losses, optimisers...), defined
once and torch-free, so that the CLI and the config check them before torch loads; the models, losses and data
readers take their names from here. Profile names belong to ``sagkit.config``."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

VALID_DEPTHS = (1, 2, 3, 4)
DEPTHS_RULE = "distinct attention depths from 1..4, e.g. (4,), or () for the baseline"
DEPTH_HELP = (
    "depth must be 0 (the baseline), an integer 1..4 (one SAG module at that depth) or a comma-separated "
    "list of distinct depths such as '1,2,3' (stacked modules)"
)
SEEDS_HELP = "seeds must be one or more distinct non-negative integers, e.g. 0 or '0,1,2'"
DEFAULT_SEEDS = (0,)
# What the lower branch carries on after a SAG module (the paper leaves it open): the attended map alone, or
# the lower map plus the attended map.
SAG_OUTPUTS = ("replace", "residual")
# How a SAG module weights the upper branch's map: the paper's softmax grid, per-cell sigmoid gates, or the
# uniform control (1/(h·w), no parameters; issue 22).
ATTENTIONS = ("softmax", "sigmoid", "uniform")
# Stride of stage 4's first strided layer: 2 as trained on ImageNet, 1 as in BoT (output stride 16, not 32).
LAST_STRIDES = (2, 1)
# Factors by which a model may upsample its input before both branches (1: the image as given; issue 22).
INPUT_SCALES = (1, 2, 3, 4)
# Layouts of the ``folder`` dataset (issue 25): detected from the folder ("auto") or named.
FOLDER_LAYOUTS = ("auto", "identities", "manifest", "market")
DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
DEVICE_RULE = "use 'auto', 'cpu', 'cuda' or 'cuda:N'"

# Where each data set, backbone and loss is built, as "module:callable" (imported when its registry loads): a new
# one is its own module plus one line in these tables.
DATASET_READERS = {
    "synthetic": "sagkit.data.synthetic:load_synthetic",
    "market1501": "sagkit.data.market1501:load_market1501",
    "dukemtmc": "sagkit.data.dukemtmc:load_dukemtmc",
    "cuhk03": "sagkit.data.cuhk03:load_cuhk03",
    "cuhk01": "sagkit.data.cuhk01:load_cuhk01",
    "msmt17": "sagkit.data.msmt17:load_msmt17",
    "folder": "sagkit.data.folder:load_folder",
}
BACKBONE_BUILDERS = {
    "resnet18": "sagkit.models.backbones:resnet18",
    "resnet34": "sagkit.models.backbones:resnet34",
    "resnet50": "sagkit.models.backbones:resnet50",
    "efficientnet_lite0": "sagkit.models.backbones:efficientnet_lite0",
}
LOSS_BUILDERS = {  # each callable: (config, num_classes, feature_dim) -> nn.Module
    "ce": "sagkit.losses.cross_entropy:build_cross_entropy",
    "triplet": "sagkit.losses.triplet:build_triplet",
    "center": "sagkit.losses.center:build_center",
}
# Data sets sagkit reads and the other names they go by; how the paper's tables spell them.
DATASET_NAMES = tuple(DATASET_READERS)
PAPER_DATASET_TITLES = {"market1501": "Market-1501", "cuhk03": "CUHK03", "dukemtmc": "DukeMTMC-reID"}
DATASET_ALIASES = {"market": "market1501", "market-1501": "market1501", "duke": "dukemtmc", "dukemtmc-reid": "dukemtmc",
                   "dukemtmcreid": "dukemtmc", "cuhk-03": "cuhk03", "cuhk-01": "cuhk01", "msmt": "msmt17",
                   "msmt-17": "msmt17", "synth": "synthetic"}
# Names added at run time by ``sagkit.data.register_dataset``.
_REGISTERED_DATASETS: list[str] = []

# The model (``sagkit.models``): backbones, what SAG and the head may be, and the input's size rule.
BACKBONE_NAMES = tuple(BACKBONE_BUILDERS)
# Upper-branch BatchNorm statistics over a shared backbone: its own ("per_branch") or one set for both
# branches, as the authors' code has it ("shared").
BN_STATS = ("per_branch", "shared")
UPSAMPLE_MODES = ("bilinear", "nearest")
EMBEDDINGS = ("bottleneck", "pool")  # the retrieval embedding: the neck's BatchNorm output, or the pooled map
NECKS = ("paper", "bnneck")
L2NORM_DIMS = ("map", "channel")  # what Eq. 7's norm is taken over: the whole map of an image, or each position
GRID_SCALES = ("none", "area")  # the softmax grid as is (mean 1/(h·w)), or times h·w (mean 1)
# Section 4.6: Eq. 7 helps at D1-D3 and hurts at D4.
DEFAULT_L2NORM_DEPTHS = (1, 2, 3)
INPUT_MULTIPLE = 32  # both input sides must be multiples of the backbones' output stride
# SAGNet keywords that ``ExperimentConfig.model_options`` may set (the others are config fields of their own).
MODEL_OPTIONS = ("l2norm_dim", "grid_scale", "bottleneck_dim", "dropout")

# Training and evaluation.
LOSS_NAMES = tuple(LOSS_BUILDERS)
SAMPLERS = ("random", "identity")
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("step", "multistep", "cosine")
SELECT_METRICS = ("mAP", "rank1")
AMP_CHOICES = ("auto", "bf16", "fp16", "off")


def check_depths(depths: Any) -> tuple[int, ...]:
    """A sequence of SAG depths as a sorted tuple; ValueError quoting :data:`DEPTHS_RULE` otherwise."""
    if isinstance(depths, (str, bytes)) or not isinstance(depths, (list, tuple, set, frozenset)):
        raise ValueError(f"depths must be {DEPTHS_RULE}; got {depths!r}")
    items = list(depths)
    if any(isinstance(d, bool) or not isinstance(d, int) or d not in VALID_DEPTHS for d in items):
        raise ValueError(f"depths must be {DEPTHS_RULE}; got {depths!r}")
    if len(set(items)) != len(items):
        raise ValueError(f"depths must be {DEPTHS_RULE}; got duplicates in {depths!r}")
    return tuple(sorted(items))


def parse_depths(value: Any) -> tuple[int, ...]:
    """Depths as a user types them: 0 / '0' / 'baseline' / () → (); 4 / 'D4' → (4,); '1,2,3', '1 2 3' or
    [1, 2, 3] → (1, 2, 3). Anything else raises ValueError quoting :data:`DEPTH_HELP`."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"{DEPTH_HELP}; got {value!r}")
    if isinstance(value, int):
        items: list = [value]
    elif isinstance(value, str):
        text = value.strip().strip("()[]").strip()
        if text.lower() in ("baseline", "0"):
            return ()
        try:
            items = [int(p.lstrip("Dd")) for p in text.replace(",", " ").split()]
        except ValueError:
            raise ValueError(f"{DEPTH_HELP}; got {value!r}") from None
        if not items:
            raise ValueError(f"{DEPTH_HELP}; got {value!r}")
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if any(isinstance(d, bool) or not isinstance(d, int) for d in items):
            raise ValueError(f"{DEPTH_HELP}; got {value!r}")
    else:
        raise ValueError(f"{DEPTH_HELP}; got {value!r}")
    if items in ([], [0]):
        return ()
    if any(d not in VALID_DEPTHS for d in items) or len(set(items)) != len(items):
        raise ValueError(f"{DEPTH_HELP}; got {value!r}")
    return tuple(sorted(items))


def parse_seeds(value: Any) -> tuple[int, ...]:
    """Training seeds as a user types them: 0 / '0' → (0,); '0,1,2', '0 1 2' or [0, 1, 2] → (0, 1, 2), in the
    order given. Anything else raises ValueError quoting :data:`SEEDS_HELP`."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{SEEDS_HELP}; got {value!r}")
    if isinstance(value, int):
        items: list = [value]
    elif isinstance(value, str):
        try:
            items = [int(p) for p in value.strip().strip("()[]").replace(",", " ").split()]
        except ValueError:
            raise ValueError(f"{SEEDS_HELP}; got {value!r}") from None
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError(f"{SEEDS_HELP}; got {value!r}")
    if (not items or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in items)
            or len(set(items)) != len(items)):
        raise ValueError(f"{SEEDS_HELP}; got {value!r}")
    return tuple(items)


def check_device(device: Any, name: str = "device") -> str:
    """``device`` if it is a device string sagkit accepts, else ValueError naming ``name``."""
    if not isinstance(device, str) or not DEVICE_RE.match(device):
        raise ValueError(f"{name} {device!r} is invalid: {DEVICE_RULE}")
    return device


def check_choice(name: str, value: object, choices: tuple) -> None:
    """ValueError naming the option and its allowed values unless ``value`` is one of ``choices``."""
    if isinstance(value, bool) or value not in choices:
        raise ValueError(f"{name}={value!r} is not known; choose one of {choices}")


def register_dataset_name(name: str) -> None:
    """Accept ``name`` as a data set from now on (``sagkit.data.register_dataset`` adds its reader)."""
    if name not in DATASET_NAMES and name not in _REGISTERED_DATASETS:
        _REGISTERED_DATASETS.append(name)


def dataset_names() -> tuple[str, ...]:
    """The data sets sagkit can read now: its own and those registered since."""
    return DATASET_NAMES + tuple(_REGISTERED_DATASETS)


def canonical_dataset(name: str) -> str:
    """The registry name of data set ``name`` (case-insensitive, common aliases accepted); ValueError otherwise."""
    key = name.strip().lower()
    key = DATASET_ALIASES.get(key, key)
    if key not in dataset_names():
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(dataset_names())}")
    return key


def parse_l2norm(l2norm: object, depths: tuple[int, ...]) -> tuple[int, ...]:
    """Depths (among ``depths``) whose SAG output is L2-normalised (Eq. 7).

    None: D1-D3 on, D4 off (Section 4.6). True/False: all/none. A mapping {depth: bool} overrides the
    default per depth; any other iterable lists exactly the normalised depths.
    """
    if l2norm is None:
        chosen = set(DEFAULT_L2NORM_DEPTHS)
    elif isinstance(l2norm, bool):
        chosen = set(VALID_DEPTHS) if l2norm else set()
    elif isinstance(l2norm, Mapping):
        bad = [k for k in l2norm if k not in VALID_DEPTHS or not isinstance(l2norm[k], bool)]
        if bad:
            raise ValueError(f"l2norm mapping must be {{depth in 1..4: bool}}; bad entries for {bad}")
        chosen = {d for d in VALID_DEPTHS if l2norm.get(d, d in DEFAULT_L2NORM_DEPTHS)}
    elif isinstance(l2norm, Iterable) and not isinstance(l2norm, (str, bytes)):
        chosen = set(l2norm)
        if not chosen <= set(VALID_DEPTHS):
            raise ValueError(f"l2norm depths must be from {{1, 2, 3, 4}}; got {sorted(chosen, key=str)}")
    else:
        raise ValueError(f"l2norm must be None, a bool, a {{depth: bool}} mapping or an iterable of depths; "
                         f"got {l2norm!r}")
    return tuple(d for d in depths if d in chosen)


def check_input_size(height: int, width: int) -> None:
    """ValueError naming the size and the nearest valid sizes unless both sides are positive multiples of
    :data:`INPUT_MULTIPLE`."""
    step = INPUT_MULTIPLE
    if height % step == 0 and width % step == 0 and height > 0 and width > 0:
        return

    def near(n: int) -> list[int]:
        return sorted({max(step, n // step * step), max(step, -(-n // step) * step)})

    options = ", ".join(f"{h}×{w}" for h in near(height) for w in near(width))
    raise ValueError(f"input size {height}×{width} (height×width) is not supported: both sides must be "
                     f"multiples of {step}, the backbone's output stride; nearest valid sizes: {options}")


def check_head_options(neck: str, bottleneck_dim: object, dropout: object) -> None:
    """ValueError unless the head options suit ``neck``: ``bottleneck_dim`` and ``dropout`` are the paper head's."""
    if neck == "bnneck" and (bottleneck_dim is not None or dropout is not None):
        raise ValueError(f"bottleneck_dim={bottleneck_dim} and dropout={dropout} are options of neck='paper'; "
                         "neck='bnneck' has no bottleneck layer and no dropout: leave them out")


def check_grid_options(attention: str, grid_scale: str) -> None:
    """ValueError unless ``grid_scale`` suits ``attention`` (only the softmax grid is rescaled)."""
    if attention == "sigmoid" and grid_scale != "none":
        raise ValueError("grid_scale applies to the softmax grid only; use grid_scale='none' with "
                         "attention='sigmoid'")


def load_entry(spec: str) -> Any:
    """The callable that a ``"module:callable"`` entry of the tables above names, its module imported now."""
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)
