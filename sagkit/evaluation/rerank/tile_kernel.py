"""One pass over a float32 tile of the distance keys, in C: row or column maxima and the k smallest per item;
and the scale-and-shift of the re-ranked rows (``scale_shift_rows``).

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
import torch

from sagkit.atomic import atomic_write

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#define BLOCK 64  /* entries tested at once; in a block with a hit, only the hits are read again (a bit mask) */

/* key < thr[g] (the heap's top) enters item g's heap; bound[g] follows the least top of all heaps */
static void push(float *hk, int64_t *hc, int32_t *cnt, float *thr, float *bound, int k, int64_t g, float key,
                 int64_t col) {
    float *h = hk + g * k;
    int64_t *c = hc + g * k;
    int32_t n = cnt[g], i, p, l, s;
    if (n < k) {                       /* sift up */
        for (i = n; i > 0 && h[(p = (i - 1) / 2)] < key; i = p) { h[i] = h[p]; c[i] = c[p]; }
        h[i] = key; c[i] = col; cnt[g] = n + 1;
        if (n + 1 == k) { thr[g] = h[0]; if (h[0] < bound[g]) bound[g] = h[0]; }
        return;
    }
    for (i = 0; (l = 2 * i + 1) < k; i = s) {   /* replace the top, sift down */
        s = (l + 1 < k && h[l + 1] > h[l]) ? l + 1 : l;
        if (h[s] <= key) break;
        h[i] = h[s]; c[i] = c[s];
    }
    h[i] = key; c[i] = col; thr[g] = h[0];
    if (h[0] < bound[g]) bound[g] = h[0];
}

/* bit j of the result set where x[j] < t[j * step] (n <= 64; step 0 or 1) */
static inline uint64_t below(const float *x, const float *t, int64_t step, int64_t n) {
    uint64_t m = 0;
    int64_t j = 0;
#ifdef __AVX512F__
    __m512 tv = _mm512_set1_ps(t[0]);
    for (; j + 16 <= n; j += 16)
        m |= (uint64_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(x + j), step ? _mm512_loadu_ps(t + j) : tv, _CMP_LT_OQ) << j;
#endif
    for (; j < n; j++) m |= (uint64_t)(x[j] < t[j * step]) << j;
    return m;
}

/* D from a key, in place: 1 = sqrt(max(v, 0))^2 (euclidean), 2 = max(v, 0)^2 (sqeuclidean), 3 = v^2 */
static void squared(float *restrict x, int64_t n, int metric) {
    if (metric == 1) for (int64_t j = 0; j < n; j++) { float s = sqrtf(x[j] > 0 ? x[j] : 0); x[j] = s * s; }
    else if (metric == 2) for (int64_t j = 0; j < n; j++) { float v = x[j] > 0 ? x[j] : 0; x[j] = v * v; }
    else if (metric == 3) for (int64_t j = 0; j < n; j++) x[j] = x[j] * x[j];
}

/* One pass over the tile (r x c, row stride ld): its rows i are items row0 + i, read against the items
   col0 + j; its columns j >= start are items col0 + j, read against the items row0 + i. Then, if
   metric > 0, each row of the tile is turned into D in place (tiles of the query x gallery block).
   Keys at or above bound[g] are left out: bound is thr itself, or an array that heaps filled by other
   threads share, each lowering it to its own top (racing writes leave a value one of the tops had). */
void pass_both(float *restrict x, int64_t r, int64_t c, int64_t ld, int64_t start, int64_t row0,
               int64_t col0, float *kmax, float *thr, float *bound, float *hk, int64_t *hc, int32_t *cnt, int k,
               int metric) {
    float *restrict km = kmax + col0;
    float *tc = bound + col0;
    if (start > c) start = c;
    for (int64_t i = 0; i < r; i++) {
        float *xi = x + i * ld;
        int64_t g = row0 + i;
        float m = kmax[g];
        for (int64_t j0 = 0; j0 < c; j0 += BLOCK) {
            int64_t j1 = j0 + BLOCK < c ? j0 + BLOCK : c;
            if (j0 < start && j1 > start) j1 = start;
            float t = bound[g] < thr[g] ? bound[g] : thr[g];
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
            for (uint64_t b = anyr ? below(xi + j0, &t, 0, j1 - j0) : 0; b; b &= b - 1) {
                int64_t j = j0 + __builtin_ctzll(b);
                if (xi[j] < thr[g] && xi[j] < bound[g]) push(hk, hc, cnt, thr, bound, k, g, xi[j], col0 + j);
            }
            for (uint64_t b = anyc ? below(xi + j0, tc + j0, 1, j1 - j0) : 0; b; b &= b - 1) {
                int64_t j = j0 + __builtin_ctzll(b);
                if (xi[j] < tc[j] && xi[j] < thr[col0 + j]) push(hk, hc, cnt, thr, bound, k, col0 + j, xi[j], row0 + i);
            }
            if (j1 == start) j0 = start - BLOCK;
        }
        kmax[g] = m;
        squared(x + i * ld, c, metric);
    }
}

/* x[i, j] <- x[i, j] * scale[i] + shift for the r x c rows of x (contiguous), rounded after each step */
void scale_shift(float *restrict x, int64_t r, int64_t c, const float *restrict scale, float shift) {
    for (int64_t i = 0; i < r; i++) {
        float s = scale[i];
        float *restrict xi = x + i * c;
        for (int64_t j = 0; j < c; j++) xi[j] = xi[j] * s + shift;
    }
}
"""

# the maxima vectorise with finite-math and no signed zeros; no reassociation, so sqrt(v)^2 stays as written, and
# no fused multiply-add, so that scale_shift rounds as torch's x * s + t does
_FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-ffinite-math-only", "-fno-signed-zeros", "-fno-trapping-math",
          "-ffp-contract=off", "-fPIC", "-shared", "-lm"]
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
    once it holds k keys (inf before), so every key left out is >= thr.

    ``bound`` (n float32, shared by the heaps of threads that read parts of the same matrix): keys at or
    above it are left out too; every heap lowers it to its own top. Each value it takes is a top some heap
    had, so a key left out is >= the least final top of them all (``merge_heaps``). Default: thr.
    """

    def __init__(self, lib, n: int, k: int, bound: np.ndarray | None = None):
        self.lib, self.k = lib, k
        self.kmax = np.full(n, -np.inf, dtype=np.float32)
        self.thr = np.full(n, np.inf, dtype=np.float32)
        self.bound = self.thr if bound is None else bound
        assert self.bound.dtype == np.float32 and self.bound.shape == (n,) and self.bound.flags.c_contiguous
        self.key = np.full((n, k), np.inf, dtype=np.float32)
        self.col = np.full((n, k), -1, dtype=np.int64)
        self.count = np.zeros(n, dtype=np.int32)

        self._state_args = (*(ctypes.c_void_p(a.ctypes.data) for a in (self.kmax, self.thr, self.bound, self.key,
                                                                          self.col, self.count)), ctypes.c_int(k))

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


def merge_heaps(heaps: list[TileHeaps]):
    """(kmax, key, col, thr) tensors of the union of heaps that each saw part of every item's entries.

    Per item the k smallest keys of all heaps (in no order) and their columns; thr = the least of the heaps'
    thresholds and the k-th merged key, so that every key left out, by a heap or by the merge, is >= thr.
    """
    if len(heaps) == 1:
        h = heaps[0]
        return tuple(torch.from_numpy(a) for a in (h.kmax, h.key, h.col, h.thr))
    keys, pick = torch.topk(torch.cat([torch.from_numpy(h.key) for h in heaps], 1), heaps[0].k, dim=1,
                            largest=False, sorted=False)
    cols = torch.cat([torch.from_numpy(h.col) for h in heaps], 1).gather(1, pick)
    kmax = torch.stack([torch.from_numpy(h.kmax) for h in heaps]).amax(0)
    thr = torch.stack([torch.from_numpy(h.thr) for h in heaps] + [keys.amax(1)]).amin(0)
    return kmax, keys, cols, thr


def scale_shift_rows(x: torch.Tensor, scale: torch.Tensor, shift: float) -> None:
    """x (r x c) <- x * scale[:, None] + shift, in place, the product rounded before the sum: one compiled
    pass for contiguous CPU float32 tensors where the kernel is built (about 3x torch.addcmul on one
    thread), two torch passes elsewhere (the same numbers)."""
    lib = load() if x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous() else None
    if lib is None:
        x.mul_(scale[:, None]).add_(shift)
        return
    scale = scale.to(torch.float32).contiguous()
    lib.scale_shift(ctypes.c_void_p(x.data_ptr()), ctypes.c_int64(x.shape[0]), ctypes.c_int64(x.shape[1]),
                    ctypes.c_void_p(scale.data_ptr()), ctypes.c_float(shift))
