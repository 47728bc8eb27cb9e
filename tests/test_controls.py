"""The controls of issue 22: input_scale, the uniform grid, last stride 1 on Lite0, grid statistics, FLOPs, the
controls table and Figure 4's colour scale."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from sagkit import viz
from sagkit.config import ExperimentConfig, get_profile
from sagkit.report.controls import CONTROLS, SHALLOW_CONTROLS, Control, controls_conclusion, controls_frame, controls_summary
from sagkit.evaluation.grid_stats import grid_statistics, summarise_grid_statistics
from sagkit.evaluation.query_scores import QueryScores
from sagkit.models import SAGNet
from sagkit.models.backbones import build_backbone, set_last_stride
from sagkit.models.cost import count_parameters, forward_gflops
from sagkit.models.sag import SelfAttentionGrid


def _net(**kw):
    return SAGNet(7, backbone="efficientnet_lite0", **kw).eval()


@pytest.mark.parametrize("kw, final", [({"depths": ()}, (5, 2)), ({"depths": (), "input_scale": 2}, (10, 4)),
                                       ({"depths": (), "last_stride": 1}, (10, 4)),
                                       ({"depths": (4,), "attention": "uniform"}, (5, 2)),
                                       ({"depths": (4,), "last_stride": 1}, (10, 4))])
def test_control_forward_shapes(kw, final):
    net = _net(**kw)
    x = torch.randn(2, 3, 160, 64)
    assert tuple(net.forward_features(x).shape) == (2, 1280, *final)
    assert tuple(net(x).shape) == (2, net.embedding_dim)


def test_old_run_keys_are_unchanged_and_each_control_has_its_own():
    # keys of runs kept in results/ (cuhk01 cpu profile seed 0, synthetic cpu D4 seed 0) before the controls existed
    assert get_profile("cpu", dataset="cuhk01", dataset_options={}, depths=()).run_key() == "f318345306"
    assert get_profile("cpu").run_key() == "0b8ed040b9"
    assert get_profile("cpu", input_scale=1, attention="softmax", last_stride=2).run_key() == "0b8ed040b9"
    keys = {c.label: get_profile("cpu", depths=c.depths, **c.fields).run_key() for c in CONTROLS}
    assert len(set(keys.values())) == len(CONTROLS)
    assert keys["Baseline ×2 input"] == get_profile("cpu", depths=(), input_scale=2).run_key()
    # an old run's config.json, which lacks input_scale, reads back as input_scale=1
    data = get_profile("cpu").to_dict()
    del data["input_scale"]
    assert ExperimentConfig.from_run(data).input_scale == 1


@pytest.mark.parametrize("field, value, message", [("input_scale", 5, "input_scale"), ("attention", "flat", "attention"),
                                                   ("last_stride", 3, "last_stride")])
def test_config_refuses_bad_control_fields_before_anything_is_built(field, value, message):
    with pytest.raises(ValueError, match=rf"ExperimentConfig\.{message}="):
        get_profile("tiny", **{field: value})


def test_uniform_attention_is_exactly_one_over_cells_with_no_parameters():
    sag = SelfAttentionGrid(24, attention="uniform")
    assert list(sag.parameters()) == [] and list(sag.buffers()) == []
    lower, upper = torch.randn(3, 24, 20, 8), torch.randn(3, 24, 40, 16)
    v, grid = sag(lower, upper)
    assert torch.equal(grid, torch.full((3, 1, 20, 8), 1.0 / 160))
    assert torch.allclose(v, torch.nn.functional.max_pool2d(upper, 2) / 160)
    d4 = _net(depths=(4,), attention="uniform")
    assert sum(p.numel() for p in d4.sags.parameters()) == 0
    assert count_parameters(d4) == count_parameters(_net(depths=()))


def test_input_scale_gives_the_tensor_the_upper_branch_gets():
    x = torch.randn(2, 3, 160, 64)
    seen = {}
    base = _net(depths=(), input_scale=2)
    d4 = _net(depths=(4,))
    base.backbone.stages()[0].register_forward_pre_hook(lambda m, args: seen.setdefault("base", args[0]))
    d4._upper_stages()[0].register_forward_pre_hook(lambda m, args: seen.setdefault("upper", args[0])
                                                    if args[0].shape[-1] == 128 else None)
    base.forward_features(x)
    d4.forward_features(x)
    assert seen["base"].shape == (2, 3, 320, 128) and torch.equal(seen["base"], seen["upper"])
    with pytest.raises(ValueError, match="input_scale"):
        _net(depths=(), input_scale=0)


def test_last_stride_one_on_lite0_keeps_the_imagenet_weights():
    backbone = build_backbone("efficientnet_lite0")
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    set_last_stride(backbone, 1)
    after = backbone.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    x = torch.randn(1, 3, 160, 64)
    out = x
    for stage in backbone.stages():
        out = stage(out)
    assert tuple(out.shape[-2:]) == (10, 4)
    with pytest.raises(ValueError, match="last_stride"):
        set_last_stride(nn.Linear(2, 2), 1)


def test_grid_statistics_on_hand_made_grids():
    uniform = torch.full((1, 1, 5, 2), 0.1)
    one_hot = torch.zeros(1, 1, 5, 2)
    one_hot[0, 0, 2, 1] = 1.0
    half = torch.zeros(1, 1, 5, 2)
    half[0, 0, :, 0] = 0.2  # five equal cells of ten: entropy log 5 / log 10
    stats = grid_statistics(torch.cat([uniform, one_hot, half]))
    assert stats["uniform"].tolist() == [True, False, False]
    assert stats["entropy"] == pytest.approx([1.0, 0.0, math.log(5) / math.log(10)])
    assert stats["peak"] == pytest.approx([1.0, 10.0, 2.0])
    summary = summarise_grid_statistics(stats, 10)
    assert summary["uniform_fraction"] == pytest.approx(1 / 3) and summary["num_images"] == 3
    assert summary["entropy_median"] == pytest.approx(math.log(5) / math.log(10))
    area = grid_statistics(uniform * 10)  # "area" scaling: the same distribution
    assert area["uniform"].tolist() == [True] and area["entropy"] == pytest.approx([1.0])
    with pytest.raises(ValueError, match="non-negative"):
        grid_statistics(-uniform)


def test_flop_count_of_a_tiny_model_against_a_hand_count():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 6, 5))
    hand = 2 * (4 * 3 * 3 * 3) * (8 * 6) + 2 * (4 * 8 * 6) * 5
    assert forward_gflops(model, 8, 6) * 1e9 == pytest.approx(hand)
    depthwise = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False)
    assert forward_gflops(depthwise.eval(), 4, 4) * 1e9 == pytest.approx(2 * 3 * 9 * 16)  # groups counted
    assert model.training  # left in the mode it was in


def _runs_for(control: Control, seeds, hits, name):
    """Fake (RunResults, RunQueries) pairs of a control: ``hits`` per seed, 20 queries of one identity each."""
    from record_fixtures import results_entries
    from sagkit.runs.per_query import RunQueries
    from sagkit.runs.record import RunResults

    out = []
    for seed, hit in zip(seeds, hits):
        config = get_profile("tiny", depths=control.depths, seed=seed, **control.fields)
        rank1 = np.arange(20) < hit
        scores = QueryScores(ap=rank1.astype(float), inp=rank1.astype(float), first_hit=np.where(rank1, 1, 3),
                             hits=np.stack([rank1, np.ones(20, bool), np.ones(20, bool)], axis=1).astype(float),
                             valid=np.ones(20, bool))
        results = RunResults.from_json(results_entries(
            config=config.to_dict(), depths=list(control.depths), name=f"{name}-{seed}", rank1=5.0 * hit, rank5=100.0,
            rank10=100.0, mAP=5.0 * hit, num_classes=8, timings={"img_per_s_mean": 10.0 + seed}))
        out.append((results, RunQueries({"single": scores}, np.arange(20), np.zeros(20, int))))
    return out


def test_controls_frame_pairs_each_control_with_d4_and_the_baseline():
    runs = []
    for control, hits in zip(CONTROLS, ([4, 5], [12, 13], [6, 6], [12, 12], [12, 14])):
        runs += _runs_for(control, (0, 1), hits, control.label)
    runs += _runs_for(SHALLOW_CONTROLS[1], (0,), [9], "D1")  # another configuration: matched to no control
    frame = controls_frame(runs, "tiny", CONTROLS, cost=lambda config, n: {"params_M": 1.0, "gflops": config.input_scale},
                           grid_stats=lambda results: {"depths": {"D4": {"num_images": 10, "uniform_fraction": 0.5,
                                                                         "entropy_median": 0.9, "peak_median": 1.1}}})
    assert frame["control"].tolist() == [c.label for c in CONTROLS]
    row = frame.set_index("control")
    assert row.loc["Baseline ×2 input", "R1"] == pytest.approx(62.5) and row.loc["D4", "R1"] == pytest.approx(65.0)
    assert row.loc["Baseline ×2 input", "gflops"] == 2 and row.loc["Baseline", "train_img_s"] == pytest.approx(10.5)
    assert row.loc["Baseline", "verdict_R1_ref"] == "worse" and math.isnan(row.loc["D4", "dR1_ref"])
    assert row.loc["D4", "verdict_R1_base"] == "better" and row.loc["D4", "uniform_grids"] == 50.0
    assert math.isnan(row.loc["Baseline", "uniform_grids"]) if "uniform_grids" in row else True
    summary = controls_summary(frame)
    assert summary.loc[0, "compared with"] == "D4" and summary.loc[0, "R1 difference"].endswith("(worse)")
    text = controls_conclusion(frame)
    assert any(line.startswith("The baseline fed the 2× input is not distinguishable from D4") for line in text)
    assert any(line.startswith("The baseline is below D4") for line in text)


def test_figure4_scales_colours_per_depth_and_marks_uniform_grids():
    images = [np.full((160, 64, 3), 128, np.uint8)] * 2
    flat = torch.full((2, 1, 5, 2), 0.1)
    flat[1, 0, 0, 0], flat[1, 0, 4, 1] = 0.101, 0.099
    fig = viz.plot_attention_grids(images, {4: flat})
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("uniform") == 1
    assert any("one linear scale per column" in t.get_text() for t in fig.texts)
    assert len(fig.axes) == 2 * 2 + 1  # the panels and one colour bar
    # one scale for the column: the nearly flat grid stays near mid-range, not stretched to the full range
    near_flat = viz.overlay_heatmap(images[1], flat[1], alpha=1.0, value_range=(0.0, 0.2))
    stretched = viz.overlay_heatmap(images[1], flat[1], alpha=1.0)
    assert np.ptp(near_flat.astype(int)) < np.ptp(stretched.astype(int))
    fig = viz.plot_attention_grids(images, {4: flat}, scale="image")
    assert any("–" in t.get_text() for ax in fig.axes for t in ax.texts)
    with pytest.raises(ValueError, match="scale"):
        viz.plot_attention_grids(images, {4: flat}, scale="global")
