"""Tests for k-reciprocal re-ranking: against plain transcriptions, chunking, features path."""

import numpy as np
import pytest
import torch

from sagkit.evaluation import compute_distance_matrix, re_rank, re_rank_features
from sagkit.evaluation.rerank.k_reciprocal import TOLERANCE as TOL


def usual_algorithm(q_g, q_q, g_g, k1, k2, lambda_value):
    """The usual re_ranking, written plainly: dense matrices, Python loops, float64 after the float32 cast."""
    q = q_g.shape[0]
    full = np.block([[q_q, q_g], [q_g.T, g_g]])
    original = np.power(full, 2).astype(np.float32)
    original = (original / original.max(axis=0)).T.astype(np.float64)
    n = original.shape[0]
    ranking = [sorted(range(n), key=lambda j: (original[i, j], j)) for i in range(n)]

    def reciprocal(i, k):
        return [c for c in ranking[i][:k + 1] if i in ranking[c][:k + 1]]

    weights = np.zeros((n, n))
    for i in range(n):
        nearest = reciprocal(i, k1)
        expanded = set(nearest)
        for c in nearest:
            candidate = reciprocal(c, int(np.around(k1 / 2.0)))
            if len(set(candidate) & set(nearest)) > 2.0 / 3 * len(candidate):
                expanded |= set(candidate)
        members = sorted(expanded)
        w = np.exp(-original[i, members])
        weights[i, members] = w / w.sum()
    if k2 != 1:
        weights = np.array([weights[ranking[i][:k2]].mean(axis=0) for i in range(n)])
    jaccard = np.zeros((q, n))
    for i in range(q):
        overlap = np.minimum(weights[i][None, :], weights).sum(axis=1)
        jaccard[i] = 1 - overlap / (2 - overlap)
    return (jaccard * (1 - lambda_value) + original[:q] * lambda_value)[:, q:]


def paper_equations(q_g, q_q, g_g, k1, k2, lambda_value):
    """Zhong et al. 2017, Eq. (7) weights on R*(p, k1), Eq. (10) local expansion, Eq. (11) Jaccard = 1 - sum min / sum max."""
    q = q_g.shape[0]
    d = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float32) ** 2
    d = (d / d.max(axis=0)).T.astype(np.float64)
    n = d.shape[0]
    order = np.argsort(d, axis=1, kind="stable")
    neighbours = lambda p, k: set(order[p, :k + 1].tolist())  # N(p, k), the query itself included
    reciprocal = lambda p, k: {g for g in neighbours(p, k) if p in neighbours(g, k)}  # R(p, k), Eq. (4)
    vectors = np.zeros((n, n))
    for p in range(n):
        r_star = set(reciprocal(p, k1))  # Eq. (6)
        for g in reciprocal(p, k1):
            half = reciprocal(g, int(np.around(k1 / 2)))
            if len(half & reciprocal(p, k1)) > 2 / 3 * len(half):
                r_star |= half
        for g in r_star:
            vectors[p, g] = np.exp(-d[p, g])  # Eq. (7)
        vectors[p] /= vectors[p].sum()
    if k2 != 1:
        vectors = np.array([vectors[order[p, :k2]].mean(axis=0) for p in range(n)])  # Eq. (10)
    out = np.zeros((q, n - q))
    for p in range(q):
        for g in range(q, n):
            jaccard = 1 - np.minimum(vectors[p], vectors[g]).sum() / np.maximum(vectors[p], vectors[g]).sum()
            out[p, g - q] = (1 - lambda_value) * jaccard + lambda_value * d[p, g]  # Eq. (12)
    return out


def random_problem(seed, num_q, num_g, dim=6, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, dim))
    qf = centres[rng.integers(4, size=num_q)] + 0.6 * rng.normal(size=(num_q, dim))
    gf = centres[rng.integers(4, size=num_g)] + 0.6 * rng.normal(size=(num_g, dim))
    qf, gf = qf.astype(dtype), gf.astype(dtype)
    dist = lambda a, b: compute_distance_matrix(a, b).numpy()
    return qf, gf, dist(qf, gf), dist(qf, qf), dist(gf, gf)


@pytest.mark.parametrize("k1,k2,lam,num_q,num_g", [(20, 6, 0.3, 12, 40), (5, 3, 0.5, 10, 30), (3, 1, 0.0, 8, 25),
                                                   (6, 6, 1.0, 6, 20), (20, 6, 0.3, 3, 5)])
def test_matches_plain_usual_algorithm(k1, k2, lam, num_q, num_g):
    _, _, qg, qq, gg = random_problem(k1 + num_q, num_q, num_g)
    expected = usual_algorithm(qg, qq, gg, k1, k2, lam)
    got = re_rank(qg, qq, gg, k1=k1, k2=k2, lambda_value=lam)
    assert got.shape == (num_q, num_g) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)


def test_matches_paper_equations():
    _, _, qg, qq, gg = random_problem(7, 8, 24)
    np.testing.assert_allclose(re_rank(qg, qq, gg, k1=6, k2=3, lambda_value=0.3),
                               paper_equations(qg, qq, gg, 6, 3, 0.3), atol=TOL, rtol=0)


def test_non_symmetric_inputs_follow_the_column_normalisation():
    rng = np.random.default_rng(5)
    qg, qq, gg = rng.random((6, 15)), rng.random((6, 6)), rng.random((15, 15))
    np.testing.assert_allclose(re_rank(qg, qq, gg, k1=4, k2=2), usual_algorithm(qg, qq, gg, 4, 2, 0.3),
                               atol=TOL, rtol=0)


def test_chunked_equals_unchunked_and_torch_equals_numpy():
    _, _, qg, qq, gg = random_problem(11, 20, 60, dtype=np.float32)
    whole = re_rank(qg, qq, gg)
    np.testing.assert_array_equal(re_rank(qg, qq, gg, chunk=7), whole)
    np.testing.assert_array_equal(re_rank(torch.from_numpy(qg), torch.from_numpy(qq), torch.from_numpy(gg)), whole)


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_features_path_equals_matrix_path(metric):
    qf, gf, *_ = random_problem(3, 15, 50, dtype=np.float32)
    dist = lambda a, b: compute_distance_matrix(a, b, metric=metric)
    expected = re_rank(dist(qf, gf), dist(qf, qf), dist(gf, gf), k1=10, k2=4)
    for chunk in (None, 9):
        got = re_rank_features(qf, gf, k1=10, k2=4, chunk=chunk, metric=metric)
        np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)


def test_bad_inputs_raise_value_error():
    _, _, qg, qq, gg = random_problem(0, 4, 9)
    with pytest.raises(ValueError, match="g_g_dist"):
        re_rank(qg, qq, gg[:-1, :-1])
    with pytest.raises(ValueError, match="k1 and k2"):
        re_rank(qg, qq, gg, k1=0)
    with pytest.raises(ValueError, match="lambda_value"):
        re_rank(qg, qq, gg, lambda_value=1.5)
    with pytest.raises(ValueError, match="metric"):
        re_rank_features(np.zeros((2, 3)), np.zeros((4, 3)), metric="manhattan")


def test_identical_features_give_zero_distances_not_nan():
    """Features that are all equal (a collapsed model) made every column maximum 0 and the result 0/0 = NaN."""
    q, g = torch.ones(4, 8), torch.ones(6, 8)
    got = re_rank_features(q, g, k1=3, k2=2, lambda_value=0.3)
    assert not np.isnan(got).any() and np.all(got == 0)
    zeros = np.zeros((4, 6), np.float32)
    assert not np.isnan(re_rank(zeros, np.zeros((4, 4), np.float32), np.zeros((6, 6), np.float32), k1=3, k2=2)).any()
