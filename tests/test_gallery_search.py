"""Exact top-k search in chunks (sagkit.images.gallery), image collection and embeddings files (sagkit.images.embedding):
no model needed."""
from __future__ import annotations

import re

import numpy as np
import pytest
from data_fixtures import write_image

from sagkit.cli import main
from sagkit.images.embedding import Embeddings, collect_images
from sagkit.evaluation import compute_distance_matrix
from sagkit.images.gallery import SearchResult, _check_comparable, exact_topk, topk_of_matrix


def tied_features(seed: int = 0, q: int = 9, g: int = 53, d: int = 6):
    """Small-integer vectors with repeated gallery rows: many exactly equal distances (ties)."""
    rng = np.random.default_rng(seed)
    gallery = rng.integers(0, 3, (g, d)).astype(np.float32)
    gallery[10:20] = gallery[0]  # ten copies of row 0
    query = rng.integers(0, 3, (q, d)).astype(np.float32)
    query[0] = gallery[0]
    return query, gallery


@pytest.mark.parametrize("k, chunk, block", [(1, 7, 4), (5, 7, 4), (12, 5, 2), (53, 8, 9), (80, 16, 3)])
def test_exact_topk_equals_a_full_stable_sort_ties_included(k, chunk, block):
    query, gallery = tied_features()
    full = compute_distance_matrix(query, gallery).numpy()
    order = np.argsort(full, axis=1, kind="stable")[:, :min(k, 53)]
    dist, idx = exact_topk(query, gallery, k, chunk=chunk, query_block=block)
    assert idx.shape == order.shape
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_array_equal(dist, np.take_along_axis(full, order, 1))
    assert idx[0, :1].tolist() == [0] and (dist[0, :11] == 0).all()  # the query's copies, in gallery order
    assert len(set(np.round(full[0], 6))) < full.shape[1]  # the fixture does have ties


def test_topk_of_a_matrix_with_ties_and_bad_values():
    matrix = np.array([[0.5, 0.1, 0.5, 0.1, 0.0, -0.0], [3.0, 2.0, 1.0, 1.0, 2.0, 3.0]])
    dist, idx = topk_of_matrix(matrix, 4, chunk=2)
    assert idx.tolist() == [[4, 5, 1, 3], [2, 3, 1, 4]]
    assert dist.tolist() == [[0.0, 0.0, pytest.approx(0.1), pytest.approx(0.1)], [1.0, 1.0, 2.0, 2.0]]
    assert topk_of_matrix(np.array([[0.2, -1e-9, 0.1]]), 2)[1].tolist() == [[1, 2]]  # rounding below 0 is 0
    with pytest.raises(ValueError, match="got NaN"):
        topk_of_matrix(np.array([[np.nan, 1.0]]), 1)
    with pytest.raises(ValueError, match="topk must be a positive integer"):
        topk_of_matrix(matrix, 0)


def test_collect_images_from_files_folders_and_globs(tmp_path):
    a = write_image(tmp_path / "g" / "x" / "a.jpg")
    b = write_image(tmp_path / "g" / "b.png")
    (tmp_path / "g" / "notes.txt").write_text("no")
    assert collect_images(tmp_path / "g") == [str(b), str(a)]  # sorted by path, recursive, images only
    assert collect_images([str(tmp_path / "g" / "*.png"), a, b]) == [str(b), str(a)]  # each once
    for bad, match in ((tmp_path / "missing.jpg", "does not exist"), (tmp_path / "g" / "notes.txt", "is not an image"),
                       (str(tmp_path / "*.bmp"), "no images"), ([], "no images given")):
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            collect_images(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images .* in .*empty"):
        collect_images(tmp_path / "empty")


def test_embeddings_file_round_trip_and_bad_files(tmp_path):
    emb = Embeddings(["a.jpg", "b.jpg"], np.eye(2, 4, dtype=np.float32), "run-x", {"flip": True, "input_size": [64, 32]},
                     12.5)
    path = emb.save(tmp_path / "e.npz")
    back = Embeddings.load(path)
    assert back.paths == emb.paths and back.model == "run-x" and back.settings == emb.settings
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    with pytest.raises(ValueError, match="ending in .npz"):
        emb.save(tmp_path / "e.npy")
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="other.npz' is not a sagkit embeddings file"):
        Embeddings.load(tmp_path / "other.npz")
    other = Embeddings(["c.jpg"], np.ones((1, 4), np.float32), "run-x", {"flip": False, "input_size": [64, 32]})
    with pytest.raises(ValueError, match=r"other settings \(flip\)"):
        _check_comparable(emb, other, "in g.npz")
    rounded = Embeddings(["c.jpg"], np.ones((1, 4), np.float32), "run-x", {"flip": True, "input_size": [64, 32],
                                                                          "mean": [0.498039]})
    _check_comparable(Embeddings([], emb.vectors, "run-x", {**emb.settings, "mean": [0.4980392156862745]}), rounded,
                      "")  # an ONNX file's rounded mean is the run's
    with pytest.raises(ValueError, match=r"\(input_size\)"):
        _check_comparable(emb, Embeddings([], emb.vectors, "run-x", {**emb.settings, "input_size": [128, 64]}), "")


def test_search_result_prints_ranks_and_distances_and_draws(tmp_path):
    paths = [str(write_image(tmp_path / f"{n}.jpg", value=40 * i)) for i, n in enumerate("abc")]
    q = Embeddings(paths[:1], np.ones((1, 2), np.float32), "m")
    g = Embeddings(paths, np.ones((3, 2), np.float32), "m")
    result = SearchResult(q, g, np.array([[2, 0]]), np.array([[0.25, 0.5]], np.float32))
    assert result.lines() == [f"query {paths[0]}", f"    1  0.2500  {paths[2]}", f"    2  0.5000  {paths[0]}"]
    png = result.save_png(tmp_path / "ranked.png")
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("argv, match", [
    (["embed", "{tmp}/nowhere", "{tmp}/a.jpg", "--out", "{tmp}/e.npz"], "model source '.*nowhere' is neither a run folder"),
    (["embed", "{tmp}/model.txt", "{tmp}/a.jpg", "--out", "{tmp}/e.npz"], "model.txt' is neither a run folder"),
    (["search", "{tmp}/nowhere", "--query", "{tmp}/a.jpg", "--gallery", "{tmp}/g.npz"], "is neither a run folder"),
])
def test_embed_and_search_commands_refuse_bad_sources_in_one_line(tmp_path, capsys, argv, match):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "model.txt").write_text("x")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"sagkit {argv[0]}: error:")
    assert re.search(match, err)


def test_embed_command_requires_out(capsys):
    with pytest.raises(SystemExit):
        main(["embed", "runs/x", "a.jpg"])
    assert "--out" in capsys.readouterr().err
