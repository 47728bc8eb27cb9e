"""Saving figures atomically as PNG and PDF under the workbook's figures folder."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path


def save_figure(fig, directory, name: str, formats: Sequence[str] = ("png", "pdf"), dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``directory/name.<fmt>`` for each format; returns the paths written.

    Each file is written to a temporary file in the same folder and moved into place with
    ``os.replace``, so a reader never sees a half-written figure.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not name or Path(name).name != name:
        raise ValueError(f"figure name must be a plain file stem like 'fig1_samples'; got {name!r}")
    written = []
    for fmt in formats:
        target = directory / f"{name}.{fmt}"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".{fmt}.tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                fig.savefig(handle, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_metadata(fmt))
            os.chmod(tmp, _file_mode())
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        written.append(target)
    return written


def _file_mode() -> int:
    """Permissions of a normally created file (mkstemp makes 0600): 0666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _metadata(fmt: str) -> dict:
    # Fixed metadata keeps re-generated files byte-stable where the backend allows it.
    if fmt == "pdf":
        return {"CreationDate": None, "Producer": "sagkit"}
    if fmt == "png":
        return {"Software": "sagkit"}
    return {}
