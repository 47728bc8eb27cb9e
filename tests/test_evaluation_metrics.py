"""Tests for sagkit.evaluation.evaluate: hand-worked cases, brute force, protocols."""

import itertools
import warnings

import numpy as np
import pytest
import torch

from sagkit.evaluation import evaluate


def brute_force(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, ap="mean"):
    """Plain per-query loop: stable sort, drop junk and same-id-same-camera, score the rest."""
    cmcs, aps, inps = [], [], []
    for i in range(distmat.shape[0]):
        order = sorted(range(distmat.shape[1]), key=lambda j: (distmat[i, j], j))
        ranked = [j for j in order
                  if g_pids[j] != -1 and not (g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i])]
        hits = [r + 1 for r, j in enumerate(ranked) if g_pids[j] == q_pids[i]]
        if not hits:
            continue
        cmcs.append([1.0 if hits[0] <= r + 1 else 0.0 for r in range(max_rank)])
        total = 0.0
        for k, rank in enumerate(hits, start=1):
            if ap == "mean":
                total += k / rank
            else:
                before = 1.0 if rank == 1 else (k - 1) / (rank - 1)
                total += (before + k / rank) / 2
        aps.append(total / len(hits))
        inps.append(len(hits) / hits[-1])
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps))


@pytest.fixture
def hand_case():
    # gallery:   g0       g1       g2       g3        g4          g5
    g_pids = np.array([1, 2, 1, -1, 0, 1])
    g_cams = np.array([0, 1, 1, 1, 2, 2])
    q_pids = np.array([1, 2, 3])
    q_cams = np.array([0, 0, 0])
    distmat = np.array([
        [0.1, 0.2, 0.3, 0.35, 0.4, 0.5],   # q0: g0 same id+cam (out), g1 wrong, g2 hit, g3 junk, g4 distractor, g5 hit
        [0.9, 0.05, 0.5, 0.01, 0.2, 0.6],  # q1: g3 junk first, then g1 = its only match, at rank 1
        [0.3, 0.2, 0.1, 0.4, 0.5, 0.6],    # q2: pid 3 not in gallery -> skipped
    ])
    return distmat, q_pids, g_pids, q_cams, g_cams


def test_hand_worked_cmc_map_minp(hand_case):
    distmat, q_pids, g_pids, q_cams, g_cams = hand_case
    with pytest.warns(UserWarning, match="1 of 3 queries"):
        cmc, m_ap, m_inp = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=5, return_minp=True)
    # q0 valid ranking: g1 (wrong), g2 (hit, rank 2), g4 (distractor, wrong), g5 (hit, rank 4).
    # q0: AP = (1/2 + 2/4) / 2 = 0.5, INP = 2/4; q1: AP = 1, INP = 1. CMC = mean([0,1,1,1,1], [1,1,1,1,1]).
    np.testing.assert_allclose(cmc, [0.5, 1.0, 1.0, 1.0, 1.0])
    assert m_ap == pytest.approx(0.75)
    assert m_inp == pytest.approx(0.75)


def test_hand_worked_trapezoid_ap(hand_case):
    distmat, q_pids, g_pids, q_cams, g_cams = hand_case
    with pytest.warns(UserWarning):
        _, m_ap = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=5, ap="trapezoid")
    # Official compute_AP.m on q0: hit at rank 2: (p_before 0/1 + 1/2)/2 * 1/2; hit at rank 4:
    # (p_before 1/3 + 2/4)/2 * 1/2 -> 1/8 + 5/24 = 1/3. q1: hit at rank 1: (1.0 + 1)/2 = 1.
    assert m_ap == pytest.approx((1 / 3 + 1) / 2)


def test_ties_are_ranked_by_gallery_index():
    q_pids, q_cams = np.array([1]), np.array([0])
    # equal distances: the wrong match g0 comes first, so the hit is at rank 2
    cmc, m_ap = evaluate(np.array([[0.5, 0.5]]), q_pids, np.array([2, 1]), q_cams, np.array([1, 1]), max_rank=2)
    np.testing.assert_allclose(cmc, [0.0, 1.0])
    assert m_ap == pytest.approx(0.5)
    # swap the gallery order: the hit now wins the tie
    cmc, m_ap = evaluate(np.array([[0.5, 0.5]]), q_pids, np.array([1, 2]), q_cams, np.array([1, 1]), max_rank=2)
    np.testing.assert_allclose(cmc, [1.0, 1.0])
    assert m_ap == pytest.approx(1.0)


def test_junk_and_same_camera_are_removed_not_counted_wrong():
    # hit would be rank 3 if the junk (-1) and the same-camera image of the same id counted
    g_pids, g_cams = np.array([-1, 7, 7]), np.array([1, 0, 1])
    cmc, m_ap = evaluate(np.array([[0.1, 0.2, 0.3]]), np.array([7]), g_pids, np.array([0]), g_cams, max_rank=3)
    np.testing.assert_allclose(cmc, [1.0, 1.0, 1.0])
    assert m_ap == pytest.approx(1.0)


def test_distractors_count_as_wrong_matches():
    g_pids, g_cams = np.array([0, 0, 4]), np.array([1, 2, 1])
    cmc, m_ap = evaluate(np.array([[0.1, 0.2, 0.3]]), np.array([4]), g_pids, np.array([0]), g_cams, max_rank=3)
    np.testing.assert_allclose(cmc, [0.0, 0.0, 1.0])
    assert m_ap == pytest.approx(1 / 3)


def test_all_queries_without_match_is_an_error():
    with pytest.raises(ValueError, match="no query has a valid match"):
        evaluate(np.zeros((1, 2)), np.array([1]), np.array([2, 3]), np.array([0]), np.array([1, 1]), max_rank=2)


@pytest.mark.parametrize("seed", range(6))
def test_random_cases_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    num_q, num_g, num_ids = rng.integers(5, 40), rng.integers(5, 80), rng.integers(2, 8)
    q_pids, g_pids = rng.integers(1, num_ids, num_q), rng.integers(-1, num_ids, num_g)
    q_cams, g_cams = rng.integers(0, 3, num_q), rng.integers(0, 3, num_g)
    if seed % 3 == 0:
        distmat = rng.integers(-2, 3, (num_q, num_g)).astype(np.float32)  # many ties, negative values
    elif seed % 3 == 1:
        distmat = rng.normal(size=(num_q, num_g))
    else:
        distmat = rng.random((num_q, num_g)).astype(np.float32)
    max_rank = int(min(10, num_g))
    ref = brute_force(distmat, q_pids, g_pids, q_cams, g_cams, max_rank)
    ref_trap = brute_force(distmat, q_pids, g_pids, q_cams, g_cams, max_rank, ap="trapezoid")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmc, m_ap, m_inp = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank, return_minp=True,
                                    budget=int(rng.integers(1, 300)))
        _, trap = evaluate(torch.from_numpy(distmat), torch.from_numpy(q_pids), g_pids.tolist(), q_cams, g_cams,
                           max_rank=max_rank, ap="trapezoid")
    np.testing.assert_allclose(cmc, ref[0], atol=1e-12)
    assert m_ap == pytest.approx(ref[1], abs=1e-12)
    assert m_inp == pytest.approx(ref[2], abs=1e-12)
    assert trap == pytest.approx(ref_trap[1], abs=1e-12)


def test_max_rank_larger_than_gallery_warns_and_shortens():
    with pytest.warns(UserWarning, match="shortened to 3"):
        cmc, _ = evaluate(np.array([[0.3, 0.2, 0.1]]), np.array([1]), np.array([2, 1, 3]), np.array([0]),
                          np.array([1, 1, 1]), max_rank=50)
    np.testing.assert_allclose(cmc, [0.0, 1.0, 1.0])


def test_bad_inputs_raise_value_error():
    d = np.zeros((2, 3))
    args = (np.array([1, 2]), np.array([1, 2, 3]), np.array([0, 0]), np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="q_pids"):
        evaluate(d, np.array([1]), *args[1:])
    with pytest.raises(ValueError, match="protocol"):
        evaluate(d, *args, protocol="viper")
    with pytest.raises(ValueError, match="ap must be"):
        evaluate(d, *args, ap="11-point")
    with pytest.raises(ValueError, match="NaN"):
        evaluate(np.array([[0.1, np.nan, 0.2], [0.1, 0.2, 0.3]]), *args, max_rank=3)
    with pytest.raises(ValueError, match="2-D"):
        evaluate(np.zeros(3), *args)


def cuhk03_expected_cmc(distmat, q_pids, g_pids, q_cams, g_cams, max_rank):
    """Exact expectation of the single-shot CMC: enumerate every choice of one image per identity."""
    curves = []
    for i in range(distmat.shape[0]):
        kept = [j for j in sorted(range(distmat.shape[1]), key=lambda j: (distmat[i, j], j))
                if g_pids[j] != -1 and not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i])]
        if not any(g_pids[j] == q_pids[i] for j in kept):
            continue
        groups = [[j for j in kept if g_pids[j] == p] for p in sorted({g_pids[j] for j in kept})]
        total = np.zeros(max_rank)
        combos = list(itertools.product(*groups))
        for chosen in combos:
            ranked = [j for j in kept if j in chosen]
            rank = next(r for r, j in enumerate(ranked) if g_pids[j] == q_pids[i]) + 1
            total += [1.0 if rank <= r + 1 else 0.0 for r in range(max_rank)]
        curves.append(total / len(combos))
    return np.mean(curves, axis=0)


def test_cuhk03_single_shot_matches_exact_expectation():
    rng = np.random.default_rng(3)
    g_pids = np.array([1, 1, 1, 2, 2, 3, 3, 3, 4, -1])
    g_cams = rng.integers(0, 2, len(g_pids))
    q_pids, q_cams = np.array([1, 2, 3, 4]), np.array([0, 1, 0, 1])
    g_cams[8] = 0  # pid 4's only image must be in the other camera
    distmat = rng.random((4, len(g_pids)))
    expected = cuhk03_expected_cmc(distmat, q_pids, g_pids, q_cams, g_cams, 4)
    cmc, _ = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=4, protocol="cuhk03", num_repeats=4000)
    np.testing.assert_allclose(cmc, expected, atol=0.03)


def test_cuhk03_deterministic_per_seed_and_independent_of_chunking():
    rng = np.random.default_rng(0)
    g_pids, g_cams = rng.integers(1, 15, 120), rng.integers(0, 2, 120)
    q_pids, q_cams = rng.integers(1, 15, 30), rng.integers(0, 2, 30)
    distmat = rng.random((30, 120))
    kw = dict(max_rank=10, protocol="cuhk03")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, seed=1, **kw)
        b = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, seed=1, budget=150, **kw)
        c = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, seed=2, **kw)
        market = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == pytest.approx(b[1], rel=1e-12)
    assert not np.array_equal(a[0], c[0])
    assert a[1] == pytest.approx(market[1])  # AP uses the full ranking, as in the usual toolkits


def test_cuhk03_with_one_image_per_identity_equals_market_cmc():
    rng = np.random.default_rng(1)
    g_pids, g_cams = np.arange(1, 21), np.ones(20, dtype=int)
    q_pids, q_cams = rng.permutation(np.arange(1, 21))[:8], np.zeros(8, dtype=int)
    distmat = rng.random((8, 20))
    cmc_c, _ = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=10, protocol="cuhk03")
    cmc_m, _ = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    np.testing.assert_allclose(cmc_c, cmc_m)


def test_duke_protocol_is_the_market_rule_and_torch_input_works():
    rng = np.random.default_rng(4)
    distmat = rng.random((10, 40)).astype(np.float32)
    ids = (rng.integers(1, 6, 10), rng.integers(1, 6, 40), rng.integers(0, 3, 10), rng.integers(0, 3, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        market = evaluate(distmat, *ids, max_rank=5, return_minp=True)
        duke = evaluate(torch.from_numpy(distmat), *map(torch.from_numpy, ids), max_rank=5, protocol="duke",
                        return_minp=True)
    np.testing.assert_array_equal(market[0], duke[0])
    assert market[1:] == pytest.approx(duke[1:])
