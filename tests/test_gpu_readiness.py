"""Issue 27 on the CPU: the CUDA-path defects found by review, each shown with a CPU stand-in (CPU autocast for
precision, monkeypatched device queries, loaders as ranks build them)."""

import pytest
import torch

from data_fixtures import write_image
from sagkit.data import ImageRecord, build_train_loader, build_transforms
from sagkit.data.loaders import augmentation_seed
from sagkit.engine import device as dv
from sagkit.losses import TripletLoss, hardest_pairs, pairwise_distances

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- item 2: triplet mining under autocast
def test_triplet_distances_stay_float32_under_bf16_autocast():
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(64, 2048, generator=gen).abs()  # ReLU-like features: distances near 19 at 2048-d
    targets = torch.arange(16).repeat_interleave(4)
    exact = pairwise_distances(features)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = pairwise_distances(features)
        loss = TripletLoss(0.3)(features, targets)
    assert mixed.dtype is torch.float32 and torch.equal(mixed, exact)
    assert torch.equal(hardest_pairs(mixed, targets)[1], hardest_pairs(exact, targets)[1])
    assert loss.dtype is torch.float32 and loss.item() == pytest.approx(TripletLoss(0.3)(features, targets).item())


# ---------------------------------------------------------------- item 7: amp="auto" on pre-Ampere GPUs
@pytest.mark.parametrize("capability, name, scaler", [((7, 0), "fp16", True), ((7, 5), "fp16", True),
                                                       ((8, 0), "bf16", False), ((9, 0), "bf16", False)])
def test_auto_precision_wants_bf16_tensor_cores(monkeypatch, capability, name, scaler):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
                        or capability >= (8, 0))  # what torch says on a V100: True, counting emulation
    precision = dv.resolve_precision("auto", torch.device("cuda", 0))
    assert (precision.name, precision.use_scaler) == (name, scaler)


# ---------------------------------------------------------------- item 10: device="cuda:N" under torchrun
def test_an_explicit_gpu_index_is_refused_with_several_processes(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    with pytest.raises(ValueError, match=r"device='cuda:1' under torchrun would put all 2 processes on the same "
                                         r"GPU; use device='cuda'.*CUDA_VISIBLE_DEVICES"):
        dv.resolve_device("cuda:1", local_rank=1, world_size=2)
    assert dv.resolve_device("cuda", local_rank=1, world_size=2) == torch.device("cuda", 1)
    assert dv.resolve_device("cuda:1") == torch.device("cuda", 1)  # one process: the GPU asked for


# ---------------------------------------------------------------- item 5 (and 10): the loaders of ranks
@pytest.fixture
def records(tmp_path):
    """4 identities x 4 images of 16 x 8 JPEGs."""
    return [ImageRecord(str(write_image(tmp_path / f"{pid}_{k}.jpg", value=40 * pid + 9 * k, size=(8, 16))), pid,
                        k % 2) for pid in range(4) for k in range(4)]


def _loader(records, rank: int):
    tf = build_transforms(16, 8, train=True, flip_prob=0.5, erase_prob=0.5, pad=2)
    loader = build_train_loader(records, tf, batch_size=4, num_workers=1, seed=7, distributed=True,
                                num_replicas=2, rank=rank)
    assert loader.persistent_workers  # as every kept run was trained: other worker seeds otherwise
    return loader


def test_ranks_draw_different_augmentations_and_rank_0_keeps_its_seed(records):
    assert augmentation_seed(7, 0) == 8  # a single process and rank 0: seed + 1, as before
    assert len({augmentation_seed(7, r) for r in range(8)}) == 8
    assert build_train_loader(records, None, batch_size=4, num_workers=0, seed=7).generator.initial_seed() == 8
    rank0, rank1 = _loader(records, 0), _loader(records, 1)
    assert rank0.generator.initial_seed() == 8 and rank1.generator.initial_seed() == augmentation_seed(7, 1)
    # the same images (rank 0's) through a worker seeded as rank 0 and as rank 1: other crops and erasures
    images = next(iter(rank0))[0]
    as_rank1 = _loader(records, 0)  # a fresh loader (its workers start on first use), seeded as rank 1
    as_rank1.generator.manual_seed(augmentation_seed(7, 1))
    assert not torch.equal(images, next(iter(as_rank1))[0])
    assert torch.equal(images, next(iter(_loader(records, 0)))[0])  # and the same seed draws the same ones


# ---------------------------------------------------------------- item 3: several GPUs, one recipe
def test_sync_batchnorm_conversion_keeps_the_model_and_its_per_branch_statistics():
    import copy

    from sagkit.config import get_profile
    from sagkit.engine.builders import build_model, convert_sync_batchnorm

    config = get_profile("tiny", depths=(2,), pretrained=None)
    torch.manual_seed(0)
    plain = build_model(config, 5, pretrained=False)
    assert plain.branch_stats is not None and len(plain.branch_stats) > 0
    synced = convert_sync_batchnorm(copy.deepcopy(plain))
    kinds = {type(m) for m in synced.modules()}
    assert torch.nn.SyncBatchNorm in kinds and torch.nn.BatchNorm2d not in kinds and torch.nn.BatchNorm1d not in kinds
    assert list(synced.state_dict()) == list(plain.state_dict())  # checkpoints keep their keys
    x = torch.randn(4, 3, config.height, config.width, generator=torch.Generator().manual_seed(1))
    for model in (plain, synced):
        torch.manual_seed(2)
        model.train()
        model(x)
    for (key, a), b in zip(plain.state_dict().items(), synced.state_dict().values()):
        assert torch.equal(a, b), key  # the upper branch's statistics updated as before: rebind followed them
    plain.eval(), synced.eval()
    with torch.no_grad():
        assert torch.equal(plain(x), synced(x))


def test_a_finished_run_is_not_reused_across_world_sizes(tmp_path):
    import json

    from sagkit.config import get_profile
    from record_fixtures import results_entries
    from sagkit.runs import folder as rd
    from sagkit.runs import train
    from sagkit.runs.record import RunResults, write_results

    config = get_profile("tiny", runs_dir=str(tmp_path))
    rd.prepare_run_dir(config)
    write_results(config.run_dir(), RunResults.from_json(results_entries(world_size=2, rank1=50.0)))
    with pytest.raises(ValueError, match=r"trained by 2 process\(es\), this job has 1.*any_world_size=True\) "
                                         r"\(sagkit train --any-world-size\).*retrain=True"):
        train(config, progress=False)
    assert train(config, progress=False, any_world_size=True)["rank1"] == 50.0
    old = results_entries(rank1=40.0)
    del old["world_size"]  # written before world_size was recorded: one process
    (config.run_dir() / rd.RESULTS_FILE).write_text(json.dumps(old))
    assert train(config, progress=False)["rank1"] == 40.0


def test_sync_bn_is_a_new_field_that_leaves_run_keys_alone():
    from sagkit.config import LEGACY_VALUES, ExperimentConfig, get_profile

    assert ExperimentConfig().sync_bn is False and LEGACY_VALUES["sync_bn"] is False
    assert get_profile("paper", sync_bn=False).run_key() == get_profile("paper").run_key()
    assert get_profile("paper", sync_bn=True).run_key() != get_profile("paper").run_key()


# ---------------------------------------------------------------- item 6: no host synchronisation every step
class _PoisonAt(torch.nn.Module):
    """The criterion of ``config`` whose loss is NaN at call ``bad`` (1-based)."""

    def __init__(self, inner, bad):
        super().__init__()
        self.inner, self.bad, self.calls = inner, bad, 0

    def forward(self, output, targets):
        self.calls += 1
        value, parts = self.inner(output, targets)
        return (value * float("nan") if self.calls == self.bad else value), parts


def _epoch(monkeypatch, bad=None, check_every=None, batches=8):
    from sagkit.config import get_profile
    from sagkit.engine import trainer
    from sagkit.engine.builders import build_model
    from sagkit.diagnostics.gpu_check.data import CycledBatches
    from sagkit.engine.optim import build_criterion, build_optimizer

    checks = []
    real = trainer.all_reduce_min
    monkeypatch.setattr(trainer, "all_reduce_min", lambda flag, info: checks.append(flag) or real(flag, info))
    config = get_profile("tiny", depths=(), pretrained=None)
    torch.manual_seed(0)
    model = build_model(config, 3, pretrained=False)
    gen = torch.Generator().manual_seed(1)
    data = [(torch.randn(4, 3, config.height, config.width, generator=gen), torch.tensor([0, 1, 2, 0]))
            for _ in range(2)]
    criterion = build_criterion(config, 3, model.feature_dim)
    if bad is not None:
        criterion = _PoisonAt(criterion, bad)
    try:
        stats = trainer.train_one_epoch(model, criterion, build_optimizer(model, config), CycledBatches(data, 0, batches),
                                        torch.device("cpu"), 1, progress=False, check_every=check_every)
    except trainer.TrainingDiverged as err:
        return err, checks, model
    return stats, checks, model


def test_the_loss_is_checked_every_n_steps_and_the_first_bad_batch_is_named(monkeypatch):
    every_step, checks, model = _epoch(monkeypatch)
    assert len(checks) == 8  # on the CPU: every step, as before
    batched, checks, other = _epoch(monkeypatch, check_every=4)
    assert len(checks) == 2 and batched["loss"] == every_step["loss"]  # same numbers, two reads of the flag
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    err, checks, _ = _epoch(monkeypatch, bad=3, check_every=4)
    assert len(checks) == 1 and (err.epoch, err.batch) == (1, 3) and err.loss != err.loss  # NaN, batch 3 of 8
    assert "epoch 1, batch 3" in str(err)
    err, checks, _ = _epoch(monkeypatch, bad=6, check_every=4, batches=6)
    assert len(checks) == 2 and err.batch == 6  # the last batch is always checked


def test_sync_bn_under_ddp_on_the_cpu_is_refused_before_anything_is_written(tmp_path):
    from sagkit.config import get_profile
    from sagkit.engine.distributed import DistInfo
    from sagkit.engine.session import setup_session

    config = get_profile("tiny", runs_dir=str(tmp_path), sync_bn=True)
    with pytest.raises(ValueError, match="sync_bn=True needs CUDA devices.*set sync_bn=False"):
        setup_session(config, torch.device("cpu"), DistInfo(0, 2, 0), files=None)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------- item 8: scoring on the GPU
def test_scores_are_computed_where_the_features_were_extracted(tmp_path, monkeypatch):
    from sagkit.engine import retrieval
    from sagkit.engine.feature_cache import FeatureCache
    from sagkit.evaluation import compute_distance_matrix

    assert retrieval.scoring_device(torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert retrieval.scoring_device("cpu") == retrieval.scoring_device(None) == torch.device("cpu")
    ckpt = tmp_path / "checkpoint_best.pt"
    torch.save({"w": torch.ones(1)}, ckpt)
    query = [ImageRecord(f"q{i}.jpg", i % 3, 0) for i in range(6)]
    gallery = [ImageRecord(f"g{i}.jpg", i % 3, 1) for i in range(12)]
    gen = torch.Generator().manual_seed(0)
    cache = FeatureCache(ckpt)
    settings = retrieval.EvalSettings(rerank=True)
    for split, records in (("query", query), ("gallery", gallery)):
        cache.save(split, records, settings.feature_key(), torch.nn.functional.normalize(torch.randn(len(records), 8,
                                                                                                    generator=gen)))
    asked, seen = [], []
    real_distance, real_rerank = retrieval.compute_distance_matrix, retrieval.re_rank_features
    monkeypatch.setattr(retrieval, "scoring_device", lambda device: asked.append(device) or torch.device("cpu"))
    monkeypatch.setattr(retrieval, "compute_distance_matrix", lambda a, b, **kw: seen.append(a.device) or
                        real_distance(a, b, **kw))
    monkeypatch.setattr(retrieval, "re_rank_features", lambda a, b, **kw: seen.append(a.device) or real_rerank(a, b, **kw))
    out = retrieval.retrieve(lambda: None, query, gallery, input_size=(16, 8), device=torch.device("cpu"),
                             settings=settings, cache=cache)
    assert asked == [torch.device("cpu")] and seen == [torch.device("cpu")] * 2
    q, g = cache.load("query", query, "flip=0"), cache.load("gallery", gallery, "flip=0")
    assert torch.equal(out.distmat, compute_distance_matrix(q, g)) and out.single_rr is not None
