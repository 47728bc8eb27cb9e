"""write_folder_copy: a dataset's test split as a ``folder`` dataset (links and a manifest) that the folder reader
reads back with the same images, identities and cameras, scored alike; reused when complete, rebuilt when
its records change, and never taken from an interrupted build."""
from __future__ import annotations

import os

import numpy as np
import pytest
from data_fixtures import write_image

from sagkit.data import ImageRecord, ReIDDataset, load_dataset
from sagkit.data import folder_copy
from sagkit.data.folder_copy import COPY_RECORD, copy_queries, write_folder_copy
from sagkit.engine.retrieval import score
from sagkit.evaluation.protocol import MARKET


def make_dataset(root, pids=(3, 10, 7)) -> ReIDDataset:
    """Queries of ``pids`` from camera 0; the gallery: each person from cameras 0 and 1 (a comma in the camera-1
    file names), a distractor (pid 0) and a junk image (pid -1)."""
    query, gallery = [], []
    for k, pid in enumerate(pids):
        query.append(ImageRecord(str(write_image(root / "query" / f"{pid:04d}_c1_q.png", 10 + k)), pid, 0))
        for cam in (0, 1):
            name = f"{pid:04d}_c{cam + 1}_g{',b' if cam else ''}.png"
            path = write_image(root / "gallery" / name, 100 + 10 * k + cam)
            gallery.append(ImageRecord(str(path), pid, cam))
    gallery.append(ImageRecord(str(write_image(root / "gallery" / "0000_c1_d.png", 200)), 0, 0))
    gallery.append(ImageRecord(str(write_image(root / "gallery" / "-1_c2_j.png", 220)), -1, 1))
    return ReIDDataset("market1501", [], query, gallery, root=str(root), protocol=MARKET)


def test_the_copy_reads_back_with_the_same_images_identities_cameras_and_scores(tmp_path):
    source = make_dataset(tmp_path / "data")
    dest = write_folder_copy(source, tmp_path / "copy")
    back = load_dataset("folder", dest)
    assert back.info == {"layout": "manifest", "cameras": True} and back.protocol == MARKET
    kept = [r for r in source.gallery if r.pid != -1]  # junk is left out
    for mine, theirs in ((back.query, source.query), (back.gallery, kept)):
        assert [r.path for r in mine] == [r.path for r in theirs]  # the manifest's links resolve to the sources
        for field in ("pid", "camid"):  # the copy's ids and the source's correspond one to one
            pairs = {(getattr(a, field), getattr(b, field)) for a, b in zip(mine, theirs)}
            assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
    links = sorted(p for p in dest.rglob("*.png"))
    assert len(links) == len(source.query) + len(kept) and all(p.is_symlink() for p in links)
    assert sorted(p.name for p in (dest / "query").iterdir()) == ["10", "3", "7"]
    dist = np.random.default_rng(0).random((len(source.query), len(source.gallery)))
    ours = score(dist[:, :-1], *back.protocol.match_ids(back.query, back.gallery), back.protocol)
    theirs = score(dist, *MARKET.match_ids(source.query, source.gallery), MARKET, source.distractor_pid)
    assert ours.metrics == theirs.metrics
    assert copy_queries(dest) == [str(dest / "query" / "3" / "0003_c1_q.png"),
                                  str(dest / "query" / "7" / "0007_c1_q.png")]  # identities in numeric order


def test_a_complete_copy_is_reused_and_a_copy_of_other_records_rebuilt(tmp_path, monkeypatch):
    source = make_dataset(tmp_path / "data")
    dest = write_folder_copy(source, tmp_path / "copy")
    stamp = (dest / COPY_RECORD).stat().st_mtime_ns
    with monkeypatch.context() as patch:
        patch.setattr(folder_copy, "_build", lambda *a: pytest.fail("a complete copy must be reused"))
        assert write_folder_copy(source, dest) == dest
    fewer = make_dataset(tmp_path / "data", pids=(3, 10))
    write_folder_copy(fewer, dest)
    assert (dest / COPY_RECORD).stat().st_mtime_ns != stamp and not (dest / "query" / "7").exists()
    assert len(load_dataset("folder", dest).query) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_an_interrupted_build_is_not_taken_for_a_copy(tmp_path, monkeypatch):
    source = make_dataset(tmp_path / "data")
    dest = tmp_path / "copy"
    made = []

    def dies_midway(src, dst):
        if len(made) == 4:
            raise KeyboardInterrupt
        made.append(dst)
        os.symlink(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(folder_copy.os, "symlink", dies_midway)
        with pytest.raises(KeyboardInterrupt):
            write_folder_copy(source, dest)
    assert not dest.exists() and list(tmp_path.glob(".copy.*")) == []
    killed = tmp_path / ".copy.tmp-killed"  # what a killed process leaves: links, no manifest
    (killed / "query" / "3").mkdir(parents=True)
    os.symlink(source.query[0].path, killed / "query" / "3" / "q.png")
    write_folder_copy(source, dest)
    assert len(load_dataset("folder", dest).gallery) == len(source.gallery) - 1


def test_a_folder_that_is_not_a_copy_is_never_replaced(tmp_path):
    source = make_dataset(tmp_path / "data")
    mine = tmp_path / "mine"
    write_image(mine / "alice" / "1.png")
    with pytest.raises(FileExistsError, match=r"'.*mine' exists and is not a folder copy written by sagkit"):
        write_folder_copy(source, mine)
    assert (mine / "alice" / "1.png").is_file()
    (tmp_path / "empty").mkdir()
    assert load_dataset("folder", write_folder_copy(source, tmp_path / "empty")).info["cameras"] is True


def test_a_split_whose_query_list_is_its_gallery_goes_under_test(tmp_path):
    source = make_dataset(tmp_path / "data")
    people = [r for r in source.gallery if r.pid > 0]
    both = ReIDDataset("cuhk03", [], people, people, root=source.root)
    dest = write_folder_copy(both, tmp_path / "copy")
    back = load_dataset("folder", dest)
    assert back.query == back.gallery and [r.path for r in back.query] == [r.path for r in people]
    assert (dest / "manifest.csv").read_text().splitlines()[0] == "path,identity,camera"
    assert copy_queries(dest, 1) == [str(dest / "test" / "3" / "0003_c1_g.png")]
