"""Atomic file writes, RNG-state capture and flat training checkpoints (torchvision-references style).

Every file is written to a temporary name in the same folder and moved into place with ``os.replace``, so a
run killed mid-write leaves either the old file or the new one, never half of one. Checkpoints hold only
tensors and plain Python values and are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from sagkit.atomic import atomic_write, atomic_write_text
from sagkit.models.branch_norm import shared_statistic_key

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "get_rng_state",
    "set_rng_state",
    "make_checkpoint",
    "load_checkpoint",
    "load_weights",
    "MODEL_ENTRIES",
]

# The entries every sagkit checkpoint holds, enough to rebuild its model (``checkpoint_last.pt`` holds more).
MODEL_ENTRIES = ("model", "config", "num_classes")


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def get_rng_state() -> dict:
    """Python, NumPy, torch (CPU and every CUDA device) RNG states, as weights_only-loadable values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "python": [version, list(internal), gauss_next],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``get_rng_state`` captured (CUDA states only when the same devices exist)."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)


def make_checkpoint(
    *,
    model: torch.nn.Module,
    optimizer: Optional[torch.optim.Optimizer],
    lr_scheduler: Any,
    scaler: Any,
    epoch: int,
    config: dict,
    best_metric: Optional[float],
    best_epoch: Optional[int],
    num_classes: int,
    extra: Optional[dict] = None,
) -> dict:
    """The flat checkpoint dict. ``model`` is the bare module (``model_without_ddp``); ``epoch`` counts
    completed epochs (resume starts at ``epoch + 1``)."""
    ckpt = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "lr_scheduler": lr_scheduler.state_dict() if lr_scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "epoch": int(epoch),
        "config": config,
        "best_metric": None if best_metric is None else float(best_metric),
        "best_epoch": best_epoch,
        "num_classes": int(num_classes),
        "rng": get_rng_state(),
    }
    if extra:
        ckpt.update(extra)
    return ckpt


def load_checkpoint(path: str | Path, map_location: Any = "cpu", required: tuple = MODEL_ENTRIES) -> dict:
    """Read a checkpoint written by sagkit (``weights_only=True``: no arbitrary code is unpickled).

    A missing, truncated or foreign file (not a dict holding the ``required`` entries) raises an error
    naming it; nothing is changed."""
    path = Path(path)
    if not path.is_file():
        state = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"checkpoint {path} {state}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        detail = " ".join(str(err).split())[:160]
        raise ValueError(f"could not read checkpoint {path}: the file is truncated or is not a torch checkpoint "
                         f"({type(err).__name__}: {detail}). Use another checkpoint, or train the run again") from err
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path} is not a sagkit checkpoint: it holds a {type(ckpt).__name__}, not a dict")
    missing = [k for k in required if k not in ckpt]
    if missing:
        raise ValueError(f"{path} is not a sagkit checkpoint (no {missing} entries)")
    return ckpt


def load_weights(model: torch.nn.Module, state: Any, path: str | Path) -> None:
    """``model.load_state_dict(state)`` after checking that ``state`` fits ``model`` (same names and shapes).

    Weights of another model (other depths, backbone or number of classes) raise ValueError naming ``path``
    and the first differences, with ``model`` left unchanged (``load_state_dict`` fails half-way). Per-branch
    BatchNorm statistics missing from a checkpoint saved before they existed are not a difference (SAGNet
    starts them from the shared ones)."""
    own = model.state_dict()
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path}: its 'model' entry is a {type(state).__name__}, not a state dict")
    shape = lambda t: tuple(getattr(t, "shape", ()))  # noqa: E731
    problems = [(label, keys) for label, keys in (
        ("missing", [k for k in own if k not in state and shared_statistic_key(k) not in state]),
        ("unexpected", [k for k in state if k not in own]),
        ("other shape", [f"{k} {shape(state[k])} vs {shape(own[k])}" for k in own
                         if k in state and shape(state[k]) != shape(own[k])]))
        if keys]
    if problems:
        text = "; ".join(f"{len(keys)} {label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                         for label, keys in problems)
        raise ValueError(f"checkpoint {path} holds the weights of another model than its config describes "
                         f"({text}). Use the checkpoint of this model, or train it again")
    model.load_state_dict(state)
