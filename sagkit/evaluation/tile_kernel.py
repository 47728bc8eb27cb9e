"""One pass over a float32 tile of the distance keys, in C: row or column maxima and the k smallest per item.

numpy needs five passes over a tile for what the all-pairs pass asks of each entry (two maxima, two
threshold tests, the scans for hits); this kernel reads the tile once, in blocks of 64 entries whose
maxima and threshold tests vectorise, and pushes the rare hits into a max-heap of the k smallest keys
per item (the heap's top is the item's threshold, so it tightens at every hit).
It is compiled with the system's C compiler on first use, into ~/.cache/sagkit (or
$SAGKIT_CACHE); without a compiler ``load()`` returns None and the numpy path is used.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_write

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#define BLOCK 64  /* entries tested at once; a block with a hit is read again entry by entry */

static void push(float *hk, int64_t *hc, int32_t *cnt, float *thr, int k, int64_t g, float key, int64_t col) {
    float *h = hk + g * k;
    int64_t *c = hc + g * k;
    int32_t n = cnt[g], i, p, l, s;
    if (n < k) {                       /* sift up */
        for (i = n; i > 0 && h[(p = (i - 1) / 2)] < key; i = p) { h[i] = h[p]; c[i] = c[p]; }
        h[i] = key; c[i] = col; cnt[g] = n + 1;
        if (n + 1 == k) thr[g] = h[0];
        return;
    }
    for (i = 0; (l = 2 * i + 1) < k; i = s) {   /* replace the top, sift down */
        s = (l + 1 < k && h[l + 1] > h[l]) ? l + 1 : l;
        if (h[s] <= key) break;
        h[i] = h[s]; c[i] = c[s];
    }
    h[i] = key; c[i] = col; thr[g] = h[0];
}

/* D from a key, in place: 1 = sqrt(max(v, 0))^2 (euclidean), 2 = max(v, 0)^2 (sqeuclidean), 3 = v^2 */
static void squared(float *restrict x, int64_t n, int metric) {
    if (metric == 1) for (int64_t j = 0; j < n; j++) { float s = sqrtf(x[j] > 0 ? x[j] : 0); x[j] = s * s; }
    else if (metric == 2) for (int64_t j = 0; j < n; j++) { float v = x[j] > 0 ? x[j] : 0; x[j] = v * v; }
    else if (metric == 3) for (int64_t j = 0; j < n; j++) x[j] = x[j] * x[j];
}

/* One pass over the tile (r x c, row stride ld): its rows i are items row0 + i, read against the items
   col0 + j; its columns j >= start are items col0 + j, read against the items row0 + i. Then, if
   metric > 0, each row of the tile is turned into D in place (tiles of the query x gallery block). */
void pass_both(float *restrict x, int64_t r, int64_t c, int64_t ld, int64_t start, int64_t row0,
               int64_t col0, float *kmax, float *thr, float *hk, int64_t *hc, int32_t *cnt, int k, int metric) {
    float *restrict km = kmax + col0;
    float *restrict tc = thr + col0;
    if (start > c) start = c;
    for (int64_t i = 0; i < r; i++) {
        float *xi = x + i * ld;
        int64_t g = row0 + i;
        float m = kmax[g];
        for (int64_t j0 = 0; j0 < c; j0 += BLOCK) {
            int64_t j1 = j0 + BLOCK < c ? j0 + BLOCK : c;
            if (j0 < start && j1 > start) j1 = start;
            float t = thr[g];
            int anyr = 0, anyc = 0;
            if (j0 < start) {
                for (int64_t j = j0; j < j1; j++) { float v = xi[j]; m = v > m ? v : m; anyr |= v < t; }
            } else {
                for (int64_t j = j0; j < j1; j++) {
                    float v = xi[j];
                    m = v > m ? v : m;
                    anyr |= v < t;
                    km[j] = v > km[j] ? v : km[j];
                    anyc |= v < tc[j];
                }
            }
            if (anyr)
                for (int64_t j = j0; j < j1; j++)
                    if (xi[j] < thr[g]) push(hk, hc, cnt, thr, k, g, xi[j], col0 + j);
            if (anyc)
                for (int64_t j = j0; j < j1; j++)
                    if (xi[j] < tc[j]) push(hk, hc, cnt, thr, k, col0 + j, xi[j], row0 + i);
            if (j1 == start) j0 = start - BLOCK;
        }
        kmax[g] = m;
        squared(x + i * ld, c, metric);
    }
}
"""

# the maxima vectorise with finite-math and no signed zeros; no reassociation, so sqrt(v)^2 stays as written
_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-ffinite-math-only", "-fno-signed-zeros", "-fno-trapping-math",
          "-fPIC", "-shared", "-lm"]
_lib = None
_tried = False


def _compile(target: Path) -> None:
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "tile_kernel.c"
        src.write_text(_SOURCE)
        atomic_write(target, lambda out: subprocess.run([compiler, *_FLAGS, str(src), "-o", out], check=True,
                                                         capture_output=True, timeout=120))


def load():
    """The compiled kernel (ctypes library), or None where it cannot be built here."""
    global _lib, _tried
    if not _tried:
        _tried = True
        digest = hashlib.sha1((_SOURCE + " ".join(_FLAGS)).encode()).hexdigest()[:16]
        cache = Path(os.environ.get("SAGKIT_CACHE") or Path.home() / ".cache" / "sagkit")
        target = cache / f"tile_kernel-{digest}.so"
        try:
            if not target.exists():
                _compile(target)
            _lib = ctypes.CDLL(str(target))
        except (OSError, subprocess.SubprocessError):
            _lib = None
    return _lib


METRIC_CODES = {"euclidean": 1, "sqeuclidean": 2, "cosine": 3}  # how ``both`` turns a key into D


def _ptr(a: np.ndarray):
    return ctypes.c_void_p(a.ctypes.data)


class TileHeaps:
    """Per item a max-heap of the k smallest keys seen (n x k keys and columns); thr = the heap's top
    once it holds k keys (inf before), so every key left out is >= thr."""

    def __init__(self, lib, n: int, k: int):
        self.lib, self.k = lib, k
        self.kmax = np.full(n, -np.inf, dtype=np.float32)
        self.thr = np.full(n, np.inf, dtype=np.float32)
        self.key = np.full((n, k), np.inf, dtype=np.float32)
        self.col = np.full((n, k), -1, dtype=np.int64)
        self.count = np.zeros(n, dtype=np.int32)

        self._state_args = (*(ctypes.c_void_p(a.ctypes.data) for a in (self.kmax, self.thr, self.key, self.col,
                                                                          self.count)), ctypes.c_int(k))

    def _state(self):
        return self._state_args

    def both(self, tile: np.ndarray, start: int, row0: int, col0: int, metric: int = 0) -> None:
        """Read tile (r x c float32, rows contiguous) as entries of the items row0.. (its rows) and,
        from column ``start`` on, of the items col0 + j (its columns); then, for metric 1, 2 or 3
        (METRIC_CODES), turn the tile into D in place."""
        r, c = tile.shape
        assert tile.dtype == np.float32 and tile.strides[1] == 4
        self.lib.pass_both(_ptr(tile), ctypes.c_int64(r), ctypes.c_int64(c), ctypes.c_int64(tile.strides[0] // 4),
                           ctypes.c_int64(start), ctypes.c_int64(row0), ctypes.c_int64(col0), *self._state(),
                           ctypes.c_int(metric))
