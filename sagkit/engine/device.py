"""Device choice (:func:`run_device`), placing a model on it (:func:`place_model`), mixed precision, seeding and
deterministic mode."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import random
import sys
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from sagkit.choices import AMP_CHOICES, DEVICE_RULE
from sagkit.config import sized_for_gpu

__all__ = [
    "DeviceUnavailableError",
    "Precision",
    "place_model",
    "resolve_device",
    "run_device",
    "resolve_precision",
    "has_native_bf16",
    "autocast",
    "make_grad_scaler",
    "seed_everything",
    "epoch_seed",
    "configure_determinism",
    "retain_freed_memory",
]

log = logging.getLogger("sagkit.engine")


class DeviceUnavailableError(RuntimeError):
    """A CUDA device was asked for but none is usable."""


def resolve_device(spec: str = "auto", local_rank: int = 0, quiet: bool = False,
                   world_size: int = 1) -> torch.device:
    """``"auto"`` → ``cuda:<local_rank>`` when CUDA is available, else CPU with a one-line notice (logging)
    unless ``quiet`` (callers pass ``quiet`` for configs made for the CPU, ``config.sized_for_gpu``).

    ``"cuda"``/``"cuda:N"`` without a usable GPU raise :class:`DeviceUnavailableError`. With several
    processes (``world_size`` > 1) ``"cuda:N"`` is refused: it would put every rank on GPU N.
    """
    if spec == "cpu":
        return torch.device("cpu")
    if world_size > 1 and spec.startswith("cuda:"):
        raise ValueError(
            f"device={spec!r} under torchrun would put all {world_size} processes on the same GPU; use "
            "device='cuda' (each process takes cuda:<LOCAL_RANK>) and choose the GPUs with CUDA_VISIBLE_DEVICES"
        )
    has_cuda = torch.cuda.is_available()
    if spec == "auto":
        if has_cuda:
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if not quiet:
            log.warning("sagkit: no CUDA device found; running a GPU-sized config on the CPU, which is slow "
                        "(the 'cpu' profile is sized for a CPU)")
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not has_cuda:
            raise DeviceUnavailableError(
                f"device={spec!r} was requested but no CUDA device is available "
                "(torch.cuda.is_available() is False); use device='cpu' or device='auto'"
            )
        index = int(spec.split(":", 1)[1]) if ":" in spec else local_rank % torch.cuda.device_count()
        if index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device={spec!r} was requested but only {torch.cuda.device_count()} CUDA device(s) exist; "
                "use device='cuda' or device='auto'"
            )
        return torch.device("cuda", index)
    raise ValueError(f"device={spec!r} is invalid: {DEVICE_RULE}")


def run_device(config, spec: Optional[str] = None, *, local_rank: int = 0, world_size: int = 1,
               quiet: Optional[bool] = None) -> torch.device:
    """The device that trains or evaluates ``config`` (``spec`` overrides ``config.device``), with the config's
    CPU memory setting applied (``retain_memory``: :func:`retain_freed_memory`). ``quiet`` None: the CPU notice
    only for a config sized for a GPU."""
    quiet = not sized_for_gpu(config) if quiet is None else quiet
    device = resolve_device(spec or config.device, local_rank, quiet=quiet, world_size=world_size)
    if device.type == "cpu" and config.retain_memory:
        retain_freed_memory()
    return device


def place_model(model: torch.nn.Module, config, device: torch.device) -> torch.nn.Module:
    """``model`` on ``device`` in the memory layout of ``config`` (channels-last when ``config.channels_last``):
    the layout it trains in, so that every evaluation extracts features from the same one."""
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


BF16_MIN_CAPABILITY = (8, 0)  # Ampere: the first CUDA GPUs with bf16 tensor cores


def has_native_bf16(device: torch.device) -> bool:
    """Whether the CUDA ``device`` computes bf16 in hardware (compute capability >= 8.0); emulation, which
    ``torch.cuda.is_bf16_supported()`` also counts, does not qualify."""
    return tuple(torch.cuda.get_device_capability(device)) >= BF16_MIN_CAPABILITY


@dataclass(frozen=True)
class Precision:
    """Autocast settings: ``dtype`` None means full fp32; ``use_scaler`` for fp16 loss scaling."""

    device_type: str
    dtype: Optional[torch.dtype]
    use_scaler: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]


def resolve_precision(amp: str, device: torch.device) -> Precision:
    """``auto``: bf16 on a CUDA GPU with bf16 tensor cores (compute capability >= 8.0, Ampere on), else fp16 +
    GradScaler (V100 and T4 only emulate bf16, at fp32 speed); fp32 on CPU.
    ``bf16`` works on CPU and CUDA; ``fp16`` needs CUDA; ``off`` is fp32."""
    kind = device.type
    if amp == "off":
        return Precision(kind, None, False)
    if amp == "auto":
        if kind != "cuda":
            return Precision(kind, None, False)
        if has_native_bf16(device):
            return Precision(kind, torch.bfloat16, False)
        return Precision(kind, torch.float16, True)
    if amp == "bf16":
        return Precision(kind, torch.bfloat16, False)
    if amp == "fp16":
        if kind != "cuda":
            raise ValueError("amp='fp16' needs a CUDA device; on the CPU use amp='bf16' or amp='off'")
        return Precision(kind, torch.float16, True)
    raise ValueError(f"amp={amp!r} is invalid: use one of {AMP_CHOICES}")


def autocast(precision: Precision):
    """Autocast context for the forward pass (a no-op context for fp32)."""
    if precision.dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=precision.device_type, dtype=precision.dtype)


def make_grad_scaler(precision: Precision) -> torch.amp.GradScaler:
    """GradScaler, enabled only for fp16."""
    return torch.amp.GradScaler(precision.device_type, enabled=precision.use_scaler)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    seed = int(seed) % (2**32)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed used for the global RNGs at the start of ``epoch``: a pure function of (seed, epoch), so a
    resumed run draws the same random numbers as an uninterrupted one."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919) % (2**32)


def configure_determinism(deterministic: bool) -> None:
    """Deterministic mode: ``torch.use_deterministic_algorithms`` (warn-only, since a few CUDA backward
    kernels such as adaptive average pooling have no deterministic version) and cuDNN without autotuning.
    Otherwise cuDNN benchmark mode is on (fastest kernels for fixed input sizes)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def retain_freed_memory() -> bool:
    """Make glibc malloc keep freed memory in the process (Linux only); True when it took effect.

    By default glibc serves every block over 32 MB with a fresh mmap and unmaps it on free, so each large
    activation (the upper branch's 4×-pixel maps are 30-130 MB at batch 32) page-faults and is zeroed by the
    kernel on every training step. With mmap off and trimming off, freed blocks are reused instead: the
    cpu-profile SAG steps run about 1.2-1.5× faster (``benchmarks/bench_training.py --malloc default``).
    The cost is that the process keeps its peak heap until it exits. Process-wide and not undone.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # -1 as M_TRIM_THRESHOLD is glibc's documented way to switch trimming off.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))
