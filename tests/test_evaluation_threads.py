"""Tests for the re-ranking's thread helpers (sagkit/evaluation/threads.py)."""

import threading

import pytest
import torch

from sagkit.evaluation import re_rank_features
from sagkit.evaluation.threads import run_jobs, split_range, workers_for
from test_evaluation_rerank import random_problem


def test_run_jobs_keeps_order_gives_each_job_one_thread_and_restores_the_count():
    torch.set_num_threads(2)
    seen = []

    def job(i):
        seen.append((threading.get_ident(), torch.get_num_threads()))
        return i * i

    try:
        assert run_jobs([lambda i=i: job(i) for i in range(5)], 2) == [0, 1, 4, 9, 16]
        assert {threads for _, threads in seen} == {1}
        assert threading.get_ident() not in {ident for ident, _ in seen}
        assert torch.get_num_threads() == 2
        seen.clear()
        assert run_jobs([lambda: job(3)], 2) == [9] and seen == [(threading.get_ident(), 2)]  # one job: caller's thread
    finally:
        torch.set_num_threads(1)


def test_run_jobs_passes_on_a_job_error_and_still_restores_the_count():
    torch.set_num_threads(2)

    def fail():
        raise ValueError("job 2 broke")

    try:
        with pytest.raises(ValueError, match="job 2 broke"):
            run_jobs([lambda: 1, fail], 2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_split_range_covers_the_range_in_parts_of_equal_length_or_weight():
    assert split_range(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert split_range(2, 5) == [(0, 1), (1, 2)]
    assert split_range(5, 1) == [(0, 5)]
    weights = [10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    parts = split_range(len(weights), 2, weights)
    assert parts[0][0] == 0 and parts[-1][1] == len(weights)
    assert all(a1 == b0 for (_, a1), (b0, _) in zip(parts, parts[1:]))
    assert parts == [(0, 1), (1, 11)]


def test_workers_for_follows_torch_threads_on_the_cpu_only():
    torch.set_num_threads(2)
    try:
        assert workers_for(torch.device("cpu")) == 2
        assert workers_for(torch.device("cuda")) == 1
    finally:
        torch.set_num_threads(1)


def test_re_rank_features_is_the_same_with_one_thread_or_several():
    """Threads share out the all-pairs pass and the sparse steps (V, query expansion, Jaccard) in parts;
    the result is the same to the bit."""
    qf, gf, *_ = random_problem(7, 40, 300, dim=8)
    qf, gf = qf.astype("float32"), gf.astype("float32")
    one = re_rank_features(qf, gf, k1=6, k2=3)
    torch.set_num_threads(3)
    try:
        several = re_rank_features(qf, gf, k1=6, k2=3)
    finally:
        torch.set_num_threads(1)
    assert (one == several).all()
