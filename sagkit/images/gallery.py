"""``search(source, query, gallery, topk)``: each query image's ``topk`` nearest gallery images, exactly.

The gallery is read in chunks of ``CHUNK`` embeddings (queries in blocks of ``QUERY_BLOCK``): each chunk's
distances (the evaluation's ``compute_distance_matrix``) are packed with their gallery index into one int64
key, ``(float32 bits of the distance) << 32 | index``, and streamed into :class:`StreamingTopK`, which keeps
at most ``max(4k, 64)`` keys per query; the first chunk's k-th smallest key is each query's first threshold. The keys are distinct, so the result is a full stable sort's
first k (ties in distance ranked by gallery index), with memory bounded by the block sizes, not the gallery.
Re-ranking (k-reciprocal, the run's k1/k2/lambda) needs the whole query x gallery matrix.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from sagkit.images.embedding import Embeddings, ImagesArg, embed, load_source
from sagkit.evaluation import compute_distance_matrix, re_rank_features
from sagkit.evaluation.streaming_topk import StreamingTopK, row_hits
from sagkit.images.maps import NO_MAPS_ONNX, overlay, search_maps
from sagkit.viz.images import resize_image, to_uint8_image
from sagkit.viz.ranked_list import plot_ranked_lists

__all__ = ["SearchResult", "exact_topk", "search", "topk_of_matrix"]

CHUNK = 4096
QUERY_BLOCK = 256
_COLUMN_BITS = 32
# Settings two embedding sets must share to be compared.
_COMPARABLE = ("model", "input_size", "flip", "mean", "std")


def _pack(dist: np.ndarray, col0: int) -> np.ndarray:
    """int64 keys (r x c) ordered as (distance, column): distance float32 bits above the column. Distances are
    non-negative; a negative one (rounding, e.g. in re-ranking's Jaccard term) counts as 0."""
    d = np.maximum(np.asarray(dist, dtype=np.float32), np.float32(0.0)) + np.float32(0.0)  # and -0.0 -> +0.0
    if np.isnan(d).any():
        raise ValueError("distances must be numbers (got NaN): check the embeddings for NaN")
    cols = np.arange(col0, col0 + d.shape[1], dtype=np.int64)
    return (d.view(np.int32).astype(np.int64) << _COLUMN_BITS) | cols[None, :]


def _unpack(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dist = (keys >> _COLUMN_BITS).astype(np.int32).view(np.float32)
    return dist, keys & ((1 << _COLUMN_BITS) - 1)


def _topk_of_tiles(tiles: Iterable[tuple[int, np.ndarray]], rows: int, k: int, width: int):
    """(distances rows x k float32, indices rows x k int64) of tiles ``(col0, distances rows x c)``.

    The first tile's k-th smallest key of each row is its first threshold, so that later tiles pass only
    the entries that may still enter the top k."""
    tiles = iter(tiles)
    col0, tile = next(tiles)
    keys = _pack(tile, col0)
    thr = np.full(rows, np.iinfo(np.int64).max, dtype=np.int64)
    if keys.shape[1] >= k:
        thr = np.partition(keys, k - 1, axis=1)[:, k - 1].copy()
    stream = StreamingTopK(rows, k, max(4 * k, 64), thr)
    mask = np.empty(rows * width, dtype=bool)
    stream.add(*row_hits(keys, stream.thr, mask, 0, col0))
    for col0, tile in tiles:
        stream.add(*row_hits(_pack(tile, col0), stream.thr, mask, 0, col0))
    keys, _, _ = stream.result()
    return _unpack(keys)


def _check_k(k: int, gallery_size: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"topk must be a positive integer, got {k!r}")
    if gallery_size == 0:
        raise ValueError("the gallery is empty")
    return min(k, gallery_size)


def exact_topk(query, gallery, k: int, chunk: int = CHUNK, query_block: int = QUERY_BLOCK):
    """The ``k`` nearest rows of ``gallery`` (G x D) for each row of ``query`` (Q x D), Euclidean distance:
    ``(distances Q x k float32 ascending, indices Q x k int64)``, ties by gallery index; memory
    O(query_block x (chunk + k)) beyond the inputs."""
    q = torch.as_tensor(np.asarray(query, dtype=np.float32))
    g = torch.as_tensor(np.asarray(gallery, dtype=np.float32))
    k = _check_k(k, g.shape[0])
    width = min(chunk, g.shape[0])
    out_d, out_i = [], []
    for a in range(0, q.shape[0], query_block):
        block = q[a:a + query_block]
        tiles = ((c0, compute_distance_matrix(block, g[c0:c0 + width]).numpy()) for c0 in range(0, g.shape[0], width))
        d, i = _topk_of_tiles(tiles, block.shape[0], k, width)
        out_d.append(d)
        out_i.append(i)
    return np.concatenate(out_d), np.concatenate(out_i)


def topk_of_matrix(distmat, k: int, chunk: int = CHUNK):
    """:func:`exact_topk` of a precomputed distance matrix (Q x G), e.g. a re-ranked one."""
    d = np.asarray(distmat)
    k = _check_k(k, d.shape[1])
    width = min(chunk, d.shape[1])
    return _topk_of_tiles(((c0, d[:, c0:c0 + width]) for c0 in range(0, d.shape[1], width)), d.shape[0], k, width)


@dataclass
class SearchResult:
    """Ranked lists: ``indices``/``distances`` (Q x k) into ``gallery.paths`` for each of ``query.paths``;
    ``model``: :func:`load_source`'s tuple, which draws the attention grids or Grad-CAM in :meth:`figure`."""

    query: Embeddings
    gallery: Embeddings
    indices: np.ndarray
    distances: np.ndarray
    reranked: bool = False
    model: tuple | None = field(default=None, repr=False)

    def lines(self) -> list[str]:
        """The ranked lists as text: one header per query, then ``rank  distance  path`` rows."""
        out = []
        for q, path in enumerate(self.query.paths):
            out.append(f"query {path}" + (" (re-ranked)" if self.reranked else ""))
            out += [f"  {r + 1:>3}  {self.distances[q, r]:.4f}  {self.gallery.paths[i]}"
                    for r, i in enumerate(self.indices[q])]
        return out

    def figure(self, size: tuple[int, int] = (128, 64), matches: Sequence[Sequence[bool]] | None = None,
               maps: bool = True):
        """A matplotlib Figure: one row per query, its ranked gallery images labelled with rank, distance and
        file name; borders green/red when ``matches`` (Q x k flags) is given, grey otherwise. With ``maps`` and
        a run's model every image carries its map (:mod:`sagkit.images.maps`), named under the images."""
        shown = list(self.query.paths) + [self.gallery.paths[i] for row in self.indices for i in row]
        drawn = search_maps(self.model, shown) if maps and self.model is not None else None

        def tile(path: str) -> np.ndarray:
            return overlay(resize_image(to_uint8_image(path), size), path, drawn)

        queries = [tile(p) for p in self.query.paths]
        gallery = [[tile(self.gallery.paths[i]) for i in row] for row in self.indices]
        labels = [[f"{r + 1}: {self.distances[q, r]:.3f}\n{_short(Path(self.gallery.paths[i]).name)}"
                   for r, i in enumerate(row)] for q, row in enumerate(self.indices)]
        flags = matches if matches is not None else [[None] * len(row) for row in self.indices]
        fig = plot_ranked_lists(queries, gallery, flags, titles=[Path(p).name for p in self.query.paths],
                                size=size, labels=labels)
        if maps and self.model is not None:  # under the images, wrapped to the figure's width
            note = drawn.caption() if drawn is not None else NO_MAPS_ONNX
            fig.supxlabel(textwrap.fill(note, width=max(40, int(fig.get_figwidth() * 14))), fontsize=8)
        return fig

    def save_png(self, path: str | Path, **kwargs) -> Path:
        """Draw :meth:`figure` into a PNG file."""
        import matplotlib.pyplot as plt

        fig = self.figure(**kwargs)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return Path(path)


def _short(name: str, width: int = 11) -> str:
    """A file name cut to its last ``width`` characters (with a leading ellipsis) to fit under a tile."""
    return name if len(name) <= width else "…" + name[-(width - 1):]


def _same(a, b) -> bool:
    """Equal settings; numbers lists equal to 1e-5 (an ONNX file stores its mean and std rounded)."""
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and a and not isinstance(a[0], bool):
        return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=0, atol=1e-5))
    return a == b


def _check_comparable(query: Embeddings, gallery: Embeddings, where: str) -> None:
    differ = [key for key in _COMPARABLE if not _same(query.model if key == "model" else query.settings.get(key),
                                                      gallery.model if key == "model" else gallery.settings.get(key))]
    if differ:
        raise ValueError(f"the gallery embeddings {where} were made with other settings ({', '.join(differ)}) than "
                         f"the queries' model {query.model}: embed the gallery again with this model")


def search(source, query: ImagesArg, gallery: ImagesArg | Embeddings, topk: int = 10, *, rerank: bool = False,
           which: str = "best", flip: bool | None = None, batch_size: int | None = None, device: str = "cpu",
           progress: bool = True, threads: int | None = None, num_workers: int | None = None) -> SearchResult:
    """Rank ``gallery`` (images, folders, globs, an ``.npz`` from ``embed`` or :class:`Embeddings`) for each
    ``query`` image by the embeddings of ``source`` (run folder or ONNX file), exact top-``topk``.

    ``rerank``: k-reciprocal re-ranking with the run's k1, k2 and lambda (builds the Q x G matrix). The other
    options are :func:`sagkit.embed`'s."""
    loaded = load_source(source, which, flip, batch_size, device)
    options = dict(device=device, progress=progress, threads=threads, num_workers=num_workers)
    q = embed(loaded, query, **options)
    if isinstance(gallery, Embeddings):
        g, where = gallery, "given"
    elif isinstance(gallery, (str, Path)) and str(gallery).endswith(".npz"):
        g, where = Embeddings.load(gallery), f"in {gallery}"
    else:
        g, where = embed(loaded, gallery, **options), ""
    _check_comparable(q, g, where)
    if rerank:
        settings = loaded[2]
        dist = re_rank_features(q.vectors, g.vectors, k1=settings.rerank_k1, k2=settings.rerank_k2,
                                lambda_value=settings.rerank_lambda)
        d, i = topk_of_matrix(dist, topk)
    else:
        d, i = exact_topk(q.vectors, g.vectors, topk)
    return SearchResult(q, g, i, d, rerank, loaded)
