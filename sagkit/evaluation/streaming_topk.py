"""The k smallest keys of each row of a matrix whose entries arrive as scattered hits, tile by tile (numpy).

Each row has a threshold: entries above it cannot be among the row's k smallest and are never
stored (``row_hits`` and ``column_hits`` pick the rest out of a tile). A row whose buffer would
overflow keeps its k smallest and lowers its threshold to the largest of them, so that fewer entries
pass later. Invariant: every entry of a row left out is >= the row's threshold.
"""

from __future__ import annotations

import numpy as np


def row_hits(tile: np.ndarray, thr: np.ndarray, mask: np.ndarray, row0: int, col0: int):
    """Entries of tile (r x c) with tile[i, j] <= thr[i] -> (row0 + i, col0 + j, value).

    ``mask`` (at least r * c bools) is scratch space."""
    m = mask[: tile.size].reshape(tile.shape)
    np.less_equal(tile, thr[:, None], out=m)
    flat = np.flatnonzero(m)
    i = flat // tile.shape[1]
    j = flat - i * tile.shape[1]
    return i + row0, j + col0, tile[i, j]


def column_hits(tile: np.ndarray, start: int, thr: np.ndarray, mask: np.ndarray, row0: int, col0: int):
    """Entries of tile[:, start:] with tile[i, j] <= thr[j - start], read as row col0 + j of the matrix:
    -> (col0 + j, row0 + i, value)."""
    part = tile[:, start:]
    m = mask[: part.size].reshape(part.shape)
    np.less_equal(part, thr[None, :], out=m)
    flat = np.flatnonzero(m)
    i = flat // part.shape[1]
    j = flat - i * part.shape[1] + start
    return j + col0, i + row0, tile[i, j]


def _stable_order(values: np.ndarray, bound: int) -> np.ndarray:
    """Stable argsort of non-negative integers below ``bound``: a radix sort when they fit 16 bits, else
    numpy's vectorised sort of the values with their positions packed into the low 32 bits."""
    if bound < 1 << 15:
        return np.argsort(values.astype(np.int16), kind="stable")
    packed = (values.astype(np.int64) << 32) | np.arange(values.size, dtype=np.int64)
    packed.sort()
    return packed & 0xFFFFFFFF


def empty_key(dtype) -> float | int:
    """The key of an empty slot: inf for float keys, the largest value for integer keys."""
    return np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).max


class StreamingTopK:
    """Per row of an n-row matrix, up to ``capacity`` (key, column) pairs that include its k smallest.

    Keys are floats, or integers (e.g. a distance and its column packed into one int64, so that ties are
    broken by column); the dtype is that of ``thr``."""

    def __init__(self, n: int, k: int, capacity: int, thr: np.ndarray):
        if not 1 <= k <= capacity // 2:
            raise ValueError(f"need 1 <= k <= capacity / 2, got k={k}, capacity={capacity}")
        self.k, self.capacity = k, capacity
        self.thr = np.array(thr, copy=True)
        self.empty = empty_key(self.thr.dtype)
        self.key = np.full((n, capacity), self.empty, dtype=self.thr.dtype)
        self.col = np.full((n, capacity), -1, dtype=np.int64)
        self.count = np.zeros(n, dtype=np.int64)

    def add(self, rows: np.ndarray, cols: np.ndarray, keys: np.ndarray) -> None:
        """Store entries (row, column, key), in any order, each with key <= thr[row], each (row, column) once."""
        if rows.size == 0:
            return
        order = _stable_order(rows, self.key.shape[0])
        rows, cols, keys = rows[order], cols[order], keys[order]
        starts = np.flatnonzero(np.diff(rows, prepend=-1))
        lens = np.diff(starts, append=rows.size)
        owners = rows[starts]
        over = self.count[owners] + lens > self.capacity
        if over.any():
            hit_over = np.repeat(over, lens)
            self._merge(owners[over], rows[hit_over], cols[hit_over], keys[hit_over])
            fit = ~hit_over
            rows, cols, keys = rows[fit], cols[fit], keys[fit]
            owners, lens = owners[~over], lens[~over]
            starts = np.cumsum(lens) - lens
        flat = rows * self.capacity + self.count[rows] + np.arange(rows.size) - np.repeat(starts, lens)
        self.key.reshape(-1)[flat] = keys
        self.col.reshape(-1)[flat] = cols
        self.count[owners] += lens

    def lower(self, rows: slice, thr) -> None:
        """Lower the thresholds of ``rows`` to ``thr`` (None: leave them), once their entries up to it are stored."""
        if thr is not None:
            np.minimum(self.thr[rows], thr, out=self.thr[rows])

    def _merge(self, owners: np.ndarray, rows: np.ndarray, cols: np.ndarray, keys: np.ndarray) -> None:
        """Rows ``owners`` (ascending) keep the k smallest of their buffer and of new entries (by row)."""
        m, cap, k = owners.size, self.capacity, self.k
        local = np.searchsorted(owners, rows)
        lens = np.bincount(local, minlength=m)
        slot = cap + np.arange(rows.size) - np.repeat(np.cumsum(lens) - lens, lens)
        width = cap + int(lens.max())
        all_keys = np.full((m, width), self.empty, dtype=self.key.dtype)
        all_cols = np.full((m, width), -1, dtype=np.int64)
        all_keys[:, :cap], all_cols[:, :cap] = self.key[owners], self.col[owners]
        all_keys[local, slot], all_cols[local, slot] = keys, cols
        part = np.argpartition(all_keys, k - 1, axis=1)[:, :k]
        new_keys = np.full((m, cap), self.empty, dtype=self.key.dtype)
        new_cols = np.full((m, cap), -1, dtype=np.int64)
        new_keys[:, :k] = np.take_along_axis(all_keys, part, 1)
        new_cols[:, :k] = np.take_along_axis(all_cols, part, 1)
        self.key[owners], self.col[owners] = new_keys, new_cols
        self.count[owners] = k
        self.thr[owners] = np.minimum(self.thr[owners], new_keys[:, :k].max(1))

    def result(self):
        """(keys, columns, thr): per row the k smallest stored keys (n x k, ascending; empty, -1 where fewer)."""
        part = np.argpartition(self.key, self.k - 1, axis=1)[:, : self.k]
        keys = np.take_along_axis(self.key, part, 1)
        order = np.argsort(keys, axis=1, kind="stable")
        return (np.take_along_axis(keys, order, 1), np.take_along_axis(np.take_along_axis(self.col, part, 1), order, 1),
                self.thr)
