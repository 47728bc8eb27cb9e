"""The values a user may choose for SAG depths, training seeds and devices, defined once (no torch import: the CLI and the
config check them before torch loads). Dataset names belong to ``sagkit.data.registry``, profile names to
``sagkit.config``."""

from __future__ import annotations

import re
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
