"""Ranked lists: a query and its top-k gallery images, bordered green (same identity) or red (not), each
tile labelled with its rank (and, when given, its gallery id and distance), under a legend of the frames.

Ranking follows the Market-1501 protocol: gallery images of the query's identity taken by the query's
own camera are left out, and so are junk images (pid -1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sagkit.viz.images import _is_tensor, add_border, resize_image, to_uint8_image

MATCH_COLOR = (0, 190, 0)
MISMATCH_COLOR = (220, 0, 0)
QUERY_COLOR = (40, 40, 40)
UNKNOWN_COLOR = (160, 160, 160)  # a gallery image whose identity is not known (sagkit search)


def rank_gallery(
    distances,
    query_pid: int,
    query_camid: int,
    gallery_pids: Sequence[int],
    gallery_camids: Sequence[int],
    topk: int = 10,
    exclude_same_camera: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (indices, matches) of the ``topk`` nearest gallery images for one query.

    ``distances``: the query's row of the query-gallery distance matrix (G,). ``matches[i]`` is True
    when gallery image ``indices[i]`` has the query's identity.
    """
    if _is_tensor(distances):
        distances = distances.detach().cpu().numpy()
    dist = np.asarray(distances, dtype=np.float64).reshape(-1)
    g_pids = np.asarray(gallery_pids)
    g_cams = np.asarray(gallery_camids)
    if not (len(dist) == len(g_pids) == len(g_cams)):
        raise ValueError(
            f"distances ({len(dist)}), gallery_pids ({len(g_pids)}) and gallery_camids ({len(g_cams)}) "
            "must have the same length"
        )
    order = np.argsort(dist, kind="stable")
    keep = g_pids[order] != -1
    if exclude_same_camera:
        keep &= ~((g_pids[order] == query_pid) & (g_cams[order] == query_camid))
    order = order[keep][:topk]
    return order, g_pids[order] == query_pid


def ranked_list_strip(
    query_image,
    gallery_images: Sequence,
    matches: Sequence[bool],
    size: tuple[int, int] | None = None,
    border: int = 4,
    gap: int = 8,
    background: Sequence[int] = (255, 255, 255),
) -> np.ndarray:
    """Compose one row: the query (dark border), a gap, then each gallery image with a green/red border
    (grey where its match flag is None: identity unknown).

    Images are resized to ``size`` = (H, W) (default: the query's size) before the border is added.
    Returns an H'×W'×3 uint8 array.
    """
    if len(gallery_images) != len(matches):
        raise ValueError(f"{len(gallery_images)} gallery images but {len(matches)} match flags")
    query = to_uint8_image(query_image)
    size = tuple(size) if size is not None else query.shape[:2]
    tiles = [add_border(resize_image(query, size), QUERY_COLOR, border)]
    for image, match in zip(gallery_images, matches):
        color = UNKNOWN_COLOR if match is None else MATCH_COLOR if bool(match) else MISMATCH_COLOR
        tiles.append(add_border(resize_image(to_uint8_image(image), size), color, border))
    tile_h, tile_w = tiles[0].shape[:2]
    width = tile_w * len(tiles) + gap * len(tiles)  # an extra gap separates the query from the gallery
    strip = np.empty((tile_h, width, 3), dtype=np.uint8)
    strip[...] = np.asarray(background, dtype=np.uint8)
    x = 0
    for i, tile in enumerate(tiles):
        strip[:, x : x + tile_w] = tile
        x += tile_w + (2 * gap if i == 0 else gap)
    return strip


def frame_legend(fig, loc: str = "outside upper right") -> None:
    """The legend of the frames' colours (query, right identity, wrong identity), outside the images."""
    from matplotlib.patches import Patch

    handles = [Patch(facecolor="none", edgecolor=np.asarray(color) / 255.0, linewidth=2, label=label)
               for color, label in ((QUERY_COLOR, "query"), (MATCH_COLOR, "right identity"),
                                    (MISMATCH_COLOR, "wrong identity"))]
    fig.legend(handles=handles, loc=loc, ncols=3, fontsize=8, frameon=False)


def tile_label(rank: int, gallery_id=None, distance=None) -> str:
    """'rank' then, when known, 'id <gallery id>' and 'd <distance>' on their own lines."""
    parts = [str(rank)]
    if gallery_id is not None:
        parts.append(f"id {gallery_id}")
    if distance is not None:
        parts.append(f"d {float(distance):.2f}")
    return "\n".join(parts)


def annotate_tiles(ax, strip_height: int, num_gallery: int, tile_width: int, labels: Sequence[str] | None = None
                   ) -> None:
    """Write each gallery tile's label (default: its rank) under it."""
    labels = list(labels) if labels is not None else [str(r) for r in range(1, num_gallery + 1)]
    for label, x in zip(labels, tile_x_offsets(num_gallery, tile_width)[1:]):
        ax.text(x + tile_width / 2, strip_height + 6, label, ha="center", va="top", fontsize=7)


def tile_x_offsets(num_gallery: int, tile_width: int, gap: int = 8) -> list[int]:
    """Left x-coordinate of each tile in a :func:`ranked_list_strip` (query first)."""
    offsets = [0]
    x = tile_width + 2 * gap
    for _ in range(num_gallery):
        offsets.append(x)
        x += tile_width + gap
    return offsets


def plot_ranked_lists(
    query_images: Sequence,
    gallery_images: Sequence[Sequence],
    matches: Sequence[Sequence[bool]],
    titles: Sequence[str] | None = None,
    size: tuple[int, int] | None = None,
    border: int = 4,
    pixels_per_inch: float = 100.0,
    labels: Sequence[Sequence[str]] | None = None,
):
    """One row per query: the query then its ranked gallery (green = right identity, red = wrong), with a
    legend of the frames.

    ``gallery_images[q]`` and ``matches[q]`` hold the top-k images and flags of query ``q``; ``labels[q]``
    the text under each of its tiles (default the rank; :func:`tile_label` adds gallery id and distance).
    Images are shown at ``size`` (H, W; default the first query's size), one image pixel per
    1/``pixels_per_inch`` inch. Returns a matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if not (len(query_images) == len(gallery_images) == len(matches)) or not query_images:
        raise ValueError("need the same, non-zero number of queries, gallery lists and match lists")
    if size is None:
        size = to_uint8_image(query_images[0]).shape[:2]
    strips = [
        ranked_list_strip(q, g, m, size=size, border=border) for q, g, m in zip(query_images, gallery_images, matches)
    ]
    width, height = max(s.shape[1] for s in strips), strips[0].shape[0]
    lines = max((str(label).count("\n") + 1 for row in (labels or []) for label in row), default=1)
    figsize = (max(width / pixels_per_inch + 0.3, 4.0), (height / pixels_per_inch + 0.35 + 0.13 * lines) * len(strips)
               + 0.3)
    fig, axes = plt.subplots(len(strips), 1, figsize=figsize, squeeze=False, layout="constrained")
    for row, strip in enumerate(strips):
        ax = axes[row, 0]
        ax.imshow(strip)
        ax.set_xlim(0, width)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        title = titles[row] if titles is not None else None
        if title:
            ax.set_title(title, fontsize=9, loc="left")
        annotate_tiles(ax, strip.shape[0], len(matches[row]), size[1] + 2 * border,
                       labels[row] if labels is not None else None)
    frame_legend(fig)
    return fig
