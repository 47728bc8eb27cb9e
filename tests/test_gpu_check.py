"""The GPU check (``python -m sagkit bench gpu``) on the CPU: its sections at tiny sizes, its report, its exit."""

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from sagkit.cli import bench as bench_handler, main
from sagkit.config import TINY_SYNTHETIC
from sagkit.diagnostics.gpu_check import CheckPlan, full_plan, quick_plan, run_gpu_check
from sagkit.diagnostics.gpu_check import runner
from sagkit.diagnostics.gpu_check.data import check_config, load_check_data, make_check_data
from sagkit.diagnostics.gpu_check.ddp import _run_group, ddp_section
from sagkit.diagnostics.gpu_check.numerics import (compare_features, compare_rerank, features_section, random_features,
                                              rerank_section)
from sagkit.diagnostics.gpu_check.plan import FEATURE_COSINE_MIN, MARKET_GALLERY, MARKET_QUERY
from sagkit.diagnostics.gpu_check.report import run_section
from sagkit.diagnostics.gpu_check.train_run import run_config, train_command, train_run_section
from sagkit.engine.builders import build_model
from sagkit.diagnostics.gpu_check.plan import COMPILED_COSINE_MIN
from sagkit.diagnostics.gpu_check.training import (compare_embeddings, compiled_matches_eager, loss_trend, training_cases,
                                              training_section)
from sagkit.evaluation.rerank import k_reciprocal as rerank
from sagkit.evaluation.rerank.k_reciprocal import TOLERANCE

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
TINY = CheckPlan(profile="tiny", synthetic=dict(TINY_SYNTHETIC), models=((),), precisions=("off",),
                 compile_models=(), steps=8, window=4, num_batches=4, rerank_query=40, rerank_gallery=160,
                 rerank_dim=16, feature_models=((),), feature_precisions=("bf16",), feature_warmup_steps=4,
                 ddp_steps=2, ddp_procs=1, budget_s=600.0, run_batches=2)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_data(data_root):
    """The tiny plan's synthetic set and its pre-loaded batches, made once for the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return load_check_data(check_config(TINY, make_check_data(TINY, data_root)), CPU, TINY.num_batches)
    finally:
        torch.set_num_threads(threads)


def test_the_full_plan_covers_every_model_precision_and_compile_mode():
    cases = training_cases(full_plan())
    assert len(cases) == 20 and len(set(cases)) == 20
    assert {d for d, _, _ in cases} == {(), (1,), (2,), (3,), (4,)}
    assert {(amp, c) for _, amp, c in cases} == {("fp16", False), ("bf16", False), ("fp16", True), ("bf16", True)}
    compiled = [c for c in cases if c[2]]
    assert cases.index(compiled[0]) == 10  # eager first
    assert {compiled[0][0], compiled[1][0]} == {(4,), ()} and compiled[0][1] != compiled[1][1]
    quick = quick_plan()
    assert quick.steps < full_plan().steps and len(training_cases(quick)) == 14
    assert (full_plan().rerank_query, full_plan().rerank_gallery) == (MARKET_QUERY, MARKET_GALLERY) == (3368, 15913)
    with pytest.raises(ValueError, match="steps=10 must be a multiple of window=4"):
        CheckPlan(steps=10, window=4)


def test_loss_trend_needs_a_finite_and_lower_last_window():
    assert loss_trend([3.0, 2.5, 1.0])["loss_falling"] is True
    assert loss_trend([1.0, 1.2])["loss_falling"] is False
    assert loss_trend([2.0, 2.0])["loss_falling"] is False
    nan = loss_trend([3.0, float("nan"), 1.0])
    assert nan["loss_finite"] is False and nan["loss_falling"] is False
    with pytest.raises(ValueError, match="at least two windows"):
        loss_trend([1.0])


def test_training_section_trains_on_cpu_and_records_a_failing_case(tiny_data):
    plan = dataclasses.replace(TINY, precisions=("off", "fp16"))
    out = training_section(plan, lambda: tiny_data, CPU, time.monotonic() + 600)
    assert out["ran"] == 2 and out["skipped"] == 0 and out["ok"] is False
    assert (out["batch_size"], out["preloaded_batches"]) == (8, TINY.num_batches)
    fp32, fp16 = out["cases"]
    assert (fp32["model"], fp32["precision"], fp32["compile"]) == ("baseline", "fp32", False)
    assert fp32["ok"] and fp32["loss_finite"] and fp32["loss_last"] < fp32["loss_first"]
    assert len(fp32["window_losses"]) == 2 and fp32["img_per_s"] > 0 and fp32["peak_memory_mib"] is None
    assert fp16["ok"] is False and "amp='fp16' needs a CUDA device" in fp16["error"] and fp16["traceback"]


def test_training_section_skips_what_does_not_fit_the_budget(tiny_data):
    plan = dataclasses.replace(TINY, compile_models=((),), compile_estimate_s=1e6)
    out = training_section(plan, lambda: tiny_data, CPU, time.monotonic() + 600)
    eager, compiled = out["cases"]
    assert eager["ok"] and "skipped" not in eager
    assert compiled["compile"] and "time budget" in compiled["skipped"] and "ok" not in compiled
    assert (out["ran"], out["skipped"]) == (1, 1)
    assert out["ok"] is False and out["problems"] == ["no off compiled case ran (time budget)"]  # untried: no pass
    assert "compiled cases' eval embeddings against eager ones" in out["compared"]
    late = training_section(TINY, lambda: tiny_data, CPU, time.monotonic() - 1)
    assert late["ran"] == 0 and late["ok"] is False  # nothing run is no pass


def test_rerank_section_compares_two_devices_results():
    out = rerank_section(TINY, CPU, reference=CPU)
    assert out["ok"] and out["max_abs_diff"] <= TOLERANCE and out["tolerance"] == TOLERANCE
    assert (out["query"], out["gallery"], out["dim"]) == (40, 160, 16) and out["device_s"] > 0
    assert "against float64" in out["compared"] and out["device_vs_float64"]["metric_deltas"] == {"rank1": 0, "mAP": 0}


class _RowChunks(rerank._FeatureSource):
    """The CUDA path of re_rank_features (row chunks, addmm), forced on CPU tensors."""

    def scan(self, k_need, chunk):
        return rerank._scan_rows(self, k_need, chunk)


class _ScaledDistances(_RowChunks):
    """A subtle fault: the divided distances 0.1 % too large (V's weights all slightly off)."""

    def scan(self, k_need, chunk):
        nn, nn_div, colmax, out = super().scan(k_need, chunk)
        return nn, nn_div * 1.001, colmax, out


class _LastNeighbourLost(_RowChunks):
    """An off-by-one fault: each item's farthest kept neighbour replaced by the one before it."""

    def scan(self, k_need, chunk):
        nn, nn_div, colmax, out = super().scan(k_need, chunk)
        nn = nn.clone()
        nn[:, -1] = nn[:, -2]
        return nn, nn_div, colmax, out


def _forced(source):
    return lambda q, g: rerank._k_reciprocal(source(q, g, "euclidean"), 20, 6, 0.3, None)


def test_the_row_chunk_rerank_path_passes_and_injected_faults_fail():
    healthy = rerank_section(TINY, CPU, device_rerank=_forced(_RowChunks))
    assert healthy["ok"], healthy
    for fault in (_ScaledDistances, _LastNeighbourLost):
        out = rerank_section(TINY, CPU, device_rerank=_forced(fault))
        assert out["ok"] is False and out["reference_float32_vs_float64"]["ok"], fault
        assert out["device_vs_float64"]["changed"] > out["device_vs_float64"]["changed_max"], fault


@pytest.mark.slow
def test_at_market_size_the_healthy_row_chunk_path_passes_though_entries_differ():
    """Issue 27, item 1: on the issue's inputs (Market-size random 512-d features) the CUDA path (addmm) rounds
    differently from the float64 result in 1,158 entries (up to 0.065): an exact comparison called that a
    failure, the share-of-entries comparison does not."""
    q, g = random_features(MARKET_QUERY, 512, 0), random_features(MARKET_GALLERY, 512, 1)
    exact = rerank.re_rank_features(q.double(), g.double())
    got = _forced(_RowChunks)(q, g)
    out = compare_rerank(exact, got)
    assert out["entries_over_tolerance"] > 0 and out["max_abs_diff"] > 100 * TOLERANCE  # not equal...
    assert out["ok"] and out["changed"] < 1e-4 and out["top1_agreement"] == 1.0  # ...but retrieval agrees


def test_compare_rerank_fails_beyond_the_tolerance():
    a = np.random.default_rng(0).random((4, 9)).astype(np.float32)
    assert compare_rerank(a, a + np.float32(TOLERANCE / 2))["ok"]
    off = compare_rerank(a, a + np.float32(3 * TOLERANCE))
    assert off["ok"] is False and off["entries_over_tolerance"] == a.size
    b = a.copy()
    b[1, 2] = np.nan
    assert compare_rerank(a, b)["ok"] is False and compare_rerank(a, b)["entries_over_tolerance"] == 1
    assert "shapes differ" in compare_rerank(a, a[:, :-1])["error"]


def test_features_section_compares_bf16_with_fp32_on_cpu(tiny_data):
    plan = dataclasses.replace(TINY, feature_precisions=("bf16", "fp16"))
    out = features_section(plan, lambda: tiny_data, CPU)
    bf16, fp16 = out["cases"]
    assert bf16["ok"] and bf16["worst_cosine"] >= FEATURE_COSINE_MIN and bf16["max_abs_diff"] > 0
    assert bf16["images"] == len(tiny_data.test_records)
    assert fp16["ok"] is False and "needs a CUDA device" in fp16["error"]  # refused, not silently fp32
    assert out["ok"] is False


def test_compare_features_wants_close_but_not_identical_embeddings():
    x = torch.nn.functional.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    assert compare_features(x, torch.nn.functional.normalize(x + 1e-3, dim=1))["ok"]
    same = compare_features(x, x.clone())
    assert same["ok"] is False and same["worst_cosine"] == pytest.approx(1.0)  # autocast had no effect
    far = compare_features(x, torch.flip(x, dims=[0]))
    assert far["ok"] is False and far["worst_cosine"] < FEATURE_COSINE_MIN


def test_run_section_records_a_failure_instead_of_raising():
    def broken():
        raise RuntimeError("boom")

    out = run_section("broken", broken)
    assert out["ok"] is False and out["error"] == "RuntimeError: boom" and "time_s" in out
    assert any("boom" in line for line in out["traceback"])
    assert "no boolean 'ok'" in run_section("no ok", lambda: {"value": 1})["error"]
    assert run_section("fine", lambda: {"ok": True, "x": 1}) == {"ok": True, "x": 1, "time_s": pytest.approx(0, abs=1)}


def test_run_gpu_check_reports_every_section_when_one_breaks(monkeypatch):
    def broken_rerank(plan, device):
        raise RuntimeError("re-ranking exploded")

    monkeypatch.setattr(runner, "rerank_section", broken_rerank)
    monkeypatch.setattr(runner, "ddp_section", lambda plan, kind: {"ok": True, "kind": kind})  # slow test below
    monkeypatch.setattr(runner, "train_run_section", lambda plan, kind, root: {"ok": Path(root).is_dir()})
    report = run_gpu_check(TINY, CPU)
    json.dumps(report)  # one JSON report
    assert set(report["sections"]) == {"features", "rerank", "ddp", "train_run", "training"}
    assert report["sections"]["train_run"]["ok"]  # it got the check's synthetic set
    assert report["ok"] is False and report["failed"] == ["rerank"]
    assert "re-ranking exploded" in report["sections"]["rerank"]["error"]
    assert report["sections"]["training"]["ok"] and report["sections"]["features"]["ok"]
    assert report["sections"]["ddp"]["kind"] == "cpu" and report["environment"]["device"] == "cpu"
    assert report["plan"]["steps"] == TINY.steps and report["total_s"] > 0


@pytest.mark.slow
def test_ddp_section_on_cpu_with_gloo_and_two_processes():
    out = ddp_section(dataclasses.replace(TINY, ddp_procs=2), "cpu")
    assert out["ok"], out
    assert [r["rank"] for r in out["ranks"]] == [0, 1] and {r["backend"] for r in out["ranks"]} == {"gloo"}
    assert out["ranks"][0]["reduced_loss"] == out["ranks"][1]["reduced_loss"]
    assert out["ranks"][0]["local_loss"] != out["ranks"][1]["local_loss"]  # each rank had its own batches
    assert all(r["params_max_diff_vs_rank0"] == 0 for r in out["ranks"])
    assert all(r["buffers_max_diff_vs_rank0_after_training"] > 0 for r in out["ranks"][1:])  # each rank its own
    assert all(r["buffers_max_diff_vs_rank0_at_evaluation"] == 0 for r in out["ranks"])  # broadcast from rank 0
    assert all(r["feature_gather_exact"] for r in out["ranks"]) and "gloo" in out["compared"]


def test_train_run_builds_a_short_torchrun_training_of_the_plan(tmp_path):
    config = run_config(TINY, tmp_path / "data", tmp_path / "runs", "cpu")
    assert (config.epochs, config.max_train_batches, config.eval_every, config.val_ids) == (2, 2, 1, 2)
    assert (config.amp, config.device, config.dataset) == ("off", "cpu", "synthetic")
    gpu = run_config(full_plan(), tmp_path / "data", tmp_path / "runs", "cuda")
    assert (gpu.amp, gpu.device, gpu.val_ids, gpu.max_train_batches) == ("fp16", "cuda", 8, 4)
    cmd = train_command(tmp_path / "c.json", 4)
    assert cmd[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m", "sagkit", "train",
                       "--config", str(tmp_path / "c.json"), "--no-progress"]


@pytest.mark.slow
def test_train_run_section_on_cpu_kills_resumes_and_reuses_a_two_process_run(data_root):
    out = train_run_section(dataclasses.replace(TINY, ddp_procs=2), "cpu", data_root)
    assert out["ok"], out
    assert out["launches"]["killed"]["returncode"] not in (0, None) and out["results"]["world_size"] == 2


def test_a_hanging_launch_is_killed_after_its_timeout():
    start = time.monotonic()
    status, _ = _run_group([sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ), 1.0)
    assert status is None and time.monotonic() - start < 30
    assert _run_group([sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ), 60)[0] == 3


def test_bench_gpu_without_cuda_exits_2_with_one_line():
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "sagkit", "bench", "gpu", "--quick"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    err = proc.stderr.strip()
    assert err.count("\n") == 0 and err.startswith("sagkit bench: error: no CUDA device was found")
    assert "DDP over NCCL" in err and "machine with at least one CUDA GPU" in err


@pytest.mark.parametrize("ok, status", [(True, 0), (False, 1)])
def test_bench_gpu_prints_the_report_and_exits_by_it(monkeypatch, capsys, ok, status):
    plans = []
    monkeypatch.setattr(bench_handler, "require_cuda", lambda: None)
    monkeypatch.setattr(bench_handler, "run_gpu_check", lambda plan: plans.append(plan) or {"ok": ok, "sections": {}})
    assert main(["bench", "gpu", "--quick"]) == status
    assert json.loads(capsys.readouterr().out) == {"ok": ok, "sections": {}}
    assert plans == [quick_plan()]


def test_bench_gpu_refuses_only_and_list_and_other_names_stay_benchmarks(capsys):
    assert main(["bench", "gpu", "--only", "training"]) == 2
    assert "takes no --only or --list" in capsys.readouterr().err
    assert main(["bench", "nope"]) == 2
    assert "unknown benchmark(s) ['nope']" in capsys.readouterr().err


def test_compiled_cases_compare_their_eval_embeddings_with_eager_ones(tiny_data):
    config = check_config(TINY)
    torch.manual_seed(0)
    model = build_model(config, tiny_data.num_classes, pretrained=False).train()
    images = tiny_data.batches[0][0]
    same = compiled_matches_eager(model, model, images, channels_last=False)  # a stand-in for torch.compile
    assert same["ok"] and same["worst_cosine"] == pytest.approx(1.0) and model.training

    def broken(x):
        return model(x) + 0.1 * torch.randn(len(x), model.embedding_dim, generator=torch.Generator().manual_seed(0))

    off = compiled_matches_eager(model, broken, images, channels_last=False)
    assert off["ok"] is False and off["worst_cosine"] < COMPILED_COSINE_MIN and model.training
    assert "shapes differ" in compare_embeddings(torch.ones(2, 3), torch.ones(2, 4))["error"]
