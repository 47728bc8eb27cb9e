"""The ``folder`` dataset (issue 25): its layouts, the no-camera protocol, bad inputs, and real CUHK01 crops."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from data_fixtures import make_market, real_cuhk01_root, write_image

from sagkit.config import get_profile
from sagkit.data import DatasetFormatError, load_cuhk01, load_dataset
from sagkit.data.folder import detect_layout
from sagkit.engine.builders import build_data
from sagkit.engine.retrieval import score
from sagkit.evaluation.protocol import MARKET, NO_CAMERAS


def make_identities(root, counts=(("alice", 2), ("bob", 3), ("carol", 2))):
    for name, count in counts:
        for k in range(count):
            write_image(root / name / f"{k}.jpg", value=20 * k)
    return root


def write_manifest(path, rows, header="path,identity,camera,split"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return path


def test_identity_folders_without_split_use_every_image_as_a_query_without_cameras(tmp_path, caplog):
    make_identities(tmp_path)
    with caplog.at_level(logging.INFO, logger="sagkit"):
        ds = load_dataset("folder", tmp_path)
    assert detect_layout(tmp_path) == "identities"
    assert ds.train == [] and ds.query == ds.gallery and len(ds.query) == 7
    assert ds.protocol == NO_CAMERAS and ds.info == {"layout": "identities", "cameras": False}
    assert sorted({r.pid for r in ds.query}) == [0, 1, 2]  # alice, bob, carol in name order
    assert "no camera ids" in caplog.text and "no camera ids" in ds.protocol.describe()


def test_no_camera_protocol_drops_only_the_query_file():
    class R:
        def __init__(self, path, pid):
            self.path, self.pid, self.camid = path, pid, 0
    q = [R("a0", 0)]
    g = [R("a0", 0), R("a1", 0), R("b0", 1)]
    dist = np.array([[0.0, 0.5, 0.3]])
    got = score(dist, *NO_CAMERAS.match_ids(q, g)[:2], *NO_CAMERAS.match_ids(q, g)[2:], NO_CAMERAS)
    assert got.metrics["rank1"] == 0.0 and got.metrics["rank5"] == 100.0
    assert got.metrics["mAP"] == pytest.approx(50.0)  # b0 first (wrong), a1 second: AP 1/2
    q_pids, q_cams, g_pids, g_cams = MARKET.match_ids(q, g)
    assert q_cams.tolist() == [0] and g_cams.tolist() == [0, 0, 0]  # with cameras, a1 is a same-camera match
    with pytest.raises(ValueError, match="no query has a valid match"):
        score(dist, q_pids, q_cams, g_pids, g_cams, MARKET)


def test_split_identity_folders_train_query_gallery(tmp_path):
    make_identities(tmp_path / "train", (("7", 2), ("10", 2), ("9", 1)))
    make_identities(tmp_path / "query", (("1", 1), ("2", 1)))
    make_identities(tmp_path / "gallery", (("1", 2), ("2", 1), ("3", 1)))
    ds = load_dataset("folder", tmp_path)
    assert [r.pid for r in ds.train] == [2, 2, 0, 0, 1]  # folders "10", "7", "9" in name order; ids 7<9<10
    assert len(ds.query) == 2 and len(ds.gallery) == 4 and ds.protocol == NO_CAMERAS
    assert ds.num_train_pids == 3


def test_manifest_with_cameras_and_splits_keeps_the_market_rule(tmp_path):
    for name in ("a1", "a2", "b1", "b2", "c1"):
        write_image(tmp_path / "img" / f"{name}.png")
    write_manifest(tmp_path / "manifest.csv", [("img/a1.png", "a", "north", "query"),
                                               ("img/a2.png", "a", "south", "gallery"),
                                               ("img/b1.png", "b", "north", "query"),
                                               ("img/b2.png", "b", "south", "gallery"),
                                               ("img/c1.png", "c", "north", "train")])
    ds = load_dataset("folder", tmp_path)
    assert ds.protocol == MARKET and ds.info["layout"] == "manifest"
    assert [r.camid for r in ds.query] == [0, 0] and [r.camid for r in ds.gallery] == [1, 1]
    assert len(ds.train) == 1 and ds.train[0].pid == 0
    same = load_dataset("folder", tmp_path / "manifest.csv")  # the CSV itself as root
    assert same.query == ds.query


def test_manifest_without_split_or_camera(tmp_path):
    for name in ("a1", "a2", "b1", "b2"):
        write_image(tmp_path / f"{name}.jpg")
    write_manifest(tmp_path / "list.csv", [(f"{n}.jpg", n[0]) for n in ("a1", "a2", "b1", "b2")],
                   header="path,identity")
    ds = load_dataset("folder", tmp_path / "list.csv", layout="manifest")
    assert ds.query is ds.gallery and len(ds.query) == 4 and ds.protocol == NO_CAMERAS


def test_market_names_are_read_as_today(tmp_path):
    base = make_market(tmp_path, inner=None, gt_bbox=False)
    ds = load_dataset("folder", base)
    market = load_dataset("market1501", base)
    assert ds.info == {} and ds.query == market.query and ds.gallery == market.gallery and ds.name == "folder"


@pytest.mark.parametrize("build, match", [
    (lambda r: r.mkdir(), "no images under"),
    (lambda r: make_identities(r, (("alice", 2), ("bob", 1))), "identity 'bob' .* has one image"),
    (lambda r: (make_identities(r), write_image(r / "stray.jpg")), "mixed layouts"),
    (lambda r: (make_identities(r / "query"), make_identities(r / "gallery"), write_image(r / "dave" / "0.jpg")),
     "mixed layouts"),
    (lambda r: make_identities(r / "query"), "no \\['gallery'\\] folder"),
    (lambda r: (make_identities(r), (r / "bob" / "3.jpg").write_text("not an image")), "cannot read image .*3.jpg"),
    (lambda r: (make_identities(r), (r / "carol" / "2.jpg").symlink_to(r / "bob" / "0.jpg")), "duplicate path"),
    (lambda r: (make_identities(r), (r / "empty").mkdir()), "identity folder .*empty.* holds no images"),
    (lambda r: (r.mkdir(), write_image(r / "x.jpg")), "have no identity"),
])
def test_bad_folders_get_one_clear_line(tmp_path, build, match):
    root = tmp_path / "mine"
    build(root)
    with pytest.raises(DatasetFormatError, match=match) as info:
        load_dataset("folder", root)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("rows, header, match", [
    ([("a.jpg", "a"), ("a.jpg", "a"), ("b.jpg", "b")], "path,identity", "line 3: 'a.jpg' is listed again .*line 2"),
    ([("a.jpg", "a"), ("zz.jpg", "a")], "path,identity", "line 3: image 'zz.jpg' does not exist"),
    ([("a.jpg", "a", "")], "path,identity,camera", "line 2: the camera is empty"),
    ([("a.jpg", "a", "test")], "path,identity,split", "line 2: split 'test' is not one of"),
    ([("a.jpg", "a", "1")], "path,identity,camid", "columns .*camid"),
    ([("a.jpg", "a", "query")], "path,identity,split", "no gallery rows"),
    ([], "path,identity", "lists no images"),
])
def test_bad_manifests_name_the_line(tmp_path, rows, header, match):
    for name in ("a", "b"):
        write_image(tmp_path / f"{name}.jpg")
    write_manifest(tmp_path / "manifest.csv", rows, header=header)
    with pytest.raises(DatasetFormatError, match=match):
        load_dataset("folder", tmp_path)


def test_bad_options_and_roots(tmp_path):
    with pytest.raises(ValueError, match="layout='grid' is unknown"):
        load_dataset("folder", tmp_path, layout="grid")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("folder", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="manifest.csv' does not exist"):
        load_dataset("folder", tmp_path, layout="manifest")


CUHK01 = real_cuhk01_root()
needs_cuhk01 = pytest.mark.skipif(CUHK01 is None, reason="the real CUHK01 copy (../shared/data/cuhk01/campus) is "
                                  "not on this machine")


@needs_cuhk01
def test_real_cuhk01_crops_in_a_manifest_give_the_cuhk01_readers_test_split(tmp_path):
    reader = load_cuhk01(CUHK01, num_train_ids=965)  # 6 test identities
    test_ids = sorted({r.pid for r in reader.query})
    rows = [(r.path, str(r.pid), "ab"[r.camid], "query" if r in reader.query else "gallery")
            for r in reader.query + reader.gallery]
    write_manifest(tmp_path / "manifest.csv", rows)
    ds = load_dataset("folder", tmp_path)
    back = {i: pid for i, pid in enumerate(test_ids)}
    for mine, theirs in ((ds.query, reader.query), (ds.gallery, reader.gallery)):
        assert [(r.path, back[r.pid], r.camid) for r in mine] == [tuple(r) for r in theirs]
    rng = np.random.default_rng(0)
    dist = rng.random((len(ds.query), len(ds.gallery)))
    ours = score(dist, *ds.protocol.match_ids(ds.query, ds.gallery)[:2], *ds.protocol.match_ids(ds.query, ds.gallery)[2:])
    ref = reader.protocol.match_ids(reader.query, reader.gallery)
    assert ours.metrics == score(dist, ref[0], ref[1], ref[2], ref[3]).metrics


@needs_cuhk01
def test_real_cuhk01_crops_as_identity_folders(tmp_path):
    campus = CUHK01 / "campus" if (CUHK01 / "campus").is_dir() else CUHK01
    for pid in ("0001", "0002", "0003"):
        for k in range(1, 5):
            link = tmp_path / pid / f"{k}.png"
            link.parent.mkdir(exist_ok=True)
            link.symlink_to(campus / f"{pid}00{k}.png")
    ds = load_dataset("folder", tmp_path)
    assert len(ds.query) == 12 and ds.protocol == NO_CAMERAS and [r.pid for r in ds.query[:5]] == [0, 0, 0, 0, 1]


def test_training_on_a_folder_without_train_split_says_so(tmp_path):
    make_identities(tmp_path / "mine")
    config = get_profile("tiny").replace(dataset="folder", data_root=str(tmp_path / "mine"), dataset_options={})
    with pytest.raises(ValueError, match="folder at .*mine has no train split"):
        build_data(config)
