"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), sparse and chunked, in torch.

Reproduces the implementation everyone uses (``re_ranking`` of zhunzhong07/person-re-ranking's
python-version, copied as torchreid/utils/rerank.py), step by step:

1. ``D`` = [[q_q, q_g], [q_g^T, g_g]] squared (in the input dtype) and cast to float32 (N x N, N = q + g);
   ``original_dist = (D / D.max(axis=0)).T``, i.e. row i is column i of D divided by its maximum.
2. ``initial_rank``: row-wise ascending order of original_dist. Only the first max(k1 + 1, k2) entries
   are ever used, so they come from ``torch.topk`` per chunk of rows; ties are ordered by index.
3. R(i) = the k-reciprocal neighbours among the k1 + 1 nearest; each candidate c in R(i) whose own
   round(k1/2)-reciprocal set shares more than 2/3 of its elements with R(i) adds that set.
   V[i, j] = exp(-original_dist[i, j]) normalised over the expanded set (float32, as in the usual code).
4. Local query expansion (k2 != 1): V_qe[i] = mean of V over the k2 nearest rows of i.
5. Jaccard distance for query rows: 1 - s / (2 - s), s[g] = sum_j min(V_qe[i, j], V_qe[g, j]);
   result = (1 - lambda) * jaccard + lambda * original_dist, query rows x gallery columns.

V and V_qe are kept sparse (CSR: at most N (k1+1)(round(k1/2)+2) nonzeros), the Jaccard sums are
computed only for query rows from gallery postings (an inverted index) and only the q x g result is
dense. ``re_rank`` reads the given matrices in column blocks; ``re_rank_features`` computes distances
from features chunk by chunk and never holds any N x N or g x g matrix.

Tolerance: against the usual float32 implementation the result agrees to about 1e-7 (float32
rounding of sums taken in another order; neighbour sets are identical unless distances tie); the
tests and the GPU check assert ``TOLERANCE`` = 1e-5. The original 2017 script kept V in float16: against that, differences up to ~1e-3.

This module is longer than ~300 lines: the five steps above share their sparse structures and chunking,
and are easiest to check against the reference read top to bottom in one file.
"""

from __future__ import annotations

import numpy as np
import torch

from .distance import as_tensor, check_metric, distance_block, paired_distance, prepare_right

TOLERANCE = 1e-5  # max abs difference against the usual float32 implementation, or between devices
_TRIPLE_BUDGET = 1 << 21


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
        """rows()[i, j] for index vectors, i.e. D[j, i], float32."""
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
    """Squared distances computed from features, as re_rank would get them from compute_distance_matrix."""

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

    def rows(self, a: int, b: int, out: torch.Tensor) -> torch.Tensor:
        """out (b - a, N float32) <- squared distances of items a..b-1 to all items."""
        if self.feats.dtype == torch.float32:
            distance_block(self.feats[a:b], self.feats, self.metric, self.right, out=out)
            return out.mul_(out)
        out.copy_(_square_f32(distance_block(self.feats[a:b], self.feats, self.metric, self.right)))
        return out

    def pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """rows()[i, j] for index vectors: squared distance between items j and i, float32."""
        return _square_f32(paired_distance(self.feats.index_select(0, j), self.feats.index_select(0, i), self.metric))


def _nearest(rows: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k smallest entries of each row (c x N), ordered by (value, index)."""
    if 4 * k >= rows.shape[1]:
        return torch.sort(rows, dim=1, stable=True).indices[:, :k]
    vals, idx = torch.topk(rows, k, dim=1, largest=False, sorted=False)
    idx, perm = torch.sort(idx, dim=1)
    vals = vals.gather(1, perm)
    return idx.gather(1, torch.sort(vals, dim=1, stable=True).indices)


def _reciprocal_mask(nn: torch.Tensor, chunk: int) -> torch.Tensor:
    """mask[i, a] = i is among the first w neighbours of its a-th neighbour, for nn (N x w) -> N x w bool."""
    n, width = nn.shape
    out = torch.empty((n, width), dtype=torch.bool, device=nn.device)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        back = nn.index_select(0, nn[a:b].reshape(-1)).view(b - a, width, width)
        out[a:b] = (back == torch.arange(a, b, device=nn.device)[:, None, None]).any(-1)
    return out


def _csr_gather(ptr, col, val, rows: torch.Tensor):
    """Entries of CSR rows ``rows`` (flat, in order) -> (position in rows, col, val)."""
    starts = ptr.index_select(0, rows)
    lens = ptr.index_select(0, rows + 1) - starts
    total = int(lens.sum())
    shift = torch.repeat_interleave(starts - (torch.cumsum(lens, 0) - lens), lens, output_size=total)
    entry = torch.arange(total, device=rows.device) + shift
    owner = torch.repeat_interleave(torch.arange(rows.numel(), device=rows.device), lens, output_size=total)
    return owner, col.index_select(0, entry), val.index_select(0, entry)


def _build_v(src, nn, colmax, k1: int, chunk: int):
    """Sparse V (CSR ptr, col, val): k-reciprocal sets with expansion, Gaussian weights normalised per row."""
    n = src.n
    dev = nn.device
    k = min(k1 + 1, n)
    kh = min(int(round(k1 / 2.0)) + 1, n)
    nn_full, nn_half = nn[:, :k].contiguous(), nn[:, :kh].contiguous()
    full_mask = _reciprocal_mask(nn_full, chunk)
    half_mask = _reciprocal_mask(nn_half, chunk)
    member = torch.zeros(min(chunk, n) * n, dtype=torch.bool, device=dev)  # R(i) of the chunk's rows
    counts, cols, vals = [], [], []
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        c = b - a
        fw, rmask = nn_full[a:b], full_mask[a:b]
        base = torch.arange(c, device=dev)[:, None] * n
        in_set = (base + fw)[rmask]
        member[in_set] = True
        h_idx = nn_half.index_select(0, fw.reshape(-1)).view(c, k, kh)
        h_ok = half_mask.index_select(0, fw.reshape(-1)).view(c, k, kh)
        in_r = member.index_select(0, (base[:, :, None] + h_idx).reshape(-1)).view(c, k, kh)
        member[in_set] = False
        inter = (in_r & h_ok).sum(-1).double()
        accept = rmask & (inter > (2.0 / 3.0) * h_ok.sum(-1).double())
        expanded = torch.cat([torch.where(rmask, fw, n), torch.where(accept[..., None] & h_ok, h_idx, n).flatten(1)], 1)
        expanded = torch.sort(expanded, dim=1).values
        keep = expanded < n
        keep[:, 1:] &= expanded[:, 1:] != expanded[:, :-1]
        rr = torch.nonzero(keep, as_tuple=True)[0]
        cc = expanded[keep]
        d = torch.empty(cc.shape, dtype=torch.float32, device=dev)
        for s in range(0, cc.numel(), src.pair_batch):
            e = min(s + src.pair_batch, cc.numel())
            d[s:e] = src.pairs(rr[s:e] + a, cc[s:e]) / colmax.index_select(0, rr[s:e] + a)
        w = torch.exp(-d)
        total = torch.zeros(c, dtype=torch.float32, device=dev).index_add_(0, rr, w)
        counts.append(keep.sum(1))
        cols.append(cc)
        vals.append(w / total.index_select(0, rr))
    ptr = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    ptr[1:] = torch.cumsum(torch.cat(counts), 0)
    return ptr, torch.cat(cols), torch.cat(vals)


def _query_expand(ptr, col, val, nn, k2: int, chunk: int):
    """V_qe[i] = mean of V over rows nn[i, :k2] (sums in neighbour order, then / k2, float32), as CSR."""
    n = nn.shape[0]
    kq = min(k2, n)
    counts, cols, vals = [], [], []
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        owner, cc, vv = _csr_gather(ptr, col, val, nn[a:b, :kq].reshape(-1))
        key = (owner // kq) * n + cc
        uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
        sums = torch.zeros(uniq.numel(), dtype=torch.float32, device=nn.device).index_add_(0, inverse, vv)
        counts.append(torch.bincount(uniq // n, minlength=b - a))
        cols.append(uniq % n)
        vals.append(sums / kq)
    new_ptr = torch.zeros(n + 1, dtype=torch.int64, device=nn.device)
    new_ptr[1:] = torch.cumsum(torch.cat(counts), 0)
    return new_ptr, torch.cat(cols), torch.cat(vals)


def _jaccard_into(out: torch.Tensor, ptr, col, val, lambda_value: float, chunk: int) -> None:
    """out (q x g, holding original_dist) <- (1 - lambda) * jaccard + lambda * out, query rows only.

    s[i, g] = sum_j min(V[i, j], V[q + g, j]) is accumulated from an inverted index over the gallery
    rows (for each column j, the gallery rows with V[., j] != 0), in order of ascending j as in the
    usual code; the work for a block of queries is the total length of the postings they touch.
    """
    n = ptr.numel() - 1
    q, g = out.shape
    dev = out.device
    lens = ptr[1:] - ptr[:-1]
    g_start = int(ptr[q])  # gallery rows' entries are the tail of the CSR arrays
    post_col = col[g_start:]
    order = torch.sort(post_col, stable=True).indices
    post_row = (torch.repeat_interleave(torch.arange(g, device=dev, dtype=torch.int32), lens[q:])
                .index_select(0, order))
    post_val = val[g_start:].index_select(0, order)
    col_ptr = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    col_ptr[1:] = torch.cumsum(torch.bincount(post_col, minlength=n), 0)
    del post_col, order
    q_cols = col[:g_start]
    q_len = col_ptr.index_select(0, q_cols + 1) - col_ptr.index_select(0, q_cols)
    row_work = torch.zeros(q, dtype=torch.int64, device=dev).index_add_(
        0, torch.repeat_interleave(torch.arange(q, device=dev), lens[:q]), q_len).tolist()
    max_rows = max(1, min(chunk, q, (1 << 24) // max(g, 1)))
    buf = torch.empty(max_rows * g, dtype=torch.float32, device=dev)
    scratch = torch.empty(max_rows * g, dtype=torch.float32, device=dev)
    a = 0
    while a < q:
        b, work = a + 1, row_work[a]
        while b < q and b - a < max_rows and work + row_work[b] <= _TRIPLE_BUDGET:
            work += row_work[b]
            b += 1
        e0, e1 = int(ptr[a]), int(ptr[b])
        e_len = q_len[e0:e1]
        e_start = col_ptr.index_select(0, q_cols[e0:e1])
        e_base = torch.repeat_interleave(torch.arange(b - a, device=dev, dtype=torch.int32), lens[a:b]) * g
        total = int(work)
        shift = torch.repeat_interleave(e_start - (torch.cumsum(e_len, 0) - e_len), e_len, output_size=total)
        entry = torch.arange(total, device=dev) + shift
        target = torch.repeat_interleave(e_base, e_len, output_size=total) + post_row.index_select(0, entry)
        mins = torch.minimum(torch.repeat_interleave(val[e0:e1], e_len, output_size=total),
                             post_val.index_select(0, entry))
        temp = buf[: (b - a) * g].zero_().index_add_(0, target, mins).view(b - a, g)
        jaccard = scratch[: (b - a) * g].view(b - a, g)
        jaccard.copy_(temp).neg_().add_(2)
        torch.div(temp, jaccard, out=jaccard)
        jaccard.neg_().add_(1)
        jaccard.mul_(1 - lambda_value)
        out[a:b].mul_(lambda_value).add_(jaccard)
        a = b


def _check_params(k1, k2, lambda_value, chunk):
    if int(k1) < 1 or int(k2) < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    if chunk is not None and int(chunk) < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")


def _k_reciprocal(src, k1: int, k2: int, lambda_value: float, chunk: int | None) -> np.ndarray:
    n, q = src.n, src.num_query
    if q == 0 or n == q:
        raise ValueError(f"re-ranking needs at least one query and one gallery item, got {q} and {n - q}")
    if chunk is None:
        chunk = max(1, min(4096, (1 << 24) // n))
    k_need = min(max(k1 + 1, k2), n)
    nn = torch.empty((n, k_need), dtype=torch.int64, device=src.device)
    colmax = torch.empty(n, dtype=torch.float32, device=src.device)
    out = torch.empty((q, n - q), dtype=torch.float32, device=src.device)
    buf = torch.empty((min(chunk, n), n), dtype=torch.float32, device=src.device)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        rows = src.rows(a, b, buf[: b - a])
        colmax[a:b] = rows.amax(1)
        rows /= colmax[a:b, None]
        nn[a:b] = _nearest(rows, k_need)
        if a < q:
            out[a:min(b, q)] = rows[: min(b, q) - a, q:]
    del buf, rows
    ptr, col, val = _build_v(src, nn, colmax, k1, chunk)
    if k2 != 1:
        ptr, col, val = _query_expand(ptr, col, val, nn, k2, chunk)
    del nn
    _jaccard_into(out, ptr, col, val, float(lambda_value), chunk)
    return out.cpu().numpy()


def re_rank(q_g_dist, q_q_dist, g_g_dist, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
            chunk: int | None = None) -> np.ndarray:
    """k-reciprocal re-ranked distances (q x g float32 ndarray) from the three distance matrices.

    Same inputs, output and arithmetic as the usual ``re_ranking`` (see the module docstring): the
    given distances are squared, like there. Numpy or torch inputs; runs on the inputs' device
    (CUDA tensors run on the GPU). ``chunk``: rows processed at once (default: about 16M matrix
    elements per chunk). Memory: the inputs, the q x g result and O(N k1^2) for the sparse weights.
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
