"""Tests for re_rank_features' all-pairs pass over the upper block triangle and its helpers."""

import numpy as np
import pytest
import torch

from sagkit.evaluation import compute_distance_matrix, re_rank, re_rank_features
from sagkit.evaluation.rerank import symmetric_pass
from sagkit.evaluation.rerank import tile_kernel
from sagkit.evaluation.rerank.k_reciprocal import TOLERANCE as TOL
from sagkit.evaluation.sorting import sort_rows, stable_argsort
from sagkit.evaluation.streaming_topk import StreamingTopK, column_hits, row_hits
from test_evaluation_rerank import random_problem, usual_algorithm


@pytest.fixture(params=["kernel", "numpy"])
def odd_tiles(request, monkeypatch):
    """Tiles of 7 x 11 items, so that block boundaries fall inside the query and the gallery sets, read
    by the compiled kernel or by numpy (with small buffers, which overflow and get merged). Yields a
    list that is not empty once the chosen reader did its work."""
    monkeypatch.setattr(symmetric_pass, "ROW_BLOCK", 7)
    monkeypatch.setattr(symmetric_pass, "COL_BLOCK", 11)
    monkeypatch.setattr(symmetric_pass, "CAPACITY", 16)
    monkeypatch.setattr(symmetric_pass, "KNOWN", 1)
    used = []
    if request.param == "numpy":
        monkeypatch.setattr(tile_kernel, "load", lambda: None)
        merge = StreamingTopK._merge
        monkeypatch.setattr(StreamingTopK, "_merge", lambda self, owners, *a: (used.append(owners.size),
                                                                                 merge(self, owners, *a)))
    else:
        if tile_kernel.load() is None:
            pytest.skip("no C compiler here for the tile kernel")
        both = tile_kernel.TileHeaps.both
        monkeypatch.setattr(tile_kernel.TileHeaps, "both", lambda self, *a: (used.append(1), both(self, *a)))
    return used


def brute_force(feats, metric, q, k):
    """colmax, nn (by (D / colmax, index)), nn_div and D[:q, q:] from the full matrix of squared distances."""
    d = compute_distance_matrix(feats, feats, metric=metric) ** 2
    colmax = d.amax(1)
    div = d / colmax[:, None]
    nn = torch.sort(div, dim=1, stable=True).indices[:, :k]
    return colmax, nn, div.gather(1, nn), d[:q, q:]


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_upper_pass_equals_full_matrix(odd_tiles, metric):
    qf, gf, *_ = random_problem(21, 13, 47, dim=5, dtype=np.float32)
    feats = torch.from_numpy(np.concatenate([qf, gf]))
    out = torch.empty(13, 47)
    nn, nn_div, colmax = symmetric_pass.upper_pass(feats, metric, 13, 6, out)
    ref_colmax, ref_nn, ref_div, ref_out = brute_force(feats, metric, 13, 6)
    assert odd_tiles, "the chosen reader should have been used (numpy: its small buffers overflowed)"
    torch.testing.assert_close(colmax, ref_colmax, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    assert torch.equal(nn[:, :6], ref_nn)
    torch.testing.assert_close(nn_div[:, :6], ref_div, rtol=1e-5, atol=1e-6)


def test_upper_pass_keeps_known_near_items_with_exact_distances():
    qf, gf, *_ = random_problem(8, 20, 90, dim=5, dtype=np.float32)
    feats = torch.from_numpy(np.concatenate([qf, gf]))
    nn, nn_div, colmax = symmetric_pass.upper_pass(feats, "euclidean", 20, 6, torch.empty(20, 90))
    _, ref_nn, ref_div, _ = brute_force(feats, "euclidean", 20, symmetric_pass.KNOWN)
    assert nn.shape == (110, symmetric_pass.KNOWN) and torch.equal(nn[:, :6], ref_nn[:, :6])
    torch.testing.assert_close(nn_div, ref_div, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k1,k2,lam", [(4, 3, 0.3), (6, 1, 0.0), (5, 6, 1.0)])
def test_symmetric_path_with_odd_blocks_matches_usual_algorithm(odd_tiles, k1, k2, lam):
    qf, gf, qg, qq, gg = random_problem(k1 + 30, 13, 47, dtype=np.float32)
    expected = usual_algorithm(qg, qq, gg, k1, k2, lam)
    got = re_rank_features(qf, gf, k1=k1, k2=k2, lambda_value=lam)
    assert odd_tiles
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
    np.testing.assert_allclose(got, re_rank(qg, qq, gg, k1=k1, k2=k2, lambda_value=lam), atol=TOL, rtol=0)


def test_float64_features_use_the_symmetric_path_too(odd_tiles):
    """float64 features are read by numpy (the kernel is float32 only)."""
    qf, gf, qg, qq, gg = random_problem(3, 9, 31)
    np.testing.assert_allclose(re_rank_features(qf, gf, k1=5, k2=3), usual_algorithm(qg, qq, gg, 5, 3, 0.3),
                               atol=TOL, rtol=0)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_ties_at_the_threshold_are_settled_against_every_item(odd_tiles, monkeypatch, metric):
    """Small integer features give exact, many-way ties in distance. Rows whose k-th neighbour could tie
    with an item left out of the buffer are computed again in full, so ties are ordered by index."""
    redone = []
    nearest = symmetric_pass.nearest_ordered
    monkeypatch.setattr(symmetric_pass, "nearest_ordered", lambda v, k: (redone.append(v.shape[0]), nearest(v, k))[1])
    rng = np.random.default_rng(4)
    qf = rng.integers(0, 2, size=(6, 4)).astype(np.float32)
    gf = rng.integers(0, 2, size=(80, 4)).astype(np.float32)
    dist = lambda a, b: compute_distance_matrix(a, b, metric=metric).numpy()
    qg, qq, gg = dist(qf, gf), dist(qf, qf), dist(gf, gf)
    np.testing.assert_allclose(re_rank_features(qf, gf, k1=5, k2=3, metric=metric),
                               usual_algorithm(qg, qq, gg, 5, 3, 0.3), atol=TOL, rtol=0)
    assert sum(redone) > 0


def test_streaming_topk_keeps_the_k_smallest_of_each_row():
    rng = np.random.default_rng(0)
    matrix = rng.random((40, 300))
    k = 5
    stream = StreamingTopK(40, k, 12, np.sort(matrix[:, ::37], axis=1)[:, k - 1].copy())
    mask = np.empty(40 * 300, dtype=bool)
    for c0 in rng.permutation(np.arange(0, 300, 23)):
        stream.add(*row_hits(np.ascontiguousarray(matrix[:, c0:c0 + 23]), stream.thr, mask, 0, c0))
    keys, cols, thr = stream.result()
    np.testing.assert_array_equal(keys, np.sort(matrix, axis=1)[:, :k])
    np.testing.assert_array_equal(matrix[np.arange(40)[:, None], cols], keys)
    assert (thr >= keys[:, -1]).all()


def test_column_hits_read_the_tile_as_rows_of_the_matrix():
    tile = np.arange(12, dtype=np.float32).reshape(3, 4)
    rows, cols, vals = column_hits(tile, 1, np.array([5.0, 2.0, 10.0]), np.empty(12, dtype=bool), 100, 200)
    got = sorted(zip(rows.tolist(), cols.tolist(), vals.tolist()))
    assert got == [(201, 100, 1.0), (201, 101, 5.0), (202, 100, 2.0), (203, 100, 3.0), (203, 101, 7.0)]


def read_upper_triangle(heaps, seed):
    """A 50 x 50 symmetric matrix (like distances) whose upper block triangle is read in 9 x 13 tiles, strip s
    by heaps[s % len(heaps)], as upper_pass deals strips to its threads."""
    rng = np.random.default_rng(seed)
    matrix = rng.random((50, 50)).astype(np.float32)
    matrix = np.minimum(matrix, matrix.T)
    for s, a in enumerate(range(0, 50, 9)):
        for c0 in range(a, 50, 13):
            heaps[s % len(heaps)].both(matrix[a:a + 9, c0:c0 + 13], max(c0, min(a + 9, 50)) - c0, a, c0)
    return matrix


def test_tile_heaps_keep_the_k_smallest_and_the_maxima():
    lib = tile_kernel.load()
    if lib is None:
        pytest.skip("no C compiler here for the tile kernel")
    heaps = tile_kernel.TileHeaps(lib, 50, 4)
    matrix = read_upper_triangle([heaps], 1)
    np.testing.assert_array_equal(np.sort(heaps.key, axis=1), np.sort(matrix, axis=1)[:, :4])
    np.testing.assert_array_equal(np.take_along_axis(matrix, heaps.col, 1), heaps.key)
    np.testing.assert_array_equal(heaps.kmax, matrix.max(1))
    np.testing.assert_array_equal(heaps.thr, heaps.key.max(1))


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_tile_kernel_turns_query_gallery_tiles_into_squared_distances(metric):
    lib = tile_kernel.load()
    if lib is None:
        pytest.skip("no C compiler here for the tile kernel")
    keys = np.random.default_rng(2).normal(size=(5, 70)).astype(np.float32)
    keys = np.abs(keys) if metric == "cosine" else keys
    expected = symmetric_pass.squared_from_key(torch.from_numpy(keys.copy()), metric).numpy()
    tile_kernel.TileHeaps(lib, 70, 3).both(keys, 70, 0, 0, tile_kernel.METRIC_CODES[metric])
    np.testing.assert_allclose(keys, expected, rtol=2.5e-7, atol=0)  # the same, to a float32 rounding


def test_streaming_topk_rejects_a_capacity_below_twice_k():
    with pytest.raises(ValueError, match="capacity"):
        StreamingTopK(3, 4, 7, np.zeros(3))


def test_fast_sorts_equal_torch_stable_sorts():
    keys = torch.randint(0, 50, (4000,))
    assert torch.equal(stable_argsort(keys), torch.sort(keys, stable=True).indices)
    negative = keys - 25
    assert torch.equal(stable_argsort(negative), torch.sort(negative, stable=True).indices)
    rows = torch.randint(0, 9, (30, 70))
    values, indices = sort_rows(rows)
    ref = torch.sort(rows, dim=1, stable=True)
    assert torch.equal(values, ref.values) and torch.equal(indices, ref.indices)


def test_nearest_ordered_breaks_ties_at_the_kth_by_index():
    values = torch.tensor([[3.0, 1.0, 2.0, 2.0, 5.0, 2.0, 0.0, 9.0, 2.0, 7.0, 8.0, 6.0, 4.0, 2.0, 9.0, 9.0, 9.0]])
    assert symmetric_pass.nearest_ordered(values, 3).tolist() == [[6, 1, 2]]
    assert symmetric_pass.nearest_ordered(values.flip(1), 3).tolist() == [[10, 15, 3]]


def test_matrix_path_with_exact_ties_matches_usual_algorithm():
    rng = np.random.default_rng(9)
    qf = rng.integers(0, 2, size=(6, 4)).astype(np.float32)
    gf = rng.integers(0, 2, size=(80, 4)).astype(np.float32)
    dist = lambda a, b: compute_distance_matrix(a, b).numpy()
    qg, qq, gg = dist(qf, gf), dist(qf, qf), dist(gf, gf)
    np.testing.assert_allclose(re_rank(qg, qq, gg, k1=5, k2=3), usual_algorithm(qg, qq, gg, 5, 3, 0.3),
                               atol=TOL, rtol=0)


def test_tile_kernel_is_none_without_a_compiler(monkeypatch, tmp_path):
    """Then upper_pass reads the tiles with numpy (the ``numpy`` case of the tests above)."""
    monkeypatch.setenv("SAGKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(tile_kernel.shutil, "which", lambda name: None)
    monkeypatch.setattr(tile_kernel, "_lib", None)
    monkeypatch.setattr(tile_kernel, "_tried", False)
    assert tile_kernel.load() is None and not list(tmp_path.iterdir())


def test_upper_pass_gives_the_same_result_with_any_number_of_workers(odd_tiles):
    """Strips dealt to 1, 2 or 3 threads, each with heaps of its own, merged: the same nn, distances, maxima
    and query x gallery block, to the bit (the numpy reader has one worker whatever is asked)."""
    qf, gf, *_ = random_problem(5, 17, 60, dim=6, dtype=np.float32)
    feats = torch.from_numpy(np.concatenate([qf, gf]))
    results = []
    for workers in (1, 2, 3):
        out = torch.empty(17, 60)
        results.append((*symmetric_pass.upper_pass(feats, "euclidean", 17, 6, out, workers=workers), out))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)
    _, ref_nn, _, ref_out = brute_force(feats, "euclidean", 17, 6)
    assert torch.equal(results[2][0][:, :6], ref_nn)
    torch.testing.assert_close(results[2][3], ref_out, rtol=1e-5, atol=1e-5)


def test_merge_heaps_keeps_the_k_smallest_of_the_union_and_a_safe_threshold():
    lib = tile_kernel.load()
    if lib is None:
        pytest.skip("no C compiler here for the tile kernel")
    bound = np.full(50, np.inf, dtype=np.float32)  # shared, as upper_pass shares it between its threads
    heaps = [tile_kernel.TileHeaps(lib, 50, 4, bound) for _ in range(2)]
    matrix = read_upper_triangle(heaps, 2)
    assert not np.array_equal(np.sort(heaps[0].key, axis=1), np.sort(matrix, axis=1)[:, :4])  # each saw a part
    kmax, keys, cols, thr = tile_kernel.merge_heaps(heaps)
    np.testing.assert_array_equal(np.sort(keys.numpy(), axis=1), np.sort(matrix, axis=1)[:, :4])
    np.testing.assert_array_equal(np.take_along_axis(matrix, cols.numpy(), 1), keys.numpy())
    np.testing.assert_array_equal(kmax.numpy(), matrix.max(1))
    left_out = np.sort(matrix, axis=1)[:, 4:]
    assert (thr.numpy()[:, None] <= left_out).all() and torch.equal(thr, keys.amax(1))
    assert (bound == np.minimum(heaps[0].thr, heaps[1].thr)).all()  # the least top of the two heaps


@pytest.mark.parametrize("compiled", [True, False])
def test_scale_shift_rows_rounds_like_torch(monkeypatch, compiled):
    if compiled and tile_kernel.load() is None:
        pytest.skip("no C compiler here for the tile kernel")
    if not compiled:
        monkeypatch.setattr(tile_kernel, "load", lambda: None)
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.random((37, 129)).astype(np.float32) * 3)
    scale = torch.from_numpy(rng.random(37).astype(np.float32))
    expected = x * scale[:, None] + np.float32(0.7)
    tile_kernel.scale_shift_rows(x, scale, 0.7)
    assert torch.equal(x, expected)
