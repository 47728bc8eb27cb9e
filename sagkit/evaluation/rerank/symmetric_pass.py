"""The all-pairs pass of re_rank_features over the upper block triangle of the symmetric distance matrix.

Distances between features are symmetric, so each tile of the upper block triangle is computed once,
by one matrix product, and read both ways: along its rows for the row items and along its columns
for the column items. That is half the products of a full pass. Per item the pass keeps the maximum
of its row of D and its nearest items, and it writes the query x gallery block of D (tiles there are
computed straight into the result); it holds one tile of the N x N matrix per thread. CPU only. A
tile is read by the compiled kernel of ``tile_kernel`` (one pass, a heap of nearest items per item),
with strips of tiles shared out over threads that each compute and read their own tiles, or, where
there is no C compiler, by numpy (thresholded hits streamed into ``StreamingTopK``), on one thread.

The tile holds a key that orders like D: for the L2 metrics the squared distance before clamping,
for cosine |1 - cos|; D = f(key) with f non-decreasing, so maxima and nearest items of the key give
those of D, and the exact order by (D / row maximum, index) is settled among the few kept items.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from sagkit.evaluation.rerank import tile_kernel
from sagkit.evaluation.streaming_topk import StreamingTopK, column_hits, row_hits
from sagkit.evaluation.threads import run_jobs, workers_for

MARGIN = 1  # items kept beyond the k needed, so that a tie at the k-th can be told apart
KNOWN = 32  # items kept per row in all: distances of the near items that the expanded sets reach
ROW_BLOCK, COL_BLOCK = 512, 2048  # tile of the upper block triangle (rows x columns)
CAPACITY = 64  # numpy reader: candidates buffered per item (at least twice those kept)


def factors(feats: torch.Tensor, metric: str):
    """left, right (N x (D + 2), or D + 1 for cosine) with left @ right.T = |a|^2 + |b|^2 - 2 a.b, or 1 - cos."""
    ones = torch.ones((feats.shape[0], 1), dtype=feats.dtype, device=feats.device)
    if metric == "cosine":
        unit = torch.nn.functional.normalize(feats, dim=1)
        return torch.cat([unit, ones], 1), torch.cat([-unit, ones], 1)
    norms = (feats * feats).sum(1, keepdim=True)
    return torch.cat([feats, norms, ones], 1), torch.cat([-2 * feats, ones, norms], 1)


def key_tile(left: torch.Tensor, right: torch.Tensor, metric: str, out: torch.Tensor) -> torch.Tensor:
    """out (r x c) <- keys of the pairs (rows of left) x (rows of right)."""
    torch.mm(left, right.t(), out=out)
    return out.abs_() if metric == "cosine" else out


def squared_from_key(key: torch.Tensor, metric: str) -> torch.Tensor:
    """D (float32), the squared metric distance that re_rank uses, from keys; overwrites ``key``."""
    if metric == "euclidean":
        key.clamp_(min=0).sqrt_()
    elif metric == "sqeuclidean":
        key.clamp_(min=0)
    return key.mul_(key) if key.dtype == torch.float32 else (key * key).to(torch.float32)


def nearest_ordered(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k smallest entries of each row (c x N), ordered by (value, index).

    topk picks any of the entries tied with the k-th; rows whose (k+1)-th smallest equals their k-th
    are sorted in full.
    """
    if 4 * k >= values.shape[1]:
        return torch.sort(values, dim=1, stable=True).indices[:, :k]
    vals, idx = torch.topk(values, k + 1, dim=1, largest=False)
    tied = torch.nonzero(vals[:, k] == vals[:, k - 1]).squeeze(1)
    idx, perm = torch.sort(idx[:, :k], dim=1)
    vals = vals[:, :k].gather(1, perm)
    idx = idx.gather(1, torch.sort(vals, dim=1, stable=True).indices)
    if tied.numel():
        idx[tied] = torch.sort(values.index_select(0, tied), dim=1, stable=True).indices[:, :k]
    return idx


def _spans(start: int, stop: int, q: int, step: int):
    """[start, stop) cut into pieces of at most ``step`` items, none crossing the query/gallery edge q."""
    return [(lo, min(lo + step, hi)) for first, hi in ((start, min(stop, q)), (max(start, q), stop))
            for lo in range(first, hi, step)]


def _smallest(x: torch.Tensor, k: int, dim: int, row0: int, col0: int):
    """The k smallest entries along ``dim`` of tile x as entries (row, column, key) of the matrix's rows
    (dim 1: the tile's rows, from row0; dim 0: its columns, from col0), and the k-th of each (None if
    the tile holds fewer than k)."""
    size = min(k, x.shape[dim])
    vals, idx = torch.topk(x, size, dim=dim, largest=False)
    if dim == 0:
        owner, other = torch.arange(col0, col0 + x.shape[1]).expand(size, -1), idx + row0
    else:
        owner, other = torch.arange(row0, row0 + x.shape[0])[:, None].expand(-1, size), idx + col0
    hits = (owner.reshape(-1).numpy(), other.reshape(-1).numpy(), vals.reshape(-1).numpy())
    return hits, (vals.amax(dim).numpy() if size == k else None)


def upper_pass(feats: torch.Tensor, metric: str, num_query: int, k: int, out: torch.Tensor,
               workers: int | None = None):
    """(nn, nn_div, colmax) for feats (N x dim, CPU, queries first); ``out`` (q x g float32) <- D[:q, q:].

    colmax (N,) is the maximum of each row of D; nn (N x w, w = max(k + MARGIN, KNOWN)) the nearest
    items of each row by (D / colmax, index), exact in the first k columns, and nn_div their D / colmax
    (the later columns are near items whose distances build_v then need not compute again). Tile sizes
    are read from the module constants. Float32 features: the compiled kernel reads the tiles, in
    ``workers`` threads (default: torch's intra-op thread count), each computing its tiles' products on one
    thread and reading them into heaps of its own, so that one thread's product runs while another
    reads a tile; tiles of the query x gallery block are computed straight into ``out``. Without the
    kernel (no C compiler, or float64 features) numpy reads the tiles, one after another.
    """
    n, q = feats.shape[0], num_query
    left, right = factors(feats, metric)
    kk = min(max(k + MARGIN, KNOWN), n)
    lib = tile_kernel.load() if feats.dtype == torch.float32 else None
    if lib is not None:
        kmax, keys, cols, thr = _kernel_pass(lib, left, right, metric, q, kk, out,
                                             workers or workers_for(feats.device))
    else:
        kmax, keys, cols, thr = _numpy_pass(left, right, metric, q, kk, out)
    # A row of zeros (every feature equal) would divide 0 by 0; its distances stay 0 instead. No-op otherwise.
    colmax = squared_from_key(kmax, metric).clamp_min_(torch.finfo(torch.float32).tiny)
    nn, nn_div = _settle(left, right, metric, keys, cols, thr, colmax, k)
    return nn, nn_div, colmax


def _kernel_pass(lib, left, right, metric: str, q: int, kk: int, out: torch.Tensor, workers: int):
    """Strips of the upper block triangle dealt to ``workers`` threads in turn (strip s to thread s mod
    workers, so the result does not depend on timing); -> (kmax, keys, cols, thr) of the merged heaps."""
    n = left.shape[0]
    row_block, col_block = min(ROW_BLOCK, n), min(COL_BLOCK, n)
    strips = _spans(0, n, q, row_block)
    workers = min(workers, len(strips))
    bound = np.full(n, np.inf, dtype=np.float32) if workers > 1 else None  # the least top of the heaps so far
    heaps = [tile_kernel.TileHeaps(lib, n, kk, bound) for _ in range(workers)]
    code = tile_kernel.METRIC_CODES[metric]

    def work(w: int) -> None:
        buf = torch.empty(row_block * col_block, dtype=left.dtype)
        for a, b in strips[w::workers]:
            for c0, c1 in _spans(a, n, q, col_block):
                into_out = a < q <= c0
                x = out[a:b, c0 - q:c1 - q] if into_out else buf[: (b - a) * (c1 - c0)].view(b - a, c1 - c0)
                key_tile(left[a:b], right[c0:c1], metric, x)
                heaps[w].both(x.numpy(), max(c0, b) - c0, a, c0, code if into_out else 0)

    run_jobs([partial(work, w) for w in range(workers)], workers)
    return tile_kernel.merge_heaps(heaps)


def _numpy_pass(left, right, metric: str, q: int, kk: int, out: torch.Tensor):
    """The tiles in order, read by numpy (``_NumpyReader``); -> (kmax, keys, cols, thr)."""
    n = left.shape[0]
    reader = _NumpyReader(n, kk, left.numpy().dtype)
    row_block, col_block = min(ROW_BLOCK, n), min(COL_BLOCK, n)
    tile_buf = torch.empty(row_block * col_block, dtype=left.dtype)
    for strip, (a, b) in enumerate(_spans(0, n, q, row_block)):
        for c0, c1 in _spans(a, n, q, col_block):
            x = key_tile(left[a:b], right[c0:c1], metric, tile_buf[: (b - a) * (c1 - c0)].view(b - a, c1 - c0))
            reader.tile(x, strip == 0 and c0 == a, strip == 0, a, b, c0, c1)
            if a < q <= c0:
                out[a:b, c0 - q:c1 - q] = squared_from_key(x, metric)
        reader.strip_done()
    return tuple(torch.from_numpy(t) for t in reader.result())


class _NumpyReader:
    """Tiles read by numpy into a StreamingTopK: the first strip's exact k smallest set the first
    thresholds; the strip's own rows are updated tile by tile, the other rows once per strip."""

    def __init__(self, n: int, k: int, dtype):
        self.k = k
        self.stream = StreamingTopK(n, k, max(CAPACITY, 2 * k), np.full(n, np.inf, dtype=dtype))
        self.kmax = np.full(n, -np.inf, dtype=dtype)
        self.mask = np.empty(ROW_BLOCK * COL_BLOCK, dtype=bool)
        self.column = []

    def tile(self, x, first_tile, first_strip, a, b, c0, c1):
        xn, thr, stream = x.numpy(), self.stream.thr, self.stream
        np.maximum(self.kmax[a:b], xn.max(1), out=self.kmax[a:b])
        if first_tile:
            hits, kth = _smallest(x, self.k, 1, a, c0)
            stream.add(*hits)
            stream.lower(slice(a, b), kth)
        else:
            stream.add(*row_hits(xn, thr[a:b], self.mask, a, c0))
        s = max(c0, b) - c0
        if s < c1 - c0:
            np.maximum(self.kmax[c0 + s:c1], xn[:, s:].max(0), out=self.kmax[c0 + s:c1])
            if first_strip:
                hits, kth = _smallest(x[:, s:], self.k, 0, a, c0 + s)
                self.column.append(hits)
                stream.lower(slice(c0 + s, c1), kth)
            else:
                self.column.append(column_hits(xn, s, thr[c0 + s:c1], self.mask, a, c0))

    def strip_done(self):
        if self.column:
            self.stream.add(*(np.concatenate(part) for part in zip(*self.column)))
        self.column = []

    def result(self):
        keys, cols, thr = self.stream.result()
        return self.kmax, keys, cols, thr


def _settle(left, right, metric, keys, cols, thr, colmax, k: int):
    """Order the kept items of each row by (D / colmax, index): the first k are its k nearest; rows where
    a left-out item could still belong to them (a tie at the threshold) are computed again in full."""
    div = squared_from_key(keys, metric) / colmax[:, None]
    cols, perm = torch.sort(cols, dim=1)
    div, perm = torch.sort(div.gather(1, perm), dim=1, stable=True)
    nn, nn_div = cols.gather(1, perm).contiguous(), div.contiguous()
    limit = squared_from_key(thr.clone(), metric) / colmax
    redo = torch.nonzero(~(nn_div[:, k - 1] < limit)).squeeze(1)
    if redo.numel():
        n = left.shape[0]
        step = max(1, (1 << 22) // n)
        buf = torch.empty((min(step, redo.numel()), n), dtype=left.dtype, device=left.device)
        for s in range(0, redo.numel(), step):
            rows = redo[s:s + step]
            row_div = squared_from_key(key_tile(left.index_select(0, rows), right, metric, buf[: rows.numel()]),
                                       metric) / colmax.index_select(0, rows)[:, None]
            idx = nearest_ordered(row_div, nn.shape[1])
            nn[rows], nn_div[rows] = idx, row_div.gather(1, idx)
    return nn, nn_div
