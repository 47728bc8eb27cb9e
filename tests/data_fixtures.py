"""Tiny on-the-fly copies of each dataset format, with real naming, junk and distractors.

Each writer returns nothing clever: the tests state the expected counts by hand.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

CUHK01_ENV = "SAGKIT_CUHK01_ROOT"


def real_cuhk01_root() -> Path | None:
    """The shared real CUHK01 copy (``$SAGKIT_CUHK01_ROOT`` or ``../shared/data/cuhk01``), if present."""
    env = os.environ.get(CUHK01_ENV)
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "cuhk01"
    return root if (root / "campus").is_dir() or (root.name == "campus" and root.is_dir()) else None


def write_image(path: Path, value: int = 128, size: tuple[int, int] = (8, 16)) -> Path:
    """A small real image (W x H = size) of one grey value; format from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 255 - value)).save(path)
    return path


# Market-1501: (folder, pid string, camera 1-based, count)
MARKET_SPEC = [
    ("bounding_box_train", "0002", 1, 1), ("bounding_box_train", "0002", 2, 1), ("bounding_box_train", "0002", 3, 1),
    ("bounding_box_train", "0007", 1, 2), ("bounding_box_train", "0007", 4, 1),
    ("bounding_box_train", "0010", 2, 1), ("bounding_box_train", "0010", 6, 1),
    ("query", "0001", 1, 1), ("query", "0001", 3, 1), ("query", "0003", 2, 1), ("query", "0005", 5, 1),
    ("bounding_box_test", "0001", 2, 1), ("bounding_box_test", "0001", 4, 1), ("bounding_box_test", "0003", 1, 1),
    ("bounding_box_test", "0003", 3, 2), ("bounding_box_test", "0005", 6, 1), ("bounding_box_test", "0004", 2, 1),
    ("bounding_box_test", "0000", 1, 1), ("bounding_box_test", "0000", 2, 1), ("bounding_box_test", "0000", 6, 1),
    ("bounding_box_test", "-1", 1, 1), ("bounding_box_test", "-1", 3, 1),
    ("gt_bbox", "0001", 1, 3), ("gt_bbox", "0001", 2, 1), ("gt_bbox", "0003", 2, 2), ("gt_bbox", "0002", 1, 2),
    ("gt_bbox", "0005", 5, 1),
]


def make_market(root: Path, inner: str | None = "Market-1501-v15.09.15", gt_bbox: bool = True) -> Path:
    """Market-1501 layout under ``root/inner``: 8 train (3 ids), 4 query (3 ids), 12 gallery images."""
    base = root / inner if inner else root
    frame = 1000
    for folder, pid, cam, count in MARKET_SPEC:
        if folder == "gt_bbox" and not gt_bbox:
            continue
        for k in range(count):
            frame += 37
            write_image(base / folder / f"{pid}_c{cam}s1_{frame:06d}_{k:02d}.jpg", value=(frame * 7) % 256)
    (base / "bounding_box_test" / "Thumbs.db").write_bytes(b"not an image")
    return base


DUKE_SPEC = [
    ("bounding_box_train", "0001", 1), ("bounding_box_train", "0001", 2), ("bounding_box_train", "0003", 5),
    ("bounding_box_train", "0003", 8),
    ("query", "0002", 1), ("query", "0004", 7),
    ("bounding_box_test", "0002", 3), ("bounding_box_test", "0002", 4), ("bounding_box_test", "0004", 8),
    ("bounding_box_test", "0009", 2), ("bounding_box_test", "0009", 6),
]


def make_duke(root: Path, inner: str | None = "DukeMTMC-reID") -> Path:
    """DukeMTMC-reID layout: 4 train (2 ids), 2 query, 5 gallery (incl. gallery-only id 0009)."""
    base = root / inner if inner else root
    for i, (folder, pid, cam) in enumerate(DUKE_SPEC):
        write_image(base / folder / f"{pid}_c{cam}_f{46000 + 13 * i:07d}.jpg", value=20 * i)
    return base


def make_cuhk01(root: Path, ids=(1, 2, 3, 5, 8, 9), inner: str | None = "campus") -> Path:
    """CUHK01 ``campus/`` with 4 PNGs per id (001-002 camera A, 003-004 camera B)."""
    base = root / inner if inner else root
    for pid in ids:
        for k in range(1, 5):
            write_image(base / f"{pid:04d}{k:03d}.png", value=(pid * 30 + k) % 256, size=(6, 16))
    return base


# CUHK03: identities per camera pair, and which of the 10 cells hold an image (others are empty cells)
CUHK03_PAIRS = [3, 2, 2, 2, 1]
CUHK03_DEFAULT_CELLS = (0, 1, 5, 6)
CUHK03_DETECTED_CELLS = {(1, 2): (0, 1, 2, 5, 6), (3, 1): (0, 5, 6, 7, 8, 9), (5, 1): (0, 1)}
CUHK03_TESTSETS = [[(1, 2), (3, 1)], [(2, 1), (4, 2)], [(5, 1), (1, 1)]]
CUHK03_IMAGE_HW = (10, 6)


def cuhk03_pixel(pair: int, pid: int, cell: int) -> int:
    """Value stored at pixel (0, 0, 0) of an image, to check extraction and transposition."""
    return 40 * pair + 10 * pid + cell


def cuhk03_image(pair: int, pid: int, cell: int) -> np.ndarray:
    """H x W x 3 uint8 test image whose first pixel encodes (pair, id, cell) and rows differ."""
    h, w = CUHK03_IMAGE_HW
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 1] = np.arange(h, dtype=np.uint8)[:, None] * 10  # row index in green: detects a transpose
    img[0, 0, 0] = cuhk03_pixel(pair, pid, cell)
    return img


def make_cuhk03_mat(path: Path, labeled_cells: dict | None = None) -> Path:
    """A small ``cuhk-03.mat`` in the real MATLAB v7.3 structure (HDF5 object references, transposed)."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    labeled_cells = labeled_cells or {}
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        counter = [0]

        def store(arr, empty=False):
            counter[0] += 1
            ds = refs.create_dataset(f"r{counter[0]}", data=np.asarray(arr).T)  # MATLAB stores column-major
            if empty:
                ds.attrs["MATLAB_empty"] = np.uint8(1)
            return ds.ref

        for key, cells_for in (("detected", CUHK03_DETECTED_CELLS), ("labeled", labeled_cells)):
            pair_refs = []
            for p, m in enumerate(CUHK03_PAIRS, start=1):
                cell = np.empty((m, 10), dtype=h5py.ref_dtype)
                for i in range(1, m + 1):
                    present = cells_for.get((p, i), CUHK03_DEFAULT_CELLS)
                    for j in range(10):
                        cell[i - 1, j] = (store(cuhk03_image(p, i, j)) if j in present
                                          else store(np.zeros(2, np.uint64), empty=True))
                pair_refs.append(store(cell))
            f.create_dataset(key, data=np.array([pair_refs], dtype=h5py.ref_dtype))  # 1 x 5
        tests = [store(np.array(t, dtype=np.float64)) for t in CUHK03_TESTSETS]
        f.create_dataset("testsets", data=np.array([tests], dtype=h5py.ref_dtype))
    return path


def make_cuhk03_new_protocol(path: Path, names: list[str], labels: list[int], train_idx: list[int],
                             query_idx: list[int], gallery_idx: list[int]) -> Path:
    """``cuhk03_new_protocol_config_*.mat`` (MATLAB v5) with 1-based index columns."""
    from scipy.io import savemat

    col = lambda v: np.asarray(v, dtype=np.float64).reshape(-1, 1)  # noqa: E731
    filelist = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        filelist[i, 0] = n
    cams = [int(n.split("_")[2]) for n in names]
    savemat(path, {"filelist": filelist, "labels": col(labels), "camId": col(cams),
                   "train_idx": col(np.asarray(train_idx) + 1), "query_idx": col(np.asarray(query_idx) + 1),
                   "gallery_idx": col(np.asarray(gallery_idx) + 1)})
    return path


# MSMT17: (list, pid, camera 1-15); ids start at 0 in train and in test (different people)
MSMT17_SPEC = [
    ("train", 0, 1), ("train", 0, 3), ("train", 2, 2), ("train", 2, 2), ("train", 2, 7), ("train", 5, 15),
    ("train", 5, 4),
    ("val", 2, 9), ("val", 5, 11),
    ("query", 0, 2), ("query", 1, 5), ("query", 3, 12),
    ("gallery", 0, 6), ("gallery", 0, 2), ("gallery", 1, 8), ("gallery", 1, 10), ("gallery", 3, 14),
    ("gallery", 3, 12), ("gallery", 4, 13),
]
MSMT17_FOLDERS = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}
MSMT17_SLOTS = ("0113morning", "0302noon", "0303afternoon")


def make_msmt17(root: Path, version: str = "V1", nested: bool = True) -> Path:
    """MSMT17 in its official layout (``root/MSMT17_<version>/`` unless ``nested=False``): the four lists
    (``<pid folder>/<file name> <pid>`` lines) and tiny JPEGs; 7 train, 2 val, 3 query, 7 gallery images."""
    base = root / f"MSMT17_{version}" if nested else root
    train_dir, test_dir = MSMT17_FOLDERS[version]
    lines: dict[str, list[str]] = {"train": [], "val": [], "query": [], "gallery": []}
    index: dict[tuple[str, int], int] = {}
    for i, (split, pid, cam) in enumerate(MSMT17_SPEC):
        folder = train_dir if split in ("train", "val") else test_dir
        key = (folder, pid)
        index[key] = index.get(key, -1) + 1
        name = f"{pid:04d}_{index[key]:03d}_{cam:02d}_{MSMT17_SLOTS[i % 3]}_{100 + 7 * i:04d}_{i % 2}.jpg"
        write_image(base / folder / f"{pid:04d}" / name, value=(40 + 11 * i) % 256)
        lines[split].append(f"{pid:04d}/{name} {pid}\n")
    for split, text in lines.items():
        (base / f"list_{split}.txt").write_text("".join(text))
    return base
