"""Python threads for the CPU re-ranking: one job per thread, each with one torch intra-op thread.

The all-pairs pass and the sparse steps are made of many operations that run well on one core each,
so the work is cut into parts that run side by side (torch and numpy release the GIL in their
kernels), rather than every small operation being shared out over all cores.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence, TypeVar

import torch

T = TypeVar("T")


def workers_for(device: torch.device) -> int:
    """Threads to use on ``device``: torch's intra-op thread count on the CPU, 1 elsewhere (one stream of
    GPU work)."""
    return max(1, torch.get_num_threads()) if device.type == "cpu" else 1


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` inside the block and restored after it (also on an
    error); :func:`workers_for` follows it, so the CPU re-ranking runs that many jobs side by side."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_jobs(jobs: Sequence[Callable[[], T]], workers: int) -> list[T]:
    """Results of ``jobs`` in order, run on up to ``workers`` threads with torch set to one intra-op thread
    each; with one worker (or one job) on the caller's thread with its settings. The caller's thread
    count is restored (set_num_threads in any thread changes it for all)."""
    workers = min(workers, len(jobs))
    if workers <= 1:
        return [job() for job in jobs]
    threads = torch.get_num_threads()

    def one_thread(job):
        torch.set_num_threads(1)
        return job()

    try:
        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(one_thread, job) for job in jobs]
            return [f.result() for f in futures]
    finally:
        torch.set_num_threads(threads)


def split_range(n: int, parts: int, weights: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """[0, n) cut into at most ``parts`` non-empty consecutive ranges of about equal total weight (default:
    equal lengths); ``weights`` (n,) the work of each item."""
    parts = max(1, min(parts, n))
    if weights is None:
        bounds = [n * p // parts for p in range(parts + 1)]
    else:
        total, acc, bounds = sum(weights), 0, [0]
        for i, w in enumerate(weights):
            acc += w
            if len(bounds) < parts and acc * parts >= total * len(bounds) and i + 1 < n:
                bounds.append(i + 1)
        bounds.append(n)
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
