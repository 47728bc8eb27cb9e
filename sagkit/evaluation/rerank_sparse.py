"""Steps 3-5 of k-reciprocal re-ranking on sparse rows: the weights V, local query expansion, Jaccard.

Inputs come from the all-pairs pass: nn (N x w, nearest items by (original_dist, index), exact in the
first max(k1 + 1, k2) columns; any further columns hold near items), nn_div (their original_dist),
colmax (N,) and the query x gallery block of D before its division by colmax.
V and V_qe are CSR (ptr, col, val) with columns ascending in each row.
"""

from __future__ import annotations

import torch

from .sorting import sort_rows, stable_argsort

_TRIPLE_BUDGET = 1 << 21  # (query, gallery, column) terms of the Jaccard sums handled at once


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


def build_v(src, nn, nn_div, colmax, k1: int, chunk: int):
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
    ptr = torch.zeros(n + 1, dtype=torch.int64, device=dev)
    ptr[1:] = torch.cumsum(torch.cat(counts), 0)
    return ptr, torch.cat(cols), torch.cat(vals)


def query_expand(ptr, col, val, nn, k2: int, chunk: int):
    """V_qe[i] = mean of V over rows nn[i, :k2] (sums in neighbour order, then / k2, float32), as CSR."""
    n = nn.shape[0]
    kq = min(k2, n)
    counts, cols, vals = [], [], []
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
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
    new_ptr = torch.zeros(n + 1, dtype=torch.int64, device=nn.device)
    new_ptr[1:] = torch.cumsum(torch.cat(counts), 0)
    return new_ptr, torch.cat(cols), torch.cat(vals)


def jaccard_into(out: torch.Tensor, colmax: torch.Tensor, ptr, col, val, lambda_value: float, chunk: int) -> None:
    """out (q x g, holding D[:q, q:]) <- (1 - lambda) * jaccard + lambda * D / colmax, query rows only.

    s[i, g] = sum_j min(V[i, j], V[q + g, j]) is accumulated from an inverted index over the gallery
    rows (for each column j, the gallery rows with V[., j] != 0), in order of ascending j as in the
    usual code. Where s = 0 (most pairs) the jaccard distance is 1, so a whole block takes one pass,
    D * (lambda / colmax) + (1 - lambda), and only the pairs with s > 0 are computed term by term.
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
    scale = lambda_value / colmax[:q]
    rest = torch.tensor(1 - lambda_value, dtype=torch.float32, device=dev)
    max_rows = max(1, min(chunk, q, (1 << 24) // max(g, 1)))
    sums = torch.zeros(max_rows * g, dtype=torch.float32, device=dev)
    a = 0
    while a < q:
        b, work = a + 1, row_work[a]
        while b < q and b - a < max_rows and work + row_work[b] <= _TRIPLE_BUDGET:
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
        torch.addcmul(rest, out[a:b], scale[a:b, None], out=out[a:b])
        block[target] = touched
        sums[target] = 0
        a = b
