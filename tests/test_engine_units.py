"""Engine building blocks: atomic files, RNG states, device/precision choice, optimiser, run folders."""

import logging
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from record_fixtures import results_entries
from sagkit.config import get_profile
from sagkit.engine import checkpoint as ck
from sagkit.engine import device as dv
from sagkit.runs import folder as rd
from sagkit.runs.record import RunResults, write_results
from sagkit.engine.distributed import DistInfo, all_gather_padded, shard_range
from sagkit.engine.optim import build_optimizer, build_scheduler, current_lrs


# ---------------------------------------------------------------- atomic files and checkpoints
def test_atomic_write_replaces_whole_file_or_nothing(tmp_path):
    path = tmp_path / "results.json"
    ck.atomic_write_json(path, {"a": 1})
    assert path.read_text().strip() == '{\n  "a": 1\n}'
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600

    def broken(tmp):
        with open(tmp, "w") as fh:
            fh.write('{"half": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        ck.atomic_write(path, broken)
    assert path.read_text().strip() == '{\n  "a": 1\n}'  # old content intact
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # temp file removed


def test_rng_state_round_trip_and_weights_only_checkpoint(tmp_path):
    model = nn.Linear(3, 2)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    ckpt = ck.make_checkpoint(model=model, optimizer=None, lr_scheduler=None, scaler=None, epoch=4,
                              config=get_profile("tiny").to_dict(), best_metric=12.5, best_epoch=3, num_classes=2)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.random(), np.random.rand(), torch.rand(5)  # move on
    ck.atomic_torch_save(ckpt, tmp_path / "c.pt")
    loaded = ck.load_checkpoint(tmp_path / "c.pt")  # weights_only=True must accept everything we store
    ck.set_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert loaded["epoch"] == 4 and loaded["best_metric"] == 12.5 and loaded["config"]["depths"] == (4,)
    assert torch.equal(loaded["model"]["weight"], model.weight)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        ck.load_checkpoint(tmp_path / "missing.pt")


# ---------------------------------------------------------------- device and precision
def test_cuda_request_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for spec in ("cuda", "cuda:1"):
        with pytest.raises(dv.DeviceUnavailableError, match=r"no CUDA device.*device='cpu' or device='auto'"):
            dv.resolve_device(spec)


def test_auto_falls_back_to_cpu_with_one_line_notice(monkeypatch, caplog, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="sagkit.engine"):
        assert dv.resolve_device("auto") == torch.device("cpu")
    notices = [r.getMessage() for r in caplog.records]
    assert len(notices) == 1 and "no CUDA device" in notices[0] and "\n" not in notices[0]
    assert capsys.readouterr().out == ""  # never on stdout
    assert dv.resolve_device("cpu") == torch.device("cpu")


def test_precision_choices():
    cpu = torch.device("cpu")
    assert dv.resolve_precision("auto", cpu).dtype is None
    assert dv.resolve_precision("off", cpu).name == "fp32"
    p = dv.resolve_precision("bf16", cpu)
    assert p.dtype is torch.bfloat16 and not p.use_scaler
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        dv.resolve_precision("fp16", cpu)
    fp16 = dv.resolve_precision("fp16", torch.device("cuda", 0))
    assert fp16.use_scaler and fp16.dtype is torch.float16


def test_bf16_autocast_runs_on_cpu():
    layer = nn.Linear(8, 4)
    x = torch.randn(2, 8)
    with dv.autocast(dv.resolve_precision("bf16", torch.device("cpu"))):
        y = layer(x)
    assert y.dtype is torch.bfloat16
    with dv.autocast(dv.resolve_precision("off", torch.device("cpu"))):
        assert layer(x).dtype is torch.float32
    assert not dv.make_grad_scaler(dv.resolve_precision("bf16", torch.device("cpu"))).is_enabled()


RETAIN_PROBE = """
import ctypes, sys, torch
from sagkit.engine.device import retain_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
def mapped_while_holding_64mb():
    x = torch.ones(16 * 2**20)  # 64 MB: above glibc's largest mmap threshold
    return libc.mallinfo2().hblkhd
before = mapped_while_holding_64mb()
ok = retain_freed_memory() if sys.argv[1] == "retain" else False
after = mapped_while_holding_64mb()
print(ok, before >= 64 * 2**20, after >= 64 * 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
@pytest.mark.parametrize("mode, expected", [("retain", "True True False"), ("default", "False True True")])
def test_retain_freed_memory_stops_large_blocks_being_mmapped(mode, expected):
    """A 64 MB tensor is its own mmap under glibc's defaults and comes from the reusable heap once retained."""
    probe = subprocess.run([sys.executable, "-c", RETAIN_PROBE, mode], capture_output=True, text=True, check=False)
    if "mallinfo2" in probe.stderr:
        pytest.skip("this libc has no mallinfo2 (needs glibc >= 2.33)")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == expected.split()


def test_epoch_seed_and_determinism_flags():
    assert dv.epoch_seed(0, 1) != dv.epoch_seed(0, 2) != dv.epoch_seed(1, 1)
    assert dv.epoch_seed(5, 7) == dv.epoch_seed(5, 7)
    try:
        dv.configure_determinism(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        dv.configure_determinism(False)
    assert not torch.are_deterministic_algorithms_enabled()


# ---------------------------------------------------------------- distributed helpers (single process)
@pytest.mark.parametrize("n, world", [(7, 2), (8, 2), (5, 3), (2, 4), (0, 2)])
def test_shards_cover_the_dataset_in_order(n, world):
    shards = [shard_range(n, r, world) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))
    assert max(len(s) for s in shards) - min(len(s) for s in shards) <= max(1, -(-n // world))


def test_all_gather_padded_single_process_is_identity():
    t = torch.arange(6.0).reshape(3, 2)
    (out,) = all_gather_padded(t, DistInfo())
    assert torch.equal(out, t)


# ---------------------------------------------------------------- optimiser and schedule
class _TwoPart(nn.Module):
    def __init__(self):
        super().__init__()
        self.old, self.new, self.frozen = nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def param_groups(self, lr_pretrained, lr_new, lr_sag=None):
        return [{"params": list(self.old.parameters()) + list(self.frozen.parameters()), "lr": lr_pretrained},
                {"params": list(self.new.parameters()), "lr": lr_new}]


def test_sgd_two_learning_rates_and_step_decay():
    cfg = get_profile("paper")
    opt = build_optimizer(_TwoPart(), cfg)
    assert current_lrs(opt) == [0.01, 0.1]
    assert sum(len(g["params"]) for g in opt.param_groups) == 4  # frozen parameters left out
    g = opt.param_groups[0]
    assert (g["momentum"], g["weight_decay"], g["nesterov"]) == (0.9, 5e-4, False)
    sched = build_scheduler(opt, cfg)
    for _ in range(39):
        opt.step(), sched.step()
    assert current_lrs(opt) == [0.01, 0.1]
    opt.step(), sched.step()
    assert current_lrs(opt) == pytest.approx([0.001, 0.01])


def test_sag_modules_get_their_own_learning_rate():
    from sagkit.models import SAGNet

    cfg = get_profile("paper", lr_sag=0.005)
    model = SAGNet(5, depths=(4,), backbone="resnet18")
    lrs = {g["name"]: g["lr"] for g in build_optimizer(model, cfg).param_groups}
    assert lrs == {"backbone": 0.01, "sag": 0.005, "head": 0.1}
    assert get_profile("paper").lr_sag == 0.01  # conv layers' rate, not the FC layers' 0.1


# ---------------------------------------------------------------- run folders
def test_metrics_csv_round_trip_and_find_runs(tmp_path):
    cfg = get_profile("tiny", runs_dir=str(tmp_path))
    run = rd.prepare_run_dir(cfg)
    assert (run / "config.json").is_file()
    rows = [{"epoch": 1, "lr": 0.1, "loss": 2.5, "acc": 10.0},
            {"epoch": 2, "lr": 0.1, "loss": 2.0, "acc": 20.0, "val_mAP": 33.3}]
    rd.write_metrics(run, rows)
    back = rd.read_metrics(run)
    assert back[0] == {"epoch": 1, "lr": 0.1, "loss": 2.5, "acc": 10.0, "val_mAP": None}
    assert back[1]["val_mAP"] == 33.3 and isinstance(back[1]["epoch"], int)
    assert rd.find_runs(tmp_path) == []  # not finished
    write_results(run, RunResults.from_json(results_entries(name=run.name, rank1=55.0)))
    assert rd.is_complete(run)
    assert [(r.name, r.metrics["rank1"]) for r in rd.find_runs(tmp_path)] == [(run.name, 55.0)]
    info = rd.load_run(run)
    assert info["config"] == cfg and info["complete"] and len(info["metrics"]) == 2
    # the same name with another experiment is refused
    with pytest.raises(ValueError, match="different config.*epochs"):
        rd.prepare_run_dir(cfg.replace(name=run.name, epochs=9))
    rd.prepare_run_dir(cfg.replace(name=run.name, epochs=9), retrain=True)
    assert not (run / "results.json").exists() and not (run / "metrics.csv").exists()


def test_code_version_has_package_version():
    import sagkit

    info = rd.code_version()
    assert info["sagkit"] == sagkit.__version__
    assert info["git_commit"] is None or len(info["git_commit"]) == 40
