"""The report of the GPU check: each section runs on its own, a failure is recorded instead of raised, and
the report says which machine and software it ran on."""

from __future__ import annotations

import logging
import time
import traceback
from typing import Callable

import torch

from sagkit.engine.device import has_native_bf16

__all__ = ["failure", "run_section", "environment"]

log = logging.getLogger("sagkit.diagnostics.gpu_check")
_TRACEBACK_LINES = 12


def failure(err: BaseException) -> dict:
    """``{"ok": False, "error": "Type: message", "traceback": [last lines]}`` for a failed section or case."""
    lines = "".join(traceback.format_exception(type(err), err, err.__traceback__)).strip().splitlines()
    return {"ok": False, "error": f"{type(err).__name__}: {err}", "traceback": lines[-_TRACEBACK_LINES:]}


def run_section(name: str, fn: Callable[..., dict], *args, **kwargs) -> dict:
    """``fn(*args, **kwargs)`` (a dict with an ``ok`` entry) plus ``time_s``; an exception becomes
    :func:`failure`, so that one broken path does not hide the others."""
    log.info("sagkit bench gpu: %s ...", name)
    start = time.perf_counter()
    try:
        result = dict(fn(*args, **kwargs))
        if not isinstance(result.get("ok"), bool):
            raise TypeError(f"section {name!r} returned no boolean 'ok' entry")
    except Exception as err:  # noqa: BLE001 - recorded in the report, the other sections still run
        result = failure(err)
    result["time_s"] = round(time.perf_counter() - start, 3)
    log.info("sagkit bench gpu: %s %s in %.1f s", name, "ok" if result["ok"] else "FAILED", result["time_s"])
    return result


def environment(device: torch.device) -> dict:
    """Versions and devices the check ran with."""
    cuda = device.type == "cuda"
    return {
        "device": str(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "bf16_supported": bool(torch.cuda.is_bf16_supported()) if cuda else None,
        "compute_capability": list(torch.cuda.get_device_capability(device)) if cuda else None,
        "bf16_native": has_native_bf16(device) if cuda else None,  # what amp="auto" decides by
    }
