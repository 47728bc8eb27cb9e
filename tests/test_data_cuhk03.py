"""CUHK03 reader on a tiny cuhk-03.mat in the real v7.3 structure and a tiny new-protocol config."""
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_fixtures import CUHK03_IMAGE_HW, cuhk03_pixel, make_cuhk03_mat, make_cuhk03_new_protocol
from sagkit.data import DatasetFormatError, load_dataset
from sagkit.data.cuhk03 import MANIFEST

# Hand count of the fixture (see data_fixtures): 10 identities, pairs of 3, 2, 2, 2, 1 ids; 4 images each
# except pair 1 id 2 (5), pair 3 id 1 (6), pair 5 id 1 (2) -> 7*4 + 5 + 6 + 2 = 41 detected images.
# Global pids: pair1 -> 1..3, pair2 -> 4..5, pair3 -> 6..7, pair4 -> 8..9, pair5 -> 10.


@pytest.fixture
def cuhk03_root(tmp_path):
    make_cuhk03_mat(tmp_path / "cuhk03_release" / "cuhk-03.mat")
    return tmp_path


def test_extraction_names_pixels_and_cache(cuhk03_root):
    ds = load_dataset("cuhk03", cuhk03_root)
    img_dir = cuhk03_root / "cuhk03_release" / "images_detected"
    names = sorted(p.name for p in img_dir.glob("*.png"))
    assert len(names) == 41
    assert "1_002_1_03.png" in names and "1_002_2_07.png" in names and "5_001_2_06.png" not in names
    assert "3_001_2_10.png" in names
    img = np.asarray(Image.open(img_dir / "3_001_2_10.png"))
    assert img.shape == (*CUHK03_IMAGE_HW, 3)  # transposed back to H x W x 3
    assert img[0, 0, 0] == cuhk03_pixel(3, 1, 9) and img[5, 0, 1] == 50
    assert (img_dir / MANIFEST).is_file()
    assert not [p for p in img_dir.parent.iterdir() if ".tmp-" in p.name]
    # second load reuses the cache: files untouched
    before = {p.name: p.stat().st_mtime_ns for p in img_dir.iterdir()}
    again = load_dataset("cuhk03", cuhk03_root)
    assert {p.name: p.stat().st_mtime_ns for p in img_dir.iterdir()} == before
    assert again.summary() == ds.summary()


def test_classic_split_counts(cuhk03_root):
    ds = load_dataset("cuhk03", cuhk03_root, split=0)  # test ids: (1, 2) -> pid 2, (3, 1) -> pid 6
    assert ds.summary() == {"ids": 10, "images": 41, "cameras": 2, "train_ids": 8, "train_images": 30,
                            "test_ids": 2, "query_images": 11, "gallery_images": 11}
    assert Counter(r.pid for r in ds.query) == Counter({2: 5, 6: 6})
    assert ds.query == ds.gallery  # toolkit convention: all test images are both query and gallery
    assert sorted({r.pid for r in ds.train}) == list(range(8))
    assert Counter(r.camid for r in ds.query) == Counter({0: 4, 1: 7})  # view 1 -> camid 0
    assert ds.info["protocol"] == "classic" and ds.info["image_type"] == "detected"


def test_classic_cross_view_and_other_split(cuhk03_root):
    ds = load_dataset("cuhk03", cuhk03_root, split=0, classic_query="cross_view")
    assert ({r.camid for r in ds.query}, {r.camid for r in ds.gallery}) == ({0}, {1})
    assert (len(ds.query), len(ds.gallery)) == (4, 7)
    ds2 = load_dataset("cuhk03", cuhk03_root, split=2)  # (5, 1) -> pid 10 (2 images), (1, 1) -> pid 1 (4)
    assert Counter(r.pid for r in ds2.query) == Counter({10: 2, 1: 4})
    assert ds2.summary()["train_images"] == 35
    with pytest.raises(ValueError, match="split must be in 0..2"):
        load_dataset("cuhk03", cuhk03_root, split=3)


def test_labeled_images(cuhk03_root):
    ds = load_dataset("cuhk03", cuhk03_root, image_type="labeled")
    assert ds.summary()["images"] == 40  # every identity has the 4 default cells
    assert (cuhk03_root / "cuhk03_release" / "images_labeled" / MANIFEST).is_file()


def test_new_protocol(cuhk03_root):
    ds = load_dataset("cuhk03", cuhk03_root)  # extract first to know the names
    names = sorted(Path(r.path).name for r in ds.train + ds.query)
    pair_offset = {1: 0, 2: 3, 3: 5, 4: 7, 5: 9}
    labels = [pair_offset[int(n[0])] + int(n[2:5]) for n in names]
    train_ids = {1, 3, 4, 5, 7}
    train_idx = [i for i, lab in enumerate(labels) if lab in train_ids]
    test_idx = [i for i, lab in enumerate(labels) if lab not in train_ids]
    query_idx, seen = [], set()
    for i in test_idx:  # first image of each (id, view) is a query
        key = (labels[i], names[i].split("_")[2])
        if key not in seen:
            seen.add(key)
            query_idx.append(i)
    gallery_idx = [i for i in test_idx if i not in query_idx]
    make_cuhk03_new_protocol(cuhk03_root / "cuhk03_new_protocol_config_detected.mat", names, labels, train_idx,
                             query_idx, gallery_idx)
    new = load_dataset("cuhk03", cuhk03_root, protocol="new")
    # train: pids 1, 3, 4, 5, 7 -> 4 + 4 + 4 + 4 + 4 = 20 images; test pids 2, 6, 8, 9, 10
    # queries: one per (id, view) = 2 + 2 + 2 + 2 + 1 (pid 10 has view 1 only) = 9; gallery 41 - 20 - 9 = 12
    assert new.summary() == {"ids": 10, "images": 41, "cameras": 2, "train_ids": 5, "train_images": 20,
                             "test_ids": 5, "query_images": 9, "gallery_images": 12}
    assert sorted({r.pid for r in new.query}) == [2, 6, 8, 9, 10]
    assert all(Path(r.path).is_file() for r in new.query + new.gallery)
    assert {(Path(r.path).name.split("_")[2], r.camid) for r in new.gallery} == {("1", 0), ("2", 1)}
    with pytest.raises(ValueError, match="single split"):
        load_dataset("cuhk03", cuhk03_root, protocol="new", split=1)


def test_new_protocol_missing_or_wrong(cuhk03_root):
    with pytest.raises(FileNotFoundError, match="cuhk03_new_protocol_config_detected.mat"):
        load_dataset("cuhk03", cuhk03_root, protocol="new")
    make_cuhk03_new_protocol(cuhk03_root / "cuhk03_new_protocol_config_detected.mat",
                             ["1_001_1_01.png", "9_999_1_01.png"], [1, 2], [0], [1], [1])
    with pytest.raises(DatasetFormatError, match="9_999_1_01.png"):
        load_dataset("cuhk03", cuhk03_root, protocol="new")


def test_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="cuhk-03.mat"):
        load_dataset("cuhk03", tmp_path)
    with pytest.raises(ValueError, match="image_type"):
        load_dataset("cuhk03", tmp_path, image_type="manual")
    mat = make_cuhk03_mat(tmp_path / "cuhk-03.mat")
    (tmp_path / "images_detected").mkdir()
    (tmp_path / "images_detected" / "stray.png").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="cache_dir"):
        load_dataset("cuhk03", mat)
    ds = load_dataset("cuhk03", mat, cache_dir=tmp_path / "elsewhere")
    assert len(list((tmp_path / "elsewhere").glob("*.png"))) == 41 and ds.summary()["images"] == 41
