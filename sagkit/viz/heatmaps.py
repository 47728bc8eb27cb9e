"""Attention-grid overlays (the paper's Figure 4).

A SAG grid is a small N×1×h×w map (e.g. 5×2 at D4 for a 160×64 input). It is upsampled bilinearly to
the image size, scaled to [0, 1], coloured with a jet/turbo colour map and alpha-blended on the image.
Figure 4 scales every grid of one depth on one colour scale, shown by a colour bar, so that a nearly flat
grid looks flat; per-image min-max scaling (``scale="image"``) stretches any grid to the full colour range
and is drawn only with each panel's min and max printed on it. Exactly uniform grids are marked.
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


def scale_map(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` mapped linearly from [low, high] to [0, 1] (clipped); all zeros when high − low ≤ 1e-12."""
    values = np.asarray(values, dtype=np.float32)
    if high - low <= 1e-12:
        return np.zeros_like(values)
    return np.clip((values - low) / (high - low), 0.0, 1.0)


def is_uniform(grid) -> bool:
    """True when every cell of one grid is equal (max − min ≤ 1e-6·max), as ``sagkit.evaluation.grid_stats``."""
    array = _grid_to_2d(grid)
    high, low = float(array.max()), float(array.min())
    return high - low <= 1e-6 * max(abs(high), 1e-30)


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
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Blend an attention grid onto an image; returns H×W×3 uint8 at the image's size.

    ``image``: anything :func:`~sagkit.viz.images.to_uint8_image` accepts (``mean``/``std`` undo a
    normalisation). ``grid``: h×w or 1×h×w. ``alpha`` is the heatmap's weight (0 = image only).
    Colours: ``value_range`` (low, high) fixes the scale (Figure 4: one per depth); else ``normalize``
    min-max scales this grid alone; else values are clipped to [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    rgb = to_uint8_image(image, mean=mean, std=std)
    heat = upsample_grid(grid, rgb.shape[:2])
    if value_range is not None:
        heat = scale_map(heat, *value_range)
    else:
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


FIGURE4_SCALES = ("depth", "image")


def figure4_caption(scale: str, activations: bool = False) -> str:
    """The caption that says how Figure 4's colours were scaled (``activations``: baseline maps are shown)."""
    if scale == "depth":
        return ("Colours: one linear scale per column (all images of that depth or map), from its smallest to its "
                "largest grid value, shown by the colour bar; a flat grid stays one colour. "
                + ("The baseline's activation maps come scaled to [0, 1] per image. " if activations else "")
                + "'uniform': every cell of that grid is equal.")
    return ("Colours: each panel min-max scaled on its own (the printed min and max are that grid's values), so "
            "even a nearly flat grid spans the whole colour range. 'uniform': every cell of that grid is equal.")


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
    scale: str = "depth",
):
    """Figure 4: one row per image; the original, then its grid overlaid for each depth in ``grids``.

    ``grids`` maps a depth (1-4) to an N×1×h×w array/tensor (or a list of N h×w maps) aligned with
    ``images``; ``activations`` adds named N×h×w maps (e.g. the baseline's) before the depths.
    ``scale="depth"``: one colour scale per column with a colour bar; ``"image"``: each panel min-max
    scaled, with its min and max printed on it. Uniform grids are marked. The caption
    (:func:`figure4_caption`) is drawn under the figure. Returns a matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if scale not in FIGURE4_SCALES:
        raise ValueError(f"scale={scale!r} is not known; choose one of {FIGURE4_SCALES}")
    n = len(images)
    if n == 0:
        raise ValueError("plot_attention_grids needs at least one image")
    columns = map_columns(grids, activations, n)
    ncols = 1 + len(columns)
    fig, axes = plt.subplots(n, ncols, figsize=(cell_size[0] * ncols, cell_size[1] * n + 1.4), squeeze=False,
                             layout="constrained")
    box = {"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.8, "linewidth": 0}
    rgbs = [to_uint8_image(image, mean=mean, std=std) for image in images]
    for row, rgb in enumerate(rgbs):
        axes[row, 0].imshow(rgb)
        if row == 0:
            axes[row, 0].set_title("original", fontsize=9)
        if row_titles is not None:
            axes[row, 0].set_ylabel(row_titles[row], fontsize=8)
    for col, (label, maps) in enumerate(columns, start=1):
        values = [_grid_to_2d(maps[row]) for row in range(n)]
        low, high = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
        for row, grid in enumerate(values):
            ax = axes[row, col]
            value_range = (low, high) if scale == "depth" else None
            ax.imshow(overlay_heatmap(rgbs[row], grid, alpha=alpha, cmap=cmap, value_range=value_range))
            notes = ["uniform"] if is_uniform(grid) else []
            if scale == "image":
                notes.append(f"{float(grid.min()):.3g}–{float(grid.max()):.3g}")
            if notes:
                ax.text(0.5, 0.02, "\n".join(notes), transform=ax.transAxes, ha="center", va="bottom", fontsize=6,
                        bbox=box)
            if row == 0:
                ax.set_title(map_title(label, grid), fontsize=9)
        if scale == "depth":
            mappable = ScalarMappable(norm=Normalize(low, high if high > low else low + 1e-12), cmap=cmap)
            bar = fig.colorbar(mappable, ax=list(axes[:, col]), location="bottom", shrink=0.95, aspect=12)
            bar.ax.tick_params(labelsize=6, rotation=45)
            bar.set_ticks([low, high] if high > low else [low])
            bar.set_ticklabels([f"{low:.3g}", f"{high:.3g}"] if high > low else [f"{low:.3g}"])
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.text(0.5, 0.0, figure4_caption(scale, bool(activations)), ha="center", va="top", fontsize=7, wrap=True)
    return fig
