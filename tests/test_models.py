"""SAGNet, the SAG module and the backbones on tiny CPU inputs."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from sagkit.models import BACKBONES, SAGNet, SelfAttentionGrid, build_backbone
from sagkit.models.efficientnet_lite import Conv2dSame, conv_bn, same_padding

torch.set_num_threads(1)


def _images(n=2, h=64, w=32, seed=0):
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _count(module):
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------- grids
@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_lite0"])
def test_grid_shapes_and_sums_at_160x64(backbone):
    torch.manual_seed(0)
    model = SAGNet(5, depths=(1, 2, 3, 4), backbone=backbone).eval()
    grids = model.attention_grids(_images(2, 160, 64))
    assert sorted(grids) == [1, 2, 3, 4]
    expected = {1: (40, 16), 2: (20, 8), 3: (10, 4), 4: (5, 2)}
    for depth, (h, w) in expected.items():
        assert grids[depth].shape == (2, 1, h, w)
        assert torch.allclose(grids[depth].sum(dim=(1, 2, 3)), torch.ones(2), atol=1e-5)
        assert (grids[depth] > 0).all()
        assert not grids[depth].requires_grad


def test_attention_grids_in_train_mode_leave_bn_statistics_alone():
    torch.manual_seed(0)
    model = SAGNet(5, depths=(2,), backbone="resnet18").train()
    before = [b.clone() for b in model.buffers()]
    grids = model.attention_grids(_images())
    assert model.training
    assert grids[2].shape == (2, 1, 8, 4)
    assert torch.allclose(grids[2].sum(dim=(1, 2, 3)), torch.ones(2), atol=1e-5)
    for old, new in zip(before, model.buffers()):
        assert torch.equal(old, new)


def test_baseline_has_no_grids_and_no_sag_modules():
    model = SAGNet(5, depths=(), backbone="resnet18")
    assert model.attention_grids(_images()) == {}
    assert len(model.sags) == 0 and model.upper is None


# -------------------------------------------------------- the SAG module
def test_sag_module_implements_eqs_4_to_7():
    torch.manual_seed(0)
    lower, upper = torch.randn(3, 8, 4, 2), torch.randn(3, 8, 8, 4)
    sag = SelfAttentionGrid(8, l2norm=False).eval()
    v, grid = sag(lower, upper)
    score = F.relu(sag.bn(sag.conv(lower)))
    expected_grid = torch.softmax(score.flatten(1), dim=1).view(3, 1, 4, 2)
    assert torch.allclose(grid, expected_grid)
    pooled = F.max_pool2d(upper, 2, 2)
    assert torch.allclose(v, pooled * grid)
    # hand-check one pooled cell: max of a 2×2 block of the upper map
    assert v[1, 3, 2, 1].item() == pytest.approx((upper[1, 3, 4:6, 2:4].max() * grid[1, 0, 2, 1]).item(), rel=1e-6)

    sag.l2norm = True
    v_map, _ = sag(lower, upper)
    assert torch.allclose(v_map.flatten(1).norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(v_map, v / v.flatten(1).norm(dim=1).view(3, 1, 1, 1), atol=1e-6)

    sag.l2norm_dim = "channel"
    v_chan, _ = sag(lower, upper)
    assert torch.allclose(v_chan.norm(dim=1), torch.ones(3, 4, 2), atol=1e-5)
    # per-position channel normalisation cancels the grid (one positive number per position)
    assert torch.allclose(v_chan, F.normalize(pooled, dim=1), atol=1e-5)


def test_sag_grid_scale_area_gives_mean_weight_one():
    torch.manual_seed(0)
    lower, upper = torch.randn(2, 4, 5, 2), torch.randn(2, 4, 10, 4)
    plain = SelfAttentionGrid(4, grid_scale="none").eval()
    area = SelfAttentionGrid(4, grid_scale="area").eval()
    area.load_state_dict(plain.state_dict())
    v_plain, g_plain = plain(lower, upper)
    v_area, g_area = area(lower, upper)
    assert torch.equal(g_plain, g_area)
    assert torch.allclose(v_area, v_plain * 10, atol=1e-6)


def test_sigmoid_attention_gates_each_cell():
    torch.manual_seed(0)
    sag = SelfAttentionGrid(6, attention="sigmoid").eval()
    lower = torch.randn(2, 6, 4, 2)
    grid = sag.grid(lower)
    assert torch.allclose(grid, torch.sigmoid(sag.bn(sag.conv(lower))))
    assert ((grid > 0) & (grid < 1)).all()

    model = SAGNet(5, depths=(3, 4), backbone="resnet18", attention="sigmoid").eval()
    grids = model.attention_grids(_images())
    assert grids[3].shape == (2, 1, 4, 2) and grids[4].shape == (2, 1, 2, 1)
    assert not torch.allclose(grids[3].sum(dim=(1, 2, 3)), torch.ones(2), atol=1e-3)
    assert all(m.attention == "sigmoid" for m in model.sags.values())
    with pytest.raises(ValueError, match="grid_scale"):
        SelfAttentionGrid(6, attention="sigmoid", grid_scale="area")


# ------------------------------------------------------------- gradients
def test_gradients_reach_sag_conv_and_both_branches_with_shared_weights():
    torch.manual_seed(0)
    model = SAGNet(5, depths=(2,), backbone="resnet18").train()
    outputs, calls = [], {"layer3": 0}

    def keep(_module, _inputs, out):
        out.retain_grad()
        outputs.append(out)

    model.backbone.layer1.register_forward_hook(keep)
    model.backbone.layer3.register_forward_hook(lambda *a: calls.__setitem__("layer3", calls["layer3"] + 1))
    logits = model(_images(4)).logits
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()

    lower, upper = outputs  # lower branch first, then the upsampled copy
    assert lower.shape == (4, 64, 16, 8) and upper.shape == (4, 64, 32, 16)
    assert lower.grad is not None and lower.grad.abs().sum() > 0
    assert upper.grad is not None and upper.grad.abs().sum() > 0
    assert model.sags["D2"].conv.weight.grad.abs().sum() > 0
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    # the upper branch stops after the deepest SAG depth: layer3 runs for the lower branch only
    assert calls["layer3"] == 1


def test_gradients_reach_both_backbones_without_weight_sharing():
    torch.manual_seed(0)
    model = SAGNet(5, depths=(1, 4), backbone="resnet18", share_weights=False).train()
    F.cross_entropy(model(_images(4)).logits, torch.tensor([0, 1, 2, 3])).backward()
    upper_conv1 = model.upper[0][0]
    assert upper_conv1 is not model.backbone.conv1
    assert upper_conv1.weight.grad.abs().sum() > 0
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    assert model.upper[4][0].conv1.weight.grad.abs().sum() > 0
    for name in ("D1", "D4"):
        assert model.sags[name].conv.weight.grad.abs().sum() > 0


# -------------------------------------------------------------- baseline
def test_baseline_features_equal_torchvision_resnet18():
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None).eval()
    model = SAGNet(5, depths=(), backbone="resnet18").eval()
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    model.backbone.load_state_dict(state, strict=True)
    x = _images(2, 96, 64)
    with torch.no_grad():
        ref = reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))
        for layer in (reference.layer1, reference.layer2, reference.layer3, reference.layer4):
            ref = layer(ref)
        ours = model.forward_features(x)
    assert ours.shape == (2, 512, 3, 2)
    assert torch.equal(ours, ref)


def test_baseline_sees_only_the_original_image():
    model = SAGNet(5, depths=(), backbone="resnet18").eval()
    seen = []
    model.backbone.conv1.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].shape))
    model(_images())
    assert seen == [torch.Size([2, 3, 64, 32])]


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_upper_branch_gets_upsampled_copy(mode):
    model = SAGNet(5, depths=(1,), backbone="resnet18", upsample=mode).eval()
    seen = []
    model.backbone.conv1.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0]))
    x = _images()
    model(x)
    assert [t.shape for t in seen] == [torch.Size([2, 3, 64, 32]), torch.Size([2, 3, 128, 64])]
    assert torch.equal(seen[0], x)
    if mode == "nearest":
        assert torch.equal(seen[1][..., ::2, ::2], x)
    else:
        assert torch.allclose(seen[1], F.interpolate(x, size=(128, 64), mode="bilinear", align_corners=False))
        assert not torch.equal(seen[1][..., ::2, ::2], x)


# ------------------------------------------------------ parameter counts
RESNET18_NO_FC = 11_689_512 - (512 * 1000 + 1000)  # torchvision's 11,689,512 minus fc


def test_parameter_counts_with_and_without_weight_sharing():
    reference = torchvision.models.resnet18(weights=None)
    backbone = _count(reference) - _count(reference.fc)
    assert backbone == RESNET18_NO_FC == 11_176_512
    head = (512 * 512 + 512) + 2 * 512 + (512 * 7 + 7)  # Linear, BatchNorm1d, classifier
    sag4 = 512 + 2  # 1×1 conv (no bias) + BatchNorm2d(1)
    assert _count(SAGNet(7, depths=(), backbone="resnet18")) == backbone + head == 11_443_783
    assert _count(SAGNet(7, depths=(4,), backbone="resnet18")) == backbone + sag4 + head == 11_444_297
    assert _count(SAGNet(7, depths=(4,), backbone="resnet18", share_weights=False)) == 2 * backbone + sag4 + head
    # without sharing, the copy holds only the stem and the stages up to the deepest depth
    partial = sum(_count(m) for m in (reference.conv1, reference.bn1, reference.layer1, reference.layer2))
    sag12 = (64 + 2) + (128 + 2)
    unshared = SAGNet(7, depths=(1, 2), backbone="resnet18", share_weights=False)
    assert _count(unshared) == backbone + partial + sag12 + head
    assert _count(SAGNet(7, depths=(), backbone="resnet18", share_weights=False)) == backbone + head


def test_lite0_parameter_count():
    trunk = build_backbone("efficientnet_lite0", include_classifier=True)
    assert _count(trunk) == 4_652_008  # EfficientNet-Lite0 as published: 4.65 M
    backbone = _count(trunk) - (1280 * 1000 + 1000)
    model = SAGNet(7, depths=(4,), backbone="efficientnet_lite0")
    head = (1280 * 512 + 512) + 2 * 512 + (512 * 7 + 7)
    assert _count(model) == backbone + (1280 + 2) + head


# --------------------------------------------------------- bad arguments
@pytest.mark.parametrize("depths", [(5,), (0,), (4, 4), "4", ("4",), (1.0,), 4, None, (True,)])
def test_bad_depths_raise(depths):
    with pytest.raises(ValueError, match=r"distinct attention depths from 1\.\.4"):
        SAGNet(5, depths=depths, backbone="resnet18")


@pytest.mark.parametrize("depths, stored", [([4, 1], (1, 4)), ({3, 2}, (2, 3)), ((), ()), ((1, 2, 3, 4), (1, 2, 3, 4))])
def test_depths_accept_lists_sets_and_are_sorted(depths, stored):
    assert SAGNet(5, depths=depths, backbone="resnet18").depths == stored


def test_bad_input_size_names_size_and_nearest_valid_sizes():
    model = SAGNet(5, depths=(4,), backbone="resnet18").eval()
    with pytest.raises(ValueError, match=r"100×64.*96×64, 128×64"):
        model(torch.zeros(1, 3, 100, 64))
    with pytest.raises(ValueError, match=r"64×40.*64×32, 64×64"):
        model.attention_grids(torch.zeros(1, 3, 64, 40))
    baseline = SAGNet(5, depths=(), backbone="resnet18").eval()
    with pytest.raises(ValueError, match="multiples of 32"):
        baseline.forward_features(torch.zeros(1, 3, 16, 16))


@pytest.mark.parametrize("kwargs", [dict(backbone="vgg16"), dict(attention="tanh"), dict(upsample="bicubic"),
                                    dict(embedding="logits"), dict(scale_factor=1), dict(scale_factor=1.5),
                                    dict(l2norm_dim="pixel"), dict(grid_scale="sum"), dict(l2norm=[5])])
def test_bad_options_raise(kwargs):
    with pytest.raises(ValueError):
        SAGNet(5, **{"backbone": "resnet18", **kwargs})


# ---------------------------------------------------------------- l2norm
@pytest.mark.parametrize("l2norm, expected", [
    (None, {1: True, 2: True, 3: True, 4: False}),
    (True, {1: True, 2: True, 3: True, 4: True}),
    (False, {1: False, 2: False, 3: False, 4: False}),
    ({4: True, 1: False}, {1: False, 2: True, 3: True, 4: True}),
    ([2], {1: False, 2: True, 3: False, 4: False}),
])
def test_l2norm_per_depth(l2norm, expected):
    model = SAGNet(5, depths=(1, 2, 3, 4), backbone="resnet18", l2norm=l2norm)
    assert {d: model.sags[f"D{d}"].l2norm for d in (1, 2, 3, 4)} == expected


# ------------------------------------------------------------ head, modes
@pytest.mark.parametrize("backbone, pool_dim", [("resnet18", 512), ("efficientnet_lite0", 1280)])
def test_train_gives_logits_and_eval_gives_embedding(backbone, pool_dim):
    torch.manual_seed(0)
    x = _images(3)
    model = SAGNet(7, depths=(4,), backbone=backbone).train()
    out = model(x)
    assert out.logits.shape == (3, 7) and out.features.shape == (3, pool_dim) and out.embedding.shape == (3, 512)
    model.eval()
    emb = model(x)
    assert model.embedding_dim == 512 and emb.shape == (3, 512)
    with torch.no_grad():
        features = model.forward_features(x)
        assert torch.equal(model.forward_head(features), emb)
        assert torch.allclose(emb, model.head.bn(model.head.fc(features.mean(dim=(2, 3)))))
    pooled = SAGNet(7, depths=(4,), backbone=backbone, embedding="pool").eval()
    assert pooled.embedding_dim == pool_dim and pooled(x).shape == (3, pool_dim)


def test_input_normalisation_constants():
    resnet = SAGNet(5, depths=(), backbone="resnet18")
    assert resnet.input_mean == (0.485, 0.456, 0.406) and resnet.input_std == (0.229, 0.224, 0.225)
    lite = SAGNet(5, depths=(), backbone="efficientnet_lite0")
    assert lite.input_mean == pytest.approx((127 / 255,) * 3) and lite.input_std == pytest.approx((128 / 255,) * 3)


# ------------------------------------------------- optimiser and freezing
def test_param_groups_split_backbone_from_new_layers():
    model = SAGNet(5, depths=(2, 4), backbone="resnet18", share_weights=False)
    groups = model.param_groups(0.01, 0.1)
    assert [g["name"] for g in groups] == ["backbone", "sag", "head"]
    assert [g["lr"] for g in groups] == [0.01, 0.1, 0.1]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    backbone_ids = {id(p) for g in groups[:1] for p in g["params"]}
    assert id(model.backbone.conv1.weight) in backbone_ids and id(model.upper[0][0].weight) in backbone_ids
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.sags.parameters()}
    assert model.param_groups(0.01, 0.1, lr_sag=0.01)[1]["lr"] == 0.01
    torch.optim.SGD(groups, lr=0.01, momentum=0.9)


def test_freeze_stages_keeps_frozen_bn_in_eval_and_out_of_param_groups():
    torch.manual_seed(0)
    model = SAGNet(4, depths=(4,), backbone="resnet18")
    model.freeze_stages(2)
    model.train()
    bb = model.backbone
    for module in (bb.conv1, bb.bn1, bb.layer1, bb.layer2):
        assert all(not p.requires_grad for p in module.parameters())
    assert all(p.requires_grad for p in bb.layer3.parameters())
    assert not bb.bn1.training and not bb.layer2[0].bn1.training
    assert bb.layer3[0].bn1.training and model.sags["D4"].bn.training and model.head.bn.training
    frozen_mean = bb.layer1[0].bn1.running_mean.clone()
    live_mean = bb.layer3[0].bn1.running_mean.clone()
    F.cross_entropy(model(_images(4)).logits, torch.tensor([0, 1, 2, 3])).backward()
    assert torch.equal(bb.layer1[0].bn1.running_mean, frozen_mean)
    assert not torch.equal(bb.layer3[0].bn1.running_mean, live_mean)
    assert bb.conv1.weight.grad is None and bb.layer3[0].conv1.weight.grad is not None
    trainable = {id(p) for g in model.param_groups(0.01, 0.1) for p in g["params"]}
    assert id(bb.conv1.weight) not in trainable and id(bb.layer3[0].conv1.weight) in trainable
    model.freeze_stages(-1)
    model.train()
    assert all(p.requires_grad for p in model.parameters()) and bb.bn1.training
    with pytest.raises(ValueError, match="freeze_stages"):
        model.freeze_stages(5)


def test_frozen_stages_after_a_sag_module_keep_their_batchnorm_learning():
    torch.manual_seed(0)
    model = SAGNet(4, depths=(1,), backbone="resnet18")
    model.freeze_stages(3)
    model.train()
    bb = model.backbone
    # stem and stage 1 (before and at D1) stay fully frozen; stages 2-3 see the attended map
    assert not bb.bn1.training and not bb.layer1[0].bn1.training
    assert bb.layer2[0].bn1.training and bb.layer3[0].bn1.training
    assert bb.layer2[0].bn1.weight.requires_grad and not bb.layer2[0].conv1.weight.requires_grad
    trainable = {id(p) for g in model.param_groups(0.01, 0.1) for p in g["params"]}
    assert id(bb.layer3[0].bn1.bias) in trainable and id(bb.layer3[0].conv1.weight) not in trainable
    before = bb.layer2[0].bn1.running_var.clone()
    F.cross_entropy(model(_images(4)).logits, torch.tensor([0, 1, 2, 3])).backward()
    assert not torch.equal(bb.layer2[0].bn1.running_var, before)
    assert bb.layer2[0].bn1.weight.grad is not None and bb.layer2[0].conv1.weight.grad is None


def test_freeze_stages_lite0():
    model = SAGNet(4, depths=(4,), backbone="efficientnet_lite0", share_weights=False)
    model.freeze_stages(4)
    model.train()
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert all(not p.requires_grad for p in model.upper.parameters())
    assert not model.backbone._bn1.training and not model.upper[4][-1].bn.training
    assert model.head.bn.training


# -------------------------------------------------------------- backbones
@pytest.mark.parametrize("name, channels", [("resnet18", (64, 128, 256, 512)), ("resnet34", (64, 128, 256, 512)),
                                            ("resnet50", (256, 512, 1024, 2048)),
                                            ("efficientnet_lite0", (24, 40, 112, 1280))])
def test_backbone_stage_channels(name, channels):
    backbone = BACKBONES[name]()
    assert backbone.stage_channels == channels
    assert [hasattr(backbone, a) for a in ("stem", "layer1", "layer2", "layer3", "layer4")] == [True] * 5


def test_lite0_stage_strides_and_full_forward():
    backbone = build_backbone("efficientnet_lite0").eval()
    x = _images(1, 160, 64)
    sizes = []
    with torch.no_grad():
        out = backbone.stem(x)
        for stage in backbone.stages()[1:]:
            out = stage(out)
            sizes.append(tuple(out.shape[1:]))
        assert torch.equal(out, backbone(x))
    assert sizes == [(24, 40, 16), (40, 20, 8), (112, 10, 4), (1280, 5, 2)]


def test_tf_same_padding_for_any_size():
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(225, 3, 2) == (1, 1)
    assert same_padding(160, 5, 2) == (1, 2)
    assert same_padding(7, 5, 1) == (2, 2)
    conv = Conv2dSame(2, 2, 5, stride=2, groups=2)
    assert conv(torch.zeros(1, 2, 37, 18)).shape == (1, 2, 19, 9)


@pytest.mark.parametrize("size, stride", [((16, 8), 1), ((16, 8), 2), ((15, 9), 2)])
def test_conv2d_same_equals_explicit_tf_padding(size, stride):
    """Symmetric cases let the convolution pad itself; the result must equal F.pad + unpadded conv."""
    torch.manual_seed(0)
    conv = Conv2dSame(3, 3, 5, stride=stride, groups=3)
    x = torch.randn(2, 3, *size)
    top, bottom = same_padding(size[0], 5, stride)
    left, right = same_padding(size[1], 5, stride)
    expected = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (left, right, top, bottom)), conv.weight,
                                          None, stride, 0, 1, 3)
    torch.testing.assert_close(conv(x), expected)


@pytest.mark.parametrize("conv", [torch.nn.Conv2d(4, 6, 1, bias=False), Conv2dSame(4, 4, 3, stride=2, groups=4),
                                  torch.nn.Conv2d(4, 6, 3, padding=1, bias=True)])
def test_conv_bn_folds_eval_batchnorm_exactly(conv):
    """Eval-mode BN folded into the conv: same output and same gradients (input and all parameters) as bn(conv(x))."""
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(conv.out_channels, eps=1e-3)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(2, 4, 10, 6, requires_grad=True)
    params = [x, conv.weight, bn.weight, bn.bias] + ([conv.bias] if conv.bias is not None else [])
    reference = bn(conv(x))
    reference_grads = torch.autograd.grad(reference.square().sum(), params)
    folded = conv_bn(conv, bn, x)
    folded_grads = torch.autograd.grad(folded.square().sum(), params)
    torch.testing.assert_close(folded, reference, rtol=1e-5, atol=1e-5)
    for got, want in zip(folded_grads, reference_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_conv_bn_in_train_mode_updates_running_statistics():
    """A training-mode BN is not folded: it normalises with batch statistics and updates its running ones."""
    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(3, 4, 1, bias=False), torch.nn.BatchNorm2d(4).train()
    out = conv_bn(conv, bn, torch.randn(8, 3, 5, 5) * 3 + 2)
    assert not torch.allclose(bn.running_mean, torch.zeros(4))
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)


# -------------------------------------------------------------- benchmark
def _load_bench_module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_model.py"
    spec = importlib.util.spec_from_file_location("sagkit_bench_model", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_benchmark_rows_count_params_and_flops():
    bench = _load_bench_module()
    NUM_CLASSES, BenchConfig, count_flops = bench.NUM_CLASSES, bench.BenchConfig, bench.count_flops
    format_table, run_benchmark = bench.format_table, bench.run_benchmark
    config = BenchConfig(backbones=("resnet18",), height=64, width=32, batch_size=2, iters=1, warmup=0)
    rows = run_benchmark(config)
    assert [r["config"] for r in rows] == ["baseline", "D1", "D2", "D3", "D4", "D1-D4"]
    head = (512 * 512 + 512) + 2 * 512 + (512 * NUM_CLASSES + NUM_CLASSES)
    assert rows[0]["params_m"] * 1e6 == pytest.approx(RESNET18_NO_FC + head)
    assert rows[4]["params_m"] * 1e6 == pytest.approx(RESNET18_NO_FC + head + 514)
    # eval-mode baseline FLOPs = torchvision resnet18 minus its fc, plus the embedding's Linear(512, 512)
    reference = torchvision.models.resnet18(weights=None)
    x = torch.zeros(1, 3, 64, 32)
    expected = count_flops(reference, x) - 2 * 512 * 1000 + 2 * 512 * 512
    assert rows[0]["gflops"] * 1e9 == pytest.approx(expected)
    flops = [r["gflops"] for r in rows]
    assert flops[0] < flops[1] < flops[2] < flops[3] < flops[4] < flops[5] < flops[4] * 1.01
    assert rows[0]["time_ratio"] == 1.0 and all(r["step_s"] > 0 for r in rows)
    assert "D1-D4" in format_table(rows, config)
