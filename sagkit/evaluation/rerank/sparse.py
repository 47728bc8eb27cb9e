"""Steps 3-5 of k-reciprocal re-ranking on sparse rows: the weights V, local query expansion, Jaccard.

Inputs come from the all-pairs pass: nn (N x w, nearest items by (original_dist, index), exact in the
first max(k1 + 1, k2) columns; any further columns hold near items), nn_div (their original_dist),
colmax (N,) and the query x gallery block of D before its division by colmax.
V and V_qe are CSR (ptr, col, val) with columns ascending in each row.
"""

from __future__ import annotations

from functools import partial

import torch

from sagkit.evaluation.sorting import sort_rows, stable_argsort
from sagkit.evaluation.threads import run_jobs, split_range
from sagkit.evaluation.rerank.tile_kernel import scale_shift_rows

_TRIPLE_BUDGET = 1 << 21  # (query, gallery, column) terms of the Jaccard sums handled at once


def _reciprocal_rows(nn: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """mask[i - a, j] = i is among the first w neighbours of its j-th neighbour, rows a..b-1 of nn (N x w)."""
    width = nn.shape[1]
    back = nn.index_select(0, nn[a:b].reshape(-1)).view(b - a, width, width)
    return (back == torch.arange(a, b, device=nn.device)[:, None, None]).any(-1)


def _reciprocal_mask(nn: torch.Tensor, chunk: int, workers: int) -> torch.Tensor:
    """_reciprocal_rows of every row (N x w bool), in ``workers`` consecutive parts side by side."""
    n, width = nn.shape
    out = torch.empty((n, width), dtype=torch.bool, device=nn.device)

    def part(a0: int, a1: int) -> None:
        for a in range(a0, a1, chunk):
            out[a:min(a + chunk, a1)] = _reciprocal_rows(nn, a, min(a + chunk, a1))

    run_jobs([partial(part, a0, a1) for a0, a1 in split_range(n, workers)], workers)
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


def _expanded_sets(fw, rmask, near, h_idx, h_ok, accept, n: int):
    """Columns of the expanded sets of a chunk's rows -> (row, col ascending, position in cat(fw, near) or -1).

    Members come from R(i) (fw where rmask) and from accepted half sets; each column once per row.
    A column that is among the row's nearest (fw, then the further near items), member or not, reports
    its position there, so its distance is known.
    """
    c, k = fw.shape
    tag_fw = torch.where(rmask, 0, 1)  # 0: nearest and member, 1: nearest only, 2: from a half set
    h_key = torch.where(accept[..., None] & h_ok, h_idx * 4 + 2, 4 * n + 3).flatten(1)
    near_key = torch.where(near >= 0, near * 4 + 1, 4 * n + 3)
    key, perm = sort_rows(torch.cat([fw * 4 + tag_fw, near_key, h_key], 1))
    k += near.shape[1]
    group, tag = key // 4, key % 4
    first = torch.ones_like(key, dtype=torch.bool)
    first[:, 1:] = group[:, 1:] != group[:, :-1]
    next_same = torch.zeros_like(first)
    next_same[:, :-1] = ~first[:, 1:]
    keep = first & (group < n) & ((tag != 1) | next_same)
    rr, pos = torch.nonzero(keep, as_tuple=True)
    origin = perm[rr, pos]
    return rr, group[rr, pos], torch.where(origin < k, origin, -1)


def build_v(src, nn, nn_div, colmax, k1: int, chunk: int, workers: int = 1):
    """Sparse V (CSR ptr, col, val): k-reciprocal sets with expansion, Gaussian weights normalised per row;
    rows in ``workers`` consecutive parts side by side (``threads.run_jobs``)."""
    n = src.n
    k = min(k1 + 1, n)
    kh = min(int(round(k1 / 2.0)) + 1, n)
    nn_full, nn_half = nn[:, :k].contiguous(), nn[:, :kh].contiguous()
    half_mask = _reciprocal_mask(nn_half, chunk, workers)
    sets = (src, nn, nn_div, colmax, nn_full, nn_half, half_mask, chunk)
    parts = run_jobs([partial(_v_rows, *sets, a0, a1) for a0, a1 in split_range(n, workers)], workers)
    return _csr(*zip(*parts), n, nn.device)


def _csr(counts, cols, vals, n: int, dev):
    """CSR (ptr, col, val) from the per-part lists of row counts, columns and values, rows in order."""
    ptr = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    ptr[1:] = torch.cumsum(torch.cat([c for part in counts for c in part]), 0)
    return ptr, torch.cat([c for part in cols for c in part]), torch.cat([v for part in vals for v in part])


def _v_rows(src, nn, nn_div, colmax, nn_full, nn_half, half_mask, chunk: int, a0: int, a1: int):
    """Rows a0..a1-1 of V, chunk by chunk -> lists (row counts, columns, values)."""
    n, dev = src.n, nn.device
    k, kh = nn_full.shape[1], nn_half.shape[1]
    member = torch.zeros(min(chunk, a1 - a0) * n, dtype=torch.bool, device=dev)  # R(i) of the chunk's rows
    counts, cols, vals = [], [], []
    for a in range(a0, a1, chunk):
        b = min(a + chunk, a1)
        c = b - a
        fw, rmask = nn_full[a:b], _reciprocal_rows(nn_full, a, b)
        base = torch.arange(c, device=dev)[:, None] * n
        in_set = (base + fw)[rmask]
        member[in_set] = True
        h_idx = nn_half.index_select(0, fw.reshape(-1)).view(c, k, kh)
        h_ok = half_mask.index_select(0, fw.reshape(-1)).view(c, k, kh)
        in_r = member.index_select(0, (base[:, :, None] + h_idx).reshape(-1)).view(c, k, kh)
        member[in_set] = False
        inter = (in_r & h_ok).sum(-1).double()
        accept = rmask & (inter > (2.0 / 3.0) * h_ok.sum(-1).double())
        rr, cc, origin = _expanded_sets(fw, rmask, nn[a:b, k:], h_idx, h_ok, accept, n)
        known = origin >= 0
        d = torch.empty(cc.shape, dtype=torch.float32, device=dev)
        d[known] = nn_div[a:b].reshape(-1).index_select(0, (rr * nn.shape[1] + origin)[known])
        ur, uc = rr[~known] + a, cc[~known]
        far = torch.empty(uc.shape, dtype=torch.float32, device=dev)
        for s in range(0, uc.numel(), src.pair_batch):
            e = min(s + src.pair_batch, uc.numel())
            far[s:e] = src.pairs(ur[s:e], uc[s:e]) / colmax.index_select(0, ur[s:e])
        d[~known] = far
        w = torch.exp(-d)
        total = torch.zeros(c, dtype=torch.float32, device=dev).index_add_(0, rr, w)
        counts.append(torch.bincount(rr, minlength=c))
        cols.append(cc)
        vals.append(w / total.index_select(0, rr))
    return counts, cols, vals


def query_expand(ptr, col, val, nn, k2: int, chunk: int, workers: int = 1):
    """V_qe[i] = mean of V over rows nn[i, :k2] (sums in neighbour order, then / k2, float32), as CSR;
    rows in ``workers`` consecutive parts side by side."""
    n = nn.shape[0]
    parts = run_jobs([partial(_qe_rows, ptr, col, val, nn, min(k2, n), chunk, a0, a1)
                      for a0, a1 in split_range(n, workers)], workers)
    return _csr(*zip(*parts), n, nn.device)


def _qe_rows(ptr, col, val, nn, kq: int, chunk: int, a0: int, a1: int):
    """Rows a0..a1-1 of V_qe, chunk by chunk -> lists (row counts, columns, values)."""
    n = nn.shape[0]
    counts, cols, vals = [], [], []
    for a in range(a0, a1, chunk):
        b = min(a + chunk, a1)
        owner, cc, vv = _csr_gather(ptr, col, val, nn[a:b, :kq].reshape(-1))
        key = (owner // kq) * n + cc
        order = stable_argsort(key)  # equal keys stay in neighbour order
        key, vv = key.index_select(0, order), vv.index_select(0, order)
        first = torch.ones_like(key, dtype=torch.bool)
        first[1:] = key[1:] != key[:-1]
        uniq = key[first]
        sums = torch.zeros(uniq.numel(), dtype=torch.float32, device=nn.device).index_add_(
            0, torch.cumsum(first, 0) - 1, vv)
        counts.append(torch.bincount(uniq // n, minlength=b - a))
        cols.append(uniq % n)
        vals.append(sums / kq)
    return counts, cols, vals


def jaccard_into(out: torch.Tensor, colmax: torch.Tensor, ptr, col, val, lambda_value: float, chunk: int,
                 workers: int = 1) -> None:
    """out (q x g, holding D[:q, q:]) <- (1 - lambda) * jaccard + lambda * D / colmax, query rows only.

    s[i, g] = sum_j min(V[i, j], V[q + g, j]) is accumulated from an inverted index over the gallery
    rows (for each column j, the gallery rows with V[., j] != 0), in order of ascending j as in the
    usual code. Where s = 0 (most pairs) the jaccard distance is 1, so a whole block takes one pass,
    D * (lambda / colmax) + (1 - lambda), and only the pairs with s > 0 are computed term by term.
    Query rows in ``workers`` consecutive parts of about equal work, side by side.
    """
    n = ptr.numel() - 1
    q, g = out.shape
    dev = out.device
    lens = ptr[1:] - ptr[:-1]
    g_start = int(ptr[q])  # gallery rows' entries are the tail of the CSR arrays
    post_col = col[g_start:]
    order = stable_argsort(post_col)
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
    index = (post_row, post_val, col_ptr, q_cols, q_len, row_work)
    run_jobs([partial(_jaccard_rows, out, colmax, ptr, lens, val, index, lambda_value, chunk, a0, a1)
              for a0, a1 in split_range(q, workers, row_work)], workers)


def _jaccard_rows(out, colmax, ptr, lens, val, index, lambda_value: float, chunk: int, a0: int, a1: int) -> None:
    """Query rows a0..a1-1 of jaccard_into, in blocks of at most _TRIPLE_BUDGET terms."""
    post_row, post_val, col_ptr, q_cols, q_len, row_work = index
    g, dev = out.shape[1], out.device
    scale = lambda_value / colmax[:a1]
    max_rows = max(1, min(chunk, a1 - a0, (1 << 24) // max(g, 1)))
    sums = torch.zeros(max_rows * g, dtype=torch.float32, device=dev)
    a = a0
    while a < a1:
        b, work = a + 1, row_work[a]
        while b < a1 and b - a < max_rows and work + row_work[b] <= _TRIPLE_BUDGET:
            work += row_work[b]
            b += 1
        e0, e1 = int(ptr[a]), int(ptr[b])
        e_len = q_len[e0:e1]
        e_start = col_ptr.index_select(0, q_cols[e0:e1])
        e_row = torch.repeat_interleave(torch.arange(b - a, device=dev), lens[a:b])
        total = int(work)
        shift = torch.repeat_interleave(e_start - (torch.cumsum(e_len, 0) - e_len), e_len, output_size=total)
        entry = torch.arange(total, device=dev) + shift
        row = torch.repeat_interleave(e_row, e_len, output_size=total)
        target = row * g + post_row.index_select(0, entry)
        mins = torch.minimum(torch.repeat_interleave(val[e0:e1], e_len, output_size=total),
                             post_val.index_select(0, entry))
        sums.index_add_(0, target, mins)
        s = sums.index_select(0, target)
        block = out[a:b].view(-1)
        original = block.index_select(0, target) / colmax.index_select(0, row + a)
        jaccard = (1 - s / (2 - s)) * (1 - lambda_value)
        touched = original * lambda_value + jaccard
        scale_shift_rows(out[a:b], scale[a:b], 1 - lambda_value)
        block[target] = touched
        sums[target] = 0
        a = b
