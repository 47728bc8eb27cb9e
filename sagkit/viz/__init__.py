"""Visualisation for the workbook: attention overlays, ranked lists, plots, sample grids, explorer.

Functions take plain arrays/tensors/PIL images/records and return matplotlib Figures or uint8 arrays;
:func:`save_figure` writes a figure atomically as PNG and PDF.
"""

from sagkit.viz.explorer import AttentionExplorer, RankedQuery, is_headless
from sagkit.viz.figures import save_figure
from sagkit.viz.heatmaps import (
    colorize,
    figure4_caption,
    grid_shape_label,
    is_uniform,
    normalize_map,
    overlay_heatmap,
    plot_attention_grids,
    scale_map,
    upsample_grid,
)
from sagkit.viz.images import add_border, load_images, resize_image, to_uint8_image
from sagkit.viz.plots import plot_cmc, plot_dataset_distributions, plot_depth_effect, plot_training_curves
from sagkit.viz.ranked_list import (
    MATCH_COLOR,
    MISMATCH_COLOR,
    QUERY_COLOR,
    plot_ranked_lists,
    rank_gallery,
    ranked_list_strip,
    tile_x_offsets,
)
from sagkit.viz.samples import figure1_groups, plot_sample_groups

__all__ = [
    "AttentionExplorer",
    "MATCH_COLOR",
    "MISMATCH_COLOR",
    "QUERY_COLOR",
    "RankedQuery",
    "add_border",
    "colorize",
    "figure1_groups",
    "grid_shape_label",
    "is_headless",
    "load_images",
    "figure4_caption",
    "is_uniform",
    "normalize_map",
    "scale_map",
    "overlay_heatmap",
    "plot_attention_grids",
    "plot_cmc",
    "plot_dataset_distributions",
    "plot_depth_effect",
    "plot_ranked_lists",
    "plot_sample_groups",
    "plot_training_curves",
    "rank_gallery",
    "ranked_list_strip",
    "resize_image",
    "save_figure",
    "tile_x_offsets",
    "to_uint8_image",
    "upsample_grid",
]
