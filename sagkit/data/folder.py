"""The ``folder`` dataset: a researcher's own crops, in one of three layouts, detected or named (``layout``).

* ``identities``: ``root/<identity>/*.jpg``, or the same under ``root/train/``, ``root/query/`` and
  ``root/gallery/``. Without split folders every image is a test image: each one is a query against all
  the others (so each identity needs two images).
* ``manifest``: a CSV file (``root/manifest.csv``, or ``root`` itself) with columns ``path, identity`` and
  optionally ``camera`` and ``split`` (train/query/gallery); paths are relative to the CSV's folder.
  Without ``split`` every listed image is a test image, as above.
* ``market``: the Market-1501 folders and file names (``bounding_box_train/``, ``bounding_box_test/``,
  ``query/``).

Without camera ids (identity folders; a manifest without ``camera``) the dataset's protocol is
``NO_CAMERAS``: only the query's own file is left out of its ranking, and loading logs that once.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from sagkit.choices import FOLDER_LAYOUTS
from sagkit.evaluation.protocol import MARKET, NO_CAMERAS

from sagkit.data.market1501 import GALLERY_DIR, MARKET1501, QUERY_DIR, load_market_layout
from sagkit.data.records import (IMAGE_EXTENSIONS, DatasetFormatError, ImageRecord, ReIDDataset, list_image_files,
                      not_a_folder_error, relabel)

log = logging.getLogger("sagkit")

SPLITS = ("train", "query", "gallery")
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("path", "identity", "camera", "split")
LAYOUT_HELP = ("root/<identity>/*.jpg (optionally under root/train, root/query, root/gallery), a CSV manifest "
               f"(root/{MANIFEST_NAME}: path, identity[, camera][, split]) or the Market-1501 folders")


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() for p in folder.iterdir())


def detect_layout(root: Path) -> str:
    """The layout of ``root`` (one of ``FOLDER_LAYOUTS`` but "auto"); DatasetFormatError for none or mixed ones."""
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "manifest"
        raise not_a_folder_error("folder dataset root", root)
    if not root.is_dir():
        raise FileNotFoundError(f"folder dataset root {str(root)!r} does not exist: give a folder laid out as "
                                f"{LAYOUT_HELP}")
    if (root / MANIFEST_NAME).is_file():
        return "manifest"
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if (root / GALLERY_DIR).is_dir() and (root / QUERY_DIR).is_dir():
        return "market"
    splits = [p.name for p in subdirs if p.name in SPLITS]
    others = [p.name for p in subdirs if p.name not in SPLITS and _has_images(p)]
    loose = _has_images(root)
    if splits and (others or loose):
        extra = others[:3] or ["image files"]
        raise DatasetFormatError(f"mixed layouts in {str(root)!r}: split folders {splits} next to {extra}; move "
                                 "every identity folder under train/, query/ or gallery/, or pass layout=...")
    if loose and others:
        raise DatasetFormatError(f"mixed layouts in {str(root)!r}: image files directly in it next to identity "
                                 f"folders {others[:3]}; put every image in its identity's folder")
    if splits or others:
        return "identities"
    if loose:
        raise DatasetFormatError(f"the images in {str(root)!r} have no identity: put each identity's images in "
                                 f"root/<identity>/ or list them in root/{MANIFEST_NAME} (path, identity)")
    raise DatasetFormatError(f"no images under {str(root)!r}: expected {LAYOUT_HELP}")


def _pid_order(names) -> dict[str, int]:
    """Identity name -> integer id: in numeric order when every name is an integer, else in name order."""
    names = sorted(set(names))
    if all(n.isdigit() for n in names):
        names.sort(key=int)
    return {n: i for i, n in enumerate(names)}


def _identity_folder(folder: Path) -> list[tuple[str, Path]]:
    """(identity, image path) of every image in ``folder``'s identity sub-folders."""
    items = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = list_image_files(sub)
        if not images:
            raise DatasetFormatError(f"identity folder {str(sub)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}): "
                                     "add its images or remove the folder")
        items += [(sub.name, p) for p in images]
    loose = [p.name for p in list_image_files(folder)]
    if loose:
        raise DatasetFormatError(f"mixed layouts in {str(folder)!r}: image files {loose[:3]} next to identity "
                                 "folders; put every image in its identity's folder")
    if not items:
        raise DatasetFormatError(f"no identity folders with images in {str(folder)!r}: expected {LAYOUT_HELP}")
    return items


def _read_identities(root: Path) -> tuple[dict[str, list], bool]:
    """{split: [(identity, path, camera)]} of the identity-folder layout, and False (no camera ids)."""
    present = [s for s in SPLITS if (root / s).is_dir()]
    if not present:
        return {"all": [(i, p, None) for i, p in _identity_folder(root)]}, False
    missing = [s for s in ("query", "gallery") if s not in present]
    if missing:
        raise DatasetFormatError(f"{str(root)!r} has {present} but no {missing} folder: the test split needs "
                                 "both root/query/<identity>/ and root/gallery/<identity>/")
    return {s: [(i, p, None) for i, p in _identity_folder(root / s)] for s in present}, False


def _read_manifest(path: Path) -> tuple[dict[str, list], bool]:
    """{split: [(identity, path, camera)]} listed in a CSV manifest, and whether it has camera ids."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
        header = [c.strip() for c in (rows[0].keys() if rows else [])]
    if not rows:
        raise DatasetFormatError(f"manifest {str(path)!r} lists no images: expected a header line "
                                 f"{','.join(MANIFEST_COLUMNS)} (camera and split optional) and one line per image")
    unknown = [c for c in header if c not in MANIFEST_COLUMNS]
    lacking = [c for c in ("path", "identity") if c not in header]
    if unknown or lacking:
        raise DatasetFormatError(f"manifest {str(path)!r} has columns {header}: it needs path and identity, may "
                                 f"have camera and split, and nothing else ({unknown or lacking} wrong)")
    has_cam, has_split = "camera" in header, "split" in header
    out: dict[str, list] = {}
    seen: dict[Path, int] = {}
    for line, row in enumerate(rows, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        for column in ("path", "identity") + (("camera",) if has_cam else ()) + (("split",) if has_split else ()):
            if not row.get(column):
                raise DatasetFormatError(f"manifest {str(path)!r} line {line}: the {column} is empty")
        image = (path.parent / row["path"]).resolve()
        if not image.is_file():
            raise DatasetFormatError(f"manifest {str(path)!r} line {line}: image {row['path']!r} does not exist "
                                     f"(paths are relative to {str(path.parent)!r})")
        if image in seen:
            raise DatasetFormatError(f"manifest {str(path)!r} line {line}: {row['path']!r} is listed again (first "
                                     f"on line {seen[image]}); list each image once")
        seen[image] = line
        split = row["split"].lower() if has_split else "all"
        if split not in SPLITS + ("all",) or (has_split and split == "all"):
            raise DatasetFormatError(f"manifest {str(path)!r} line {line}: split {row['split']!r} is not one of "
                                     f"{SPLITS}")
        out.setdefault(split, []).append((row["identity"], image, row["camera"] if has_cam else None))
    if has_split and not ("query" in out and "gallery" in out):
        raise DatasetFormatError(f"manifest {str(path)!r} has no {'query' if 'query' not in out else 'gallery'} "
                                 "rows: the test split needs both (or leave out the split column to use every "
                                 "image as a query against the others)")
    return out, has_cam


def _check_readable(items) -> None:
    """Open every image's header; DatasetFormatError naming the first file that is not an image."""
    for _, path, _ in items:
        try:
            with Image.open(path) as image:
                image.size
        except (OSError, UnidentifiedImageError, ValueError) as err:
            raise DatasetFormatError(f"cannot read image {str(path)!r} ({err.__class__.__name__}): replace or "
                                     "remove it") from None


def _check_unique(items) -> None:
    """The same file (after links are followed) may not be listed twice, e.g. under two identities."""
    seen: dict[Path, str] = {}
    for identity, path, _ in items:
        real = Path(path).resolve()
        if real in seen:
            raise DatasetFormatError(f"duplicate path: {str(path)!r} (identity {identity!r}) is the same file as "
                                     f"one of identity {seen[real]!r}; keep one copy")
        seen[real] = identity


def _check_matches(query: list[ImageRecord], gallery: list[ImageRecord], names: dict[int, str], where: str,
                   same_list: bool) -> None:
    """Each query identity needs another image of itself in the gallery."""
    counts: dict[int, int] = {}
    for r in gallery:
        counts[r.pid] = counts.get(r.pid, 0) + 1
    for r in query:
        if counts.get(r.pid, 0) < (2 if same_list else 1):
            need = ("has one image; every test identity needs two (each image is a query against the others)"
                    if same_list else "has query images but none in the gallery")
            raise DatasetFormatError(f"identity {names[r.pid]!r} in {where} {need}: add an image or remove it")


def load_folder(root: str | Path, layout: str = "auto", check_images: bool = True) -> ReIDDataset:
    """Your own images as a :class:`ReIDDataset` (``layout``: one of ``FOLDER_LAYOUTS``, default detected).

    ``check_images``: open every file's header at load time, so that a file that is no image is named
    now rather than in the middle of an evaluation. Layouts without a train split give an empty ``train``.
    """
    if layout not in FOLDER_LAYOUTS:
        raise ValueError(f"folder dataset option layout={layout!r} is unknown: use one of {FOLDER_LAYOUTS}")
    root = Path(root).expanduser()
    found = detect_layout(root) if layout == "auto" or not root.exists() else layout
    if found == "market":
        return load_market_layout(root, MARKET1501, name="folder")
    if found == "manifest":
        manifest = root if root.is_file() else root / MANIFEST_NAME
        if not manifest.is_file():
            raise FileNotFoundError(f"layout='manifest' but {str(manifest)!r} does not exist: write it (columns "
                                    f"{', '.join(MANIFEST_COLUMNS)}) or pass the CSV file as root")
        splits, has_cam = _read_manifest(manifest)
    else:
        if root.is_file():
            raise not_a_folder_error("folder dataset root", root)
        splits, has_cam = _read_identities(root)
    items = [item for split in splits.values() for item in split]
    _check_unique(items)
    if check_images:
        _check_readable(items)
    pid_of = _pid_order(i for i, _, _ in items)
    cam_of = _pid_order(c for _, _, c in items) if has_cam else {}
    names = {v: k for k, v in pid_of.items()}

    def records(split: str) -> list[ImageRecord]:
        return [ImageRecord(str(p), pid_of[i], cam_of.get(c, 0)) for i, p, c in splits.get(split, [])]

    if "all" in splits:
        query = gallery = records("all")
    else:
        query, gallery = records("query"), records("gallery")
    _check_matches(query, gallery, names, str(root), query is gallery)
    protocol = MARKET if has_cam else NO_CAMERAS
    if not has_cam:
        log.info("sagkit: folder dataset %s has no camera ids: %s", root, protocol.describe())
    info = dict(layout=found, cameras=has_cam)
    return ReIDDataset("folder", relabel(records("train")), query, gallery, root=str(root), info=info,
                       protocol=protocol, distractor_pid=None)
