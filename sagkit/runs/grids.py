"""The attention grids of a finished run over its test images, summarised in ``<run>/grid_stats.json``.

Kept beside ``results.json`` (and exported to ``results/`` with it) so that the controls table and notebook 06
can say how far from uniform a run's grids are without its checkpoint. Format: ``{"format": 1, "run": name,
"depths": {"D4": {summary of sagkit.evaluation.grid_stats, "entropy": [per image, 4 decimals]}}}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sagkit.data import build_transforms, load_dataset, read_image
from sagkit.evaluation.grid_stats import grid_statistics, summarise_grid_statistics

from sagkit.engine.checkpoint import atomic_write_json
from sagkit.engine.device import place_model, run_device
from sagkit.runs.folder import run_model
from sagkit.runs.record import RESULTS_FILE, is_complete, read_results

__all__ = ["GRID_STATS_FILE", "compute_grid_stats", "ensure_grid_stats", "read_grid_stats"]

GRID_STATS_FILE = "grid_stats.json"
FORMAT_VERSION = 1


@torch.no_grad()
def compute_grid_stats(run_dir: str | Path, device: str = "cpu") -> dict:
    """Grid statistics of every SAG depth of a finished run over its test images (query and gallery, each file
    once), from the best checkpoint; ``{}`` under "depths" for a baseline."""
    run_dir = Path(run_dir)
    name = run_dir.name
    results = read_results(run_dir)
    if results is not None and not results.depths:  # a baseline: no grid, no model to load
        return {"format": FORMAT_VERSION, "run": name, "depths": {}}
    model, config = run_model(run_dir)
    target = run_device(config, device, quiet=True)
    model = place_model(model, config, target).eval()
    dataset = load_dataset(config.dataset, config.data_root, **config.dataset_options)
    paths = list(dict.fromkeys(r.path for r in list(dataset.query) + list(dataset.gallery)))
    transform = build_transforms(config.height, config.width, train=False, mean=model.input_mean,
                                 std=model.input_std)
    grids: dict[int, list[torch.Tensor]] = {d: [] for d in model.depths}
    for start in range(0, len(paths), config.eval_batch_size):
        batch = torch.stack([transform(read_image(p)) for p in paths[start:start + config.eval_batch_size]])
        for depth, grid in model.attention_grids(batch.to(target)).items():
            grids[depth].append(grid.float().cpu())
    out = {}
    for depth, parts in grids.items():
        stacked = torch.cat(parts)
        stats = grid_statistics(stacked)
        summary = summarise_grid_statistics(stats, stacked.shape[-2] * stacked.shape[-1])
        summary["entropy"] = [round(float(v), 4) for v in stats["entropy"]]
        out[f"D{depth}"] = summary
    return {"format": FORMAT_VERSION, "run": name, "depths": out}


def read_grid_stats(folder: str | Path) -> dict | None:
    """``grid_stats.json`` of a run or results folder, or None when absent; ValueError naming the file when it
    is not one sagkit wrote for this run."""
    path = Path(folder) / GRID_STATS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON ({err}): delete it and it is computed again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION or not isinstance(data.get("depths"), dict):
        raise ValueError(f"{path} is not a grid-statistics file of format {FORMAT_VERSION}: delete it and it is "
                         "computed again")
    if (Path(folder) / RESULTS_FILE).is_file() and data.get("run") != Path(folder).name:
        raise ValueError(f"{path} belongs to run {data.get('run')!r}, not {Path(folder).name!r}: it was copied "
                         "from another run; delete it and it is computed again")
    return data


def ensure_grid_stats(run_dir: str | Path, device: str = "cpu") -> dict:
    """The run's grid statistics: read from ``grid_stats.json``, or computed once and written."""
    found = read_grid_stats(run_dir)
    if found is not None:
        return found
    if not is_complete(run_dir):
        raise FileNotFoundError(f"{run_dir} holds no finished run: train it before asking for its grids")
    data = compute_grid_stats(run_dir, device)
    atomic_write_json(Path(run_dir) / GRID_STATS_FILE, data)
    return data
