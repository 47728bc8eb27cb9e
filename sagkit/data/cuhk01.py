"""CUHK01 reader: the official ``campus/`` folder, 971 identities x 4 images, 2 cameras.

Names are ``PPPPIII.png``: 4-digit person id, 3-digit image index; images
001-002 come from camera A (camid 0) and 003-004 from camera B (camid 1).
Protocol: identities are split at random into ``num_train_ids`` train ids
(default half, 485 of 971) and the rest for test; ``split`` (0..num_splits-1)
picks one of ``num_splits`` seeded random splits, so split ``k`` is the same on
every machine.  At test time the ``query_camera`` ("a" or "b") gives the
queries and the other camera the gallery.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sagkit.evaluation.protocol import MARKET

from sagkit.data.records import (ImageRecord, ReIDDataset, check_split_index, expected_layout_error, format_error,
                      list_image_files, not_a_folder_error, relabel, require_nonempty)

# ASCII digits only (re.ASCII): a name spelled with other digits ("٠٠٠١") is not identity 1; \Z: no newline
CUHK01_PATTERN = re.compile(r"^(\d{4})(00[1-4])\.png\Z", re.ASCII)
CUHK01_LAYOUT = ("  <root>/campus/0001001.png ... 0971004.png   (PPPPIII.png, images 001-002 camera A, "
                 "003-004 camera B)\n  (or <root> may be the campus folder itself)")


def find_campus(root: str | Path) -> Path:
    """The folder holding the CUHK01 PNGs: ``root/campus``, ``root/cuhk01/campus`` or ``root`` itself."""
    root = Path(root).expanduser()
    if root.is_file():
        raise not_a_folder_error("CUHK01 root", root)
    for cand in (root / "campus", root / "cuhk01" / "campus", root):
        if cand.is_dir() and any(p.suffix.lower() == ".png" for p in cand.iterdir()):
            return cand
    raise expected_layout_error("CUHK01 images (campus/*.png)", root, CUHK01_LAYOUT)


def read_campus(folder: Path) -> list[ImageRecord]:
    """All CUHK01 images with original pids and camids 0 (A) / 1 (B)."""
    records, bad = [], []
    for path in list_image_files(folder):
        m = CUHK01_PATTERN.match(path.name)
        if m is None:
            bad.append(path.name)
            continue
        records.append(ImageRecord(str(path), int(m.group(1)), 0 if int(m.group(2)) <= 2 else 1))
    if bad:
        raise format_error(folder, bad, "'0001001.png' (PPPPIII.png, III in 001-004)")
    return records


def cuhk01_split_ids(pids: list[int], split: int, seed: int, num_train_ids: int,
                     num_splits: int) -> tuple[list[int], list[int]]:
    """Train and test identity lists of random split ``split`` (seeded, reproducible)."""
    check_split_index(split, num_splits)
    if isinstance(num_train_ids, bool) or not isinstance(num_train_ids, int) or not 0 < num_train_ids < len(pids):
        raise ValueError(f"num_train_ids must be in 1..{len(pids) - 1} for {len(pids)} identities, "
                         f"got {num_train_ids}")
    rng = np.random.default_rng(seed)
    order = [rng.permutation(len(pids)) for _ in range(num_splits)][split]
    ids = sorted(pids)
    train = sorted(ids[i] for i in order[:num_train_ids])
    test = sorted(ids[i] for i in order[num_train_ids:])
    return train, test


def load_cuhk01(root: str | Path, split: int = 0, seed: int = 0, num_train_ids: int | None = None,
                num_splits: int = 10, query_camera: str = "a") -> ReIDDataset:
    """CUHK01 with a random identity split; test queries from ``query_camera``, gallery from the other."""
    if not isinstance(query_camera, str) or query_camera.lower() not in ("a", "b"):
        raise ValueError(f"query_camera must be 'a' or 'b', got {query_camera!r}")
    folder = find_campus(root)
    records = read_campus(folder)
    pids = sorted({r.pid for r in records})
    if num_train_ids is None:
        num_train_ids = len(pids) // 2
    train_ids, test_ids = cuhk01_split_ids(pids, split, seed, num_train_ids, num_splits)
    train_set, test_set = set(train_ids), set(test_ids)
    qcam = 0 if query_camera.lower() == "a" else 1
    train = relabel(r for r in records if r.pid in train_set)
    query = [r for r in records if r.pid in test_set and r.camid == qcam]
    gallery = [r for r in records if r.pid in test_set and r.camid != qcam]
    for name, recs in (("train", train), ("query", query), ("gallery", gallery)):
        require_nonempty(name, recs, str(folder))
    info = dict(split=split, seed=seed, num_splits=num_splits, query_camera=query_camera.lower())
    return ReIDDataset("cuhk01", train, query, gallery, root=str(folder), info=info, protocol=MARKET)
