"""Readers for datasets in the Market-1501 folder layout (Market-1501, DukeMTMC-reID, synthetic).

Layout::

    <root>/bounding_box_train/   training images
    <root>/bounding_box_test/    gallery images (junk ``-1`` and distractors ``0000`` included)
    <root>/query/                query images
    <root>/gt_bbox/              (Market only, optional) hand-drawn boxes for multi-query

Market names are ``PPPP_cCsS_FFFFFF_BB.jpg`` (id or ``-1``, camera, sequence,
frame, box); DukeMTMC-reID names are ``PPPP_cC_fFFFFFFF.jpg``.  Camera ids are
returned 0-based (``c1`` -> 0).  Junk (``-1``) and distractor (``0000``) images
stay in the gallery: dropping them is the evaluation protocol's decision.
Junk images in the training folder (none in the official data) are skipped,
since they have no identity to learn.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sagkit.evaluation.protocol import MARKET

from sagkit.data.records import (JUNK_PID, ImageRecord, ReIDDataset, expected_layout_error, format_error,
                      list_image_files, not_a_folder_error, relabel, require_nonempty)

# ASCII digits only (re.ASCII): a name spelled with other digits ("٠٠٠١") is not identity 1; \Z: no newline
MARKET_PATTERN = re.compile(r"^(-1|\d{4})_c(\d)s(\d+)_(\d{6})_(\d{2})\.jpg\Z", re.ASCII)
DUKE_PATTERN = re.compile(r"^(\d{4})_c(\d)_f(\d{7})\.jpg\Z", re.ASCII)

TRAIN_DIR, GALLERY_DIR, QUERY_DIR, MULTI_QUERY_DIR = "bounding_box_train", "bounding_box_test", "query", "gt_bbox"


@dataclass(frozen=True)
class MarketFormat:
    """How one dataset of the Market family names its files and where it may sit under ``root``."""

    name: str
    pattern: re.Pattern
    example: str
    subfolders: tuple[str, ...]  # accepted dataset folders inside root, tried after root itself


MARKET1501 = MarketFormat("market1501", MARKET_PATTERN, "'0002_c1s1_000451_03.jpg' (PPPP_cCsS_FFFFFF_BB.jpg)",
                          ("Market-1501-v15.09.15", "market1501", "market1501/Market-1501-v15.09.15",
                           "Market-1501"))
DUKEMTMC = MarketFormat("dukemtmc", DUKE_PATTERN, "'0005_c2_f0046985.jpg' (PPPP_cC_fFFFFFFF.jpg)",
                        ("DukeMTMC-reID", "dukemtmc-reid", "dukemtmc-reid/DukeMTMC-reID", "dukemtmc"))


def _layout_text(fmt: MarketFormat) -> str:
    return (f"  <root>/{TRAIN_DIR}/   e.g. {fmt.example}\n"
            f"  <root>/{GALLERY_DIR}/\n"
            f"  <root>/{QUERY_DIR}/\n"
            f"  (<root> may also be a folder containing one of: {', '.join(fmt.subfolders)})")


def find_market_root(root: str | Path, fmt: MarketFormat) -> Path:
    """Return the folder holding the three split folders, trying ``root`` then known subfolders."""
    root = Path(root).expanduser()
    if root.is_file():
        raise not_a_folder_error(f"{fmt.name} root", root)
    if not root.is_dir():
        raise expected_layout_error(f"{fmt.name} dataset folder {str(root)!r}", root, _layout_text(fmt))
    for cand in [root] + [root / s for s in fmt.subfolders]:
        if all((cand / d).is_dir() for d in (TRAIN_DIR, GALLERY_DIR, QUERY_DIR)):
            return cand
    present = [d for d in (TRAIN_DIR, GALLERY_DIR, QUERY_DIR) if (root / d).is_dir()]
    what = (f"Folder(s) {', '.join(d for d in (TRAIN_DIR, GALLERY_DIR, QUERY_DIR) if d not in present)}"
            if present else f"The {fmt.name} split folders")
    raise expected_layout_error(what, root, _layout_text(fmt))


def parse_name(name: str, fmt: MarketFormat) -> tuple[int, int] | None:
    """``(pid, camid)`` from a file name (camid 0-based), or None when it does not match."""
    m = fmt.pattern.match(name)
    if m is None or int(m.group(2)) < 1:
        return None
    return int(m.group(1)), int(m.group(2)) - 1


def read_folder(folder: Path, fmt: MarketFormat) -> list[ImageRecord]:
    """All images of one split folder; raises listing offending names if any does not parse."""
    records, bad = [], []
    for path in list_image_files(folder):
        parsed = parse_name(path.name, fmt)
        if parsed is None:
            bad.append(path.name)
        else:
            records.append(ImageRecord(str(path), parsed[0], parsed[1]))
    if bad:
        raise format_error(folder, bad, fmt.example)
    return records


def load_market_layout(root: str | Path, fmt: MarketFormat, name: str | None = None,
                       multi_query: bool = True) -> ReIDDataset:
    """Read a dataset in the Market layout; train pids relabelled, junk dropped from train only."""
    base = find_market_root(root, fmt)
    train = [r for r in read_folder(base / TRAIN_DIR, fmt) if r.pid != JUNK_PID]
    query = read_folder(base / QUERY_DIR, fmt)
    gallery = read_folder(base / GALLERY_DIR, fmt)
    for split, recs, d in (("train", train, TRAIN_DIR), ("query", query, QUERY_DIR), ("gallery", gallery, GALLERY_DIR)):
        require_nonempty(split, recs, str(base / d))
    mq = None
    if multi_query and (base / MULTI_QUERY_DIR).is_dir():
        keys = {(r.pid, r.camid) for r in query}
        mq = [r for r in read_folder(base / MULTI_QUERY_DIR, fmt) if (r.pid, r.camid) in keys]
    return ReIDDataset(name or fmt.name, relabel(train), query, gallery, root=str(base), multi_query=mq,
                       protocol=MARKET)


def load_market1501(root: str | Path, multi_query: bool = True) -> ReIDDataset:
    """Market-1501 (``root`` or its ``Market-1501-v15.09.15`` folder).

    ``multi_query`` records come from ``gt_bbox/``: every box whose (id, camera)
    matches a query, to be pooled per query identity and camera.
    """
    return load_market_layout(root, MARKET1501, multi_query=multi_query)
