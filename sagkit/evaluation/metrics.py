"""CMC, mAP and mINP of a query x gallery distance matrix, vectorised over queries.

Only the positions of the true matches in each ranking matter, and gallery images ranked after a
query's last true match change nothing. So, for a block of queries at a time, the distance ``t`` of
each query's farthest true match is found from the short list of same-identity gallery images, the
entries with distance <= ``t`` are picked out (one comparison pass and ``nonzero``), and only these
are ordered, by (query, distance, gallery index) with one stable sort. Ranks, hits, AP and the
first/last hit are then segment-wise cumulative sums over this ragged list. The ranking is the stable
one: ties in distance are ordered by gallery index. No per-query Python loop, no full argsort.

This module is longer than ~300 lines: the ragged-list scoring, the single-gallery-shot draws and the
per-query results are one vectorised algorithm whose pieces only make sense together.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from sagkit.evaluation.distance import as_tensor

PROTOCOLS = {"market": "market", "market1501": "market", "duke": "market", "dukemtmc": "market", "cuhk03": "cuhk03"}
AP_FORMS = ("mean", "trapezoid")
JUNK_PID = -1


def _ids(x, name: str, n: int, device) -> torch.Tensor:
    t = as_tensor(x, name)
    if t.dim() != 1 or t.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of length {n} (one per row/column of distmat), got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {t.dtype}")
    return t.to(device=device, dtype=torch.int64)


def _same_identity_lists(q_pids, g_pids):
    """For each query, the gallery indices sharing its pid, padded with -1: (Q x P) long, ascending index."""
    order = torch.sort(g_pids, stable=True).indices
    sorted_pids = g_pids[order]
    uniq, counts = torch.unique_consecutive(sorted_pids, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    loc = torch.searchsorted(uniq, q_pids).clamp_(max=max(uniq.numel() - 1, 0))
    found = uniq[loc] == q_pids if uniq.numel() else torch.zeros_like(q_pids, dtype=torch.bool)
    cnt = torch.where(found, counts[loc], torch.zeros_like(loc))
    width = int(cnt.max()) if cnt.numel() else 0
    slot = torch.arange(width, device=g_pids.device)
    inside = slot[None, :] < cnt[:, None]
    flat = (starts[loc][:, None] + slot[None, :]).clamp_(max=max(order.numel() - 1, 0))
    return torch.where(inside, order[flat], torch.full_like(flat, -1))


def _window_entries(d: torch.Tensor, far: torch.Tensor) -> torch.Tensor:
    """Flat indices (row * G + col) of the entries of d (c x G, contiguous) with d <= far[row], ascending."""
    if d.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(d.numpy() <= far.numpy()[:, None]))
    return torch.nonzero((d <= far[:, None]).view(-1)).squeeze(1)


def _rank_entries(d: torch.Tensor, flat: torch.Tensor):
    """Order flat entries of d (c x G) by (row, distance, col) -> (rows, cols).

    For float32, each entry becomes one int64 key (row | order-preserving image of the distance |
    col), all distinct, so a plain sort of the keys (numpy's vectorised sort on CPU) is the stable
    order; otherwise two stable sorts.
    """
    c, width = d.shape
    values = d.reshape(-1).index_select(0, flat) + 0.0  # -0.0 -> +0.0
    col_bits = max(1, (width - 1).bit_length())
    rows = torch.div(flat, width, rounding_mode="floor")
    cols = flat - rows * width
    if d.dtype == torch.float32 and max(1, (c - 1).bit_length()) + 32 + col_bits <= 63:
        bits = values.view(torch.int32).to(torch.int64)
        bits = torch.where(bits < 0, -bits - 1, bits + (1 << 31))
        key = (rows << (32 + col_bits)) | (bits << col_bits) | cols
        key = torch.from_numpy(np.sort(key.numpy())) if key.device.type == "cpu" else torch.sort(key).values
        return key >> (32 + col_bits), key & ((1 << col_bits) - 1)
    order = torch.sort(values, stable=True).indices
    rows, cols = rows.index_select(0, order), cols.index_select(0, order)
    order = torch.sort(rows, stable=True).indices
    return rows.index_select(0, order), cols.index_select(0, order)


def _segment_cumsum(x: torch.Tensor, seg: torch.Tensor, num_seg: int) -> torch.Tensor:
    """Cumulative sum of x restarting at each segment; seg (sorted ascending) gives each entry's segment."""
    total = torch.cumsum(x, 0)
    counts = torch.bincount(seg, minlength=num_seg)
    before = torch.cat([total.new_zeros(1), total]).index_select(0, torch.cumsum(counts, 0) - counts)
    return total - before.index_select(0, seg)


def _occurrence(seg: torch.Tensor, ident: torch.Tensor, kept: torch.Tensor, num_ids: int) -> torch.Tensor:
    """For each kept entry, how many kept entries of the same identity precede it within its segment."""
    sentinel = (int(seg.max()) + 1 if seg.numel() else 1) * (num_ids + 1)
    key = torch.where(kept, seg * (num_ids + 1) + ident, torch.full_like(ident, sentinel))
    order = torch.sort(key, stable=True).indices
    skey = key[order]
    pos = torch.arange(skey.numel(), device=key.device)
    new_group = torch.ones_like(skey, dtype=torch.bool)
    new_group[1:] = skey[1:] != skey[:-1]
    group_start = torch.cummax(torch.where(new_group, pos, torch.zeros_like(pos)), 0).values
    occ = torch.empty_like(pos)
    occ[order] = pos - group_start
    return occ


@dataclass
class QueryResults:
    """One evaluation, query by query (Q queries), so that statistics never need the features again.

    ``ap``/``inp`` (Q float64): average precision and inverse negative penalty, NaN where the query has no
    valid match (such queries are left out of every mean). ``first_hit`` (Q int64): rank of the first true
    match in the full ranking (1-based, 0 when none). ``cmc`` (Q x max_rank float64): the share of the
    protocol's draws in which a true match is within rank r+1 (0 or 1 under the Market rule).
    """

    ap: np.ndarray
    inp: np.ndarray
    first_hit: np.ndarray
    cmc: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return int(self.ap.shape[0])

    def metrics(self, ranks=(1, 5, 10)) -> dict:
        """Rank-k accuracies and mAP/mINP in percent over the valid queries (the means ``evaluate`` reports)."""
        valid = self.valid
        out = {f"rank{k}": 100.0 * float(self.cmc[valid, min(k, self.cmc.shape[1]) - 1].mean()) for k in ranks}
        out["mAP"] = 100.0 * float(self.ap[valid].mean())
        out["mINP"] = 100.0 * float(self.inp[valid].mean())
        return out


@dataclass
class _Tally:
    """Ground truth of the evaluation and the running sums over the scored queries."""

    qp: torch.Tensor
    qc: torch.Tensor
    gp: torch.Tensor
    gc: torch.Tensor
    ap_form: str
    num_repeats: int
    max_rank: int = 50
    g_ident: torch.Tensor | None = None
    id_counts: torch.Tensor | None = None
    q_ident: torch.Tensor | None = None

    def __post_init__(self):
        dev = self.gp.device
        num_q = self.qp.numel()
        self.g_junk = self.gp == JUNK_PID
        self.ap_sum = torch.zeros((), dtype=torch.float64, device=dev)
        self.inp_sum = torch.zeros((), dtype=torch.float64, device=dev)
        self.first_hist = torch.zeros(self.gp.numel() + 2, dtype=torch.int64, device=dev)
        self.q_ap = torch.full((num_q,), float("nan"), dtype=torch.float64, device=dev)
        self.q_inp = torch.full((num_q,), float("nan"), dtype=torch.float64, device=dev)
        self.q_first = torch.zeros(num_q, dtype=torch.int64, device=dev)
        self.q_draw_hits = torch.zeros((num_q, self.max_rank + 1), dtype=torch.int64, device=dev)

    def score(self, seg, cols, rows, n_pos, draws=None) -> None:
        """Add queries ``rows`` (c,) given their ranked entries: segment ``seg`` (index into rows), gallery ``cols``.

        Each query's entries hold, in rank order, everything up to and including its last true match;
        rows with n_pos == 0 (no entries) are ignored.
        """
        c = rows.numel()
        dev = seg.device
        valid = n_pos > 0
        wp, wc = self.gp.index_select(0, cols), self.gc.index_select(0, cols)
        same = wp == self.qp.index_select(0, rows).index_select(0, seg)
        same_cam = wc == self.qc.index_select(0, rows).index_select(0, seg)
        kept = ~(self.g_junk.index_select(0, cols) | (same & same_cam))
        pos = same & kept
        rank = _segment_cumsum(kept, seg, c)
        hit = _segment_cumsum(pos, seg, c)
        p_seg, p_rank, p_hit = seg[pos], rank[pos], hit[pos].double()
        p_rank_f = p_rank.double()
        per_hit = p_hit / p_rank_f
        if self.ap_form == "trapezoid":
            before = torch.where(p_rank > 1, (p_hit - 1) / (p_rank_f - 1).clamp(min=1), torch.ones_like(per_hit))
            per_hit = (before + per_hit) / 2
        m = n_pos.double().clamp(min=1)
        ap = torch.zeros(c, dtype=torch.float64, device=dev).index_add_(0, p_seg, per_hit) / m
        self.ap_sum += ap[valid].sum()
        last = torch.ones(c, dtype=torch.float64, device=dev).scatter_reduce_(0, p_seg, p_rank_f, "amax")
        self.inp_sum += (m / last)[valid].sum()
        size = self.first_hist.numel()
        first = torch.full((c,), size - 1, dtype=torch.int64, device=dev)
        first.scatter_reduce_(0, p_seg, p_rank, "amin")
        kept_rows = rows[valid]
        self.q_ap[kept_rows] = ap[valid]
        self.q_inp[kept_rows] = (m / last)[valid]
        self.q_first[kept_rows] = first[valid]
        if draws is None:
            self.first_hist += torch.bincount(first[valid], minlength=size)
            self._count_hits(kept_rows, first[valid])
            return
        num_ids = int(self.id_counts.numel())
        ident = self.g_ident.index_select(0, cols).clamp(min=0)
        occ = _occurrence(seg, ident, kept, num_ids)
        counts = self.id_counts[None, :].expand(c, -1).clone()
        own = self.q_ident.index_select(0, rows)
        counts[valid.nonzero().squeeze(1), own[valid]] = n_pos[valid]
        flat_pick = seg * num_ids + ident
        for r in range(self.num_repeats):
            pick = torch.floor(draws[:, r, :] * counts.double()).long()
            selected = kept & (occ == pick.reshape(-1).index_select(0, flat_pick))
            sel_rank = _segment_cumsum(selected, seg, c)
            mine = selected & pos
            first = torch.zeros(c, dtype=torch.int64, device=dev)
            first[seg[mine]] = sel_rank[mine]
            self.first_hist += torch.bincount(first[valid], minlength=size)
            self._count_hits(kept_rows, first[valid])

    def _count_hits(self, rows: torch.Tensor, first: torch.Tensor) -> None:
        """Per query, count draws whose first true match is at rank r (1..max_rank; later ranks in column 0)."""
        column = torch.where((first >= 1) & (first <= self.max_rank), first, torch.zeros_like(first))
        self.q_draw_hits.index_put_((rows, column), torch.ones_like(first), accumulate=True)

    def queries(self, num_draws: int) -> "QueryResults":
        """The per-query results gathered so far, as numpy arrays."""
        hits = torch.cumsum(self.q_draw_hits[:, 1:], 1).double() / num_draws
        return QueryResults(ap=self.q_ap.cpu().numpy(), inp=self.q_inp.cpu().numpy(),
                            first_hit=self.q_first.cpu().numpy(), cmc=hits.cpu().numpy(),
                            valid=(~torch.isnan(self.q_ap)).cpu().numpy())


def evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, protocol: str = "market",
             ap: str = "mean", return_minp: bool = False, seed: int = 0, *, num_repeats: int = 10,
             budget: int = 1 << 22, num_threads: int | None = 1):
    """CMC curve and mAP (and mINP) of a distance matrix (Q x G, numpy or torch, CPU or CUDA), lower = closer.

    protocol "market" (also "duke"): for each query, gallery images of the same id and the same camera
    and junk images (pid -1) are left out; distractors (pid 0) are wrong matches; queries without any
    valid match are skipped with a warning. protocol "cuhk03": the classic single-shot CMC, where one
    gallery image per identity (among those left in) is drawn at random for each query, ``num_repeats``
    times, with ``numpy.random.default_rng(seed)`` (draws are made in query order, so results depend
    only on the seed); AP and mINP use the full ranking, as in the usual toolkits.
    ap "mean": mean of the precision at each true match (what torchreid and most code report);
    "trapezoid": the official Market-1501 compute_AP.m, (1/m) sum over matches of (p_before + p_at)/2
    where p_before is the precision just before the match (1.0 when the match is ranked first).
    mINP: mean over queries of (number of true matches) / (rank of the last true match).
    Ties in distance are ranked by gallery index (a stable sort). max_rank larger than the gallery: a
    warning, and the curve is shortened to the gallery size. ``budget`` bounds the number of matrix
    elements processed at once. ``num_threads``: torch CPU threads used meanwhile (restored afterwards; the
    work is many small operations, for which one thread avoids thread-pool latency; None leaves it).
    Returns (cmc float64 ndarray of max_rank values, mAP) or (cmc, mAP, mINP).
    """
    cmc, m_ap, m_inp, _ = evaluate_queries(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, protocol, ap,
                                           seed, num_repeats=num_repeats, budget=budget, num_threads=num_threads)
    return (cmc, m_ap, m_inp) if return_minp else (cmc, m_ap)


def evaluate_queries(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, protocol: str = "market",
                     ap: str = "mean", seed: int = 0, *, num_repeats: int = 10, budget: int = 1 << 22,
                     num_threads: int | None = 1):
    """:func:`evaluate` with its per-query results: (cmc, mAP, mINP, :class:`QueryResults`); same options."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, protocol, ap, seed, num_repeats,
                         budget)
    finally:
        torch.set_num_threads(previous)


def _evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, protocol, ap, seed, num_repeats, budget):
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
    if ap not in AP_FORMS:
        raise ValueError(f"ap must be one of {AP_FORMS}, got {ap!r}")
    rule = PROTOCOLS[protocol]
    dist = as_tensor(distmat, "distmat").detach()
    if dist.dim() != 2:
        raise ValueError(f"distmat must be 2-D (num_query x num_gallery), got shape {tuple(dist.shape)}")
    if not dist.is_floating_point():
        dist = dist.double()
    num_q, num_g = dist.shape
    if num_q == 0 or num_g == 0:
        raise ValueError(f"distmat is empty (shape {tuple(dist.shape)})")
    if int(max_rank) < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    max_rank = int(max_rank)
    if num_repeats < 1:
        raise ValueError(f"num_repeats must be >= 1, got {num_repeats}")
    device = dist.device
    qp, gp = _ids(q_pids, "q_pids", num_q, device), _ids(g_pids, "g_pids", num_g, device)
    qc, gc = _ids(q_camids, "q_camids", num_q, device), _ids(g_camids, "g_camids", num_g, device)
    if max_rank > num_g:
        warnings.warn(f"max_rank={max_rank} is larger than the gallery ({num_g} images): the CMC curve is "
                      f"shortened to {num_g} values", stacklevel=3)
        max_rank = num_g
    tally = _Tally(qp, qc, gp, gc, ap, num_repeats, max_rank)
    rng = None
    if rule == "cuhk03":
        rng = np.random.default_rng(seed)
        real = ~tally.g_junk
        uniq = torch.unique(gp[real])
        tally.g_ident = torch.where(real, torch.searchsorted(uniq, gp), torch.full_like(gp, -1))
        tally.id_counts = torch.bincount(tally.g_ident[real], minlength=uniq.numel())
        loc = torch.searchsorted(uniq, qp).clamp_(max=max(uniq.numel() - 1, 0))
        tally.q_ident = torch.where(uniq[loc] == qp, loc, torch.full_like(loc, -1)) if uniq.numel() else loc
    same = _same_identity_lists(qp, gp)
    safe = same.clamp(min=0)
    is_pos = (same >= 0) & (gc[safe] != qc[:, None]) & (qp[:, None] != JUNK_PID)
    n_pos = is_pos.sum(1)
    num_ids = 0 if tally.id_counts is None else int(tally.id_counts.numel())
    nan = torch.tensor(float("nan"), dtype=dist.dtype, device=device)
    rows_a = max(1, (4 * budget) // num_g)
    if rng is not None:
        rows_a = min(rows_a, max(1, budget // (num_repeats * max(num_ids, 1))))
    for a in range(0, num_q, rows_a):
        b = min(a + rows_a, num_q)
        d = dist[a:b].contiguous()
        if torch.isnan(d.sum()) and torch.isnan(d).any():
            raise ValueError("distmat contains NaN")
        draws = None if rng is None else rng.random((b - a, num_repeats, num_ids))
        valid = n_pos[a:b] > 0
        if not bool(valid.any()):
            continue
        far = torch.where(is_pos[a:b], d.gather(1, safe[a:b]), nan).nan_to_num(nan=float("-inf")).amax(1)
        far = torch.where(valid, far, nan)
        flat = _window_entries(d, far).to(device)
        # Sub-blocks of whole rows with at most ``budget`` entries each keep the memory bounded.
        row_starts = torch.searchsorted(flat, torch.arange(b - a + 1, device=device) * num_g).tolist()
        lo = 0
        while lo < b - a:
            hi = lo + 1
            while hi < b - a and row_starts[hi + 1] - row_starts[lo] <= budget:
                hi += 1
            sub = flat[row_starts[lo]:row_starts[hi]] - lo * num_g
            seg, cols = _rank_entries(d[lo:hi], sub)
            sub_draws = None if draws is None else torch.from_numpy(draws[lo:hi]).to(device)
            tally.score(seg, cols, torch.arange(a + lo, a + hi, device=device), n_pos[a + lo:a + hi], sub_draws)
            lo = hi

    num_valid = int((n_pos > 0).sum())
    if num_valid == 0:
        raise ValueError("no query has a valid match in the gallery: check q_pids/g_pids and camera ids")
    if num_valid < num_q:
        warnings.warn(f"{num_q - num_valid} of {num_q} queries have no valid match in the gallery and were skipped",
                      stacklevel=3)
    draws_per_query = num_repeats if rule == "cuhk03" else 1
    cmc = (torch.cumsum(tally.first_hist, 0)[1: max_rank + 1].double() / (num_valid * draws_per_query)).cpu().numpy()
    m_ap = float(tally.ap_sum) / num_valid
    return cmc, m_ap, float(tally.inp_sum) / num_valid, tally.queries(draws_per_query)
