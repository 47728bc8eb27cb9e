"""Issue 27 under DDP on the CPU (gloo, 2 processes under torchrun): every rank validates with rank 0's
BatchNorm statistics (item 4); rank 0 alone scores, with the idle rank's threads, while the other rank
waits on the gloo wait group, and both end with rank 0's metrics (item 8)."""

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


# Validation through the trainer, then a test-style retrieval (re-ranking, multi-query with extra records)
# of a tiny linear model on 16 x 8 images. The default group's timeout is cut to 3 s and rank 0's first
# scoring call sleeps 5 s: a rank waiting for it on the default group would fail.
SCORING_SCRIPT = """
import datetime, json, os, sys, time, types, torch
import torch.distributed as dist
from sagkit.config import get_profile
from sagkit.data import ImageRecord, build_transforms
from sagkit.engine import retrieval
from sagkit.engine.session import Session
from sagkit.engine.distributed import cleanup_distributed, init_distributed
from sagkit.evaluation.protocol import MARKET

torch.set_num_threads(1)
images, out = sys.argv[1], sys.argv[2]
info = init_distributed(torch.device("cpu"))
dist.set_timeout(datetime.timedelta(seconds=3))
wait = getattr(info, "wait_group", None)  # None before issue 27 item 8
seen = {"rank": info.rank, "wait_backend": dist.get_backend(wait) if wait else None,
        "wait_timeout_s": wait._get_backend(torch.device("cpu")).options._timeout.total_seconds() if wait else None,
        "cores": len(os.sched_getaffinity(0)), "score_threads": [], "rerank_calls": 0}
real_score, real_rerank = retrieval.score, retrieval.re_rank_features


def score(*args, **kwargs):
    seen["score_threads"].append(torch.get_num_threads())
    if len(seen["score_threads"]) == 1:
        time.sleep(5)
    return real_score(*args, **kwargs)


def rerank(*args, **kwargs):
    seen["rerank_calls"] += 1
    return real_rerank(*args, **kwargs)


retrieval.score, retrieval.re_rank_features = score, rerank


class Tiny(torch.nn.Module):
    embedding_dim = 6

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 16 * 8, 6)

    def forward(self, x):
        return self.fc(x.flatten(1))


torch.manual_seed(0)
model = Tiny()


def records(names):  # "<split><pid><camid>..."
    return [ImageRecord(f"{images}/{n}.png", int(n[1]), int(n[2])) for n in names]


query, gallery = records(["q00", "q10", "q20", "q01"]), records([f"g{p}1{i}" for p in range(3) for i in range(3)])
extra = records(["m00", "m10", "m20"])
tf = build_transforms(16, 8, train=False)
cfg = get_profile("tiny", num_workers=0, eval_batch_size=2, flip_eval=False)
session = types.SimpleNamespace(model=model, info=info, device=torch.device("cpu"), config=cfg,
                                data=types.SimpleNamespace(val_query=query, val_gallery=gallery, test_transform=tf,
                                                           dataset=types.SimpleNamespace(protocol=MARKET)))
t0 = time.perf_counter()
seen["validation"] = Session.validate(session)
seen["validation_s"] = time.perf_counter() - t0
seen["validation_scores"] = len(seen["score_threads"])
settings = retrieval.EvalSettings(batch_size=2, rerank=True, rerank_k1=3, rerank_k2=2, multi_query=True)
test = retrieval.retrieve(model, query, gallery, tf, device=torch.device("cpu"), settings=settings,
                          multi_query_records=extra, dist_info=info)
seen["test"] = test.summary() if test is not None else None
seen["threads_after"] = torch.get_num_threads()
seen["scores"], seen["reranks"] = len(seen["score_threads"]), seen["rerank_calls"]
if info.is_main:
    seen["single_process"] = retrieval.retrieve(model, query, gallery, tf, device=torch.device("cpu"),
                                                settings=settings, multi_query_records=extra).summary()
with open(f"{out}/rank{info.rank}.json", "w") as f:
    json.dump(seen, f)
cleanup_distributed(info)
"""


@pytest.fixture(scope="module")
def scoring_ranks(tmp_path_factory):
    """Each rank's record of SCORING_SCRIPT under torchrun."""
    from PIL import Image
    import numpy as np

    folder = tmp_path_factory.mktemp("scoring")
    gen = np.random.default_rng(0)
    names = ["q00", "q10", "q20", "q01", "m00", "m10", "m20"] + [f"g{p}1{i}" for p in range(3) for i in range(3)]
    for name in names:  # an identity's images share a base pattern
        base = np.full((16, 8, 3), 60 * int(name[1]) + 40, np.int16)
        Image.fromarray(np.clip(base + gen.integers(-30, 30, base.shape), 0, 255).astype(np.uint8)).save(
            folder / f"{name}.png")
    (folder / "score.py").write_text(SCORING_SCRIPT)
    torchrun([str(folder / "score.py"), str(folder), str(folder)], folder)
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_under_ddp_rank_0_alone_scores_and_every_rank_gets_its_validation_metrics(scoring_ranks):
    main, other = scoring_ranks
    # validation: 1; the test: single, re-ranked, multi-query, both
    assert main["validation_scores"] == 1 and main["scores"] == 5 and main["reranks"] == 2
    assert other["scores"] == 0 and other["reranks"] == 0
    assert other["validation"] == main["validation"] and set(main["validation"]) >= {"rank1", "mAP"}
    assert other["test"] is None and main["test"] == main["single_process"]
    assert {"rerank_rank1", "multi_rank1", "multi_rerank_mAP"} <= set(main["test"])


def test_rank_0_scores_with_the_idle_ranks_threads_and_gives_them_back(scoring_ranks):
    main, _ = scoring_ranks
    borrowed = max(1, min(2, main["cores"]))  # one thread per rank of this machine, at most its cores
    assert main["score_threads"][:5] == [borrowed] * 5 and main["threads_after"] == 1
    assert main["score_threads"][5:] == [1] * 4  # one process: its own thread count


def test_the_other_ranks_wait_for_rank_0_on_a_gloo_group_with_the_long_timeout(scoring_ranks):
    from sagkit.engine.distributed import SCORING_WAIT_TIMEOUT

    for rank in scoring_ranks:
        assert rank["wait_backend"] == "gloo"
        assert rank["wait_timeout_s"] == SCORING_WAIT_TIMEOUT.total_seconds() >= 3600
    # rank 1 waited past the default group's 3 s timeout while rank 0 scored, and got its metrics
    assert scoring_ranks[1]["validation_s"] > 5


def test_rank_0_borrows_one_thread_count_per_local_rank_up_to_its_cores(monkeypatch):
    from sagkit.engine import distributed
    from sagkit.engine.distributed import DistInfo, main_rank_threads

    monkeypatch.setattr(distributed.os, "sched_getaffinity", lambda pid: set(range(3)), raising=False)
    assert main_rank_threads(DistInfo(0, 4, 0, local_world_size=2)) == 2  # 1 thread (one_thread) x 2 ranks here
    assert main_rank_threads(DistInfo(0, 8, 0, local_world_size=8)) == 3  # at most its 3 cores
    assert main_rank_threads(DistInfo()) == 1  # one process keeps its own count


def test_sharing_needs_the_wait_group_of_init_distributed_and_is_a_no_op_for_one_process():
    from sagkit.engine.distributed import DistInfo, share_from_main

    assert share_from_main({"mAP": 1.0}, DistInfo()) == {"mAP": 1.0}
    with pytest.raises(ValueError, match="rank 1 of 2 has no wait group: get its DistInfo from init_distributed"):
        share_from_main(None, DistInfo(1, 2, 1))
