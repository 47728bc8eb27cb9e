"""Benchmark: sagkit.evaluation.evaluate against the straightforward per-query numpy loop.

The baseline is the loop most re-id code uses (one full argsort per query, boolean masks, cumsum),
with a stable argsort so that its tie order is the one sagkit documents (by gallery index).
Both run side by side on the same Market-sized distance matrix (3,368 x 19,732, 750 identities,
6 cameras, 2,793 distractors with pid 0 and 3,819 junk images with pid -1).

    python benchmarks/bench_evaluate.py            # full Market size
    python benchmarks/bench_evaluate.py --quick    # a tenth of it
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sagkit.evaluation import compute_distance_matrix, evaluate  # noqa: E402


def market_like(num_query=3368, num_gallery=19732, num_ids=750, num_cams=6, num_distractors=2793,
                num_junk=3819, dim=128, noise=1.15, seed=0):
    """Synthetic features with Market-1501's test structure -> (q_feats, g_feats, q_pids, g_pids, q_cams, g_cams).

    Each identity has a centre; each image is centre + camera shift + noise. Queries: up to one per
    (identity, camera) the identity was seen in. Gallery: the rest of the identity images, distractors
    (pid 0, random features) and junk (pid -1, features near a random identity).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids + 1, dim))
    cam_shift = rng.normal(scale=0.5, size=(num_cams, dim))
    pids = np.arange(1, num_ids + 1)
    q_pids, q_cams = [], []
    while len(q_pids) < num_query:
        pid = rng.choice(pids)
        cam = rng.integers(num_cams)
        q_pids.append(pid)
        q_cams.append(cam)
    q_pids, q_cams = np.array(q_pids[:num_query]), np.array(q_cams[:num_query])
    n_real = num_gallery - num_distractors - num_junk
    g_pids = np.concatenate([pids, rng.choice(pids, n_real - num_ids), np.zeros(num_distractors, int),
                             -np.ones(num_junk, int)])
    g_cams = rng.integers(num_cams, size=num_gallery)
    g_cams[:num_ids] = (q_cams[np.searchsorted(np.sort(q_pids), pids).clip(max=num_query - 1)] + 1) % num_cams
    junk_like = rng.integers(1, num_ids + 1, num_junk)

    def images(pid_arr, cam_arr, source):
        base = centres[np.where(source > 0, source, 0)]
        return base + cam_shift[cam_arr] + noise * rng.normal(size=(len(pid_arr), dim))

    q_feats = images(q_pids, q_cams, q_pids)
    g_source = g_pids.copy()
    g_source[g_pids == -1] = junk_like
    g_feats = images(g_pids, g_cams, g_source)
    g_feats[g_pids == 0] = rng.normal(size=(num_distractors, dim)) * 1.4
    perm = rng.permutation(num_gallery)
    return (q_feats.astype(np.float32), g_feats[perm].astype(np.float32), q_pids, g_pids[perm], q_cams, g_cams[perm])


def evaluate_loop(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Straightforward per-query loop: full (stable) argsort, masks, cumsum. Returns (cmc, mAP, mINP)."""
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        gp, gc = g_pids[order], g_camids[order]
        keep = ~(((gp == q_pids[i]) & (gc == q_camids[i])) | (gp == -1))
        raw = (gp[keep] == q_pids[i]).astype(np.int64)
        if not raw.any():
            continue
        cmc = raw.cumsum()
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_rel = raw.sum()
        hits = raw.cumsum()
        precision = hits / np.arange(1, len(hits) + 1)
        all_ap.append((precision * raw).sum() / num_rel)
        last = np.nonzero(raw)[0].max()
        all_inp.append(hits[last] / (last + 1.0))
    return np.mean(np.asarray(all_cmc, dtype=np.float64), 0), float(np.mean(all_ap)), float(np.mean(all_inp))


def _best_of(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of Market's size")
    parser.add_argument("--repeats", type=int, default=3, help="timings are the best of this many runs")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    sizes = dict(num_query=int(3368 * scale), num_gallery=int(19732 * scale), num_ids=int(750 * scale),
                 num_distractors=int(2793 * scale), num_junk=int(3819 * scale))
    qf, gf, qp, gp, qc, gc = market_like(**sizes)
    distmat = compute_distance_matrix(qf, gf).numpy()
    print(f"distance matrix {distmat.shape[0]} x {distmat.shape[1]} float32, "
          f"{len(np.unique(gp[gp > 0]))} identities, {int((gp == 0).sum())} distractors, {int((gp == -1).sum())} junk")
    t_loop, (cmc_l, map_l, inp_l) = _best_of(lambda: evaluate_loop(distmat, qp, gp, qc, gc), args.repeats)
    t_fast, (cmc_f, map_f, inp_f) = _best_of(lambda: evaluate(distmat, qp, gp, qc, gc, return_minp=True), args.repeats)
    diff = max(float(np.abs(cmc_l - cmc_f).max()), abs(map_l - map_f), abs(inp_l - inp_f))
    rows = [("per-query numpy loop", t_loop, map_l, inp_l, cmc_l), ("sagkit evaluate", t_fast, map_f, inp_f, cmc_f)]
    print(f"best of {args.repeats} run(s) each, side by side in this process")
    print(f"{'method':<24}{'time (s)':>10}{'rank-1':>9}{'rank-5':>9}{'rank-10':>9}{'mAP':>9}{'mINP':>9}")
    for name, t, m, inp, c in rows:
        print(f"{name:<24}{t:>10.3f}{c[0]:>9.4f}{c[4]:>9.4f}{c[9]:>9.4f}{m:>9.4f}{inp:>9.4f}")
    print(f"speed-up {t_loop / t_fast:.1f}x, max |difference| over CMC, mAP, mINP = {diff:.2e}")
    return {"time_loop_s": t_loop, "time_sagkit_s": t_fast, "speedup": t_loop / t_fast, "max_abs_diff": diff,
            "mAP": map_f, "rank1": float(cmc_f[0])}


if __name__ == "__main__":
    main()
