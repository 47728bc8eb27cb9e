"""Train-run section of the GPU check: the real ``sagkit train`` under ``torchrun`` on the check's synthetic set,
so that what the cases of ``training`` and ``ddp`` bypass runs too: the input pipeline (workers, pinned
memory), validation under DDP, checkpoints with the GradScaler state, resuming after a kill, the run lock and
the reuse of a finished run.

Three launches of one run (2 epochs of ``plan.run_batches`` batches, fp16 with GradScaler on CUDA): the first
is killed after the first step of epoch 2 (``SAGKIT_TEST_EXIT_AFTER_BATCHES``), the second resumes and
finishes it, the third finds it finished and reuses it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import torch

from sagkit.config import ExperimentConfig

from sagkit.runs import folder as rd
from sagkit.engine.fault import FAULT_ENV
from sagkit.diagnostics.gpu_check.data import check_config
from sagkit.diagnostics.gpu_check.ddp import _run_group
from sagkit.diagnostics.gpu_check.plan import CheckPlan

__all__ = ["run_config", "train_command", "train_run_section"]

def run_config(plan: CheckPlan, data_root: str | Path, runs_dir: str | Path, device_type: str) -> ExperimentConfig:
    """The plan's profile on its synthetic set for two short epochs with validation after each, tested without
    re-ranking; fp16 (with GradScaler, whose state goes into the checkpoints) on CUDA, fp32 on the CPU."""
    base = check_config(plan, data_root, amp="fp16" if device_type == "cuda" else "off")
    val_ids = max(1, int(plan.synthetic["num_train_ids"]) // 5)  # 8 of the check's 40 identities
    # no re-ranking (the rerank section checks it): after a few steps from random weights the embeddings can
    # all coincide, and k-reciprocal re-ranking of identical features divides 0 by 0
    return base.replace(epochs=2, max_train_batches=plan.run_batches, eval_every=1, val_ids=val_ids,
                        rerank=False, runs_dir=str(runs_dir), device="cuda" if device_type == "cuda" else "cpu")


def train_command(config_path: str | Path, procs: int) -> list:
    """``torchrun --standalone --nproc_per_node=<procs> -m sagkit train --config <file> --no-progress``."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", "-m",
            "sagkit", "train", "--config", str(config_path), "--no-progress"]


def _launch(cmd: list, env: dict, timeout: float) -> dict:
    returncode, stderr = _run_group(cmd, env, timeout)
    lines = stderr.strip().splitlines()
    return {"returncode": returncode, "sagkit_lines": [line for line in lines if line.startswith("sagkit")][-12:],
            "stderr_tail": lines[-12:], "_stderr": stderr}


def train_run_section(plan: CheckPlan, device_type: str, data_root: str | Path) -> dict:
    """The three launches (killed, resumed, reused) and what each must leave behind."""
    procs = plan.ddp_procs or (torch.cuda.device_count() if device_type == "cuda" else 1)
    package_root = str(Path(__file__).resolve().parents[3])
    paths = [package_root] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    env.pop(FAULT_ENV, None)
    if device_type == "cpu":
        env["OMP_NUM_THREADS"] = "1"
    problems, launches = [], {}
    with tempfile.TemporaryDirectory(prefix="sagkit-gpu-run-") as tmp:
        config = run_config(plan, data_root, Path(tmp) / "runs", device_type)
        config_path = Path(tmp) / "config.json"
        config.to_json(config_path)
        cmd, run = train_command(config_path, procs), config.run_dir()
        launches["killed"] = _launch(cmd, {**env, FAULT_ENV: str(plan.run_batches + 1)}, plan.run_timeout_s)
        if launches["killed"]["returncode"] in (0, None):
            problems.append("the first launch was to be killed after the first step of epoch 2, but it "
                            + ("finished" if launches["killed"]["returncode"] == 0 else "timed out"))
        if not (run / rd.CHECKPOINT_LAST).is_file():
            problems.append("the killed launch left no checkpoint_last.pt after epoch 1")
        launches["resumed"] = _launch(cmd, env, plan.run_timeout_s)
        if "resuming" not in launches["resumed"]["_stderr"]:
            problems.append("the second launch did not resume from checkpoint_last.pt")
        results = rd.read_results(run)
        if launches["resumed"]["returncode"] != 0 or results is None or not results.complete:
            problems.append(f"the resumed launch exited with {launches['resumed']['returncode']} and no finished "
                            "results.json")
        if results is not None and results.world_size != procs:
            problems.append(f"results.json records world_size={results.world_size}, {procs} processes ran")
        epochs = [int(r["epoch"]) for r in rd.read_metrics(run)] if (run / rd.METRICS_FILE).is_file() else []
        if epochs != [1, 2]:
            problems.append(f"metrics.csv has epochs {epochs}, expected [1, 2]")
        launches["reused"] = _launch(cmd, env, plan.run_timeout_s)
        if launches["reused"]["returncode"] != 0 or "reusing the finished run" not in launches["reused"]["_stderr"]:
            problems.append("the third launch did not reuse the finished run")
        if results is not None and rd.read_results(run).finished_at != results.finished_at:
            problems.append("the third launch rewrote results.json")
    for entry in launches.values():
        del entry["_stderr"]
    return {"compared": f"sagkit train under torchrun on {procs} process(es) ({config.amp}, {plan.run_batches} "
                        "batches per epoch, validation each epoch): killed in epoch 2, then resumed (log says "
                        "resuming, results.json complete with the world size, metrics for epochs 1-2), then "
                        "reused (log says reusing, results.json unchanged)",
            "ok": not problems, "problems": problems, "processes": procs, "config": config.to_dict(),
            "results": {} if results is None else {"rank1": results.metrics["rank1"], "mAP": results.metrics["mAP"],
                                                   "world_size": results.world_size, "precision": results.precision,
                                                   "device": results.device},
            "launches": launches}
