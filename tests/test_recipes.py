"""Training recipes: BNNeck, last stride, optimisers and schedules, run keys that survive the new fields,
and a tiny CE + triplet run on the synthetic data."""

import math
from pathlib import Path

import pytest
import torch

from sagkit.config import LEGACY_VALUES, ExperimentConfig, get_profile
from sagkit.runs import train
from sagkit.engine.builders import build_data
from sagkit.engine.checkpoint import load_checkpoint
from sagkit.engine.optim import build_optimizer, build_scheduler, lr_factor
from sagkit.runs.folder import read_metrics
from sagkit.losses import build_criterion
from sagkit.models import SAGNet


def _images(n=4, h=160, w=64, seed=0):
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------ BNNeck and the training output
def test_bnneck_shapes_and_features_before_and_after_the_neck():
    torch.manual_seed(0)
    model = SAGNet(5, depths=(4,), backbone="resnet18", neck="bnneck").train()
    out = model(_images(4, 64, 32))
    assert out.logits.shape == (4, 5) and out.features.shape == (4, 512) and out.embedding.shape == (4, 512)
    bn = model.head.bn
    assert model.head.classifier.bias is None and not bn.bias.requires_grad
    batch_norm = (out.features - out.features.mean(0)) / torch.sqrt(out.features.var(0, unbiased=False) + bn.eps)
    assert torch.allclose(out.embedding, batch_norm * bn.weight, atol=1e-4)  # BN in train mode, bias 0
    assert torch.allclose(out.logits, out.embedding @ model.head.classifier.weight.t(), atol=1e-5)
    model.eval()
    x = _images(2, 64, 32)
    with torch.no_grad():
        emb, pooled = model(x), model.forward_features(x).mean(dim=(2, 3))
    assert model.embedding_dim == 512 and torch.allclose(emb, bn(pooled))  # retrieval: after the BN
    pool = SAGNet(5, depths=(), backbone="resnet18", neck="bnneck", embedding="pool").eval()
    assert pool.embedding_dim == 512 and pool(x).shape == (2, 512)
    with pytest.raises(ValueError, match="neck='bnneck' has no bottleneck layer and no dropout"):
        SAGNet(5, depths=(), backbone="resnet18", neck="bnneck", dropout=0.3)
    with pytest.raises(ValueError, match="neck='bn' is not known"):
        SAGNet(5, depths=(), backbone="resnet18", neck="bn")


def test_paper_neck_output_keeps_the_pooled_feature_and_the_bottleneck():
    torch.manual_seed(0)
    model = SAGNet(5, depths=(), backbone="resnet18").train()
    x = _images(3, 64, 32)
    out = model(x)
    pooled = model.forward_features(x).mean(dim=(2, 3))
    assert torch.allclose(out.features, pooled, atol=1e-6) and out.embedding.shape == (3, 512)


def test_triplet_reads_the_feature_before_the_bnneck_and_ce_the_one_after():
    torch.manual_seed(0)
    model = SAGNet(4, depths=(), backbone="resnet18", neck="bnneck").train()
    cfg = get_profile("tiny", losses={"ce": 1.0, "triplet": 1.0}, sampler="identity", num_instances=2)
    criterion = build_criterion(cfg)
    out = model(_images(8, 64, 32))
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    _, parts = criterion(out, y)
    ce, triplet = (criterion.losses[n](getattr(out, criterion.losses[n].reads), y) for n in ("ce", "triplet"))
    assert ce.item() == pytest.approx(parts["ce"].item()) and triplet.item() == pytest.approx(parts["triplet"].item())
    bn_weight, last_conv = model.head.bn.weight, model.backbone.layer4[-1].conv2.weight
    grad_bn, grad_conv = torch.autograd.grad(triplet, [bn_weight, last_conv], allow_unused=True, retain_graph=True)
    assert grad_bn is None and grad_conv.abs().sum() > 0  # the triplet loss never sees the neck
    grad_bn, = torch.autograd.grad(ce, [bn_weight])
    assert grad_bn.abs().sum() > 0


# ------------------------------------------------------------------ last stride
def test_last_stride_one_doubles_the_d4_grid_and_keeps_the_weights():
    x = _images(2)
    strided = SAGNet(5, depths=(1, 2, 3, 4), backbone="resnet18").eval()
    one = SAGNet(5, depths=(1, 2, 3, 4), backbone="resnet18", last_stride=1).eval()
    one.load_state_dict(strided.state_dict())
    grids, grids_one = strided.attention_grids(x), one.attention_grids(x)
    assert {d: tuple(g.shape[-2:]) for d, g in grids.items()} == {1: (40, 16), 2: (20, 8), 3: (10, 4), 4: (5, 2)}
    assert {d: tuple(g.shape[-2:]) for d, g in grids_one.items()} == {1: (40, 16), 2: (20, 8), 3: (10, 4), 4: (10, 4)}
    for d in (1, 2, 3):
        assert torch.equal(grids[d], grids_one[d])
    assert one.forward_features(x).shape == (2, 512, 10, 4) and one(x).shape == (2, 512)
    assert SAGNet(5, depths=(), backbone="efficientnet_lite0", last_stride=1).eval().forward_features(
        x).shape[-2:] == (10, 4)  # Lite0 takes it too (issue 22's output-stride-16 control)
    with pytest.raises(ValueError, match="last_stride=3 is not known"):
        SAGNet(5, depths=(), backbone="resnet18", last_stride=3)


# ------------------------------------------------------------------ optimisers and schedules
def _lrs(config, epochs):
    """The head's learning rate in each of ``epochs`` epochs, as the trainer steps the schedule."""
    model = SAGNet(3, depths=(), backbone="resnet18")
    optimizer = build_optimizer(model, config)
    scheduler, lrs = build_scheduler(optimizer, config), []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[-1]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_warmup_then_multistep_at_chosen_epochs():
    cfg = get_profile("bot")
    assert [lr_factor(e, cfg) for e in (0, 5, 9)] == pytest.approx([0.01, 0.01 + 0.99 * 5 / 10, 0.01 + 0.99 * 9 / 10])
    assert [lr_factor(e, cfg) for e in (10, 39, 40, 69, 70, 119)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    lrs = _lrs(cfg, 71)
    assert [lrs[e] for e in (0, 5, 10, 40, 70)] == pytest.approx([3.5e-6, 3.5e-4 * 0.505, 3.5e-4, 3.5e-5, 3.5e-6])


def test_cosine_with_warmup_at_chosen_epochs():
    cfg = get_profile("tiny", epochs=12, lr_schedule="cosine", warmup_epochs=2, warmup_factor=0.1, lr_new=0.2)
    expected = {0: 0.1, 1: 0.55, 2: 1.0, 7: (1 + math.cos(math.pi * 5 / 10)) / 2, 11: (1 + math.cos(math.pi * 9 / 10)) / 2}
    for epoch, factor in expected.items():
        assert lr_factor(epoch, cfg) == pytest.approx(factor), epoch
    lrs = _lrs(cfg, 12)
    assert lrs[7] == pytest.approx(0.1) and lrs[11] == pytest.approx(0.2 * 0.5 * (1 + math.cos(0.9 * math.pi)))
    no_warmup = cfg.replace(warmup_epochs=0)
    assert lr_factor(0, no_warmup) == 1.0 and lr_factor(6, no_warmup) == pytest.approx(0.5)


def test_a_resumed_schedule_continues_where_it_stopped():
    cfg = get_profile("tiny", epochs=12, lr_schedule="cosine", warmup_epochs=3)
    model = SAGNet(3, depths=(), backbone="resnet18")
    first = build_optimizer(model, cfg)
    scheduler = build_scheduler(first, cfg)
    for _ in range(5):
        first.step()
        scheduler.step()
    state = {"optimizer": first.state_dict(), "lr_scheduler": scheduler.state_dict()}
    second = build_optimizer(model, cfg)
    resumed = build_scheduler(second, cfg)
    second.load_state_dict(state["optimizer"])
    resumed.load_state_dict(state["lr_scheduler"])
    resumed.step()
    assert second.param_groups[-1]["lr"] == pytest.approx(0.01 * lr_factor(6, cfg))


def test_the_papers_step_schedule_is_unchanged():
    cfg = get_profile("tiny", lr_step=3, lr_gamma=0.5, epochs=8)
    scheduler = build_scheduler(build_optimizer(SAGNet(3, depths=(), backbone="resnet18"), cfg), cfg)
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR)
    assert _lrs(cfg, 7) == pytest.approx([0.01] * 3 + [0.005] * 3 + [0.0025])


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_optimizers(name, cls):
    cfg = get_profile("tiny", optimizer=name, lr_pretrained=0.001, lr_new=0.02, weight_decay=1e-4)
    optimizer = build_optimizer(SAGNet(3, depths=(4,), backbone="resnet18"), cfg)
    assert type(optimizer) is cls
    assert {g["name"]: g["lr"] for g in optimizer.param_groups} == {"backbone": 0.001, "sag": 0.01, "head": 0.02}
    assert all(g["weight_decay"] == 1e-4 for g in optimizer.param_groups)


@pytest.mark.parametrize("change, field", [
    ({"optimizer": "rmsprop"}, "optimizer"), ({"lr_schedule": "poly"}, "lr_schedule"),
    ({"lr_schedule": "multistep"}, "lr_milestones"), ({"lr_milestones": (70, 40)}, "lr_milestones"),
    ({"warmup_epochs": 2}, "warmup_epochs"), ({"warmup_factor": 0.0}, "warmup_factor"), ({"pad_crop": -1}, "pad_crop"),
    ({"center_alpha": 1.5}, "center_alpha"),
])
def test_bad_recipe_fields_are_named(change, field):
    with pytest.raises(ValueError, match=f"ExperimentConfig.{field}="):
        get_profile("tiny", **change)


# ------------------------------------------------------------------ run keys
def test_new_fields_at_their_old_behaviour_keep_every_run_key():
    assert ExperimentConfig().run_key() == "6432e6c8ea" and get_profile("paper").run_key() == "6432e6c8ea"
    assert get_profile("cpu", freeze_stages=3).run_key() == "ba20a4f6be"  # the cpu profile before issue 12
    assert get_profile("tiny").run_key() == "56ccfd949b"
    paper = get_profile("paper")
    stored = {k: v for k, v in paper.to_dict().items() if k not in LEGACY_VALUES or k == "bn_stats"}
    assert ExperimentConfig.from_run(stored).run_key() == paper.run_key()  # a config.json predating them
    for change in ({"neck": "bnneck"}, {"last_stride": 1}, {"optimizer": "adam"}, {"lr_schedule": "cosine"},
                   {"warmup_epochs": 1}, {"losses": {"ce": 1.0, "center": 0.1}}, {"pad_crop": 4}):
        assert paper.replace(**change).run_key() != paper.run_key(), change


def test_bot_profile_is_the_strong_baseline():
    bot = get_profile("bot")
    assert (bot.backbone, bot.pretrained, bot.height, bot.width) == ("resnet50", "imagenet", 256, 128)
    assert (bot.sampler, bot.batch_size // bot.num_instances, bot.num_instances) == ("identity", 16, 4)
    assert (bot.optimizer, bot.lr_new, bot.lr_pretrained, bot.epochs) == ("adam", 3.5e-4, 3.5e-4, 120)
    assert (bot.lr_schedule, bot.lr_milestones, bot.warmup_epochs) == ("multistep", (40, 70), 10)
    assert bot.losses == {"ce": 1.0, "triplet": 1.0} and (bot.label_smoothing, bot.triplet_margin) == (0.1, 0.3)
    assert (bot.neck, bot.last_stride, bot.pad_crop, bot.flip_prob, bot.erase_prob) == ("bnneck", 1, 10, 0.5, 0.5)
    assert "bot" in get_profile.__doc__ and "94.5" in get_profile.__doc__


# ------------------------------------------------------------------ a tiny run
@pytest.mark.slow
def test_tiny_run_with_ce_and_triplet_learns(data_root, tmp_path, one_thread):
    cfg = get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path), device="cpu", epochs=3, neck="bnneck",
                      losses={"ce": 1.0, "triplet": 1.0}, sampler="identity", num_instances=2, label_smoothing=0.1)
    results = train(cfg, progress=False)
    rows = read_metrics(cfg.run_dir())
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(r["loss"] == pytest.approx(r["loss_ce"] + r["loss_triplet"]) for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"]
    # chance: a random ranking puts a true match first with probability matches / candidates per query
    data = build_data(cfg)
    odds = []
    for q in data.query:
        candidates = [g for g in data.gallery if not (g.pid == q.pid and g.camid == q.camid)]
        odds.append(sum(g.pid == q.pid for g in candidates) / len(candidates))
    chance = 100.0 * sum(odds) / len(odds)
    assert results["rank1"] > 2 * chance, (results["rank1"], chance)
    assert load_checkpoint(Path(results["run_dir"]) / "checkpoint_last.pt")["criterion"] == {}


@pytest.mark.slow
def test_center_loss_centers_are_checkpointed(data_root, tmp_path, one_thread):
    cfg = get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path), device="cpu", depths=(), epochs=1,
                      max_train_batches=2, losses={"ce": 1.0, "center": 0.001}, val_ids=0)
    train(cfg, progress=False)
    state = load_checkpoint(cfg.run_dir() / "checkpoint_last.pt")["criterion"]
    assert state["losses.center.centers"].shape == (12, 1280) and state["losses.center.centers"].abs().sum() > 0
    assert "loss_center" in read_metrics(cfg.run_dir())[0]
