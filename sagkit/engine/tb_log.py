"""TensorBoard event files for a training run: each epoch's named scalars (the fields of its ``metrics.csv``
row) under the run folder, so ``tensorboard --logdir runs`` shows every run's curves.

Without the ``tensorboard`` package nothing is written (one info line says so); where the event file cannot be
written (a folder name TensorBoard cannot encode, a full disk) one warning says so and the run goes on without
it (``metrics.csv`` holds the same numbers). A writer opens its event
file at the first step it writes, with ``purge_step`` set to that step, so what an interrupted session
wrote at that step and after (before it was resumed, or restarted) is hidden from TensorBoard.
"""

from __future__ import annotations

import logging
import numbers
import re
import time
from pathlib import Path
from typing import Mapping, Optional

try:
    from torch.utils.tensorboard import SummaryWriter

    AVAILABLE = True
except ImportError:
    SummaryWriter = None
    AVAILABLE = False

__all__ = ["AVAILABLE", "ScalarLog", "tag_for"]

log = logging.getLogger("sagkit.engine")
_told_unavailable = False
_STAMP = re.compile(r"tfevents\.(\d+)\.")


def tag_for(key: str) -> str:
    """TensorBoard tag of a metrics field: ``val_<m>`` -> ``val/<m>``, ``loss*`` -> ``loss/<key>``, ``lr*`` ->
    ``lr/<key>``, anything else -> ``train/<key>`` (TensorBoard groups tags by the part before the slash)."""
    if key.startswith("val_"):
        return "val/" + key[len("val_"):]
    for section in ("loss", "lr"):
        if key.startswith(section):
            return f"{section}/{key}"
    return "train/" + key


def _is_scalar(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _wait_past_existing_files(log_dir: Path) -> None:
    """Event files are read in name order and a name starts with its creation second: wait (under a
    second) until the clock is past the newest file's second, so a new session's file is read last."""
    stamps = [int(m.group(1)) for p in log_dir.glob("*tfevents*") if (m := _STAMP.search(p.name))]
    delay = (max(stamps) + 1 - time.time()) if stamps else 0.0
    if 0.0 < delay <= 1.0:
        time.sleep(delay)


class ScalarLog:
    """Named scalars per global step into ``log_dir``; a no-op when ``enabled`` is False (the ranks other than
    0 under DDP) or tensorboard is not installed. Nothing is created on disk before the first write."""

    def __init__(self, log_dir: str | Path, enabled: bool = True):
        self.log_dir = Path(log_dir)
        self.enabled = enabled
        self._writer: Optional[SummaryWriter] = None

    def write(self, step: int, scalars: Mapping[str, object]) -> None:
        """Add every real-number value of ``scalars`` at ``step`` (tag from :func:`tag_for`; None and text
        are skipped), then flush, so the event file is complete on disk after each call."""
        if not self.enabled:
            return
        try:
            if not self._ready(step):
                return
            for key, value in scalars.items():
                if _is_scalar(value):
                    self._writer.add_scalar(tag_for(key), float(value), global_step=step)
            self._writer.flush()
        except (OSError, UnicodeError, ValueError) as err:
            log.warning("sagkit: cannot write TensorBoard event files in %r (%s: %s); the run goes on without "
                        "them (metrics.csv holds the same numbers)", str(self.log_dir), type(err).__name__, err)
            self.enabled = False
            self._writer = None

    def _ready(self, step: int) -> bool:
        global _told_unavailable
        if self._writer is not None:
            return True
        if not AVAILABLE:
            if not _told_unavailable:
                log.info("sagkit: tensorboard is not installed, so runs write no TensorBoard event files "
                         "(pip install tensorboard)")
                _told_unavailable = True
            return False
        self.log_dir.mkdir(parents=True, exist_ok=True)
        _wait_past_existing_files(self.log_dir)
        self._writer = SummaryWriter(str(self.log_dir), purge_step=step)
        return True

    def close(self) -> None:
        """Flush and close the event file (a later write opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
