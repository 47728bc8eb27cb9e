"""Saving figures atomically as PNG and PDF under the workbook's figures folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sagkit.atomic import atomic_write, make_folder


def save_figure(fig, directory, name: str, formats: Sequence[str] = ("png", "pdf"), dpi: int = 150) -> list[Path]:
    """Write ``fig`` as ``directory/name.<fmt>`` for each format; returns the paths written.

    Each file is written to a temporary file in the same folder and moved into place with
    ``os.replace``, so a reader never sees a half-written figure.
    """
    directory = Path(directory)
    make_folder(directory)
    if not name or Path(name).name != name:
        raise ValueError(f"figure name must be a plain file stem like 'fig1_samples'; got {name!r}")
    written = []
    for fmt in formats:
        target = directory / f"{name}.{fmt}"

        def write(tmp: str, fmt: str = fmt) -> None:
            with open(tmp, "wb") as handle:
                fig.savefig(handle, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_metadata(fmt))

        atomic_write(target, write)
        written.append(target)
    return written


def _metadata(fmt: str) -> dict:
    # Fixed metadata keeps re-generated files byte-stable where the backend allows it.
    if fmt == "pdf":
        return {"CreationDate": None, "Producer": "sagkit"}
    if fmt == "png":
        return {"Software": "sagkit"}
    return {}
