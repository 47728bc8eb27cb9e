"""Attention-grid overlays (the paper's Figure 4).

A SAG grid is a small N×1×h×w map (e.g. 5×2 at D4 for a 160×64 input). It is upsampled bilinearly to
the image size, scaled to [0, 1], coloured with a jet/turbo colour map and alpha-blended on the image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sagkit.viz.images import _is_tensor, to_uint8_image


def _grid_to_2d(grid) -> np.ndarray:
    """Return one h×w float32 map from an h×w, 1×h×w or 1×1×h×w array or tensor."""
    if _is_tensor(grid):
        grid = grid.detach().cpu().float().numpy()
    array = np.asarray(grid, dtype=np.float32)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"expected one attention grid of shape h×w or 1×h×w; got shape {np.shape(grid)}")
    return array


def upsample_grid(grid, size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """Upsample one attention grid (h×w or 1×h×w) to ``size`` = (H, W); returns H×W float32.

    Bilinear with ``align_corners=False`` (torch's convention), so a grid cell covers the matching
    block of image pixels.
    """
    import torch
    import torch.nn.functional as F

    array = _grid_to_2d(grid)
    tensor = torch.from_numpy(array)[None, None]
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(tensor, size=tuple(int(s) for s in size), mode=mode, **kwargs)
    return out[0, 0].numpy().astype(np.float32)


def normalize_map(values: np.ndarray) -> np.ndarray:
    """Min-max scale a map to [0, 1] (a constant map becomes all zeros)."""
    values = np.asarray(values, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    if high - low <= 1e-12:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def colorize(values: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """Map a [0, 1] H×W array through a matplotlib colour map; returns H×W×3 uint8."""
    from matplotlib import colormaps

    rgba = colormaps[cmap](np.clip(values, 0.0, 1.0))
    return (rgba[..., :3] * 255.0 + 0.5).astype(np.uint8)


def overlay_heatmap(
    image,
    grid,
    alpha: float = 0.5,
    cmap: str = "jet",
    normalize: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> np.ndarray:
    """Blend an attention grid onto an image; returns H×W×3 uint8 at the image's size.

    ``image``: anything :func:`~sagkit.viz.images.to_uint8_image` accepts (``mean``/``std`` undo a
    normalisation). ``grid``: h×w or 1×h×w. ``alpha`` is the heatmap's weight (0 = image only).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    rgb = to_uint8_image(image, mean=mean, std=std)
    heat = upsample_grid(grid, rgb.shape[:2])
    heat = normalize_map(heat) if normalize else np.clip(heat, 0.0, 1.0)
    coloured = colorize(heat, cmap).astype(np.float32)
    blended = (1.0 - alpha) * rgb.astype(np.float32) + alpha * coloured
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def grid_shape_label(grid) -> str:
    """'h=5, w=2' for a grid, as in the paper's captions."""
    h, w = _grid_to_2d(grid).shape
    return f"h={h}, w={w}"


def map_title(label: str, grid) -> str:
    """'D4 (h=5, w=2)'; a longer label such as 'baseline Grad-CAM' is wrapped after its first word and
    the shape goes on its own line, so that titles fit the narrow columns."""
    if len(label) <= 3:
        return f"{label} ({grid_shape_label(grid)})"
    wrapped = label.replace(" ", "\n", 1)
    return f"{wrapped}\n({grid_shape_label(grid)})"


def map_columns(grids: Mapping[int, object], activations: Mapping[str, object] | None, count: int) -> list[tuple[str, object]]:
    """(label, maps) per overlay column: named activation maps first, in their order, then "D1".."D4".

    ``grids``: {depth: N×1×h×w}; ``activations``: {name: N×h×w}, e.g. the baseline's Grad-CAM
    (:mod:`sagkit.viz.activation`), which has no attention grid. Each must hold ``count`` maps.
    """
    named = [(f"activations[{name!r}]", str(name), maps) for name, maps in (activations or {}).items()]
    depths = [(f"grids[{depth}]", f"D{depth}", grids[depth]) for depth in sorted(grids)]
    clash = sorted({label for _, label, _ in named} & {label for _, label, _ in depths})
    if clash:
        raise ValueError(f"activations named {clash} would hide the attention grids of the same name: rename them")
    for key, _, maps in named + depths:
        if len(maps) != count:
            raise ValueError(f"{key} has {len(maps)} maps but there are {count} images")
    return [(label, maps) for _, label, maps in named + depths]


def plot_attention_grids(
    images: Sequence,
    grids: Mapping[int, object],
    alpha: float = 0.5,
    cmap: str = "jet",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    row_titles: Sequence[str] | None = None,
    cell_size: tuple[float, float] = (1.3, 2.6),
    activations: Mapping[str, object] | None = None,
):
    """Figure 4: one row per image; the original, then its grid overlaid for each depth in ``grids``.

    ``grids`` maps a depth (1-4) to an N×1×h×w array/tensor (or a list of N h×w maps) aligned with
    ``images``; ``activations`` adds named N×h×w maps (e.g. the baseline's) before the depths.
    Returns a matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    n = len(images)
    if n == 0:
        raise ValueError("plot_attention_grids needs at least one image")
    columns = map_columns(grids, activations, n)
    ncols = 1 + len(columns)
    fig, axes = plt.subplots(n, ncols, figsize=(cell_size[0] * ncols, cell_size[1] * n), squeeze=False)
    for row, image in enumerate(images):
        rgb = to_uint8_image(image, mean=mean, std=std)
        axes[row, 0].imshow(rgb)
        if row == 0:
            axes[row, 0].set_title("original", fontsize=9)
        if row_titles is not None:
            axes[row, 0].set_ylabel(row_titles[row], fontsize=8)
        for col, (label, maps) in enumerate(columns, start=1):
            axes[row, col].imshow(overlay_heatmap(rgb, maps[row], alpha=alpha, cmap=cmap))
            if row == 0:
                axes[row, col].set_title(map_title(label, maps[row]), fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
