"""DDP section of the GPU check: ``torchrun --nproc_per_node=<GPUs>`` starts one ``ddp_worker`` process per
device (NCCL on CUDA, gloo on the CPU); this module launches it and checks what each rank reported: the
expected backend, finite losses, one reduced loss on every rank, parameters identical to rank 0's, buffers
identical to rank 0's once the trainer's pre-evaluation broadcast ran, and an exact feature gather.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from sagkit.diagnostics.gpu_check.plan import CheckPlan

__all__ = ["ddp_section"]


def _run_group(cmd: list, env: dict, timeout: float) -> tuple:
    """Run ``cmd`` in a session of its own; past ``timeout`` kill that process group (the launcher and its
    workers, which would otherwise keep the GPUs). Returns (exit status or None on timeout, stderr)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
        return proc.returncode, stderr
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        return None, stderr


def ddp_section(plan: CheckPlan, device_type: str) -> dict:
    """Launch the worker under torchrun (one process per GPU, or ``plan.ddp_procs``) and check its ranks:
    the expected backend, finite losses, one reduced loss on all ranks and identical parameters."""
    procs = plan.ddp_procs or (torch.cuda.device_count() if device_type == "cuda" else 1)
    backend = "nccl" if device_type == "cuda" else "gloo"
    package_root = str(Path(__file__).resolve().parents[3])
    paths = [package_root] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    if device_type == "cpu":
        env["OMP_NUM_THREADS"] = "1"
    with tempfile.TemporaryDirectory(prefix="sagkit-gpu-ddp-") as out:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
               "-m", "sagkit.diagnostics.gpu_check.ddp_worker", "--out", out, "--profile", plan.profile,
               "--overrides", json.dumps(plan.overrides), "--steps", str(plan.ddp_steps),
               "--seed", str(plan.seed), "--device-type", device_type]
        returncode, stderr = _run_group(cmd, env, plan.ddp_timeout_s)
        ranks = [json.loads(p.read_text()) for p in sorted(Path(out).glob("rank*.json"))]
    result = {"compared": f"{plan.ddp_steps} DDP steps of train_one_epoch on {procs} process(es) over {backend}: "
                          "the backend, finite losses, one reduced loss on every rank, parameters equal to rank 0's, "
                          "buffers equal to rank 0's after the pre-evaluation broadcast, the evaluation's feature "
                          "gather exact",
              "processes": procs, "expected_backend": backend, "returncode": returncode, "ranks": ranks}
    problems = []
    if returncode != 0:
        problems.append(f"torchrun did not finish within ddp_timeout_s={plan.ddp_timeout_s:g}" if returncode is None
                        else f"torchrun exited with status {returncode}")
        result["stderr_tail"] = stderr.strip().splitlines()[-20:]
    if len(ranks) != procs:
        problems.append(f"{len(ranks)} of {procs} ranks reported")
    for r in ranks:
        if r["backend"] != backend:
            problems.append(f"rank {r['rank']} used backend {r['backend']}, expected {backend}")
        if not (math.isfinite(r["reduced_loss"]) and math.isfinite(r["local_loss"])):
            problems.append(f"rank {r['rank']} has a non-finite loss")
        if r["params_max_diff_vs_rank0"] != 0:
            problems.append(f"rank {r['rank']}'s parameters differ from rank 0's by "
                            f"{r['params_max_diff_vs_rank0']:g}")
        if r["buffers_max_diff_vs_rank0_at_evaluation"] != 0:
            problems.append(f"rank {r['rank']}'s buffers differ from rank 0's at evaluation by "
                            f"{r['buffers_max_diff_vs_rank0_at_evaluation']:g}")
        if not r["feature_gather_exact"]:
            problems.append(f"rank {r['rank']} gathered other features than the shards it was given")
    if len({r["reduced_loss"] for r in ranks}) > 1:
        problems.append("the reduced loss differs between ranks")
    result.update(ok=not problems, problems=problems)
    return result

