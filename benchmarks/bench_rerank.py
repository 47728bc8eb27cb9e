"""Benchmark: sagkit k-reciprocal re-ranking against the straightforward dense numpy implementation.

Each method runs in its own subprocess, which reports its own time and peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, so peaks never mix); results are compared in the
parent. Sizes:

    small   1,000 queries + 5,000 gallery    dense numpy baseline vs sagkit re_rank (+ re_rank_features)
    market  3,368 + 19,732 (Market-1501)     the same (the baseline needs about 12 GB)
    msmt    11,659 + 82,161, 512-d features  sagkit re_rank_features only (MSMT17-sized)

For re_rank_features the worker also measures, in the same process, the bound on its all-pairs
work: plain fp32 products feats @ feats.T of all N x N pairs in 2048 x 2048 tiles (the full bound),
and of the tiles of the upper block triangle only (the halved bound, which the symmetry of the
distance matrix allows), with the same thread count. The halved bound is timed before and after the
re-ranking and averaged, as other work on a shared machine changes the speed; the printed ratios
time / bound do not depend on the machine the way times do.

    python benchmarks/bench_rerank.py                    # small + market + msmt
    python benchmarks/bench_rerank.py --quick            # small only
    python benchmarks/bench_rerank.py --sizes small,msmt
    python benchmarks/bench_rerank.py --sizes market --methods sagkit,features   # without the 12 GB baseline
    python benchmarks/bench_rerank.py --sizes msmt --threads 2 --phases           # and where the time goes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {
    "small": dict(num_query=1000, num_gallery=5000, num_ids=250, dim=128),
    "market": dict(num_query=3368, num_gallery=19732, num_ids=750, dim=128),
    "msmt": dict(num_query=11659, num_gallery=82161, num_ids=3060, dim=512),
}


def features(num_query, num_gallery, num_ids, dim, seed=0):
    """Clustered float32 features: identity centre + noise; -> (q_feats, g_feats, q_pids, g_pids, q_cams, g_cams)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids, dim)).astype(np.float32)
    q_pids = rng.integers(num_ids, size=num_query)
    g_pids = np.concatenate([np.arange(num_ids), rng.integers(num_ids, size=num_gallery - num_ids)])
    noise = np.float32(1.1)
    q = centres[q_pids] + noise * rng.normal(size=(num_query, dim)).astype(np.float32)
    g = centres[g_pids] + noise * rng.normal(size=(num_gallery, dim)).astype(np.float32)
    q_cams = rng.integers(6, size=num_query)
    g_cams = (rng.integers(1, 6, size=num_gallery) + np.resize(q_cams, num_gallery)) % 6
    return q, g, q_pids, g_pids, q_cams, g_cams


def rerank_dense_numpy(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    """The usual algorithm written straightforwardly with dense numpy arrays (float32, as the usual code)."""
    dist = np.concatenate([np.concatenate([q_q_dist, q_g_dist], axis=1),
                           np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0)
    dist = np.power(dist, 2).astype(np.float32)
    dist = np.transpose(dist / np.max(dist, axis=0))
    num_query, num_all = q_g_dist.shape[0], dist.shape[0]
    weights = np.zeros_like(dist, dtype=np.float32)
    rank = np.argsort(dist).astype(np.int32)
    half = int(np.around(k1 / 2.0))

    def reciprocal(i, k):
        forward = rank[i, :k + 1]
        backward = rank[forward, :k + 1]
        return forward[np.where(backward == i)[0]]

    for i in range(num_all):
        nearest = reciprocal(i, k1)
        expanded = nearest
        for candidate in nearest:
            cand_set = reciprocal(candidate, half)
            if len(np.intersect1d(cand_set, nearest)) > 2.0 / 3 * len(cand_set):
                expanded = np.append(expanded, cand_set)
        expanded = np.unique(expanded)
        w = np.exp(-dist[i, expanded])
        weights[i, expanded] = w / np.sum(w)
    dist = dist[:num_query]
    if k2 != 1:
        expanded_w = np.zeros_like(weights, dtype=np.float32)
        for i in range(num_all):
            expanded_w[i] = np.mean(weights[rank[i, :k2]], axis=0)
        weights = expanded_w
        del expanded_w
    del rank
    inverted = [np.where(weights[:, j] != 0)[0] for j in range(num_all)]
    jaccard = np.zeros_like(dist, dtype=np.float32)
    for i in range(num_query):
        overlap = np.zeros(num_all, dtype=np.float32)
        nonzero = np.where(weights[i] != 0)[0]
        for j in nonzero:
            rows = inverted[j]
            overlap[rows] = overlap[rows] + np.minimum(weights[i, j], weights[rows, j])
        jaccard[i] = 1 - overlap / (2.0 - overlap)
    final = jaccard * (1 - lambda_value) + dist * lambda_value
    return final[:, num_query:]


BOUND_TILE = 2048


def product_bound(feats, upper_only: bool):
    """(wall, CPU) seconds for the plain products feats @ feats.T (N x D float32 tensor) in BOUND_TILE
    square tiles: all tiles, or (upper_only) those of the upper block triangle, the diagonal ones included."""
    import torch

    n, t = feats.shape[0], BOUND_TILE
    buf = torch.empty(t * t, dtype=feats.dtype)
    t0, c0 = time.perf_counter(), time.process_time()
    for a in range(0, n, t):
        rows = feats[a:a + t]
        for c in range(a if upper_only else 0, n, t):
            cols = feats[c:c + t]
            torch.mm(rows, cols.t(), out=buf[: rows.shape[0] * cols.shape[0]].view(rows.shape[0], cols.shape[0]))
    return time.perf_counter() - t0, time.process_time() - c0


def _bounds(qf, gf, seconds: float, cpu_seconds: float, halved_before) -> dict:
    """The bounds for re_rank_features on (qf, gf) and the ratios time / bound, in wall and in CPU time
    (CPU time does not count the time the process waited for a core that other work held)."""
    import torch

    feats = torch.cat([torch.from_numpy(qf), torch.from_numpy(gf)])
    after = product_bound(feats, True)
    halved, halved_cpu = ((x + y) / 2 for x, y in zip(halved_before, after))
    full, full_cpu = product_bound(feats, False)
    flops = 2.0 * feats.shape[0] ** 2 * feats.shape[1]
    return dict(bound_s=full, halved_bound_s=halved, bound_gflops=flops / full / 1e9,
                time_over_bound=seconds / full, time_over_halved=seconds / halved,
                cpu_s=cpu_seconds, cpu_over_bound=cpu_seconds / full_cpu, cpu_over_halved=cpu_seconds / halved_cpu)


def time_phases(phases: dict) -> None:
    """Wrap the steps of re_rank_features so that each call adds its wall time to ``phases`` (seconds by
    name). The tile products and kernel reads run in several threads at once: theirs are sums over threads."""
    import threading

    from sagkit.evaluation.rerank import k_reciprocal as rerank

    from sagkit.evaluation.rerank import symmetric_pass

    from sagkit.evaluation.rerank import tile_kernel

    lock = threading.Lock()

    def wrap(owner, name, label):
        inner = getattr(owner, name)
        phases[label] = 0.0  # printed in this order

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                with lock:
                    phases[label] = phases.get(label, 0.0) + time.perf_counter() - t0
        setattr(owner, name, timed)

    wrap(rerank, "upper_pass", "all-pairs pass")
    wrap(symmetric_pass, "key_tile", "  tile products (sum over threads)")
    wrap(tile_kernel.TileHeaps, "both", "  tile reads (sum over threads)")
    wrap(tile_kernel, "merge_heaps", "  merging the threads' heaps")
    wrap(symmetric_pass, "_settle", "  settling the neighbour order")
    wrap(rerank, "build_v", "V")
    wrap(rerank, "query_expand", "query expansion")
    wrap(rerank, "jaccard_into", "Jaccard")


def _worker(method: str, size: str, out_path: str, threads: int, phases: bool = False) -> None:
    """Run one method on one size in this process; print a JSON line with time and peak memory."""
    import torch

    from sagkit.evaluation import compute_distance_matrix, evaluate, re_rank, re_rank_features

    torch.set_num_threads(threads)
    phase_times = {}
    if phases:
        time_phases(phase_times)

    qf, gf, qp, gp, qc, gc = features(**SIZES[size])
    bounds = {}
    if method == "features":
        halved_before = product_bound(torch.cat([torch.from_numpy(qf), torch.from_numpy(gf)]), True)
        t0, c0 = time.perf_counter(), time.process_time()
        result = re_rank_features(qf, gf)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        bounds = _bounds(qf, gf, elapsed, cpu, halved_before)
        qg = None
    else:
        qg = compute_distance_matrix(qf, gf).numpy()
        qq = compute_distance_matrix(qf, qf).numpy()
        gg = compute_distance_matrix(gf, gf).numpy()
        t0 = time.perf_counter()
        result = rerank_dense_numpy(qg, qq, gg) if method == "numpy" else re_rank(qg, qq, gg)
        elapsed = time.perf_counter() - t0
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        del qq, gg
    cmc, m_ap = evaluate(result, qp, gp, qc, gc)
    report = dict(method=method, size=size, seconds=elapsed, peak_gib=peak_gib, mAP=m_ap, rank1=float(cmc[0]),
                  threads=torch.get_num_threads(), **bounds)
    if phase_times:
        report["phases"] = phase_times
    if qg is not None:
        cmc0, map0 = evaluate(qg, qp, gp, qc, gc)
        report.update(mAP_plain=map0, rank1_plain=float(cmc0[0]))
    if out_path:
        np.save(out_path, result)
    print(json.dumps(report), flush=True)


def _run_child(method: str, size: str, out_path: str, threads: int, phases: bool = False) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method, "--sizes", size, "--out", out_path,
           "--threads", str(threads)] + (["--phases"] if phases else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{method} on {size} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only the small size")
    parser.add_argument("--sizes", default=None, help="comma-separated subset of small,market,msmt")
    parser.add_argument("--methods", default=None,
                        help="comma-separated subset of numpy,sagkit,features (default: all that fit the size)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads in each worker (default 1: the numpy baseline uses one core too)")
    parser.add_argument("--phases", action="store_true",
                        help="also time the steps of re_rank_features (adds a little overhead per tile)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.sizes, args.out, args.threads, args.phases)
        return []
    sizes = args.sizes.split(",") if args.sizes else (["small"] if args.quick else ["small", "market", "msmt"])
    for s in sizes:
        if s not in SIZES:
            raise ValueError(f"unknown size {s!r}; choose from {sorted(SIZES)}")
    reports = []
    print(f"each method in its own process, {args.threads} torch thread(s); time = the re-ranking call only; "
          "peak RSS = whole process (inputs included)")
    print(f"{'size':<8}{'method':<28}{'time (s)':>10}{'peak RSS (GiB)':>16}{'mAP':>8}{'rank-1':>8}  max |diff| vs numpy")
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            methods = ["features"] if size == "msmt" else ["numpy", "sagkit", "features"]
            if args.methods:
                methods = [m for m in methods if m in args.methods.split(",")]
            results = {}
            for method in methods:
                path = os.path.join(tmp, f"{size}_{method}.npy") if "numpy" in methods else ""
                rep = _run_child(method, size, path, args.threads, args.phases and method == "features")
                if path:
                    results[method] = np.load(path, mmap_mode="r")
                if "numpy" in results and method != "numpy":
                    rep["max_abs_diff_vs_numpy"] = float(np.abs(results["numpy"] - results[method]).max())
                reports.append(rep)
                name = {"numpy": "dense numpy (usual)", "sagkit": "sagkit re_rank",
                        "features": "sagkit re_rank_features"}[method]
                diff = rep.get("max_abs_diff_vs_numpy")
                print(f"{size:<8}{name:<28}{rep['seconds']:>10.2f}{rep['peak_gib']:>16.2f}{rep['mAP']:>8.4f}"
                      f"{rep['rank1']:>8.4f}  {'' if diff is None else f'{diff:.2e}'}", flush=True)
                if "bound_s" in rep:
                    print(f"{'':<8}bound (all-pairs fp32 products): full {rep['bound_s']:.2f} s "
                          f"({rep['bound_gflops']:.0f} GFLOP/s), halved {rep['halved_bound_s']:.2f} s; "
                          f"time / bound {rep['time_over_bound']:.2f}, time / halved bound "
                          f"{rep['time_over_halved']:.2f}; in CPU time ({rep['cpu_s']:.1f} s): "
                          f"{rep['cpu_over_bound']:.2f} and {rep['cpu_over_halved']:.2f}", flush=True)
                for label, seconds in rep.get("phases", {}).items():
                    print(f"{'':<8}{label:<40}{seconds:>8.2f} s", flush=True)
                if "mAP_plain" in rep and method == methods[0]:
                    print(f"{'':<8}{'(no re-ranking)':<28}{'':>10}{'':>16}{rep['mAP_plain']:>8.4f}{rep['rank1_plain']:>8.4f}")
            if "numpy" in results and "sagkit" in results:
                base = next(r for r in reports if r["size"] == size and r["method"] == "numpy")
                fast = next(r for r in reports if r["size"] == size and r["method"] == "sagkit")
                print(f"{size:<8}speed-up {base['seconds'] / fast['seconds']:.1f}x, "
                      f"memory {base['peak_gib'] / fast['peak_gib']:.1f}x less")
            results.clear()
    return reports


if __name__ == "__main__":
    main()
