"""End-to-end training on the tiny synthetic set (CPU): results, run folder, reuse, resume after a kill,
divergence stop, bf16 autocast, model loading."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sagkit.config import ExperimentConfig, get_profile
from sagkit.engine import (
    DeviceUnavailableError,
    TrainingDiverged,
    load_checkpoint,
    retrieve_dataset,
)
from sagkit.runs import train
from sagkit.runs import training as training_module
from sagkit.runs.folder import find_runs, load_model_from_run, load_run
from sagkit.engine import session as session_module
from sagkit.engine.fault import FAULT_ENV
from sagkit.engine import tb_log
from sagkit.runs.folder import read_metrics

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_run(data_root, tmp_path_factory):
    """The tiny profile (SAG at D4) trained once for the tests of this module."""
    cfg = get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path_factory.mktemp("runs")), device="cpu")
    return cfg, train(cfg, progress=False)


@pytest.mark.slow
def test_tiny_training_learns_and_writes_its_run_folder(tiny_run):
    cfg, results = tiny_run
    run = Path(results["run_dir"])
    assert run == cfg.run_dir() and run.name.startswith("synthetic-efficientnet_lite0-D4-")
    assert {p.name for p in run.iterdir()} == {
        "config.json", "metrics.csv", "results.json", "per_query.npz", "checkpoint_best.pt", "checkpoint_last.pt",
        "features",
        *(["tensorboard"] if tb_log.AVAILABLE else [])}
    assert ExperimentConfig.from_json(run / "config.json") == cfg
    assert json.loads((run / "results.json").read_text()) == results

    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[-1]["loss"] < rows[0]["loss"]  # the loss falls
    chance = 100.0 / results["num_classes"]
    assert rows[-1]["acc"] > chance  # training accuracy ends above chance
    for r in rows:
        assert r["img_per_s"] > 0 and r["lr"] == cfg.lr_new and "val_mAP" in r and "time_s" in r

    for key in ("rank1", "rank5", "rank10", "mAP", "rerank_rank1", "rerank_rank5", "rerank_rank10", "rerank_mAP"):
        assert 0.0 <= results[key] <= 100.0, key
    assert results["rank1"] <= results["rank5"] <= results["rank10"]
    assert results["complete"] and results["precision"] == "fp32" and results["world_size"] == 1
    assert results["code_version"]["sagkit"] and results["config"]["depths"] == [4]
    assert results["best_epoch"] in (1, 2) and results["timings"]["total_s"] > 0
    assert results["best_val"]["mAP"] == max(r["val_mAP"] for r in rows)

    last = load_checkpoint(run / "checkpoint_last.pt")
    assert last["epoch"] == 2 and set(last) >= {
        "model", "optimizer", "lr_scheduler", "epoch", "config", "rng", "best_metric", "scaler"}
    assert ExperimentConfig.from_dict(last["config"]) == cfg


@pytest.mark.slow
def test_loaded_model_reproduces_the_reported_test_metrics(tiny_run):
    cfg, results = tiny_run
    model = load_model_from_run(results["run_dir"], which="best")
    assert not model.training
    best = load_checkpoint(Path(results["run_dir"]) / "checkpoint_best.pt")
    assert best["epoch"] == results["best_epoch"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, best["model"][name]), name
    with torch.no_grad():
        assert model(torch.randn(2, 3, cfg.height, cfg.width)).shape == (2, model.embedding_dim)

    from sagkit.data import build_transforms, load_dataset

    ds = load_dataset(cfg.dataset, cfg.data_root, **cfg.dataset_options)
    tf = build_transforms(cfg.height, cfg.width, train=False, mean=model.input_mean, std=model.input_std)
    metrics = retrieve_dataset(model, ds, cfg, device=torch.device("cpu"), transform=tf, rerank=True,
                               multi_query=True, cache=None).summary()
    for key, value in metrics.items():
        assert value == pytest.approx(results[key], abs=1e-9), key
    with pytest.raises(ValueError, match="which"):
        load_model_from_run(results["run_dir"], which="first")


@pytest.mark.slow
def test_finished_run_is_reused_unless_retrain(tiny_run, monkeypatch):
    cfg, results = tiny_run

    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(training_module, "_train", must_not_train)
    again = train(cfg.replace(num_workers=2, device="auto"))  # execution fields do not change the key
    assert again == results
    assert [r["name"] for r in find_runs(cfg.runs_dir)] == [results["name"]]
    info = load_run(results["run_dir"])
    assert info["complete"] and info["config"] == cfg and len(info["metrics"]) == 2

    calls = []
    monkeypatch.setattr(training_module, "_train", lambda *a, **k: calls.append(k) or {"retrained": True})
    assert train(cfg, retrain=True) == {"retrained": True}
    assert calls and calls[0]["retrain"] is True and calls[0]["resume"] is False


def _run_script(config: ExperimentConfig, tmp_path: Path, env_extra: dict) -> subprocess.CompletedProcess:
    cfg_file = tmp_path / "cfg.json"
    config.to_json(cfg_file)
    script = (
        "import sys\n"
        "from sagkit.config import ExperimentConfig\n"
        "from sagkit.runs import train\n"
        "train(ExperimentConfig.from_json(sys.argv[1]), progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), **env_extra}
    return subprocess.run([sys.executable, "-c", script, str(cfg_file)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_resume_after_a_kill_equals_an_uninterrupted_run(data_root, tmp_path):
    base = get_profile("tiny", data_root=data_root, depths=(), epochs=3, max_train_batches=3, device="cpu")
    reference = train(base.replace(runs_dir=str(tmp_path / "a")), progress=False)

    killed = base.replace(runs_dir=str(tmp_path / "b"))
    proc = _run_script(killed, tmp_path, {FAULT_ENV: "5"})
    assert proc.returncode == 3, proc.stderr[-2000:]  # died in the middle of epoch 2
    run_b = killed.run_dir()
    assert load_checkpoint(run_b / "checkpoint_last.pt")["epoch"] == 1
    assert not (run_b / "results.json").exists()
    assert not [p for p in run_b.iterdir() if p.name.endswith(".tmp")]

    resumed = train(killed, progress=False)  # resume=True is the default
    run_a = Path(reference["run_dir"])
    for name in ("checkpoint_last.pt", "checkpoint_best.pt"):
        a, b = load_checkpoint(run_a / name), load_checkpoint(run_b / name)
        assert a["epoch"] == b["epoch"]
        for key, tensor in a["model"].items():
            assert torch.equal(tensor, b["model"][key]), (name, key)
    rows_a, rows_b = read_metrics(run_a), read_metrics(run_b)
    assert len(rows_b) == 3
    for ra, rb in zip(rows_a, rows_b):
        for key in ra:
            if key not in ("img_per_s", "time_s"):
                assert ra[key] == rb[key], key
    for key in ("rank1", "rank5", "rank10", "mAP", "rerank_mAP", "best_epoch"):
        assert reference[key] == resumed[key], key


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(data_root, tmp_path, monkeypatch):
    cfg = get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path), depths=(), epochs=3,
                      max_train_batches=2, device="cpu")
    real = session_module.build_criterion

    class Poisoned(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, output, targets):
            self.calls += 1
            value, parts = self.inner(output, targets)
            return (value * float("nan") if self.calls == 3 else value), parts  # first batch of epoch 2

    def poisoned(config, *args):
        return Poisoned(real(config, *args))

    monkeypatch.setattr(session_module, "build_criterion", poisoned)
    with pytest.raises(TrainingDiverged) as info:
        train(cfg, progress=False)
    message = str(info.value)
    assert "epoch 2, batch 1" in message and "learning rate 0.01" in message
    assert "Lower the learning rate" in message and "checkpoint_last.pt" in message
    last = load_checkpoint(cfg.run_dir() / "checkpoint_last.pt")
    assert last["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
    assert not (cfg.run_dir() / "results.json").exists()
    assert [r["epoch"] for r in read_metrics(cfg.run_dir())] == [1]


@pytest.mark.slow
def test_huge_learning_rate_diverges_in_the_first_epoch(data_root, tmp_path):
    cfg = get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path), depths=(), epochs=1,
                      lr_new=1e12, lr_pretrained=1e12, device="cpu")
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch \d+ \(learning rate 1e\+12\).*No checkpoint"):
        train(cfg, progress=False)


@pytest.mark.slow
def test_bf16_autocast_training_on_cpu(data_root, tmp_path):
    cfg = get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path), depths=(), epochs=1,
                      max_train_batches=2, amp="bf16", device="cpu")
    results = train(cfg, progress=False)
    assert results["precision"] == "bf16"
    assert math.isfinite(read_metrics(cfg.run_dir())[0]["loss"])


def test_cuda_request_without_gpu_fails_before_training(data_root, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path), device="cuda")
    with pytest.raises(DeviceUnavailableError, match="no CUDA device.*device='cpu' or device='auto'"):
        train(cfg)
    assert not cfg.run_dir().exists()
