"""sagkit.viz: overlays, upsampling, ranked-list borders, plots, sample groups and atomic saving."""

import os
import stat
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from sagkit import viz  # noqa: E402
import sagkit.viz.plots  # noqa: E402,F401
import sagkit.viz.samples  # noqa: E402,F401
from sagkit.data.synthetic import read_synthetic_metadata  # noqa: E402
from sagkit.runs.folder import read_metrics  # noqa: E402
from sagkit.evaluation.bootstrap import bootstrap_interval, cmc_band  # noqa: E402


class Rec(NamedTuple):
    path: str
    pid: int
    camid: int


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ---------------------------------------------------------------- image conversion
def test_to_uint8_image_accepts_tensor_array_pil_and_path(tmp_path):
    chw = torch.zeros(3, 8, 4)
    chw[0] = 1.0  # pure red in [0, 1]
    out = viz.to_uint8_image(chw)
    assert out.shape == (8, 4, 3) and out.dtype == np.uint8
    assert (out[..., 0] == 255).all() and (out[..., 1:] == 0).all()

    pil = Image.fromarray(out)
    assert np.array_equal(viz.to_uint8_image(pil), out)
    path = tmp_path / "red.png"
    pil.save(path)
    assert np.array_equal(viz.to_uint8_image(path), out)
    assert np.array_equal(viz.to_uint8_image(str(path)), out)


def test_to_uint8_image_undoes_normalisation():
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    pixel = np.array([0.1, 0.6, 0.9])
    normed = torch.tensor((pixel - mean) / std, dtype=torch.float32)[:, None, None].expand(3, 2, 2)
    out = viz.to_uint8_image(normed, mean=mean, std=std)
    assert np.abs(out[0, 0].astype(int) - np.round(pixel * 255)).max() <= 1


def test_to_uint8_image_rejects_bad_shape():
    with pytest.raises(ValueError, match="H×W×3"):
        viz.to_uint8_image(np.zeros((2, 3, 4, 5)))


# ---------------------------------------------------------------- heatmaps
def test_upsample_grid_reaches_image_size_with_max_in_the_right_block():
    grid = torch.zeros(1, 1, 5, 2)
    grid[0, 0, 3, 1] = 1.0  # row 3 of 5, right column
    heat = viz.upsample_grid(grid, (160, 64))
    assert heat.shape == (160, 64) and heat.dtype == np.float32
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    # cell (3, 1) covers rows 96..127 and columns 32..63 of a 160×64 image
    assert 96 <= y < 128 and 32 <= x < 64
    # bilinear, not nearest: values between 0 and 1 exist near the cell edge
    assert ((heat > 0.05) & (heat < 0.95)).any()


def test_upsample_accepts_2d_and_3d_grids():
    grid = np.arange(10, dtype=np.float32).reshape(5, 2)
    a = viz.upsample_grid(grid, (10, 4))
    b = viz.upsample_grid(grid[None], (10, 4))
    assert np.allclose(a, b)
    with pytest.raises(ValueError, match="one attention grid"):
        viz.upsample_grid(np.zeros((2, 1, 5, 2)), (10, 4))


def test_overlay_heatmap_shape_dtype_range_and_hot_spot():
    image = np.full((64, 32, 3), 128, dtype=np.uint8)
    grid = torch.zeros(1, 4, 2)
    grid[0, 0, 0] = 1.0  # top-left cell is hot
    out = viz.overlay_heatmap(image, grid, alpha=0.6, cmap="jet")
    assert out.shape == (64, 32, 3) and out.dtype == np.uint8
    assert out.min() >= 0 and out.max() <= 255
    # jet: hot = red, cold = blue
    top_left, bottom_right = out[2, 2].astype(int), out[-3, -3].astype(int)
    assert top_left[0] > top_left[2] + 50
    assert bottom_right[2] > bottom_right[0] + 50
    # alpha = 0 gives the image back
    assert np.array_equal(viz.overlay_heatmap(image, grid, alpha=0.0), image)
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay_heatmap(image, grid, alpha=1.5)


def test_normalize_map_and_constant_map():
    assert np.allclose(viz.normalize_map(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    assert np.array_equal(viz.normalize_map(np.ones((2, 2))), np.zeros((2, 2)))


def test_plot_attention_grids_has_original_plus_one_column_per_depth():
    images = [np.zeros((64, 32, 3), np.uint8), np.ones((64, 32, 3), np.uint8) * 200]
    grids = {d: torch.rand(2, 1, 64 // 2 ** (d + 1), 32 // 2 ** (d + 1)) for d in (1, 2, 3, 4)}
    fig = viz.plot_attention_grids(images, grids)
    assert len(fig.axes) == 2 * 5 + 4  # the panels, then one colour bar per depth
    assert fig.axes[1].get_title().startswith("D1 (h=16, w=8)")
    with pytest.raises(ValueError, match="grids\\[1\\]"):
        viz.plot_attention_grids(images[:1], grids)


# ---------------------------------------------------------------- ranked lists
def test_rank_gallery_drops_same_camera_same_identity_and_junk():
    dist = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    g_pids = np.array([7, -1, 7, 3, 7])
    g_cams = np.array([0, 1, 1, 0, 2])
    idx, matches = viz.rank_gallery(dist, query_pid=7, query_camid=0, gallery_pids=g_pids, gallery_camids=g_cams, topk=3)
    assert idx.tolist() == [2, 3, 4]  # 0 is same id+camera, 1 is junk
    assert matches.tolist() == [True, False, True]


def test_ranked_list_strip_borders_are_green_for_matches_and_red_otherwise():
    query = np.full((20, 10, 3), 128, np.uint8)
    gallery = [np.full((20, 10, 3), 255, np.uint8), np.zeros((20, 10, 3), np.uint8)]
    border, gap = 3, 8
    strip = viz.ranked_list_strip(query, gallery, [True, False], size=(20, 10), border=border, gap=gap)
    tile_w = 10 + 2 * border
    assert strip.shape == (20 + 2 * border, 3 * tile_w + 3 * gap, 3) and strip.dtype == np.uint8
    x_query, x_match, x_miss = viz.tile_x_offsets(2, tile_w, gap)
    assert tuple(strip[0, x_query]) == viz.QUERY_COLOR
    assert tuple(strip[0, x_match]) == viz.MATCH_COLOR == (0, 190, 0)
    assert tuple(strip[-1, x_match + tile_w - 1]) == viz.MATCH_COLOR
    assert tuple(strip[0, x_miss]) == viz.MISMATCH_COLOR == (220, 0, 0)
    assert tuple(strip[10, x_miss + 1]) == viz.MISMATCH_COLOR  # left border column
    # the image content sits inside the border
    assert tuple(strip[10, x_match + border + 2]) == (255, 255, 255)
    assert tuple(strip[10, x_miss + border + 2]) == (0, 0, 0)
    with pytest.raises(ValueError, match="match flags"):
        viz.ranked_list_strip(query, gallery, [True])


def test_plot_ranked_lists_one_row_per_query():
    q = [np.zeros((16, 8, 3), np.uint8)] * 2
    g = [[np.zeros((16, 8, 3), np.uint8)] * 3] * 2
    m = [[True, False, False], [False, False, True]]
    fig = viz.plot_ranked_lists(q, g, m, titles=["q0", "q1"], size=(16, 8))
    assert len(fig.axes) == 2 and fig.axes[0].get_title(loc="left") == "q0"


# ---------------------------------------------------------------- plots
def test_plot_training_curves_groups_columns(tmp_path):
    metrics = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "train_loss": [2.0, 1.5, 1.0],
            "train_acc": [0.1, 0.3, 0.5],
            "val_mAP": [np.nan, 0.2, 0.4],
            "lr_backbone": [0.01, 0.01, 0.001],
            "time_s": [1.0, 1.0, 1.0],
        }
    )
    path = tmp_path / "metrics.csv"
    metrics.to_csv(path, index=False)
    fig = viz.plot_training_curves(read_metrics(tmp_path))  # the rows as the one metrics.csv reader gives them
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss", "accuracy", "retrieval (%)", "learning rate"]
    val_line = fig.axes[2].get_lines()[0]
    assert np.allclose(val_line.get_ydata(), [20.0, 40.0])  # NaN skipped, fractions shown in %
    with pytest.raises(ValueError, match="no loss"):
        viz.plot_training_curves(pd.DataFrame({"epoch": [1], "time_s": [2.0]}))
    with pytest.raises(TypeError, match="not a path"):
        viz.plot_training_curves(path)


def test_plot_cmc_in_percent():
    fig = viz.plot_cmc({"D4": np.linspace(0.5, 1.0, 50)}, max_rank=20)
    line = fig.axes[0].get_lines()[0]
    assert len(line.get_xdata()) == 20 and line.get_ydata()[0] == pytest.approx(50.0)


def test_plot_depth_effect_measured_and_paper_in_their_own_panels_as_markers():
    table = pd.DataFrame(
        {
            "config": ["Baseline", "D1", "D4"],
            "R1": [10.0, 20.0, 40.0],
            "mAP": [5.0, 6.0, 8.0],
            "paper_R1": [83.49, 84.35, 90.17],
            "paper_mAP": [63.87, 64.40, 73.87],
            "paper_dataset": ["market1501"] * 3,
        }
    )
    fig = viz.plot_depth_effect(table)
    measured_r1, measured_map = fig.axes[0].get_lines()
    paper_r1, paper_map = fig.axes[1].get_lines()
    assert np.allclose(measured_r1.get_xdata(), [-0.08, 0.92, 3.92]) and list(measured_r1.get_ydata()) == [10, 20, 40]
    assert list(paper_r1.get_ydata()) == [83.49, 84.35, 90.17] and list(paper_map.get_ydata()) == [63.87, 64.40, 73.87]
    for line in (measured_r1, measured_map, paper_r1, paper_map):
        assert line.get_linestyle() == "None"  # categorical positions: no line between them
    assert fig.axes[1].get_title() == "published: Market-1501, ResNet50, 200 epochs"
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["Baseline", "D1", "D2", "D3", "D4"]


def test_plot_depth_effect_draws_intervals_as_error_bars():
    table = pd.DataFrame({"config": ["Baseline", "D4"], "R1": [10.0, 40.0], "R1_low": [6.0, 35.0],
                          "R1_high": [15.0, 41.0], "mAP": [5.0, 8.0], "mAP_low": [4.0, 7.0], "mAP_high": [6.0, 9.0],
                          "n_seeds": [3, 3]})
    fig = viz.plot_depth_effect(table)
    assert len(fig.axes) == 1  # no paper numbers, no paper panel
    bars = fig.axes[0].containers[0]
    data_line, _, (segments,) = bars
    assert np.allclose(data_line.get_xdata(), [-0.08, 3.92]) and list(data_line.get_ydata()) == [10.0, 40.0]
    assert data_line.get_linestyle() == "None"
    ends = [tuple(seg[:, 1]) for seg in segments.get_segments()]
    assert ends == [(6.0, 15.0), (35.0, 41.0)]
    assert fig.axes[0].get_title() == "measured here (3 seeds)"
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == "R1, 95% interval"


def test_training_curves_one_line_per_distinct_term_validation_as_points_labelled_axes():
    metrics = pd.DataFrame({"epoch": [1, 2, 3, 4], "lr": [0.1] * 4, "lr_pretrained": [0.01] * 4, "lr_sag": [0.01] * 4,
                            "loss": [4.0, 3.0, 2.0, 1.0], "loss_ce": [4.0, 3.0, 2.0, 1.0], "acc": [5.0, 20.0, 40.0, 60.0],
                            "val_rank1": [np.nan, 30.0, np.nan, 50.0], "val_mAP": [np.nan, 20.0, np.nan, 35.0]})
    fig = viz.plot_training_curves(metrics)
    loss_ax, _, val_ax, lr_ax = fig.axes
    assert [line.get_label() for line in loss_ax.get_lines()] == ["total loss = cross-entropy"]
    assert [line.get_label() for line in lr_ax.get_lines()] == ["new layers", "pretrained layers = SAG modules"]
    assert all(line.get_linestyle() == "None" for line in val_ax.get_lines())
    assert all(ax.get_ylabel() and ax.get_xlabel() == "epoch" for ax in fig.axes)
    assert val_ax.get_xlim() == loss_ax.get_xlim()  # validation on the same epoch axis as the training curves
    width, height = fig.get_size_inches()
    assert width / height < 2.0
    for ax in fig.axes:  # legends beside the panel, not over its data
        assert ax.get_legend().get_bbox_to_anchor().x0 >= ax.get_window_extent().x1 - 1


def test_plot_cmc_integer_rank_ticks_and_a_bootstrap_band():
    per_query = (np.arange(1, 21)[None, :] >= np.random.default_rng(0).integers(1, 15, 60)[:, None]).astype(float)
    low, high = cmc_band(per_query)
    fig = viz.plot_cmc({"D4": per_query.mean(0)}, max_rank=20, bands={"D4": (low, high)})
    ax = fig.axes[0]
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 20]
    assert ticks and all(float(t).is_integer() for t in ticks)
    (band,) = ax.collections
    assert "95% bootstrap band" in band.get_label()
    assert np.all(low <= per_query.mean(0) + 1e-12) and np.all(per_query.mean(0) <= high + 1e-12)


def test_cmc_band_is_each_ranks_bootstrap_interval():
    per_query = np.random.default_rng(1).integers(0, 2, (40, 5)).astype(float)
    low, high = cmc_band(per_query, resamples=500)
    for rank in range(5):
        assert (low[rank], high[rank]) == pytest.approx(bootstrap_interval(per_query[:, rank], resamples=500))


def _write_images(tmp_path, n_ids=5, per_id=4):
    records = []
    rng = np.random.default_rng(0)
    for pid in range(n_ids):
        colour = rng.integers(0, 255, 3)
        for k in range(per_id):
            img = np.empty((32, 16, 3), np.uint8)
            img[...] = colour
            if k == 3:
                img[8:24] = 255 - colour  # an "occluded" view
            path = tmp_path / f"{pid:04d}_c{k % 2}_{k}.png"
            Image.fromarray(img).save(path)
            records.append(Rec(str(path), pid, k % 2))
    return records


def test_plot_dataset_distributions_three_panels(tmp_path):
    records = _write_images(tmp_path)
    fig = viz.plot_dataset_distributions({"train": records[:12], "query": records[12:14], "gallery": records[14:]})
    assert [ax.get_title() for ax in fig.axes[:3]] == ["identity distribution", "camera distribution", "images per identity"]


def test_distribution_plot_drops_distractors_only_where_the_dataset_has_them():
    frame = pd.DataFrame({"split": ["train", "query", "query", "gallery", "gallery"], "pid": [0, 0, 3, -1, 0]})
    market = sagkit.viz.plots.person_rows(frame)  # Market: id 0 is a distractor outside train
    assert market["pid"].tolist() == [0, 3]
    msmt = sagkit.viz.plots.person_rows(frame, distractor_pid=None)  # MSMT17: id 0 is a person
    assert msmt["pid"].tolist() == [0, 0, 3, 0]


def test_figure1_groups_pick_cross_camera_lookalikes_and_hard_views(tmp_path):
    records = _write_images(tmp_path)
    groups = viz.figure1_groups(records, seed=0)
    cross = groups["cross_camera"]
    assert cross and all(len({r.camid for r, c in cross if c == colour}) >= 2 for _, colour in cross)
    # same colour index within the cross-camera group means same pid
    for rec, colour in cross:
        assert all(r.pid == rec.pid for r, c in cross if c == colour)
    look = groups["lookalike"]
    assert len({r.pid for r, _ in look}) >= 2
    hard = groups["hard_views"]
    assert hard and all(r.path.endswith("_3.png") for r, _ in hard)  # the altered view is the outlier
    fig = viz.plot_sample_groups(groups, size=(32, 16))
    assert fig.axes


# ---------------------------------------------------------------- saving and explorer
def test_save_figure_writes_png_and_pdf_atomically(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    paths = viz.save_figure(fig, tmp_path / "figs", "fig3_depth_effect")
    assert [p.name for p in paths] == ["fig3_depth_effect.png", "fig3_depth_effect.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["fig3_depth_effect.pdf", "fig3_depth_effect.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask for p in paths)  # not mkstemp's 0600
    with pytest.raises(ValueError, match="plain file stem"):
        viz.save_figure(fig, tmp_path, "sub/name")


def test_is_headless_env_override(monkeypatch):
    monkeypatch.setenv("SAGKIT_HEADLESS", "1")
    assert viz.is_headless() is True
    monkeypatch.setenv("SAGKIT_HEADLESS", "0")
    assert viz.is_headless() is False
    monkeypatch.delenv("SAGKIT_HEADLESS")
    assert viz.is_headless() is True  # a plain Python process has no notebook frontend


def test_explorer_static_rendering(monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    images = [np.zeros((32, 16, 3), np.uint8), np.full((32, 16, 3), 90, np.uint8)]
    grids = {2: torch.rand(2, 1, 4, 2), 4: torch.rand(2, 1, 1, 1)}
    query = viz.RankedQuery(
        image=images[0],
        gallery=[images[1]] * 3,
        matches=[True, False, True],
        grids={4: grids[4][0]},
        gallery_grids={4: grids[4][[1, 1, 1]]},
        title="query 0",
    )
    explorer = viz.AttentionExplorer(images, grids, queries={4: [query]})
    shown = explorer.show(interactive=False)
    assert len(shown) == 2
    assert len(shown[0].axes) == 1 + 2  # original + D2 + D4
    assert shown[1].axes[0].get_title(loc="left") == "D4: query 0"
    box = explorer.widget()
    assert len(box.children) == 4


def test_figure1_groups_use_synthetic_metadata_for_lookalikes_and_occluders(tmp_path):
    folder = tmp_path / "bounding_box_train"
    folder.mkdir()
    records, images, identities = [], {}, {}
    for pid, group in ((0, 7), (1, 7), (2, 8), (3, 9)):
        identities[f"{pid + 10:04d}"] = {"group": group}
        for k in range(2):
            name = f"{pid + 10:04d}_c{k + 1}s1_000100_00.jpg"
            Image.fromarray(np.full((32, 16, 3), 40 * pid, np.uint8)).save(folder / name)
            records.append(Rec(str(folder / name), pid, k))
            images[f"bounding_box_train/{name}"] = {"occluder": "pole" if (pid, k) == (2, 1) else None}
    (tmp_path / "metadata.json").write_text(__import__("json").dumps({"identities": identities, "images": images}))
    metadata = read_synthetic_metadata(tmp_path)
    groups = viz.figure1_groups(records, seed=0, metadata=metadata)
    assert {r.pid for r, _ in groups["lookalike"]} == {0, 1}  # the only group with two members
    assert [(r.pid, r.camid) for r, _ in groups["occluded"]] == [(2, 1)]
    assert read_synthetic_metadata(tmp_path / "none") is None


def test_dataset_distributions_leave_out_junk_and_distractors():
    records = {"train": [Rec("a", 0, 0), Rec("b", 0, 1)], "gallery": [Rec("c", 0, 0), Rec("d", -1, 0), Rec("e", 5, 1)]}
    frame = viz.plots.records_frame(records)
    assert len(frame) == 5
    fig = viz.plot_dataset_distributions(records)
    counts = sorted(p.get_height() for p in fig.axes[1].patches if p.get_height() > 0)
    assert counts == [1, 1, 1]  # train cam 0, train cam 1, gallery cam 1 (pid 5); pid 0 and -1 left out


def test_is_headless_in_a_kernel_depends_on_who_started_it(monkeypatch):
    import sagkit.viz.explorer as explorer

    class Shell:
        kernel = object()

    monkeypatch.delenv("SAGKIT_HEADLESS", raising=False)
    monkeypatch.setattr("IPython.get_ipython", lambda: Shell())
    monkeypatch.setattr(explorer, "_parent_argv", lambda: ["/home/u/sagkit/.venv/bin/python", "/home/u/sagkit/.venv/bin/jupyter-lab"])
    assert viz.is_headless() is False
    monkeypatch.setattr(explorer, "_parent_argv", lambda: ["/usr/bin/python3", "-m", "papermill", "in.ipynb", "out.ipynb"])
    assert viz.is_headless() is True
    monkeypatch.setattr(explorer, "_parent_argv", lambda: ["/venv/bin/python", "/venv/bin/jupyter-nbconvert", "--execute"])
    assert viz.is_headless() is True


def test_explorer_show_rejects_a_bad_interactive_value():
    explorer = viz.AttentionExplorer([np.zeros((8, 4, 3), np.uint8)], {4: torch.rand(1, 1, 2, 1)})
    with pytest.raises(ValueError, match="interactive must be None"):
        explorer.show(interactive="yes")


def test_explorer_depth_dropdown_starts_on_a_shown_choice_and_offers_the_baseline_maps():
    images = [np.zeros((64, 32, 3), np.uint8), np.full((64, 32, 3), 90, np.uint8)]
    grids = {4: torch.rand(2, 1, 2, 1), 2: torch.rand(2, 1, 8, 4)}
    activations = {"baseline Grad-CAM": torch.rand(2, 2, 1)}
    explorer = viz.AttentionExplorer(images, grids, activations=activations)
    image_pick, depth_pick = explorer.widget().children[0].children
    # ipywidgets shows a blank drop-down when value is None or not among the options' values
    for pick in (image_pick, depth_pick):
        assert pick.index == 0 and pick.label == pick.options[0][0] and pick.value == pick.options[0][1]
    assert depth_pick.label == "all"
    assert [label for label, _ in depth_pick.options] == ["all", "baseline Grad-CAM", "D2", "D4"]
    depth_pick.value = "baseline Grad-CAM"
    assert depth_pick.label == "baseline Grad-CAM"
    fig = explorer.render_image(1, "baseline Grad-CAM")
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "baseline\nGrad-CAM\n(h=2, w=1)"
    assert len(explorer.render_image(0, "all").axes) == 1 + 3
    assert explorer.render_image(0, 2).axes[1].get_title() == "D2 (h=8, w=4)"
    with pytest.raises(ValueError, match="depth=3 is not shown here; choose one of \\['all', 'baseline Grad-CAM', 2, 4\\]"):
        explorer.render_image(0, 3)
    plt.close("all")


def test_plot_attention_grids_puts_named_activation_maps_before_the_depths():
    images = [np.zeros((64, 32, 3), np.uint8)] * 2
    grids = {4: torch.rand(2, 1, 2, 1)}
    fig = viz.plot_attention_grids(images, grids, activations={"baseline channel norm": torch.rand(2, 2, 1)})
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == ["original", "baseline\nchannel norm\n(h=2, w=1)", "D4 (h=2, w=1)"]
    with pytest.raises(ValueError, match="activations\\['x'\\] has 1 maps but there are 2 images"):
        viz.plot_attention_grids(images, grids, activations={"x": torch.rand(1, 2, 1)})
    with pytest.raises(ValueError, match="activations named \\['D4'\\] would hide"):
        viz.plot_attention_grids(images, grids, activations={"D4": torch.rand(2, 2, 1)})
    plt.close("all")


def test_dataset_distributions_share_one_legend_beside_the_panels_and_show_no_empty_bins():
    records = {"train": [Rec("a", 1, 0), Rec("b", 1, 1), Rec("c", 2, 0)], "query": [Rec("d", 1, 1)],
               "gallery": [Rec("e", 1, 0), Rec("f", 2, 1), Rec("g", 2, 0), Rec("h", 2, 1)]}
    fig = viz.plot_dataset_distributions(records)
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    per_identity = fig.axes[2]
    assert [t.get_text() for t in per_identity.get_xticklabels()] == ["1", "2", "3"]  # the counts that occur
    identities = [p.get_height() for p in fig.axes[0].patches]
    assert identities == [2, 3, 1, 1, 2, 4]  # (identities, images) of train, query, gallery


def test_ranked_lists_carry_a_frame_legend_and_each_tiles_gallery_id_and_distance():
    query, gallery = np.zeros((16, 8, 3), np.uint8), [np.full((16, 8, 3), 200, np.uint8)] * 2
    labels = [[viz.ranked_list.tile_label(1, 12, 0.4321), viz.ranked_list.tile_label(2, 7, 0.9)]]
    fig = viz.plot_ranked_lists([query], [gallery], [[True, False]], labels=labels)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["1\nid 12\nd 0.43", "2\nid 7\nd 0.90"]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["query", "right identity", "wrong identity"]


def test_the_explorer_offers_the_baseline_ranking():
    images = [np.zeros((64, 32, 3), np.uint8)]
    query = viz.RankedQuery(image=images[0], gallery=[images[0]], matches=[True], title="q",
                            labels=[viz.ranked_list.tile_label(1, 3, 0.5)])
    explorer = viz.AttentionExplorer(images, {4: torch.rand(1, 1, 2, 1)}, queries={0: [query], 4: [query]})
    query_pick, model_pick = explorer.widget().children[2].children
    assert [label for label, _ in model_pick.options] == ["Baseline", "D4"]
    fig = explorer.render_query(0, 0)
    assert fig.axes[0].get_title(loc="left") == "Baseline: q" and "id 3\nd 0.50" in fig.axes[0].texts[0].get_text()
    plt.close("all")
