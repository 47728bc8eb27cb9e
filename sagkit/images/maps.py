"""The maps a search PNG draws over its images: the deepest SAG depth's attention grid for a SAG run, Grad-CAM
for a baseline run, none for an ONNX file (onnxruntime gives the embedding only, not the layers).

The images are read and preprocessed by the embedding's own transform (``load_source``'s, i.e. the run's
``eval_transform``), so each map belongs to exactly the input its embedding came from. All maps of one figure
share one colour scale (``value_range``): a flat grid is drawn flat, not stretched to full contrast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from sagkit.data import ImageRecord
from sagkit.data.images import ImageDataset
from sagkit.images.embedding import OnnxEmbedder
from sagkit.viz.activation import ACTIVATION_LABELS, named_activation_maps
from sagkit.viz.heatmaps import overlay_heatmap

__all__ = ["NO_MAPS_ONNX", "SearchMaps", "overlay", "search_maps"]

log = logging.getLogger(__name__)

NO_MAPS_ONNX = "ONNX source: no attention grid or Grad-CAM drawn (onnxruntime gives only the embedding)"


@dataclass
class SearchMaps:
    """``maps[path]`` (h×w float32) of each drawn image under ``label``, coloured on one ``value_range``."""

    label: str
    maps: dict[str, np.ndarray]
    value_range: tuple[float, float]

    def caption(self) -> str:
        low, high = self.value_range
        return f"overlay: {self.label}; one colour scale for all images, {low:.3g} (blue) to {high:.3g} (red)"


def _batches(loaded, paths: Sequence[str]):
    """B×3×H×W batches (the run's eval batch size) of ``paths`` through the embedding's transform."""
    model, transform, settings, _ = loaded
    dataset = ImageDataset([ImageRecord(p, 0, 0) for p in paths], transform)
    device = next(model.parameters()).device
    for start in range(0, len(dataset), settings.batch_size):
        stop = min(start + settings.batch_size, len(dataset))
        yield torch.stack([dataset[i][0] for i in range(start, stop)]).to(device)


def search_maps(loaded, paths: Sequence[str]) -> Optional[SearchMaps]:
    """Maps of ``paths`` (unique image files) by the model ``loaded`` (:func:`sagkit.images.embedding.load_source`'s
    tuple): SAG run -> its deepest depth's grids, baseline -> Grad-CAM of each image's top identity, ONNX
    file -> None (logged)."""
    model = loaded[0]
    if isinstance(model, OnnxEmbedder):
        log.info(NO_MAPS_ONNX)
        return None
    paths = list(dict.fromkeys(paths))
    depths = tuple(getattr(model, "depths", ()))
    if depths:
        deepest = depths[-1]
        maps = torch.cat([model.attention_grids(b)[deepest][:, 0].float().cpu() for b in _batches(loaded, paths)])
        label = f"attention grid at depth {deepest}"
    else:
        found = named_activation_maps(model, _batches(loaded, paths), methods=("gradcam",), prefix="")
        maps, label = found[ACTIVATION_LABELS["gradcam"]], f"{ACTIVATION_LABELS['gradcam']} (baseline run)"
    values = maps.numpy().astype(np.float32)
    return SearchMaps(label, dict(zip(paths, values)), (float(values.min()), float(values.max())))


def overlay(image: np.ndarray, path: str, maps: Optional[SearchMaps]) -> np.ndarray:
    """``image`` (H×W×3 uint8 of ``path``) with its map blended on the figure's colour scale, or as it is."""
    if maps is None:
        return image
    return overlay_heatmap(image, maps.maps[path], value_range=maps.value_range)
