"""MSMT17 reader: ``MSMT17_V1/`` or ``MSMT17_V2/`` (faces blurred), splits from the official list files.

Layout (both versions; only the image folders' names differ)::

    <root>/list_train.txt  list_val.txt  list_query.txt  list_gallery.txt
    <root>/train/  <root>/test/                    (V1)
    <root>/mask_train_v2/  <root>/mask_test_v2/    (V2)

A list line is ``<pid folder>/<file name> <pid>``, e.g. ``0000/0000_000_01_0303morning_0015_0.jpg 0``;
the file name's fields are person id, image index, camera ``01``-``15``, date and time slot, frame and
detection index.  Train and val lists point into the train folder, query and gallery into the test
folder.  Comparable results train on ``list_train.txt`` alone (default); ``include_val=True`` adds
``list_val.txt`` (images of the same training identities).  Camera ids are returned 0-based; train
ids are relabelled ``0..K-1``; query/gallery keep the list's ids.  Test ids start at 0 like the train
ids and id 0 is a person, not a distractor.  Evaluation follows the Market-1501 rule.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

from sagkit.evaluation.protocol import MARKET

from sagkit.data.records import (IMAGE_EXTENSIONS, DatasetFormatError, ImageRecord, ReIDDataset, expected_layout_error,
                      not_a_folder_error, relabel, require_nonempty)

LIST_FILES = {"train": "list_train.txt", "val": "list_val.txt", "query": "list_query.txt",
              "gallery": "list_gallery.txt"}
IMAGE_FOLDERS = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}  # (train+val, query+gallery)
DATASET_FOLDERS = {"V1": "MSMT17_V1", "V2": "MSMT17_V2"}
PARENT_FOLDERS = ("", "msmt17", "MSMT17")  # where an MSMT17_V1/V2 folder may sit inside root
NUM_CAMERAS = 15
# ASCII digits only (re.ASCII): a name spelled with other digits ("٠٠٠١") is not identity 1; \Z: no newline
NAME_PATTERN = re.compile(r"^(\d{4})_\d+_(\d{2})_[0-9A-Za-z]+_\d+_\d+[^/\s]*\Z", re.ASCII)
LINE_FORMAT = "'<pid folder>/<file name> <pid>' (e.g. '0000/0000_000_01_0303morning_0015_0.jpg 0')"
MSMT17_LAYOUT = (
    "  <root>/list_train.txt, list_val.txt, list_query.txt, list_gallery.txt   (lines "
    "'<pid folder>/<file name> <pid>')\n"
    "  <root>/train/ and <root>/test/                   (MSMT17_V1)\n"
    "  or <root>/mask_train_v2/ and <root>/mask_test_v2/  (MSMT17_V2)\n"
    "  (<root> may also be a folder containing MSMT17_V1 or MSMT17_V2)"
)


def _candidates(root: Path) -> list[Path]:
    """Folders that may hold the lists and image folders: ``root``, then the known dataset folders in it."""
    return [root] + [root / parent / name for parent in PARENT_FOLDERS for name in DATASET_FOLDERS.values()]


def _has_layout(folder: Path, version: str) -> bool:
    return all((folder / d).is_dir() for d in IMAGE_FOLDERS[version])


def find_msmt17_root(root: str | Path, version: str | None = None) -> tuple[Path, str]:
    """``(folder holding the image folders and lists, "V1" | "V2")``; ``version=None`` takes whichever is there."""
    root = Path(root).expanduser()
    if root.is_file():
        raise not_a_folder_error("MSMT17 root", root)
    if not root.is_dir():
        raise expected_layout_error(f"msmt17 dataset folder {str(root)!r}", root, MSMT17_LAYOUT)
    versions = (version,) if version else tuple(IMAGE_FOLDERS)
    found = [(cand, v) for cand in _candidates(root) for v in versions if _has_layout(cand, v)]
    if not found:
        present = [d for v in versions for d in IMAGE_FOLDERS[v] if (root / d).is_dir()]
        missing = [d for v in versions if any(d in present for d in IMAGE_FOLDERS[v])
                   for d in IMAGE_FOLDERS[v] if d not in present]
        what = (f"Folder(s) {', '.join(missing)}" if missing
                else f"The MSMT17{'_' + version if version else ''} image folders")
        raise expected_layout_error(what, root, MSMT17_LAYOUT)
    if len({v for _, v in found}) > 1:
        where = ", ".join(f"{v} in {str(cand)!r}" for cand, v in found)
        raise ValueError(f"both MSMT17 versions are under {str(root)!r} ({where}): pass version='V1' or 'V2' "
                         "(dataset_options.version) to choose one")
    return found[0]


def parse_line(line: str) -> tuple[str, int, int]:
    """``(relative image path, pid, 0-based camid)`` of one list line; ValueError saying what is wrong."""
    fields = line.split()
    if len(fields) != 2:
        raise ValueError(f"expected an image path and a person id, got {len(fields)} field(s)")
    rel, label = fields
    if not (label.isascii() and label.isdigit()):
        raise ValueError(f"person id {label!r} is not a non-negative integer")
    parts = rel.split("/")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ValueError(f"path {rel!r} is not <pid folder>/<file name>")
    folder, name = parts
    m = NAME_PATTERN.match(name)
    if m is None or os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
        raise ValueError(f"file name {name!r} does not follow PPPP_III_CC_<date><slot>_FFFF_D.jpg")
    camera = int(m.group(2))
    if not 1 <= camera <= NUM_CAMERAS:
        raise ValueError(f"camera {m.group(2)} is outside 01-{NUM_CAMERAS:02d}")
    if folder != m.group(1) or int(label) != int(m.group(1)):
        raise ValueError(f"folder {folder!r}, file name person id {m.group(1)!r} and person id {label} disagree")
    return rel, int(label), camera - 1


def _listing(items: Sequence[str]) -> str:
    """The first five items, and how many more there are."""
    more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
    return "; ".join(items[:5]) + more


def read_list(list_path: Path, image_dir: Path) -> list[ImageRecord]:
    """Records of one list file, images under ``image_dir``; raises naming the file and its bad lines (a line
    that repeats an earlier image is one)."""
    try:
        text = list_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DatasetFormatError(f"{str(list_path)!r} is not a text file of lines {LINE_FORMAT}; restore the "
                                 "official list file") from None
    records, bad, missing, first = [], [], [], {}
    folder = str(image_dir)  # os.path rather than pathlib: 126k lines on the real lists
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rel, pid, camid = parse_line(line)
        except ValueError as why:
            bad.append(f"line {number} {line.strip()!r}: {why}")
            continue
        if rel in first:  # the same image twice would count twice in every mean
            bad.append(f"line {number} {rel!r}: repeats line {first[rel]}")
            continue
        first[rel] = number
        path = os.path.join(folder, rel)
        if os.path.isfile(path):
            records.append(ImageRecord(path, pid, camid))
        else:
            missing.append(f"line {number} {rel!r}")
    if bad:
        raise DatasetFormatError(f"{len(bad)} line(s) of {str(list_path)!r} do not follow {LINE_FORMAT}: "
                                 f"{_listing(bad)}. Fix or remove them, or check that `root` points at the "
                                 "official MSMT17 folder.")
    if missing:
        raise DatasetFormatError(f"{len(missing)} line(s) of {str(list_path)!r} name images missing from "
                                 f"{str(image_dir)!r}: {_listing(missing)}. Restore the images (extract the "
                                 "archive again) or check that the lists belong to this MSMT17 version.")
    return records


def load_msmt17(root: str | Path, include_val: bool = False, version: str | None = None) -> ReIDDataset:
    """MSMT17 V1 or V2 from ``root`` (or a folder holding ``MSMT17_V1``/``MSMT17_V2``).

    ``include_val``: train on ``list_train.txt`` plus ``list_val.txt`` ("combine all"), relabelled together.
    ``version``: "V1" or "V2" when both are under ``root``; None takes the one present.
    """
    if not isinstance(include_val, bool):
        raise ValueError(f"include_val must be True or False, got {include_val!r}")
    if version is not None and (not isinstance(version, str) or version.upper() not in IMAGE_FOLDERS):
        raise ValueError(f"version must be 'V1', 'V2' or None (the one under root), got {version!r}")
    base, version = find_msmt17_root(root, version.upper() if version else None)
    train_dir, test_dir = (base / d for d in IMAGE_FOLDERS[version])
    splits = ("train", "val", "query", "gallery") if include_val else ("train", "query", "gallery")
    absent = [LIST_FILES[s] for s in splits if not (base / LIST_FILES[s]).is_file()]
    if absent:
        why = " (list_val.txt is read because include_val=True)" if LIST_FILES["val"] in absent else ""
        raise expected_layout_error(f"List file(s) {', '.join(absent)}{why}", base, MSMT17_LAYOUT)
    folder = {"train": train_dir, "val": train_dir, "query": test_dir, "gallery": test_dir}
    read = {s: read_list(base / LIST_FILES[s], folder[s]) for s in splits}
    for s in splits:
        require_nonempty(s, read[s], str(base / LIST_FILES[s]))
    train = read["train"] + read.get("val", [])
    info = dict(version=version, include_val=include_val)
    return ReIDDataset("msmt17", relabel(train), read["query"], read["gallery"], root=str(base), info=info,
                       protocol=MARKET, distractor_pid=None)
