"""An ipywidgets explorer for attention grids and ranked lists, with a static fallback.

In JupyterLab it shows dropdowns (image, depth or activation map, query, model). Run headlessly (papermill, nbconvert, a plain
Python process, or ``SAGKIT_HEADLESS=1``) widgets cannot be seen, so it renders the same views as
static figures instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sagkit.viz.heatmaps import map_columns, map_title, overlay_heatmap
from sagkit.viz.images import to_uint8_image
from sagkit.viz.ranked_list import annotate_tiles, frame_legend, ranked_list_strip

# Programs that start a kernel with nobody looking at it (matched against the parent's argv words).
HEADLESS_PARENTS = ("papermill", "nbclient", "nbconvert", "jupyter-nbconvert", "jupyter-execute", "pytest", "py.test")
# The depth drop-down's "every column" choice. Not None: to ipywidgets a None value means "nothing selected".
ALL_MAPS = "all"


@dataclass
class RankedQuery:
    """One query and its top-k gallery for one model: images H×W×3, grids {depth: 1×h×w} per image, and the
    text under each gallery tile (``labels``: rank, gallery id, distance; see ``ranked_list.tile_label``)."""

    image: np.ndarray
    gallery: list
    matches: list
    grids: dict = field(default_factory=dict)
    gallery_grids: dict = field(default_factory=dict)
    title: str = ""
    labels: list = field(default_factory=list)


def model_name(depth: int) -> str:
    """The ranking model's name in the explorer: depth 0 is the baseline, d is the single-depth run Dd."""
    return "Baseline" if int(depth) == 0 else f"D{int(depth)}"


def _parent_argv() -> list[str]:
    """The parent process's command line words (Linux /proc; empty elsewhere)."""
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
            return [w.decode(errors="replace") for w in handle.read().split(b"\0") if w]
    except OSError:
        return []


def is_headless() -> bool:
    """True when widgets would not be seen: no IPython kernel, or one started by papermill & co.

    ``SAGKIT_HEADLESS=1`` / ``0`` forces the answer (the workbook runner sets 1).
    """
    forced = os.environ.get("SAGKIT_HEADLESS")
    if forced is not None and forced.strip() != "":
        return forced.strip().lower() not in ("0", "false", "no")
    try:
        from IPython import get_ipython
    except ImportError:
        return True
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return True
    words = {os.path.basename(word) for word in _parent_argv()}
    return any(name in words for name in HEADLESS_PARENTS)


class AttentionExplorer:
    """Browse attention overlays per image and depth, and ranked lists per query.

    ``images``: H×W×3 images; ``grids``: {depth: N×1×h×w} aligned with ``images``;
    ``queries``: optional {depth: [RankedQuery, ...]} (the ranking of that depth's model; depth 0: the baseline);
    ``activations``: optional {name: N×h×w} maps of models without a grid (e.g. "baseline Grad-CAM").
    """

    def __init__(
        self,
        images: Sequence,
        grids: Mapping[int, object],
        queries: Mapping[int, Sequence[RankedQuery]] | None = None,
        titles: Sequence[str] | None = None,
        alpha: float = 0.5,
        cmap: str = "jet",
        activations: Mapping[str, object] | None = None,
    ):
        if not images:
            raise ValueError("AttentionExplorer needs at least one image")
        self.images = [to_uint8_image(image) for image in images]
        self.grids = {int(d): g for d, g in grids.items()}
        self.activations = {str(name): maps for name, maps in (activations or {}).items()}
        self.columns = dict(map_columns(self.grids, self.activations, len(self.images)))
        self.queries = {int(d): list(q) for d, q in (queries or {}).items()}
        self.titles = list(titles) if titles is not None else [f"image {i}" for i in range(len(self.images))]
        self.alpha = alpha
        self.cmap = cmap

    @property
    def depths(self) -> list[int]:
        return sorted(self.grids)

    def map_options(self) -> list[tuple[str, object]]:
        """The depth drop-down's (label, value) pairs: every column, each activation map, each depth."""
        return ([("all", ALL_MAPS)] + [(name, name) for name in self.activations]
                + [(f"D{d}", d) for d in self.depths])

    def _chosen_columns(self, depth) -> list[str]:
        """Column labels for a drop-down value: all (None or "all"), a depth (int) or an activation name."""
        if depth is None or depth == ALL_MAPS:
            return list(self.columns)
        label = f"D{depth}" if isinstance(depth, (int, np.integer)) and not isinstance(depth, bool) else str(depth)
        if label not in self.columns:
            raise ValueError(f"depth={depth!r} is not shown here; choose one of {[v for _, v in self.map_options()]}")
        return [label]

    def render_image(self, index: int = 0, depth: int | str | None = None):
        """Original image beside its overlay at ``depth`` (an int), an activation map (its name) or all
        of them (None or "all"); returns a Figure."""
        import matplotlib.pyplot as plt

        labels = self._chosen_columns(depth)
        image = self.images[index]
        fig, axes = plt.subplots(1, 1 + len(labels), figsize=(1.6 * (1 + len(labels)), 3.0), squeeze=False)
        axes[0, 0].imshow(image)
        axes[0, 0].set_title(self.titles[index], fontsize=8)
        for ax, label in zip(axes[0, 1:], labels):
            grid = self.columns[label][index]
            ax.imshow(overlay_heatmap(image, grid, alpha=self.alpha, cmap=self.cmap))
            ax.set_title(map_title(label, grid), fontsize=8)
        for ax in axes.ravel():
            ax.axis("off")
        fig.tight_layout()
        return fig

    def render_query(self, index: int = 0, depth: int | None = None, overlay: bool = True):
        """The query and its ranked gallery under ``depth``'s model (0: the baseline), grids overlaid, each tile
        labelled and the frames' colours in a legend; returns a Figure."""
        import matplotlib.pyplot as plt

        if not self.queries:
            raise ValueError("this explorer has no ranked queries")
        depth = int(depth) if depth is not None else sorted(self.queries)[0]
        query = self.queries[depth][index]
        q_img, g_imgs = query.image, list(query.gallery)
        if overlay and depth in query.grids:
            q_img = overlay_heatmap(q_img, query.grids[depth], alpha=self.alpha, cmap=self.cmap)
            g_imgs = [
                overlay_heatmap(img, grid, alpha=self.alpha, cmap=self.cmap)
                for img, grid in zip(g_imgs, query.gallery_grids[depth])
            ]
        strip = ranked_list_strip(q_img, g_imgs, query.matches, border=4)
        lines = max((str(label).count("\n") + 1 for label in query.labels), default=1)
        fig, ax = plt.subplots(figsize=(max(strip.shape[1] / 80.0 + 0.3, 4.0),
                                        strip.shape[0] / 80.0 + 0.6 + 0.13 * lines), layout="constrained")
        ax.imshow(strip)
        ax.axis("off")
        ax.set_title(f"{model_name(depth)}: {query.title}".strip(), fontsize=9, loc="left")
        annotate_tiles(ax, strip.shape[0], len(query.matches), q_img.shape[1] + 8, query.labels or None)
        frame_legend(fig)
        return fig

    def static(self) -> list:
        """The headless rendering: every column for the first image, and the first query at each depth."""
        figures = [self.render_image(0, None)]
        for depth in sorted(self.queries):
            if self.queries[depth]:
                figures.append(self.render_query(0, depth))
        return figures

    def widget(self):
        """An ipywidgets box: image and depth (or activation map) drop-downs over the image view, query and
        model drop-downs over the ranked list."""
        import ipywidgets as widgets
        import matplotlib.pyplot as plt
        from IPython.display import display

        image_pick = widgets.Dropdown(options=[(t, i) for i, t in enumerate(self.titles)], value=0, description="image")
        depth_pick = widgets.Dropdown(options=self.map_options(), value=ALL_MAPS, description="depth")
        out_image = widgets.Output()
        controls = [image_pick, depth_pick]

        def draw_image(*_):
            with out_image:
                out_image.clear_output(wait=True)
                display(self.render_image(image_pick.value, depth_pick.value))
                plt.close("all")

        image_pick.observe(draw_image, names="value")
        depth_pick.observe(draw_image, names="value")
        draw_image()
        children = [widgets.HBox(controls), out_image]
        if self.queries:
            qdepths = sorted(self.queries)
            n_queries = min(len(self.queries[d]) for d in qdepths)
            titles = [self.queries[qdepths[0]][i].title or f"query {i}" for i in range(n_queries)]
            query_pick = widgets.Dropdown(options=[(t, i) for i, t in enumerate(titles)], value=0, description="query")
            qdepth_pick = widgets.Dropdown(options=[(model_name(d), d) for d in qdepths], value=qdepths[0],
                                           description="model")
            out_query = widgets.Output()

            def draw_query(*_):
                with out_query:
                    out_query.clear_output(wait=True)
                    display(self.render_query(query_pick.value, qdepth_pick.value))
                    plt.close("all")

            query_pick.observe(draw_query, names="value")
            qdepth_pick.observe(draw_query, names="value")
            draw_query()
            children += [widgets.HBox([query_pick, qdepth_pick]), out_query]
        return widgets.VBox(children)

    def show(self, interactive: bool | None = None):
        """Display the widget in a live notebook, else the static figures; returns what was shown.

        ``interactive=None`` decides with :func:`is_headless`.
        """
        from IPython.display import display

        if interactive not in (None, True, False):
            raise ValueError(f"interactive must be None (decide automatically), True or False; got {interactive!r}")
        if interactive is None:
            interactive = not is_headless()
        if interactive:
            box = self.widget()
            display(box)
            return box
        import matplotlib.pyplot as plt

        figures = self.static()
        for fig in figures:
            display(fig)
            plt.close(fig)  # shown once: the inline backend would show open figures again
        return figures
