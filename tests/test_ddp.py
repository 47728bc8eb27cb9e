"""Distributed data parallel on CPU with the gloo backend and 2 processes launched by torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sagkit.config import ExperimentConfig, get_profile
from sagkit.engine import retrieve_dataset, tb_log
from sagkit.runs.folder import load_model_from_run
from sagkit.engine.distributed import DistInfo
from sagkit.engine.retrieval import EvalSettings, extract_split_features
from sagkit.runs.folder import read_metrics

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable"),
              pytest.mark.usefixtures("one_thread")]


def torchrun(args: list, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_torchrun_training_and_its_evaluation_match_a_single_process(data_root, tmp_path):
    runs = tmp_path / "runs"
    proc = torchrun(["-m", "sagkit", "train", "--profile", "tiny", "--depths", "baseline", "--set",
                     f"data_root={json.dumps(data_root)}", "--runs-dir", str(runs), "--device", "cpu",
                     "--no-progress"], tmp_path)
    assert proc.stdout.count("R1 ") == 4  # single, re-ranked, multi-query and both: printed by rank 0 only
    (run,) = list(runs.iterdir())
    assert {p.name for p in run.iterdir()} == {
        "config.json", "metrics.csv", "results.json", "checkpoint_best.pt", "checkpoint_last.pt", "features", "per_query.npz",
        *(["tensorboard"] if tb_log.AVAILABLE else [])}
    if tb_log.AVAILABLE:  # rank 0 alone writes events
        assert len([p for p in (run / "tensorboard").iterdir() if "tfevents" in p.name]) == 1
    results = json.loads((run / "results.json").read_text())
    assert results["world_size"] == 2 and results["complete"]
    cfg = ExperimentConfig.from_json(run / "config.json")
    assert cfg.depths == () and cfg.batch_size == 8  # global batch: 4 per process
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["loss"] > 0 for r in rows)
    # every image is seen once per epoch across the two processes (drop_last per process)
    assert rows[0]["img_per_s"] > 0

    # the distributed evaluation (features sharded, gathered, trimmed) equals a single-process one
    model = load_model_from_run(run, which="best")
    from sagkit.data import build_transforms, load_dataset

    ds = load_dataset(cfg.dataset, cfg.data_root, **cfg.dataset_options)
    tf = build_transforms(cfg.height, cfg.width, train=False, mean=model.input_mean, std=model.input_std)
    single = retrieve_dataset(model, ds, cfg, device=torch.device("cpu"), transform=tf, rerank=True,
                              multi_query=True).summary()
    for key, value in single.items():
        assert results[key] == pytest.approx(value, abs=1e-6), key


GATHER_SCRIPT = """
import sys, torch
from sagkit.config import get_profile
from sagkit.data import build_transforms, load_dataset
from sagkit.engine.builders import build_model
from sagkit.engine.distributed import cleanup_distributed, init_distributed
from sagkit.engine.retrieval import EvalSettings, extract_split_features

torch.set_num_threads(1)
cfg = get_profile("tiny", data_root=sys.argv[1])
info = init_distributed(torch.device("cpu"))
assert info.world_size == 2 and torch.distributed.get_backend() == "gloo"
torch.manual_seed(0)
model = build_model(cfg, 5, pretrained=False).eval()
ds = load_dataset(cfg.dataset, cfg.data_root, **cfg.dataset_options)
records = ds.gallery if len(ds.gallery) % 2 else ds.gallery[:-1]  # odd count: the ranks' shards differ
tf = build_transforms(cfg.height, cfg.width, train=False, mean=model.input_mean, std=model.input_std)
feats = extract_split_features(model, records, tf, device=torch.device("cpu"), settings=EvalSettings(batch_size=4),
                               dist_info=info)
if info.is_main:
    torch.save({"feats": feats, "n": len(records)}, sys.argv[2])
cleanup_distributed(info)
"""


@pytest.mark.slow
def test_distributed_feature_extraction_gathers_exactly_the_single_process_features(data_root, tmp_path):
    script = tmp_path / "gather.py"
    script.write_text(GATHER_SCRIPT)
    out = tmp_path / "feats.pt"
    torchrun([str(script), data_root, str(out)], tmp_path)
    got = torch.load(out)
    assert got["n"] % 2 == 1 and got["feats"].shape[0] == got["n"]

    from sagkit.data import build_transforms, load_dataset
    from sagkit.engine.builders import build_model

    cfg = get_profile("tiny", data_root=data_root)
    torch.manual_seed(0)
    model = build_model(cfg, 5, pretrained=False).eval()
    ds = load_dataset(cfg.dataset, cfg.data_root, **cfg.dataset_options)
    records = ds.gallery[: got["n"]]
    tf = build_transforms(cfg.height, cfg.width, train=False, mean=model.input_mean, std=model.input_std)
    single = extract_split_features(model, records, tf, device=torch.device("cpu"), settings=EvalSettings(batch_size=4),
                                    dist_info=DistInfo())
    assert single.shape == got["feats"].shape
    assert torch.allclose(single, got["feats"], atol=1e-6, rtol=0)
