"""Your own images on a tiny trained run (issue 25): ``embed`` equals the evaluation's features (PyTorch and
ONNX), ``sagkit embed`` / ``sagkit search`` end to end, and cross-dataset ``sagkit eval`` on the synthetic set
and on a ``folder`` copy of its test split."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

import sagkit
from sagkit.cli import main
from sagkit.config import get_profile
from sagkit.data import load_dataset
from sagkit.data.folder_copy import write_folder_copy
from sagkit.images.embedding import Embeddings
from sagkit.engine.feature_cache import FeatureCache
from sagkit.engine.device import place_model
from sagkit.engine.retrieval import EvalSettings, retrieve_dataset
from sagkit.runs.folder import checkpoint_path, run_model
from sagkit.evaluation import compute_distance_matrix

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]
HAS_ONNXRUNTIME = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run folder, its test dataset) of a tiny D4 run trained for a few steps on the tiny synthetic set."""
    base = tmp_path_factory.mktemp("images")
    torch.set_num_threads(1)
    assert main(["train", "--profile", "tiny", "--depths", "4", "--epochs", "1", "--set", "max_train_batches=2",
                 "--set", f"data_root={base / 'data'}", "--runs-dir", str(base / "runs"), "--device", "cpu",
                 "--no-progress"]) == 0
    (run,) = list((base / "runs").iterdir())
    config = get_profile("tiny")
    return run, load_dataset("synthetic", base / "data", **config.dataset_options)


def test_embed_equals_the_features_the_runs_test_used(trained):
    run, dataset = trained
    _, config = run_model(run)
    cache, key = FeatureCache(checkpoint_path(run)), EvalSettings.from_config(config).feature_key()
    for split, records in (("query", dataset.query), ("gallery", dataset.gallery)):
        kept = cache.load(split, records, key)  # written by the trainer's final test
        assert kept is not None
        got = sagkit.embed(run, [r.path for r in records], progress=False)
        assert got.paths == [r.path for r in records] and got.settings["flip"] is config.flip_eval is False
        np.testing.assert_array_equal(got.vectors, kept.numpy())
        assert got.images_per_s > 0 and got.model == run.name


def test_embed_with_flip_equals_the_evaluation_with_flip(trained):
    run, dataset = trained
    model, config = run_model(run)
    evaluation = retrieve_dataset(place_model(model, config, torch.device("cpu")).eval(), dataset, config,
                                  device=torch.device("cpu"), flip=True)
    got = sagkit.embed(run, [r.path for r in dataset.gallery], flip=True, progress=False)
    assert got.settings["flip"] is True
    np.testing.assert_array_equal(got.vectors, evaluation.gallery_feats.numpy())
    unflipped = sagkit.embed(run, [r.path for r in dataset.gallery], progress=False)
    assert np.abs(unflipped.vectors - got.vectors).max() > 1e-3  # flip averaging did change them


@pytest.mark.skipif(not HAS_ONNXRUNTIME, reason="onnx/onnxruntime are not installed (pip install -e '.[export]')")
def test_embed_from_onnx_matches_the_run_within_1e4(trained, tmp_path):
    run, dataset = trained
    onnx_file = tmp_path / "model.onnx"
    assert main(["export", str(run), "--out", str(onnx_file)]) == 0
    paths = [r.path for r in dataset.gallery]
    for flip in (False, True):
        ours = sagkit.embed(run, paths, flip=flip, progress=False)
        theirs = sagkit.embed(onnx_file, paths, flip=flip, progress=False)
        assert theirs.model == run.name and theirs.settings["input_size"] == ours.settings["input_size"]
        assert np.abs(theirs.vectors - ours.vectors).max() <= 1e-4
    assert sagkit.embed(onnx_file, paths[:2], progress=False).settings["flip"] is False  # the run's flip_eval


def test_embed_and_search_commands(trained, tmp_path, capsys):
    run, dataset = trained
    gallery_dir = dataset.gallery[0].path.rsplit("/", 1)[0]
    out = tmp_path / "gallery.npz"
    assert main(["embed", str(run), gallery_dir, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == str(out) and printed[1].startswith(f"{len(dataset.gallery)} images, 512-d embeddings of")
    saved = Embeddings.load(out)
    queries = [r.path for r in dataset.query[:2]]
    png = tmp_path / "ranked.png"
    assert main(["search", str(run), "--query", *queries, "--gallery", str(out), "--topk", "4", "--png", str(png),
                 "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    q = sagkit.embed(run, queries, progress=False)
    full = compute_distance_matrix(q.vectors, saved.vectors).numpy()
    order = np.argsort(full, axis=1, kind="stable")[:, :4]
    for row in range(2):
        block = lines[5 * row: 5 * row + 5]
        assert block[0] == f"query {queries[row]}"
        assert [line.split()[2] for line in block[1:]] == [saved.paths[i] for i in order[row]]
        assert [float(line.split()[1]) for line in block[1:]] == pytest.approx(full[row, order[row]], abs=1e-4)
    assert lines[-1] == str(png) and png.stat().st_size > 1000
    assert main(["search", str(run), "--query", queries[0], "--gallery", str(out), "--topk", "3", "--rerank",
                 "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("(re-ranked)")
    assert main(["search", str(run), "--query", str(tmp_path / "nope.jpg"), "--gallery", str(out)]) == 2
    assert "sagkit search: error: image path" in capsys.readouterr().err


def _eval_json(argv, capsys) -> dict:
    assert main(["eval", *argv, "--json", "--device", "cpu", "--no-cache"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cross_dataset_eval_on_a_folder_copy_gives_the_readers_numbers(trained, tmp_path, capsys):
    run, dataset = trained
    own = _eval_json([str(run)], capsys)
    folder = write_folder_copy(dataset, tmp_path / "copy")  # junk left out: it is left out of every ranking
    copy = _eval_json([str(run), "--dataset", "folder", "--data-root", str(folder)], capsys)
    for key in ("rank1", "rank5", "rank10", "mAP", "mINP"):
        assert copy[key] == pytest.approx(own[key], abs=1e-9)
    assert copy["protocol"] == own["protocol"]


def test_cross_dataset_eval_on_another_synthetic_set_and_without_cameras(trained, tmp_path, capsys):
    run, dataset = trained
    options = {**get_profile("tiny").dataset_options, "seed": 5}  # another synthetic set: other people
    sets = [arg for key, value in options.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
    other = _eval_json([str(run), "--dataset", "synthetic", "--data-root", str(tmp_path / "other"), *sets], capsys)
    assert 0 <= other["mAP"] <= 100 and other["protocol"] == dataset.protocol.describe()
    assert other["mAP"] != pytest.approx(_eval_json([str(run)], capsys)["mAP"])
    for pid in sorted({r.pid for r in dataset.query}):
        for r in [r for r in dataset.query + dataset.gallery if r.pid == pid]:
            link = tmp_path / "ids" / str(pid) / r.path.rsplit("/", 1)[1]
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(r.path)
    assert main(["eval", str(run), "--dataset", "folder", "--data-root", str(tmp_path / "ids"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "no camera ids" in out and "R1" in out


def test_training_on_a_folder_without_cameras(trained, tmp_path, capsys):
    _, dataset = trained
    folder = tmp_path / "mine"
    for split, records in (("train", dataset.train), ("query", dataset.query), ("gallery", dataset.gallery)):
        for r in records:
            if r.pid > 0 or split == "train":  # people only in the test split: no junk, no distractors
                link = folder / split / f"{'t' if split == 'train' else 'p'}{r.pid}" / r.path.rsplit("/", 1)[1]
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(r.path)
    runs = tmp_path / "runs"
    assert main(["train", "--profile", "tiny", "--dataset", "folder", "--data-root", str(folder), "--epochs", "1",
                 "--set", "max_train_batches=2", "--runs-dir", str(runs), "--device", "cpu", "--no-progress"]) == 0
    (run,) = list(runs.iterdir())
    results = json.loads((run / "results.json").read_text())
    assert results["dataset"] == "folder" and results["protocol"].startswith("no camera ids")
    assert results["num_classes"] == 12 - get_profile("tiny").val_ids and results["best_val"] is not None
