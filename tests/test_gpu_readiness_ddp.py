"""Issue 27 under DDP on the CPU (gloo, 2 processes under torchrun): every rank validates with rank 0's
BatchNorm statistics (item 4)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable"),
              pytest.mark.usefixtures("one_thread")]

# Two DDP steps on different batches per rank, then the trainer's validation with `retrieve` replaced by a
# probe that records a checksum of the buffers the evaluation would use.
VALIDATE_SCRIPT = """
import json, sys, types, torch
import torch.distributed as dist
from sagkit.config import get_profile
from sagkit.engine import session, trainer
from sagkit.engine.builders import build_model
from sagkit.engine.distributed import cleanup_distributed, init_distributed
from sagkit.diagnostics.gpu_check.data import CycledBatches
from sagkit.engine.optim import build_criterion, build_optimizer

torch.set_num_threads(1)
cpu = torch.device("cpu")
info = init_distributed(cpu)
cfg = get_profile("tiny")
torch.manual_seed(0)
model = build_model(cfg, 5, pretrained=False)
ddp = torch.nn.parallel.DistributedDataParallel(model)
gen = torch.Generator().manual_seed(100 + info.rank)
batches = [(torch.randn(4, 3, cfg.height, cfg.width, generator=gen) * (1 + info.rank), torch.tensor([0, 0, 1, 1]))
           for _ in range(2)]
trainer.train_one_epoch(ddp, build_criterion(cfg, 5, model.feature_dim), build_optimizer(model, cfg),
                        CycledBatches(batches, 0, 2), cpu, 1, progress=False, dist_info=info)


def checksum():
    total = torch.stack([b.double().sum() for b in model.buffers() if b.is_floating_point()]).sum()
    everyone = [torch.zeros_like(total) for _ in range(info.world_size)]
    dist.all_gather(everyone, total)
    return [float(v) for v in everyone]


seen = {"after_training": checksum()}
def probe(model_, *args, **kwargs):
    seen["at_validation"] = checksum()
    return types.SimpleNamespace(summary=lambda: {"mAP": 1.0})


session.retrieve = probe
state = types.SimpleNamespace(model=model, info=info, device=cpu, config=cfg,
                                data=types.SimpleNamespace(val_query=[], val_gallery=[], test_transform=None,
                                                           dataset=types.SimpleNamespace(protocol=None)))
assert session.Session.validate(state) == {"mAP": 1.0}
with open(sys.argv[1] + f"/rank{info.rank}.json", "w") as f:
    json.dump(seen, f)
cleanup_distributed(info)
"""


def torchrun(args: list, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_every_rank_validates_with_rank_0s_batchnorm_statistics(tmp_path):
    script = tmp_path / "validate.py"
    script.write_text(VALIDATE_SCRIPT)
    torchrun([str(script), str(tmp_path)], tmp_path)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # all_gather: both ranks saw the same lists
    before, during = ranks[0]["after_training"], ranks[0]["at_validation"]
    assert before[0] != before[1]  # DDP left each rank its own running statistics
    assert during[0] == during[1] == before[0]  # validation: rank 0's, on every rank
