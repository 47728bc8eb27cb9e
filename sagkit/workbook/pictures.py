"""Pictures from trained runs for the notebooks: ranked lists, attention grids and the explorer's data.

Every ranking comes from the run's :class:`sagkit.engine.retrieval.Retrieval` (the distances its numbers
come from); each function takes the :class:`sagkit.workbook.session.Workbook` whose runs it draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sagkit.data import build_transforms, read_image
from sagkit.viz import AttentionExplorer, RankedQuery, rank_gallery, resize_image, to_uint8_image
from sagkit.viz.ranked_list import tile_label
from sagkit.viz.activation import named_activation_maps

__all__ = ["attention_grids", "baseline_activations", "display_image", "explorer", "ranked", "ranked_examples"]


def display_image(wb, record, depths: tuple = ()) -> np.ndarray:
    """A record's image as the model sees it (resized to the config's H×W), H×W×3 uint8."""
    config = wb.config(depths)
    return resize_image(to_uint8_image(record.path), (config.height, config.width))


def ranked(wb, depths: tuple, queries: Sequence, topk: int) -> list:
    """[(query record, top-k gallery indices, match flags, tile labels)] under run ``depths``; each label
    gives the tile's rank, gallery id and distance (:func:`sagkit.viz.ranked_list.tile_label`)."""
    ev = wb.evaluate(depths)
    index = {r.path: i for i, r in enumerate(ev.query)}
    q_pids, q_cams, g_pids, g_cams = ev.protocol.match_ids(ev.query, ev.gallery)
    out = []
    for record in queries:
        at = index[record.path]
        row = np.asarray(ev.distmat[at])
        idx, matches = rank_gallery(row, q_pids[at], q_cams[at], g_pids, g_cams, topk=topk)
        labels = [tile_label(rank, int(g_pids[i]), row[i]) for rank, i in enumerate(idx, start=1)]
        out.append((record, idx, matches, labels))
    return out


def ranked_examples(wb, depths: tuple = (), num_queries: int = 4, topk: int = 10, seed: int = 0) -> dict:
    """Keyword arguments for :func:`sagkit.viz.plot_ranked_lists`: sample queries and their top-k."""
    out: dict[str, list] = {"query_images": [], "gallery_images": [], "matches": [], "titles": [], "labels": []}
    gallery = wb.evaluate(depths).gallery
    for record, idx, matches, labels in ranked(wb, depths, wb.sample_queries(num_queries, seed), topk):
        out["query_images"].append(display_image(wb, record, depths))
        out["gallery_images"].append([display_image(wb, gallery[i], depths) for i in idx])
        out["matches"].append(matches.tolist())
        out["labels"].append(labels)
        out["titles"].append(f"query id {record.pid} (camera {record.camid}): {int(matches.sum())} of top-{topk} right")
    return out


def _batches(wb, depths: tuple, model, records: Sequence):
    """Test-transformed image batches (B×3×H×W, eval_batch_size each) of ``records`` on the workbook's device."""
    config = wb.config(depths)
    transform = build_transforms(config.height, config.width, train=False, mean=model.input_mean,
                                 std=model.input_std)
    size = config.eval_batch_size
    for start in range(0, len(records), size):
        yield torch.stack([transform(read_image(r.path)) for r in records[start:start + size]]).to(wb.device())


def _grids(wb, depth: int, records: Sequence) -> torch.Tensor:
    """N×1×h×w attention grids of ``records`` from the single-depth run D``depth`` (batched)."""
    model = wb.load_model((depth,))
    return torch.cat([model.attention_grids(batch)[depth].float().cpu()
                      for batch in _batches(wb, (depth,), model, records)])


def baseline_activations(wb, records: Sequence) -> dict:
    """{"baseline channel norm", "baseline Grad-CAM": N×h×w} of ``records`` from the baseline run."""
    model = wb.load_model(())
    return named_activation_maps(model, _batches(wb, (), model, records))


def attention_grids(wb, records: Sequence, depths: tuple) -> tuple[list, dict]:
    """(images H×W×3, {d: N×1×h×w}) for single-depth runs D``d``: each depth's grid from its own model."""
    images = [display_image(wb, r) for r in records]
    return images, {depth: _grids(wb, depth, records) for depth in depths}


def explorer(wb, depths: tuple, num_images: int = 8, num_queries: int = 6, topk: int = 5,
             seed: int = 0, baseline: bool = True) -> AttentionExplorer:
    """An :class:`sagkit.viz.AttentionExplorer` over sample queries: overlays at each depth (and the baseline
    run's activation maps unless ``baseline=False``) and, for each depth's model, the ranked gallery with its
    own grids; with ``baseline`` the baseline run's ranking too (model 0, no grid)."""
    samples = wb.sample_queries(max(num_images, num_queries), seed)
    images = [display_image(wb, r) for r in samples]
    grids, queries = {}, {}
    for depth in depths:
        found = ranked(wb, (depth,), samples[:num_queries], topk)
        gallery = wb.evaluate((depth,)).gallery
        shown = [gallery[i] for _, idx, _, _ in found for i in idx]
        maps = _grids(wb, depth, list(samples) + shown)
        grids[depth] = maps[: len(samples)]
        queries[depth], offset = [], len(samples)
        for q, (record, idx, matches, labels) in enumerate(found):
            queries[depth].append(RankedQuery(
                image=images[q],
                gallery=[display_image(wb, gallery[i], (depth,)) for i in idx],
                matches=matches.tolist(),
                grids={depth: maps[q]},
                gallery_grids={depth: maps[offset: offset + len(idx)]},
                title=f"query id {record.pid} / cam {record.camid}",
                labels=labels,
            ))
            offset += len(idx)
    if baseline:
        gallery = wb.evaluate(()).gallery
        queries[0] = [RankedQuery(image=images[q], gallery=[display_image(wb, gallery[i]) for i in idx],
                                  matches=matches.tolist(), title=f"query id {record.pid} / cam {record.camid}",
                                  labels=labels)
                      for q, (record, idx, matches, labels) in enumerate(ranked(wb, (), samples[:num_queries], topk))]
    titles = [f"id {r.pid} / cam {r.camid}" for r in samples]
    activations = baseline_activations(wb, samples) if baseline else None
    return AttentionExplorer(images, grids, queries=queries, titles=titles, activations=activations)
