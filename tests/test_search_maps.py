"""The maps of the search PNG (issue 25): a SAG run's deepest attention grids, a baseline run's Grad-CAM, one
colour scale for the whole figure, and no maps (said in the title) for an ONNX source; tiny runs only."""
from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest
import torch

import sagkit.images.maps as search_maps_module
from sagkit.cli import main
from sagkit.data import load_dataset
from sagkit.config import get_profile
from sagkit.data.images import read_image
from sagkit.images.embedding import load_source
from sagkit.images.gallery import search
from sagkit.viz.activation import grad_cam

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]
HAS_ONNXRUNTIME = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
TOPK = 3


def _train(base, depth: str):
    assert main(["train", "--profile", "tiny", "--depths", depth, "--epochs", "1", "--set", "max_train_batches=1",
                 "--set", f"data_root={base / 'data'}", "--runs-dir", str(base / f"runs{depth}"), "--device", "cpu",
                 "--no-progress"]) == 0
    (run,) = list((base / f"runs{depth}").iterdir())
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(tiny D4 run, tiny baseline run, 2 query paths, a folder of 8 gallery images) from the tiny synthetic set."""
    base = tmp_path_factory.mktemp("maps")
    torch.set_num_threads(1)
    sag, baseline = _train(base, "4"), _train(base, "0")
    data = load_dataset("synthetic", base / "data", **get_profile("tiny").dataset_options)
    gallery = base / "gallery"
    gallery.mkdir()
    for record in data.gallery[:8]:
        shutil.copy(record.path, gallery)
    return sag, baseline, [r.path for r in data.query[:2]], str(gallery)


@pytest.fixture
def recorded(monkeypatch):
    """Every (grid, value_range) the search PNG hands to overlay_heatmap."""
    calls = []
    real = search_maps_module.overlay_heatmap

    def spy(image, grid, **kwargs):
        calls.append((np.asarray(grid).copy(), kwargs.get("value_range")))
        return real(image, grid, **kwargs)

    monkeypatch.setattr(search_maps_module, "overlay_heatmap", spy)
    return calls


def _inputs(source, paths):
    """The embedding transform's batch of ``paths`` (what the maps must be computed from)."""
    model, transform, _, _ = load_source(source)
    return model, torch.stack([transform(read_image(p)) for p in paths])


def _drawn(result):
    """Paths in the order the figure draws them: the queries, then each query's ranked gallery."""
    return list(result.query.paths) + [result.gallery.paths[i] for row in result.indices for i in row]


def _note(fig) -> str:
    """The line under a search figure's images, unwrapped."""
    return fig.get_supxlabel().replace("\n", " ")


def _check_one_scale(calls, expected: dict, drawn: list, atol: float):
    """One overlay per drawn tile, each with its own image's map, all on the range of all maps shown."""
    assert len(calls) == len(drawn) == 2 * (1 + TOPK)
    (shared,) = {r for _, r in calls}
    values = np.stack([expected[p] for p in drawn])
    np.testing.assert_allclose(shared, (values.min(), values.max()), atol=atol)
    for (grid, _), path in zip(calls, drawn):
        assert grid.shape == expected[path].shape
        np.testing.assert_allclose(grid, expected[path], atol=atol)


def test_sag_run_png_shows_the_deepest_grid_of_every_image(runs, recorded, tmp_path, capsys):
    sag, _, queries, gallery = runs
    png = tmp_path / "ranked.png"
    assert main(["search", str(sag), "--query", *queries, "--gallery", gallery, "--topk", str(TOPK),
                 "--png", str(png), "--no-progress"]) == 0
    assert png.stat().st_size > 1000 and capsys.readouterr().out.splitlines()[-1] == str(png)
    result = search(sag, queries, gallery, TOPK, progress=False)
    drawn = _drawn(result)
    model, batch = _inputs(sag, sorted(set(drawn)))
    grids = model.attention_grids(batch)
    assert max(grids) == 4
    expected = {p: g[0].numpy() for p, g in zip(sorted(set(drawn)), grids[4])}
    assert {g.shape for g in expected.values()} == {(batch.shape[2] // 32, batch.shape[3] // 32)}
    _check_one_scale(recorded, expected, drawn, 1e-6)  # the CLI's PNG: 2 queries x (1 + 3) tiles
    fig = result.figure()
    assert _note(fig).startswith("overlay: attention grid at depth 4; one colour scale")


def test_baseline_run_png_shows_grad_cam(runs, recorded):
    _, baseline, queries, gallery = runs
    result = search(baseline, queries, gallery, TOPK, progress=False)
    fig = result.figure()
    assert _note(fig).startswith("overlay: Grad-CAM (baseline run); one colour scale")
    drawn = _drawn(result)
    model, batch = _inputs(baseline, sorted(set(drawn)))
    expected = dict(zip(sorted(set(drawn)), grad_cam(model, batch).numpy()))
    _check_one_scale(recorded, expected, drawn, 1e-5)


def test_a_flat_grid_is_drawn_flat_on_the_shared_scale(runs):
    sag, _, queries, gallery = runs
    result = search(sag, queries, gallery, TOPK, progress=False)
    maps = search_maps_module.search_maps(result.model, [queries[0]])
    maps.maps[queries[0]] = np.full_like(maps.maps[queries[0]], 0.5)
    maps.value_range = (0.0, 1.0)
    image = np.full((64, 32, 3), 128, dtype=np.uint8)
    out = search_maps_module.overlay(image, queries[0], maps)
    assert (out == out[0, 0]).all()


@pytest.mark.skipif(not HAS_ONNXRUNTIME, reason="onnx/onnxruntime are not installed (pip install -e '.[export]')")
def test_onnx_source_png_has_no_maps_and_says_so(runs, recorded, tmp_path, caplog):
    sag, _, queries, gallery = runs
    onnx_file = tmp_path / "model.onnx"
    assert main(["export", str(sag), "--out", str(onnx_file)]) == 0
    png = tmp_path / "onnx.png"
    assert main(["search", str(onnx_file), "--query", *queries, "--gallery", gallery, "--topk", str(TOPK),
                 "--png", str(png), "--no-progress"]) == 0
    assert png.stat().st_size > 1000 and recorded == []
    fig = search(onnx_file, queries, gallery, TOPK, progress=False).figure()
    assert _note(fig) == search_maps_module.NO_MAPS_ONNX
