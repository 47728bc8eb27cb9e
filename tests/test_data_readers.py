"""Market-1501, DukeMTMC-reID and CUHK01 readers on tiny fixtures (and on the real CUHK01 when present)."""
from collections import Counter

import pytest

from data_fixtures import make_cuhk01, make_duke, make_market, real_cuhk01_root, write_image
from sagkit.data import DatasetFormatError, ImageRecord, load_dataset
from sagkit.data.records import relabel


def _pid_cams(records):
    return Counter((r.pid, r.camid) for r in records)


# ---------------------------------------------------------------- Market-1501

def test_market_counts_ids_cameras(tmp_path):
    make_market(tmp_path)
    ds = load_dataset("market1501", tmp_path)  # root containing Market-1501-v15.09.15/
    assert ds.name == "market1501"
    assert ds.summary() == {"ids": 6, "images": 24, "cameras": 6, "train_ids": 3, "train_images": 8,
                            "test_ids": 3, "query_images": 4, "gallery_images": 12}
    ext = ds.summary(extended=True)
    assert (ext["gallery_ids"], ext["junk_images"], ext["distractor_images"]) == (4, 2, 3)
    # train ids 0002, 0007, 0010 relabelled 0, 1, 2; cameras 0-based
    assert _pid_cams(ds.train) == Counter({(0, 0): 1, (0, 1): 1, (0, 2): 1, (1, 0): 2, (1, 3): 1,
                                           (2, 1): 1, (2, 5): 1})
    assert ds.num_train_pids == 3 and ds.num_train_cams == 5
    # query/gallery keep the original ids, junk and distractors stay in the gallery
    assert _pid_cams(ds.query) == Counter({(1, 0): 1, (1, 2): 1, (3, 1): 1, (5, 4): 1})
    assert sum(r.pid == -1 for r in ds.gallery) == 2 and sum(r.pid == 0 for r in ds.gallery) == 3
    assert {r.camid for r in ds.gallery if r.pid == -1} == {0, 2}
    assert all(isinstance(r, ImageRecord) for r in ds.train + ds.query + ds.gallery)


def test_market_multi_query_from_gt_bbox(tmp_path):
    make_market(tmp_path)
    ds = load_dataset("market", tmp_path / "Market-1501-v15.09.15")  # the inner folder works too
    # gt_bbox boxes matching a query's (id, camera): 0001/c1 x3, 0003/c2 x2, 0005/c5 x1
    assert _pid_cams(ds.multi_query) == Counter({(1, 0): 3, (3, 1): 2, (5, 4): 1})
    assert ds.summary(extended=True)["multi_query_images"] == 6
    no_mq = load_dataset("market1501", tmp_path, multi_query=False)
    assert no_mq.multi_query is None


def test_market_without_gt_bbox(tmp_path):
    make_market(tmp_path, inner=None, gt_bbox=False)
    ds = load_dataset("market1501", tmp_path)
    assert ds.multi_query is None and len(ds.train) == 8


def test_market_missing_folder_shows_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="bounding_box_train") as e:
        load_dataset("market1501", tmp_path / "nowhere")
    assert "Expected layout" in str(e.value)
    base = make_market(tmp_path, inner=None)
    for p in (base / "query").iterdir():
        p.unlink()
    (base / "query").rmdir()
    with pytest.raises(FileNotFoundError, match="query"):
        load_dataset("market1501", tmp_path)


def test_market_bad_names_listed(tmp_path):
    base = make_market(tmp_path, inner=None)
    write_image(base / "bounding_box_train" / "person_12.jpg")
    write_image(base / "bounding_box_train" / "0002_c1_000451_03.jpg")  # Duke-like name in Market
    with pytest.raises(DatasetFormatError) as e:
        load_dataset("market1501", tmp_path)
    msg = str(e.value)
    assert "'person_12.jpg'" in msg and "'0002_c1_000451_03.jpg'" in msg and "2 file name(s)" in msg


def test_market_empty_split_is_error(tmp_path):
    base = make_market(tmp_path, inner=None)
    for p in (base / "query").iterdir():
        p.unlink()
    with pytest.raises(DatasetFormatError, match="query split is empty"):
        load_dataset("market1501", tmp_path)


def test_market_camera_zero_rejected(tmp_path):
    base = make_market(tmp_path, inner=None)
    write_image(base / "query" / "0001_c0s1_000001_00.jpg")
    with pytest.raises(DatasetFormatError, match="c0s1"):
        load_dataset("market1501", tmp_path)


# ---------------------------------------------------------------- DukeMTMC-reID

def test_duke_counts(tmp_path):
    make_duke(tmp_path)
    ds = load_dataset("dukemtmc", tmp_path)
    assert ds.summary() == {"ids": 4, "images": 11, "cameras": 8, "train_ids": 2, "train_images": 4,
                            "test_ids": 2, "query_images": 2, "gallery_images": 5}
    assert _pid_cams(ds.train) == Counter({(0, 0): 1, (0, 1): 1, (1, 4): 1, (1, 7): 1})
    assert _pid_cams(ds.query) == Counter({(2, 0): 1, (4, 6): 1})
    assert ds.summary(extended=True)["gallery_ids"] == 3  # 0009 is a gallery-only identity


def test_duke_rejects_market_names(tmp_path):
    base = make_duke(tmp_path, inner=None)
    write_image(base / "query" / "0002_c1s1_000451_03.jpg")
    with pytest.raises(DatasetFormatError, match="PPPP_cC_fFFFFFFF"):
        load_dataset("duke", tmp_path)


# ---------------------------------------------------------------- CUHK01

def test_cuhk01_split_and_cameras(tmp_path):
    make_cuhk01(tmp_path)
    ds = load_dataset("cuhk01", tmp_path, split=0, seed=0)
    s = ds.summary()
    assert s == {"ids": 6, "images": 24, "cameras": 2, "train_ids": 3, "train_images": 12, "test_ids": 3,
                 "query_images": 6, "gallery_images": 6}
    assert sorted({r.pid for r in ds.train}) == [0, 1, 2]
    assert {r.camid for r in ds.query} == {0} and {r.camid for r in ds.gallery} == {1}
    assert {r.pid for r in ds.query} == {r.pid for r in ds.gallery}
    # image index 001-002 -> camera A (0), 003-004 -> camera B (1)
    cam_of = {r.path[-7:]: r.camid for r in ds.query + ds.gallery}
    assert all(cam_of[k] == (0 if k[2] in "12" else 1) for k in cam_of)
    other = load_dataset("cuhk01", tmp_path / "campus", split=0, seed=0, query_camera="b")
    assert {r.camid for r in other.query} == {1}
    assert {r.pid for r in other.query} == {r.pid for r in ds.query}  # same split, same seed


def test_cuhk01_splits_differ_and_are_reproducible(tmp_path):
    make_cuhk01(tmp_path, ids=tuple(range(1, 21)))
    tests = [frozenset(r.pid for r in load_dataset("cuhk01", tmp_path, split=k).query) for k in range(10)]
    assert len(set(tests)) > 5
    assert tests[3] == frozenset(r.pid for r in load_dataset("cuhk01", tmp_path, split=3).query)
    with pytest.raises(ValueError, match="split must be in 0..9"):
        load_dataset("cuhk01", tmp_path, split=10)


def test_cuhk01_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="campus"):
        load_dataset("cuhk01", tmp_path)
    base = make_cuhk01(tmp_path)
    write_image(base / "0001005.png")
    with pytest.raises(DatasetFormatError, match="0001005.png"):
        load_dataset("cuhk01", tmp_path)


def test_cuhk01_real_copy():
    root = real_cuhk01_root()
    if root is None:
        pytest.skip("real CUHK01 not available (set SAGKIT_CUHK01_ROOT)")
    ds = load_dataset("cuhk01", root, split=0)
    assert ds.summary() == {"ids": 971, "images": 3884, "cameras": 2, "train_ids": 485, "train_images": 1940,
                            "test_ids": 486, "query_images": 972, "gallery_images": 972}
    assert Counter(Counter(r.pid for r in ds.query).values()) == Counter({2: 486})
    assert sorted({r.pid for r in ds.train}) == list(range(485))


# ---------------------------------------------------------------- registry, records

def test_registry_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("viper", tmp_path)
    with pytest.raises(ValueError, match="needs root"):
        load_dataset("market1501")


def test_relabel_is_ordered():
    recs = [ImageRecord("a", 42, 0), ImageRecord("b", 7, 1), ImageRecord("c", 42, 2)]
    assert [r.pid for r in relabel(recs)] == [1, 0, 1]
