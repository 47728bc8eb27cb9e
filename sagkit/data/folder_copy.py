"""A dataset's test split as a ``folder`` dataset: ``dest/query/<identity>/`` and ``dest/gallery/<identity>/``
hold symbolic links to the split's images (no image is copied, so a licensed dataset is not duplicated) and
``dest/manifest.csv`` lists them with their identity, camera and split, so the folder reader scores the copy
under the same camera rule as the dataset's own reader. Notebook 07 searches such a copy under the workbook.

Junk images (``JUNK_PID``) are left out: every protocol leaves them out of the rankings. A split whose query
list is its gallery list (CUHK03's classic protocol) goes under ``dest/test/`` without a split column, so each
image is a query against the others; the folder reader then scores it with the Market rule, not CUHK03's.

The copy is built in a hidden folder beside ``dest`` and renamed into place when complete, so a build that
was interrupted is never taken for a copy; ``copy.json`` records what it was built from, and a copy of other
records (another synthetic set, a dataset moved) is rebuilt.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from sagkit.atomic import make_folder, publish_dir

from sagkit.data.folder import MANIFEST_COLUMNS, MANIFEST_NAME
from sagkit.data.records import JUNK_PID, ImageRecord, ReIDDataset

__all__ = ["COPY_RECORD", "copy_queries", "write_folder_copy"]

COPY_RECORD = "copy.json"
TEST_DIR = "test"  # query list == gallery list: each image is a query against the others


def _rows(dataset: ReIDDataset) -> list[tuple[str, ImageRecord]]:
    """(split folder, record) of every test image but junk, query first."""
    same = [r.path for r in dataset.query] == [r.path for r in dataset.gallery]
    splits = ((TEST_DIR, dataset.query),) if same else (("query", dataset.query), ("gallery", dataset.gallery))
    return [(split, r) for split, records in splits for r in records if r.pid != JUNK_PID]


def _fingerprint(dataset: ReIDDataset, rows: list[tuple[str, ImageRecord]]) -> str:
    """What the copy is of: the dataset's name and each row's split, identity, camera and image file."""
    lines = [dataset.name] + [f"{split},{r.pid},{r.camid},{Path(r.path).resolve()}" for split, r in rows]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _read_record(dest: Path) -> dict | None:
    try:
        return json.loads((dest / COPY_RECORD).read_text())
    except (OSError, ValueError):
        return None


def _is_copy_of(dest: Path, fingerprint: str) -> bool:
    record = _read_record(dest)
    return bool(record) and record.get("fingerprint") == fingerprint and (dest / MANIFEST_NAME).is_file()


def _build(tmp: Path, dataset: ReIDDataset, rows: list[tuple[str, ImageRecord]], fingerprint: str) -> None:
    """Links and ``manifest.csv`` in ``tmp``; ``copy.json`` last."""
    with_split = rows[0][0] != TEST_DIR
    lines = [list(MANIFEST_COLUMNS if with_split else MANIFEST_COLUMNS[:3])]  # path, identity, camera[, split]
    taken: set[str] = set()
    for i, (split, r) in enumerate(rows):
        rel = f"{split}/{r.pid}/{Path(r.path).name}"
        if rel in taken:  # two files of one name (from different folders) under one identity
            rel = f"{split}/{r.pid}/{i:06d}_{Path(r.path).name}"
        taken.add(rel)
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(Path(r.path).resolve(), tmp / rel)
        lines.append([rel, r.pid, r.camid] + ([split] if with_split else []))
    with (tmp / MANIFEST_NAME).open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(lines)  # quoted where a file name holds a comma
    record = {"dataset": dataset.name, "root": dataset.root, "fingerprint": fingerprint, "images": len(rows),
              "protocol": dataset.protocol.describe()}
    (tmp / COPY_RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def write_folder_copy(dataset: ReIDDataset, dest: str | Path) -> Path:
    """``dest`` holding a copy of ``dataset``'s test split in the ``folder`` layout (see the module docstring),
    reused when it is already a complete copy of the same records; returns ``dest``.

    FileExistsError when ``dest`` holds anything other than a copy this function wrote (it is never deleted)."""
    dest = Path(dest)
    rows = _rows(dataset)
    if not rows:
        raise ValueError(f"dataset {dataset.name!r} has no test images to copy (query and gallery are empty or junk)")
    fingerprint = _fingerprint(dataset, rows)
    if _is_copy_of(dest, fingerprint):
        return dest
    stale = dest.exists() and (_read_record(dest) is not None or (dest.is_dir() and not any(dest.iterdir())))
    if dest.exists() and not stale:
        raise FileExistsError(f"{str(dest)!r} exists and is not a folder copy written by sagkit ({COPY_RECORD} "
                              "missing); move it away or choose another folder")
    make_folder(dest.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    old = None
    try:
        _build(tmp, dataset, rows, fingerprint)
        if stale:  # moved aside first: os.replace cannot put a folder over a non-empty one
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / dest.name)
        publish_dir(tmp, dest, done_by_other=lambda done: _is_copy_of(done, fingerprint))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return dest


def copy_queries(dest: str | Path, count: int = 2) -> list[str]:
    """The first image (by name) of each of the first ``count`` identities (in numeric order) of a copy's
    queries: query images to search with."""
    dest = Path(dest)
    queries = dest / "query" if (dest / "query").is_dir() else dest / TEST_DIR
    identities = sorted((p for p in queries.iterdir() if p.is_dir()), key=lambda p: int(p.name))
    return [str(min(p.iterdir())) for p in identities[:count]]
