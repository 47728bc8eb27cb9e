"""Features of one checkpoint kept on disk, so that the notebooks (separate kernels), ``sagkit eval`` and the
trainer's final test share one extraction: ``<run>/features/<split>-<records>-<settings>-<checkpoint>.pt``.

The key holds a digest of the checkpoint file's bytes, of the record paths with each image file's size and
modification time, and of the feature settings, so a retrained run, another dataset split, images replaced
in place or other settings never read stale features.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional, Sequence

import torch

from sagkit.atomic import make_folder

from sagkit.engine.checkpoint import atomic_torch_save

__all__ = ["FEATURES_DIR", "FeatureCache", "file_digest"]

FEATURES_DIR = "features"
_DIGESTS: dict[tuple, str] = {}


def file_digest(path: str | Path) -> str:
    """First 12 hex digits of the SHA-256 of a file's bytes (remembered per path, size and mtime)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()[:12]
    return _DIGESTS[key]


def _file_stamp(path: str) -> str:
    """``path size mtime_ns`` of an image file (``path - -`` when it cannot be read: extraction then names it)."""
    try:
        stat = os.stat(path)
    except OSError:
        return f"{path} - -"
    return f"{path} {stat.st_size} {stat.st_mtime_ns}"


def _records_digest(records: Sequence) -> str:
    """Digest of what the images are: their paths, sizes and modification times, in order."""
    return hashlib.sha256("\n".join(_file_stamp(r.path) for r in records).encode()).hexdigest()[:10]


class FeatureCache:
    """Feature files of the checkpoint ``checkpoint`` in ``folder`` (by default ``<run>/features``)."""

    def __init__(self, checkpoint: str | Path, folder: Optional[str | Path] = None):
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"{checkpoint} does not exist: features are cached per checkpoint file")
        self.folder = Path(folder) if folder is not None else checkpoint.parent / FEATURES_DIR
        self.stamp = f"{checkpoint.stem}-{file_digest(checkpoint)}"

    def path(self, split: str, records: Sequence, key: str) -> Path:
        settings = hashlib.sha256(key.encode()).hexdigest()[:6]
        return self.folder / f"{split}-{_records_digest(records)}-{settings}-{self.stamp}.pt"

    def load(self, split: str, records: Sequence, key: str) -> Optional[torch.Tensor]:
        """The cached N x D features, or None when absent or not of ``len(records)`` rows."""
        path = self.path(split, records, key)
        if not path.is_file():
            return None
        feats = torch.load(path, map_location="cpu", weights_only=True)
        return feats if isinstance(feats, torch.Tensor) and feats.shape[0] == len(records) else None

    def save(self, split: str, records: Sequence, key: str, feats: torch.Tensor) -> Path:
        """Write the features atomically."""
        make_folder(self.folder)
        return atomic_torch_save(feats, self.path(split, records, key))
