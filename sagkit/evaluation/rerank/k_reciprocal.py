"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), sparse and chunked, in torch.

Reproduces the implementation everyone uses (``re_ranking`` of zhunzhong07/person-re-ranking's
python-version, copied as torchreid/utils/rerank.py), step by step:

1. ``D`` = [[q_q, q_g], [q_g^T, g_g]] squared (in the input dtype) and cast to float32 (N x N, N = q + g);
   ``original_dist = (D / D.max(axis=0)).T``, i.e. row i is column i of D divided by its maximum.
2. ``initial_rank``: row-wise ascending order of original_dist. Only the first max(k1 + 1, k2) entries
   are ever used, so they come from ``torch.topk`` per chunk of rows (from features on the CPU: from
   the thresholded pass of ``symmetric_pass``); ties are ordered by index.
3. R(i) = the k-reciprocal neighbours among the k1 + 1 nearest; each candidate c in R(i) whose own
   round(k1/2)-reciprocal set shares more than 2/3 of its elements with R(i) adds that set.
   V[i, j] = exp(-original_dist[i, j]) normalised over the expanded set (float32, as in the usual code).
4. Local query expansion (k2 != 1): V_qe[i] = mean of V over the k2 nearest rows of i.
5. Jaccard distance for query rows: 1 - s / (2 - s), s[g] = sum_j min(V_qe[i, j], V_qe[g, j]);
   result = (1 - lambda) * jaccard + lambda * original_dist, query rows x gallery columns.

V and V_qe are kept sparse (CSR: at most N (k1+1)(round(k1/2)+2) nonzeros, ``rerank_sparse``), the
Jaccard sums are computed only for query rows from gallery postings (an inverted index), and only the
q x g result is dense; where a sum is 0 (most pairs) the result is one multiply-add of original_dist.
``re_rank`` reads the given matrices in column blocks. ``re_rank_features`` never holds any N x N or
g x g matrix: on the CPU it computes each pair once, over the upper block triangle of the symmetric D
(``symmetric_pass``: half the matrix products of a full pass); on other devices in row chunks.

Tolerance: against the usual float32 implementation the result agrees to about 1e-7 (float32
rounding of sums taken in another order; neighbour sets are identical unless distances tie); the
tests and the GPU check assert ``TOLERANCE`` = 1e-5. The original 2017 script kept V in float16: against that, differences up to ~1e-3.
"""

from __future__ import annotations

import numpy as np
import torch

from sagkit.evaluation.distance import as_tensor, check_metric, distance_block, paired_distance, prepare_right
from sagkit.evaluation.rerank.sparse import build_v, jaccard_into, query_expand
from sagkit.evaluation.rerank.symmetric_pass import nearest_ordered, upper_pass
from sagkit.evaluation.threads import torch_threads, workers_for

TOLERANCE = 1e-5  # max abs difference against the usual float32 implementation, or between devices


def _square_f32(x: torch.Tensor) -> torch.Tensor:
    """x**2 in x's dtype, then float32 (np.power(x, 2).astype(np.float32))."""
    return (x * x).to(torch.float32)


def _square_transposed(dst: torch.Tensor, src: torch.Tensor, tile: int = 256) -> None:
    """dst (c x m) <- (src.T)**2 for src (m x c) of dst's dtype; on CPU in row tiles through numpy."""
    if dst.device.type != "cpu":
        torch.mul(src.t(), src.t(), out=dst)
        return
    d, s = dst.numpy(), src.numpy()
    for r in range(0, s.shape[0], tile):
        np.square(s[r:r + tile].T, out=d[:, r:r + tile])


def _gather2d(block: torch.Tensor, r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """block[r, c] for index vectors, without copying a non-contiguous block."""
    flat = r * block.shape[1] + c
    return block.view(-1).index_select(0, flat) if block.is_contiguous() else torch.take(block, flat)


class _MatrixSource:
    """Squared distances from the three given blocks; rows(a, b)[i, j] = D[j, a + i] (float32)."""

    def __init__(self, q_g, q_q, g_g):
        self.qg = as_tensor(q_g, "q_g_dist").detach()
        self.qq = as_tensor(q_q, "q_q_dist").detach()
        self.gg = as_tensor(g_g, "g_g_dist").detach()
        for name, t in (("q_g_dist", self.qg), ("q_q_dist", self.qq), ("g_g_dist", self.gg)):
            if t.dim() != 2:
                raise ValueError(f"{name} must be a 2-D distance matrix, got shape {tuple(t.shape)}")
            if not t.is_floating_point():
                raise ValueError(f"{name} must hold floating-point distances, got dtype {t.dtype}")
        q, g = self.qg.shape
        if tuple(self.qq.shape) != (q, q) or tuple(self.gg.shape) != (g, g):
            raise ValueError(f"shapes do not fit: q_g_dist {tuple(self.qg.shape)} needs q_q_dist ({q}, {q}) and "
                             f"g_g_dist ({g}, {g}), got {tuple(self.qq.shape)} and {tuple(self.gg.shape)}")
        self.device = self.qg.device
        self.dtype = torch.promote_types(torch.promote_types(self.qg.dtype, self.qq.dtype), self.gg.dtype)
        if self.dtype == torch.bfloat16:
            self.dtype = torch.float32
        self.qq = self.qq.to(self.device)
        self.gg = self.gg.to(self.device)
        self.num_query, self.n = q, q + g
        self.pair_batch = 1 << 20

    def scan(self, k_need: int, chunk: int):
        return _scan_rows(self, k_need, chunk)

    def rows(self, a: int, b: int, out: torch.Tensor) -> torch.Tensor:
        """out (b - a, N float32) <- squared columns a..b-1 of D, i.e. rows of D^T."""
        q = self.num_query
        buf = out if self.dtype == torch.float32 else torch.empty(out.shape, dtype=self.dtype, device=self.device)
        if a < q:
            e = min(b, q)
            _square_transposed(buf[: e - a, :q], self.qq[:, a:e].to(self.dtype))
            torch.mul(self.qg[a:e].to(self.dtype), self.qg[a:e].to(self.dtype), out=buf[: e - a, q:])
        if b > q:
            s = max(a, q)
            _square_transposed(buf[s - a:, :q], self.qg[:, s - q: b - q].to(self.dtype))
            _square_transposed(buf[s - a:, q:], self.gg[:, s - q: b - q].to(self.dtype))
        if buf is not out:
            out.copy_(buf)
        return out

    def pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """D[j, i] for index vectors (row i of original_dist reads column i of D), float32."""
        q = self.num_query
        r, c = j, i
        out = torch.empty(r.shape, dtype=torch.float32, device=self.device)
        rq, cq = r < q, c < q
        for mask, block, rr, cc in ((rq & cq, self.qq, r, c), (rq & ~cq, self.qg, r, c - q),
                                    (~rq & cq, self.qg, c, r - q), (~rq & ~cq, self.gg, r - q, c - q)):
            if bool(mask.any()):
                out[mask] = _square_f32(_gather2d(block, rr[mask], cc[mask]).to(self.dtype))
        return out


class _FeatureSource:
    """Squared distances computed from features, as re_rank would get them from compute_distance_matrix.

    D is symmetric here, so the all-pairs pass computes each pair once (symmetric_pass.upper_pass)."""

    def __init__(self, q_feats, g_feats, metric: str):
        qf = as_tensor(q_feats, "q_feats").detach()
        gf = as_tensor(g_feats, "g_feats").detach()
        if qf.dim() != 2 or gf.dim() != 2 or qf.shape[1] != gf.shape[1]:
            raise ValueError(f"q_feats and g_feats must be 2-D with the same width, got {tuple(qf.shape)} and "
                             f"{tuple(gf.shape)}")
        dtype = torch.float64 if torch.float64 in (qf.dtype, gf.dtype) else torch.float32
        self.device = qf.device
        self.feats = torch.cat([qf.to(dtype), gf.to(device=self.device, dtype=dtype)])
        self.metric = check_metric(metric)
        self.right = prepare_right(self.feats, metric)
        self.num_query, self.n = qf.shape[0], self.feats.shape[0]
        self.pair_batch = 1 << 10  # gathered feature rows stay small (big temporaries cost page faults)

    def scan(self, k_need: int, chunk: int):
        """(nn, nn_div, colmax, D[:q, q:]): on the CPU one pass over the upper block triangle
        (symmetric_pass); elsewhere full rows, whose selection runs at memory speed on a GPU."""
        if self.device.type != "cpu":
            return _scan_rows(self, k_need, chunk)
        out = torch.empty((self.num_query, self.n - self.num_query), dtype=torch.float32)
        nn, nn_div, colmax = upper_pass(self.feats, self.metric, self.num_query, k_need, out)
        return nn, nn_div, colmax, out

    def rows(self, a: int, b: int, out: torch.Tensor) -> torch.Tensor:
        """out (b - a, N float32) <- squared distances of items a..b-1 to all items."""
        if self.feats.dtype == torch.float32:
            distance_block(self.feats[a:b], self.feats, self.metric, self.right, out=out)
            return out.mul_(out)
        out.copy_(_square_f32(distance_block(self.feats[a:b], self.feats, self.metric, self.right)))
        return out

    def pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Squared distance between items j and i, float32."""
        return _square_f32(paired_distance(self.feats.index_select(0, j), self.feats.index_select(0, i), self.metric))


def _check_params(k1, k2, lambda_value, chunk):
    if int(k1) < 1 or int(k2) < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    if chunk is not None and int(chunk) < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")


def _scan_rows(src, k_need: int, chunk: int):
    """All-pairs pass over given matrices, in row chunks: (nn, nn_div, colmax, D[:q, q:])."""
    n, q = src.n, src.num_query
    nn = torch.empty((n, k_need), dtype=torch.int64, device=src.device)
    nn_div = torch.empty((n, k_need), dtype=torch.float32, device=src.device)
    colmax = torch.empty(n, dtype=torch.float32, device=src.device)
    out = torch.empty((q, n - q), dtype=torch.float32, device=src.device)
    buf = torch.empty((min(chunk, n), n), dtype=torch.float32, device=src.device)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        rows = src.rows(a, b, buf[: b - a])
        colmax[a:b] = rows.amax(1).clamp_min_(torch.finfo(torch.float32).tiny)  # all-equal features: no 0 / 0
        if a < q:
            out[a:min(b, q)] = rows[: min(b, q) - a, q:]
        rows /= colmax[a:b, None]
        nn[a:b] = nearest_ordered(rows, k_need)
        nn_div[a:b] = rows.gather(1, nn[a:b])
    return nn, nn_div, colmax, out


def _k_reciprocal(src, k1: int, k2: int, lambda_value: float, chunk: int | None) -> np.ndarray:
    n, q = src.n, src.num_query
    if q == 0 or n == q:
        raise ValueError(f"re-ranking needs at least one query and one gallery item, got {q} and {n - q}")
    # default rows at once: about 16M distances in the dense scan, 64M entries of the sparse steps' bool and
    # k-wide buffers (fewer, larger operations there run faster side by side)
    sparse_chunk = chunk or max(1, min(4096, (1 << 26) // n))
    chunk = chunk or max(1, min(4096, (1 << 24) // n))
    k_need = min(max(k1 + 1, k2), n)
    nn, nn_div, colmax, out = src.scan(k_need, chunk)
    workers = workers_for(src.device)
    with torch_threads(1):  # many small operations: parts side by side, rather than each one shared out
        ptr, col, val = build_v(src, nn, nn_div, colmax, k1, sparse_chunk, workers)
        del nn_div
        if k2 != 1:
            ptr, col, val = query_expand(ptr, col, val, nn, k2, sparse_chunk, workers)
        del nn
        jaccard_into(out, colmax, ptr, col, val, float(lambda_value), sparse_chunk, workers)
    return out.cpu().numpy()


def re_rank(q_g_dist, q_q_dist, g_g_dist, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
            chunk: int | None = None) -> np.ndarray:
    """k-reciprocal re-ranked distances (q x g float32 ndarray) from the three distance matrices.

    Same inputs, output and arithmetic as the usual ``re_ranking`` (see the module docstring): the
    given distances are squared, like there. Numpy or torch inputs; runs on the inputs' device
    (CUDA tensors run on the GPU). ``chunk``: rows processed at once (default: about 16M matrix
    elements per chunk, and 64M small entries per chunk in the sparse steps). Memory: the inputs, the
    q x g result and O(N k1^2) for the sparse weights.
    """
    _check_params(k1, k2, lambda_value, chunk)
    return _k_reciprocal(_MatrixSource(q_g_dist, q_q_dist, g_g_dist), int(k1), int(k2), lambda_value, chunk)


def re_rank_features(q_feats, g_feats, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
                     chunk: int | None = None, metric: str = "euclidean") -> np.ndarray:
    """k-reciprocal re-ranking from features (q x D, g x D) without any N x N or g x g matrix.

    Equals ``re_rank(compute_distance_matrix(q, g, metric), compute_distance_matrix(q, q, metric),
    compute_distance_matrix(g, g, metric))``: ``metric`` names the distance one would pass to
    re_rank, which squares it. "euclidean" (default) thus uses squared L2 distances, as the original
    authors' code on L2 distance matrices; "sqeuclidean" reproduces torchreid's pipeline (its
    "euclidean" metric is already squared, then squared again); "cosine" uses (1 - cos)^2.
    Per-column maxima of the original distance are gathered chunk by chunk. Memory grows with the
    q x g result plus N (k1 + 1)(round(k1/2) + 2) sparse weights, not with N^2.
    """
    _check_params(k1, k2, lambda_value, chunk)
    return _k_reciprocal(_FeatureSource(q_feats, g_feats, metric), int(k1), int(k2), lambda_value, chunk)
