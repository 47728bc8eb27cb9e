"""Per-branch BatchNorm running statistics: each branch's eval output uses its own statistics, training is unchanged."""
import copy
import json
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from record_fixtures import results_entries
from sagkit.config import ExperimentConfig, get_profile
from sagkit.engine.builders import build_model
from sagkit.models import SAGNet

torch.set_num_threads(1)

DEPTHS = [(1,), (2,), (3,), (4,), (1, 2, 3, 4)]
BACKBONES = ["resnet18", "efficientnet_lite0"]


def _images(n=4, h=64, w=32, seed=0):
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _model(depths, backbone="resnet18", seed=0, **kwargs):
    torch.manual_seed(seed)
    return SAGNet(4, depths=depths, backbone=backbone, **kwargs)


def _batchnorms(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _eval_minus_train(model, x):
    """Largest |eval − train| of forward_features after one train-mode pass with BN momentum 1.

    With momentum 1 a BatchNorm's running statistics are those of the last batch it normalised, its
    variance unbiased; rescaled by (n−1)/n they are exactly the batch statistics the train-mode pass used.
    So eval mode reproduces train mode iff every BN normalises each branch with that branch's statistics.
    In float64, so that what is left is rounding (~1e-12), far from a mixed-statistics error.
    """
    model, x, seen = model.double(), x.double(), {}

    def record(bn, inputs):
        if bn.training:
            seen[id(bn.running_var)] = (bn.running_var, inputs[0].numel() // inputs[0].shape[1])

    handles = []
    for bn in _batchnorms(model):
        bn.momentum = 1.0
        handles.append(bn.register_forward_pre_hook(record))
    with torch.no_grad():
        train_out = model.train().forward_features(x)
        for var, n in seen.values():
            var.mul_((n - 1) / n)
        eval_out = model.eval().forward_features(x)
    for handle in handles:
        handle.remove()
    return (train_out - eval_out).abs().max().item() / train_out.abs().max().item()


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("depths", DEPTHS)
def test_eval_output_uses_each_branchs_own_statistics(backbone, depths):
    model = _model(depths, backbone)
    assert model.branch_stats is not None and len(model.branch_stats) > 0
    assert _eval_minus_train(model, _images()) < 1e-9


@pytest.mark.parametrize("backbone", BACKBONES)
def test_shared_statistics_mix_the_branches(backbone):
    # The same check fails for the authors' single set: the lower branch is normalised with upper-branch statistics.
    model = _model((2,), backbone, bn_stats="shared")
    assert model.branch_stats is None
    assert _eval_minus_train(model, _images()) > 0.05


def _train_steps(model, steps=2):
    """Forward outputs and gradients of `steps` SGD steps in train mode."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    record = []
    model.train()
    for step in range(steps):
        x = _images(seed=step)
        logits = model(x).logits
        loss = F.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
        opt.zero_grad()
        loss.backward()
        record.append((logits.detach().clone(),
                       {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
        opt.step()
    return record


@pytest.mark.parametrize("backbone,depths,frozen", [
    ("resnet18", (1,), -1), ("resnet18", (1, 2, 3, 4), -1), ("resnet18", (1,), 3),
    ("efficientnet_lite0", (4,), -1), ("efficientnet_lite0", (2,), 3)])
def test_training_forward_and_gradients_are_bit_identical_to_shared(backbone, depths, frozen):
    runs = []
    for bn_stats in ("per_branch", "shared"):
        model = _model(depths, backbone, bn_stats=bn_stats)
        model.freeze_stages(frozen)
        runs.append(_train_steps(model))
    for (logits_a, grads_a), (logits_b, grads_b) in zip(*runs):
        assert torch.equal(logits_a, logits_b)
        assert grads_a.keys() == grads_b.keys()
        assert all(torch.equal(grads_a[k], grads_b[k]) for k in grads_a)


def test_each_set_of_statistics_is_updated_by_its_own_branch_only():
    model = _model((4,), "resnet18")
    bn, upper = model.backbone.layer1[0].bn1, model.branch_stats.get_submodule("layer1.0.bn1")
    lower_x, upper_x = [], []
    upper_mean = upper.running_mean
    bn.register_forward_pre_hook(lambda m, inp: (upper_x if m.running_mean is upper_mean
                                                 else lower_x).append(inp[0].detach()))
    model.train()(_images())
    # Momentum 0.1 from the initial mean 0: running_mean = 0.1 · batch mean, for each branch separately.
    assert len(lower_x) == len(upper_x) == 1
    assert torch.allclose(bn.running_mean, 0.1 * lower_x[0].mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(upper.running_mean, 0.1 * upper_x[0].mean(dim=(0, 2, 3)), atol=1e-6)
    assert int(bn.num_batches_tracked) == int(upper.num_batches_tracked) == 1


def test_only_batchnorms_the_upper_branch_runs_get_a_copy():
    model = _model((2,), "resnet18")
    keys = set(model.branch_stats.state_dict())
    assert "bn1.running_mean" in keys and "layer2.0.downsample.1.running_var" in keys
    assert not any(k.startswith(("layer3", "layer4")) for k in keys)
    # stem bn1, layer1: 2 blocks × 2 BN, layer2: 2 × 2 + the downsample BN
    assert len(model.branch_stats) == 10
    for key, value in model.branch_stats.state_dict().items():
        assert torch.equal(value, model.backbone.state_dict()[key])


def test_baseline_and_separate_weights_have_no_extra_statistics():
    assert _model((), "resnet18").branch_stats is None
    separate = _model((1, 4), "resnet18", share_weights=False)
    assert separate.branch_stats is None
    legacy = _model((1, 4), "resnet18", share_weights=False, bn_stats="shared")
    assert separate.state_dict().keys() == legacy.state_dict().keys()
    x = _images()
    assert torch.equal(separate.eval()(x), legacy.eval()(x))


def test_frozen_stages_keep_their_pretrained_statistics_in_both_branches():
    model = _model((4,), "efficientnet_lite0")
    model.freeze_stages(3)
    frozen = {k: v.clone() for k, v in model.branch_stats.state_dict().items() if not k.startswith(("_blocks.11",
              "_blocks.12", "_blocks.13", "_blocks.14", "_blocks.15", "_bn1."))}
    model.train()(_images())
    stats = model.branch_stats.state_dict()
    assert all(torch.equal(stats[k], v) for k, v in frozen.items())
    assert not torch.equal(stats["_bn1.running_mean"], model.backbone._bn1.running_mean)


def test_bad_bn_stats_option_names_the_choices():
    with pytest.raises(ValueError, match="bn_stats='both'.*per_branch"):
        _model((4,), bn_stats="both")


def test_old_checkpoint_loads_with_statistics_copied_from_the_shared_ones(caplog):
    trained = _model((1, 4), "resnet18", bn_stats="shared")
    trained.train()(_images())
    old_state = trained.state_dict()
    model = _model((1, 4), "resnet18", seed=1)
    with caplog.at_level(logging.WARNING, logger="sagkit.models"):
        model.load_state_dict(old_state)
    notices = [r for r in caplog.records if "per-branch BatchNorm statistics" in r.getMessage()]
    assert len(notices) == 1 and "\n" not in notices[0].getMessage()
    for key, value in model.branch_stats.state_dict().items():
        assert torch.equal(value, old_state["backbone." + key])
    x = _images(seed=3)
    assert torch.allclose(model.eval()(x), trained.eval()(x), atol=1e-6)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sagkit.models"):
        _model((1, 4), "resnet18").load_state_dict(model.state_dict())
    assert not caplog.records
    with pytest.raises(RuntimeError, match="branch_stats"):
        _model((1, 4), "resnet18", bn_stats="shared").load_state_dict(model.state_dict())


def test_deepcopy_keeps_its_own_statistics():
    model = _model((4,), "resnet18")
    clone = copy.deepcopy(model)
    clone.train()(_images())
    assert torch.equal(model.branch_stats.get_submodule("layer1.0.bn1").running_mean, torch.zeros(64))
    assert not torch.equal(clone.branch_stats.get_submodule("layer1.0.bn1").running_mean, torch.zeros(64))
    assert _eval_minus_train(clone, _images()) < 1e-9


# ------------------------------------------------------------------ config and run keys
def test_run_keys_of_runs_made_before_the_field_are_unchanged():
    # Keys of the configs before bn_stats existed: its legacy value, and the baseline, keep them. The cpu
    # profile of that time had stages 1-3 frozen (freeze_stages=3; issue 12 moved the profile to 2).
    assert ExperimentConfig(bn_stats="shared").run_key() == "821b1071fa"
    assert get_profile("paper", bn_stats="shared").run_key() == "821b1071fa"
    assert get_profile("cpu", freeze_stages=3, bn_stats="shared").run_key() == "06475221ee"
    assert get_profile("cpu", freeze_stages=3, depths=()).run_key() == "0e467914a3"
    assert get_profile("cpu", freeze_stages=3, depths=(), bn_stats="shared").run_key() == "0e467914a3"
    # The fixed model is a different experiment: its runs never reuse one made before the fix.
    assert get_profile("cpu", freeze_stages=3).run_key() != "06475221ee"
    assert get_profile("cpu", freeze_stages=3, share_weights=False).run_key() == get_profile(
        "cpu", freeze_stages=3, share_weights=False, bn_stats="shared").run_key()


def test_a_stored_config_without_the_field_is_the_legacy_model():
    old = get_profile("cpu", freeze_stages=3).to_dict()
    del old["bn_stats"]
    stored = ExperimentConfig.from_run(old)
    assert stored.bn_stats == "shared" and stored.run_key() == "06475221ee"
    assert ExperimentConfig.from_dict(old).bn_stats == "per_branch"
    assert ExperimentConfig.from_json(get_profile("cpu", freeze_stages=3).to_json(), stored=True).bn_stats == "per_branch"
    assert build_model(stored, 4, pretrained=False).branch_stats is None
    assert build_model(get_profile("cpu"), 4, pretrained=False).branch_stats is not None


def test_workbook_lists_runs_of_the_fixed_model_not_those_made_before_it(tmp_path):
    from sagkit.workbook import open_workbook

    wb = open_workbook(runs_dir=str(tmp_path))

    def finished(name, config, drop_field):
        fields = config.to_dict()
        if drop_field:
            del fields["bn_stats"]
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(results_entries(name=name, config=fields)))

    finished("old-baseline", wb.config(()), drop_field=True)   # unchanged by the fix: still counts
    finished("old-D4", wb.config((4,)), drop_field=True)       # trained with shared statistics: not this model
    finished("new-D4", wb.config((4,)), drop_field=False)
    listed = [ExperimentConfig.from_run(r.config) for r in wb.finished_runs()]
    assert sorted((c.depths, c.bn_stats) for c in listed) == [((), "shared"), ((4,), "per_branch")]


def test_checked_loading_accepts_a_checkpoint_without_branch_statistics(tmp_path, caplog):
    from sagkit.engine.checkpoint import load_weights

    old_state = _model((4,), "resnet18", bn_stats="shared").state_dict()
    model = _model((4,), "resnet18")
    with caplog.at_level(logging.WARNING, logger="sagkit.models"):
        load_weights(model, old_state, tmp_path / "old.pt")
    assert any("per-branch BatchNorm statistics" in r.getMessage() for r in caplog.records)
    assert torch.equal(model.branch_stats.get_submodule("bn1").running_var, old_state["backbone.bn1.running_var"])
    broken = {k: v for k, v in old_state.items() if k != "backbone.bn1.running_var"}
    with pytest.raises(ValueError, match="old.pt.*missing: backbone.bn1.running_var"):
        load_weights(_model((4,), "resnet18"), broken, tmp_path / "old.pt")


# ---------------------------------------------------------------- what flows on after a SAG module
def test_residual_sag_output_adds_the_attended_map_to_the_lower_one():
    """``sag_output="residual"`` passes lower + attended on; "replace" the attended map alone."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 32)
    outputs = {}
    for mode in ("replace", "residual"):
        torch.manual_seed(1)
        model = SAGNet(5, depths=(4,), backbone="resnet18", sag_output=mode).eval()
        seen = {}

        def spy(module, args, output, seen=seen):
            seen["lower"], seen["attended"] = args[0], output[0]

        model.sags["D4"].register_forward_hook(spy)
        with torch.no_grad():
            outputs[mode] = (model.forward_features(x), dict(seen))
    replaced, seen_r = outputs["replace"]
    added, seen_a = outputs["residual"]
    assert torch.equal(replaced, seen_r["attended"])
    assert torch.allclose(added, seen_a["lower"] + seen_a["attended"])
    assert not torch.allclose(added, replaced)
    with pytest.raises(ValueError, match="sag_output"):
        SAGNet(5, depths=(4,), backbone="resnet18", sag_output="add")


def test_sag_output_keeps_old_run_keys_and_is_checked_by_the_config():
    cpu_d4 = get_profile("cpu", depths=(4,))
    assert cpu_d4.replace(sag_output="replace").run_key() == cpu_d4.run_key()
    assert cpu_d4.replace(sag_output="residual").run_key() != cpu_d4.run_key()
    baseline = get_profile("cpu", depths=())
    assert baseline.replace(sag_output="residual").run_key() == baseline.run_key()  # no SAG module: no effect
    with pytest.raises(ValueError, match="sag_output"):
        get_profile("cpu", sag_output="add")
