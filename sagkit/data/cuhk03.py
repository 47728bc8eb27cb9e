"""CUHK03 reader: images from ``cuhk-03.mat`` (MATLAB v7.3 / HDF5) and the two test protocols.

* ``image_type``: ``"detected"`` (DPM boxes, the paper's choice, default) or ``"labeled"``.
* ``protocol="classic"`` (default, the paper's Table 2): one of the 20 splits in the
  ``testsets`` field (``split`` 0..19), 100 test identities and the other 1,367 for
  training.  As in the common toolkits (torchreid), query and gallery are both *all*
  images of the 100 test identities; the evaluation's same-identity-same-camera
  rule then makes every query match across the two views (984 / 984 in Table 2).
  ``classic_query="cross_view"`` instead uses view 1 images as queries and view 2
  images as the gallery.  The classic CMC is single-gallery-shot: one gallery image per
  identity is drawn for each query, ``num_repeats`` times (default 10, as torchreid; the
  paper's own code, jpainam/self_attention_grid ``eval_cuhk03.py``, drew 100 on split 5).
* ``protocol="new"`` (Zhong et al. 2017, 767 train / 700 test identities) reads
  ``cuhk03_new_protocol_config_{detected,labeled}.mat`` (MATLAB v5) found next to the
  data; its ``filelist`` names follow the extraction naming below.

Images are extracted once to ``<folder of cuhk-03.mat>/images_<image_type>/`` (or
``cache_dir``) as ``{pair}_{id:03d}_{view}_{image:02d}.png`` (pair 1-5, id 1-based
within the pair, view 1/2, image 1-10).  Extraction writes a temporary folder and
renames it when complete, with a manifest, so an interrupted run never leaves a
half-written cache.  Camera id = view - 1 (two views per identity; 2 "cameras").
Person ids are global 1-based indices over the pairs (pair 1 ids first); train
ids are relabelled ``0..K-1``.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from sagkit.evaluation.protocol import MARKET, Protocol

from sagkit.atomic import publish_dir
from sagkit.data.records import (DatasetFormatError, ImageRecord, ReIDDataset, check_split_index, expected_layout_error,
                      relabel, require_nonempty)

MAT_NAME = "cuhk-03.mat"
NEW_PROTOCOL_NAME = "cuhk03_new_protocol_config_{}.mat"
MANIFEST = "_sagkit_extracted.json"
# ASCII digits only (re.ASCII): a name spelled with other digits ("٠٠٠١") is not identity 1; \Z: no newline
IMAGE_NAME = re.compile(r"^(\d)_(\d{3})_([12])_(\d{2})\.png\Z", re.ASCII)
CUHK03_LAYOUT = ("  <root>/cuhk-03.mat   (or <root>/cuhk03_release/cuhk-03.mat, or <root>/cuhk03/cuhk03_release/"
                 "cuhk-03.mat)\n  <root>/cuhk03_new_protocol_config_detected.mat   (optional, for protocol='new'; "
                 "may also sit next to cuhk-03.mat)")


def find_cuhk03_mat(root: str | Path) -> Path:
    """Locate ``cuhk-03.mat`` from ``root`` (the file itself or a folder above it)."""
    root = Path(root).expanduser()
    if root.is_file():
        return root
    for cand in (root / MAT_NAME, root / "cuhk03_release" / MAT_NAME, root / "cuhk03" / "cuhk03_release" / MAT_NAME,
                 root / "cuhk03" / MAT_NAME):
        if cand.is_file():
            return cand
    raise expected_layout_error(f"{MAT_NAME}", root, CUHK03_LAYOUT)


def image_name(pair: int, pid: int, view: int, image: int) -> str:
    """Extraction file name; all arguments 1-based."""
    return f"{pair}_{pid:03d}_{view}_{image:02d}.png"


def open_mat(mat_path: Path):
    """``h5py.File`` of ``cuhk-03.mat``; a file that is not HDF5 raises DatasetFormatError naming it."""
    import h5py

    try:
        return h5py.File(mat_path, "r")
    except OSError as err:
        raise DatasetFormatError(f"{str(mat_path)!r} is not a MATLAB v7.3 (HDF5) file ({err}); pass the official "
                                 f"{MAT_NAME} or the folder that holds it as `root`") from None


def _refs(dataset) -> np.ndarray:
    """The object references of a 1 x N (or N x 1) MATLAB cell dataset, flattened."""
    return np.asarray(dataset[()]).ravel()


def extract_cuhk03_images(mat_path: Path, image_type: str, out_dir: Path) -> dict:
    """Write every image of ``image_type`` as PNG into ``out_dir`` (atomically) and return the manifest.

    Manifest: ``{"image_type", "pairs": [identities per pair], "images": [[pair, id, view, image, name], ...]}``.
    Reused without reading the .mat when ``out_dir`` already holds a complete extraction.
    """
    manifest_path = out_dir / MANIFEST
    if manifest_path.is_file():
        with open(manifest_path) as fh:
            return json.load(fh)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{str(out_dir)!r} exists but holds no complete sagkit extraction ({MANIFEST} missing); "
                              "delete it or pass another cache_dir.")
    from PIL import Image

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        with open_mat(mat_path) as f:
            if image_type not in f:
                raise DatasetFormatError(f"{str(mat_path)!r} has no {image_type!r} field (keys: {sorted(f.keys())})")
            pairs, images = [], []
            for p, pair_ref in enumerate(_refs(f[image_type]), start=1):
                cells = np.asarray(f[pair_ref][()]).T  # M x 10 references
                if cells.ndim != 2 or cells.shape[1] != 10:
                    raise DatasetFormatError(f"{str(mat_path)!r}: pair {p} of {image_type!r} should be M x 10 "
                                             f"cells, got shape {cells.shape}")
                pairs.append(int(cells.shape[0]))
                for i in range(cells.shape[0]):
                    for j in range(10):
                        img = np.asarray(f[cells[i, j]][()])
                        if img.size == 0 or img.ndim < 3:
                            continue  # empty cell
                        img = img.T
                        if img.shape[2] != 3:
                            raise DatasetFormatError(f"{str(mat_path)!r}: pair {p} id {i + 1} image {j + 1} has "
                                                     f"shape {img.shape}, expected H x W x 3")
                        view = 1 if j < 5 else 2
                        name = image_name(p, i + 1, view, j + 1)
                        Image.fromarray(np.ascontiguousarray(img.astype(np.uint8))).save(tmp / name)
                        images.append([p, i + 1, view, j + 1, name])
        manifest = {"image_type": image_type, "source": str(mat_path), "pairs": pairs, "images": images}
        with open(tmp / MANIFEST, "w") as fh:
            json.dump(manifest, fh)
        if out_dir.exists():
            out_dir.rmdir()  # empty folder left by the user
        publish_dir(tmp, out_dir, done_by_other=lambda dest: (dest / MANIFEST).is_file())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def read_classic_testsets(mat_path: Path) -> list[list[tuple[int, int]]]:
    """The classic test splits: per split, the list of (pair, id) of its test identities (1-based)."""
    with open_mat(mat_path) as f:
        if "testsets" not in f:
            raise DatasetFormatError(f"{str(mat_path)!r} has no 'testsets' field; is it the official cuhk-03.mat?")
        out = []
        for ref in _refs(f["testsets"]):
            arr = np.asarray(f[ref][()]).T
            if arr.ndim != 2 or arr.shape[1] != 2:
                raise DatasetFormatError(f"{str(mat_path)!r}: a testsets entry has shape {arr.shape}, expected N x 2")
            out.append([(int(a), int(b)) for a, b in arr])
    return out


def _global_pid(pairs: list[int]):
    offsets = np.concatenate([[0], np.cumsum(pairs)]).astype(int)
    return lambda pair, pid: int(offsets[pair - 1] + pid)


def _mat_strings(arr) -> list[str]:
    """Strings of a MATLAB cell array of char as loaded by scipy.io.loadmat."""
    out = []
    for e in np.asarray(arr, dtype=object).ravel():
        while isinstance(e, np.ndarray):
            e = e.ravel()[0] if e.size else ""
        out.append(str(e).strip())
    return out


def read_new_protocol(config_path: Path) -> dict:
    """Fields of a new-protocol config as plain lists (indices made 0-based). An image listed twice in one
    index list, or in both the training and a test list, is refused (DatasetFormatError naming the file)."""
    from scipy.io import loadmat

    mat = loadmat(config_path)
    missing = [k for k in ("filelist", "labels", "train_idx", "query_idx", "gallery_idx") if k not in mat]
    if missing:
        raise DatasetFormatError(f"{str(config_path)!r} lacks field(s) {missing}")
    files = _mat_strings(mat["filelist"])
    labels = np.asarray(mat["labels"]).ravel().astype(int)
    if len(labels) != len(files):
        raise DatasetFormatError(f"{str(config_path)!r}: {len(files)} files but {len(labels)} labels")
    out = {"filelist": files, "labels": labels.tolist()}
    for key in ("train_idx", "query_idx", "gallery_idx"):
        idx = np.asarray(mat[key]).ravel().astype(int) - 1
        if idx.size and (idx.min() < 0 or idx.max() >= len(files)):
            raise DatasetFormatError(f"{str(config_path)!r}: {key} has indices outside 1..{len(files)}")
        values, counts = np.unique(idx, return_counts=True)
        repeated = [int(i) + 1 for i in values[counts > 1]]
        if repeated:  # an image listed twice would count twice in training or in every mean
            raise DatasetFormatError(f"{str(config_path)!r}: {key} lists {len(repeated)} image(s) more than once "
                                     f"(indices {repeated[:5]}); restore the official config file")
        out[key] = idx.tolist()
    trained = set(out["train_idx"]) & set(out["query_idx"] + out["gallery_idx"])
    if trained:  # a test image the model trained on inflates every metric
        raise DatasetFormatError(f"{str(config_path)!r}: {len(trained)} image(s) are in train_idx and in query_idx "
                                 f"or gallery_idx (indices {sorted(i + 1 for i in trained)[:5]}); restore the "
                                 "official config file")
    return out


def _find_new_config(mat_path: Path, root: Path, image_type: str) -> Path:
    name = NEW_PROTOCOL_NAME.format(image_type)
    for folder in (mat_path.parent, mat_path.parent.parent, root):
        if (folder / name).is_file():
            return folder / name
    raise expected_layout_error(f"{name} (needed for protocol='new')", root, CUHK03_LAYOUT)


def load_cuhk03(root: str | Path, image_type: str = "detected", protocol: str = "classic", split: int = 0,
                classic_query: str = "all", cache_dir: str | Path | None = None,
                num_repeats: int = 10) -> ReIDDataset:
    """CUHK03 splits; see the module docstring for the protocols, the single-gallery-shot draws
    (``num_repeats``, classic protocol only) and the image cache."""
    scoring = Protocol("cuhk03", num_repeats=num_repeats) if protocol == "classic" else MARKET
    if image_type not in ("detected", "labeled"):
        raise ValueError(f"image_type must be 'detected' or 'labeled', got {image_type!r}")
    if protocol not in ("classic", "new"):
        raise ValueError(f"protocol must be 'classic' or 'new', got {protocol!r}")
    if classic_query not in ("all", "cross_view"):
        raise ValueError(f"classic_query must be 'all' or 'cross_view', got {classic_query!r}")
    if protocol == "new" and split != 0:
        raise ValueError(f"the new protocol has a single split (split=0), got {split!r}")
    root = Path(root).expanduser()
    mat_path = find_cuhk03_mat(root)
    testsets = read_classic_testsets(mat_path) if protocol == "classic" else [[]]
    check_split_index(split, len(testsets), f" for the {protocol} protocol")  # before a long extraction
    img_dir = Path(cache_dir).expanduser() if cache_dir else mat_path.parent / f"images_{image_type}"
    manifest = extract_cuhk03_images(mat_path, image_type, img_dir)
    gpid = _global_pid(manifest["pairs"])
    info = dict(image_type=image_type, protocol=protocol, split=split, image_dir=str(img_dir))

    if protocol == "classic":
        test_keys = set(testsets[split])
        train, test = [], []
        for pair, pid, view, _, name in manifest["images"]:
            rec = ImageRecord(str(img_dir / name), gpid(pair, pid), view - 1)
            (test if (pair, pid) in test_keys else train).append(rec)
        if classic_query == "all":
            query, gallery = test, list(test)
        else:
            query = [r for r in test if r.camid == 0]
            gallery = [r for r in test if r.camid == 1]
        info["classic_query"] = classic_query
    else:
        cfg_path = _find_new_config(mat_path, root, image_type)
        cfg = read_new_protocol(cfg_path)
        known = {row[4] for row in manifest["images"]}
        bad = [n for n in cfg["filelist"] if not IMAGE_NAME.match(n) or n not in known]
        if bad:
            raise DatasetFormatError(f"{len(bad)} name(s) in {str(cfg_path)!r} are not among the extracted "
                                     f"{image_type} images, e.g. {bad[:5]}; is it the config for {image_type!r}?")

        def records(idx):
            return [ImageRecord(str(img_dir / cfg["filelist"][i]), cfg["labels"][i],
                                int(cfg["filelist"][i].split("_")[2]) - 1) for i in idx]

        train, query, gallery = records(cfg["train_idx"]), records(cfg["query_idx"]), records(cfg["gallery_idx"])
        info["config"] = str(cfg_path)
    for name, recs in (("train", train), ("query", query), ("gallery", gallery)):
        require_nonempty(name, recs, str(mat_path))
    return ReIDDataset("cuhk03", relabel(train), query, gallery, root=str(mat_path.parent), info=info,
                       protocol=scoring)
