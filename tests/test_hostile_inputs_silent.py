"""Hostile inputs, second round (issue 26): inputs that used to give a wrong answer without a word, or lose a
user's files. Each test is one bad input; it checks that the result is now right, or that the refusal names
the file or field and says what to do, and that nothing was deleted or half-written. Command lines run in
this process (``sagkit.cli.main``: exit status 2 and one ``sagkit <cmd>: error:`` line on a refusal).
``pytest tests/test_hostile_inputs_silent.py -q`` counts them.
"""

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from data_fixtures import (make_cuhk01, make_cuhk03_mat, make_cuhk03_new_protocol, make_market, make_msmt17,
                           write_image)
from sagkit.cli import main
from sagkit.config import LEGACY_VALUES, ExperimentConfig, get_profile
from sagkit.data import BadImageError, DatasetFormatError, ImageRecord, load_dataset, make_synthetic_reid
from sagkit.data.images import read_image
from sagkit.engine.builders import build_model
from sagkit.engine.checkpoint import atomic_torch_save, make_checkpoint
from sagkit.engine.feature_cache import FeatureCache
from sagkit.runs.per_query import PER_QUERY_FILE, read_per_query, write_per_query
from sagkit.runs.folder import CHECKPOINT_BEST, prepare_run_dir
from sagkit.report.results_folder import read_results_folder

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def sagkit(capsys):
    """``sagkit ARGS`` in this process (``sagkit.cli.main``): its exit status, stdout and stderr."""
    def run(*args: str) -> SimpleNamespace:
        capsys.readouterr()
        status = main(list(args))
        out = capsys.readouterr()
        return SimpleNamespace(returncode=status, stdout=out.out, stderr=out.err)

    return run


def snapshot(folder: Path) -> dict:
    """``{relative path: bytes}`` of every file under ``folder``: equal before and after = nothing changed."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def untrained_run(config: ExperimentConfig) -> Path:
    """A run folder of ``config`` (config.json and an untrained checkpoint_best.pt), as training leaves it."""
    num_classes = load_dataset(config.dataset, config.data_root, **config.dataset_options).num_train_pids
    run_dir = prepare_run_dir(config)
    model = build_model(config, num_classes, pretrained=False)
    atomic_torch_save(make_checkpoint(model=model, optimizer=None, lr_scheduler=None, scaler=None, epoch=1,
                                      config=config.to_dict(), best_metric=None, best_epoch=1,
                                      num_classes=num_classes), run_dir / CHECKPOINT_BEST)
    return run_dir


def tiny_on(dataset: str, data_root: Path, runs: Path, **options) -> ExperimentConfig:
    return get_profile("tiny", dataset=dataset, data_root=str(data_root), dataset_options=options,
                       runs_dir=str(runs), pretrained=None, device="cpu", num_workers=0)


# ---------------------------------------------------------------- wrong without a word
def test_eval_after_images_are_replaced_in_place_does_not_read_the_stale_features(tmp_path, sagkit):
    root = make_cuhk01(tmp_path / "data", ids=(1, 2, 3, 5, 8, 9, 11, 12)).parent
    run = untrained_run(tiny_on("cuhk01", root, tmp_path / "runs", num_train_ids=4))
    first = json.loads(sagkit("eval", str(run), "--device", "cpu", "--json").stdout)
    for path in sorted((root / "campus").glob("*.png")):  # same names, other pictures
        write_image(path, value=int(path.stem[-3:]) * 60 % 256 + 7, size=(12, 20))
    cached = sagkit("eval", str(run), "--device", "cpu", "--json")
    fresh = sagkit("eval", str(run), "--device", "cpu", "--json", "--no-cache")
    assert cached.returncode == fresh.returncode == 0, cached.stderr + fresh.stderr
    assert json.loads(cached.stdout)["mAP"] == json.loads(fresh.stdout)["mAP"]
    assert len(list((run / "features").glob("query-*.pt"))) == 2 and first["mAP"] >= 0


def test_feature_cache_key_changes_when_an_image_changes_size_or_time(tmp_path):
    checkpoint = tmp_path / "checkpoint_best.pt"
    checkpoint.write_bytes(b"weights")
    images = [write_image(tmp_path / f"{i}.png", value=40 * i) for i in range(3)]
    records = [ImageRecord(str(p), i, 0) for i, p in enumerate(images)]
    cache = FeatureCache(checkpoint)
    before = cache.path("gallery", records, "flip=0")
    write_image(images[1], value=200, size=(9, 17))
    assert cache.path("gallery", records, "flip=0") != before


def test_eval_on_a_split_sharing_the_runs_training_identities_is_refused_then_marked(tmp_path, sagkit):
    root = make_cuhk01(tmp_path / "data", ids=(1, 2, 3, 5, 8, 9, 11, 12)).parent
    run = untrained_run(tiny_on("cuhk01", root, tmp_path / "runs", num_train_ids=4))
    trained = {r.path for r in load_dataset("cuhk01", str(root), num_train_ids=4).train}
    other = load_dataset("cuhk01", str(root), num_train_ids=4, split=1)
    assert trained & {r.path for r in other.query + other.gallery}  # split 1 reuses split 0's training people
    refused = sagkit("eval", str(run), "--device", "cpu", "--set", "split=1", "--set", "num_train_ids=4")
    assert refused.returncode == 2 and not refused.stdout
    assert re.search(r"error: \d+ of the 4 test identities of cuhk01 num_train_ids=4 split=1 \(\d+ images\) are "
                     r"among the run's training images.*--allow-train-overlap", refused.stderr)
    marked = sagkit("eval", str(run), "--device", "cpu", "--set", "split=1", "--set", "num_train_ids=4", "--json",
                    "--allow-train-overlap")
    assert marked.returncode == 0, marked.stderr
    overlap = json.loads(marked.stdout)["train_overlap"]
    assert overlap["test_identities"] == 4 and 1 <= overlap["identities"] <= 4
    assert "warning:" in marked.stderr and "training images" in marked.stderr
    text = sagkit("eval", str(run), "--device", "cpu", "--set", "split=1", "--set", "num_train_ids=4",
                  "--allow-train-overlap")
    assert "TRAINING IDENTITIES IN THE TEST SPLIT" in text.stdout


def market_test_split(base: Path, query: list[str], gallery: list[str]) -> Path:
    """A Market layout with two training identities in three cameras and the given query and gallery names."""
    for i, cam in enumerate((1, 2, 3)):
        write_image(base / "bounding_box_train" / f"0002_c{cam}s1_00{i}100_00.jpg", value=30 * i)
        write_image(base / "bounding_box_train" / f"0004_c{cam}s1_00{i}200_00.jpg", value=90 + 30 * i)
    for i, name in enumerate(query):
        write_image(base / "query" / name, value=150 + 9 * i)
    for i, name in enumerate(gallery):
        write_image(base / "bounding_box_test" / name, value=160 + 9 * i)
    return base


def test_market_layout_of_distractors_only_is_refused_naming_the_folder(tmp_path, sagkit):
    base = market_test_split(tmp_path / "market", [f"0000_c{c}s1_00{c}300_00.jpg" for c in (1, 2, 3)],
                             [f"0000_c{c}s1_00{c}400_00.jpg" for c in (2, 3, 1)])
    run = untrained_run(tiny_on("market1501", base, tmp_path / "runs").replace(val_ids=0))
    result = sagkit("eval", str(run), "--device", "cpu")
    assert result.returncode == 2 and not result.stdout
    assert f"no query of market1501 in {base} is a person with an image in the gallery" in result.stderr


def test_eval_says_how_many_queries_had_no_valid_match(tmp_path, sagkit):
    base = market_test_split(tmp_path / "market", ["0006_c1s1_001300_00.jpg", "0008_c1s1_001400_00.jpg"],
                             ["0006_c2s1_002300_00.jpg", "0008_c1s1_002400_00.jpg", "0000_c3s1_002500_00.jpg"])
    run = untrained_run(tiny_on("market1501", base, tmp_path / "runs").replace(val_ids=0))
    text = sagkit("eval", str(run), "--device", "cpu", "--no-rerank")
    assert text.returncode == 0, text.stderr
    assert "2 queries (1 left out: no valid match in the gallery), 3 gallery images" in text.stdout
    assert json.loads(sagkit("eval", str(run), "--device", "cpu", "--no-rerank", "--json").stdout
                      )["queries_without_match"] == 1


def test_distractor_and_junk_queries_are_never_hits():
    from sagkit.engine.retrieval import score

    distmat = np.array([[0.1, 0.9, 0.8], [0.9, 0.1, 0.8], [0.9, 0.8, 0.1]], np.float32)
    q_pids, g_pids = np.array([0, 7, -1]), np.array([0, 7, -1])  # a distractor, a person, a junk query
    scores = score(distmat, q_pids, np.zeros(3, np.int64), g_pids, np.ones(3, np.int64), distractor_pid=0)
    assert scores.queries.valid.tolist() == [False, True, False]
    assert scores.metrics["rank1"] == 100.0 and scores.metrics["mAP"] == 100.0  # the one person, found first
    wrong = np.array([[0.9, 0.1, 0.8], [0.1, 0.9, 0.8], [0.1, 0.9, 0.8]], np.float32)  # a distractor first
    assert score(wrong, q_pids, np.zeros(3, np.int64), g_pids, np.ones(3, np.int64),
                 distractor_pid=0).metrics["rank1"] == 0.0


def old_run_config(tmp_path: Path) -> tuple[Path, ExperimentConfig]:
    """An old D4 run's config.json: written before bn_stats existed, so the field is absent."""
    config = get_profile("tiny", depths=(4,), runs_dir=str(tmp_path / "runs"), data_root=str(tmp_path / "data"))
    data = json.loads(config.to_json())
    del data["bn_stats"]
    path = tmp_path / "old_run" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data, indent=2))
    return path, config


def test_train_config_of_an_old_run_missing_a_field_trains_the_old_experiment(tmp_path, sagkit):
    path, config = old_run_config(tmp_path)
    result = sagkit("train", "--config", str(path), "--print-config")
    assert result.returncode == 0, result.stderr
    printed = ExperimentConfig.from_dict(json.loads(result.stdout))
    assert printed.bn_stats == LEGACY_VALUES["bn_stats"] == "shared" != config.bn_stats
    assert printed.run_key() == config.replace(bn_stats="shared").run_key()
    assert f"config file {path} lacks bn_stats" in result.stderr and 'bn_stats="shared"' in result.stderr


def test_train_config_written_by_hand_with_few_fields_says_which_take_their_old_values(tmp_path, sagkit):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"dataset": "synthetic", "depths": [2], "bn_stats": "per_branch"}))
    result = sagkit("train", "--config", str(path), "--print-config")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bn_stats"] == "per_branch" and "note" not in result.stderr
    path.write_text(json.dumps({"dataset": "synthetic", "depths": [2]}))
    result = sagkit("train", "--config", str(path), "--print-config")
    assert json.loads(result.stdout)["bn_stats"] == "shared"
    assert f"note: config file {path} lacks bn_stats" in result.stderr and "today's defaults" in result.stderr


def kept_runs(tmp_path: Path, count: int = 2) -> list[Path]:
    """Copies of ``count`` kept synthetic runs (results.json, per_query.npz) in ``tmp_path/results/synthetic``."""
    runs = sorted(p for p in (REPO / "results" / "synthetic").iterdir() if (p / PER_QUERY_FILE).is_file())[:count]
    copies = []
    for run in runs:
        shutil.copytree(run, tmp_path / "results" / "synthetic" / run.name)
        copies.append(tmp_path / "results" / "synthetic" / run.name)
    return copies


def test_old_per_query_file_copied_into_another_run_is_refused_by_results_tables(tmp_path):
    first, second = kept_runs(tmp_path)
    assert len(read_results_folder(tmp_path / "results", "synthetic")) == 2  # old files that match are read
    shutil.copyfile(first / PER_QUERY_FILE, second / PER_QUERY_FILE)
    with pytest.raises(ValueError, match=re.escape(f"{second / PER_QUERY_FILE} does not say which run it belongs "
                                                   "to (an old file) and its metrics differ from")):
        read_results_folder(tmp_path / "results", "synthetic")


def test_per_query_file_of_another_run_is_refused_naming_both_runs(tmp_path):
    first, second = kept_runs(tmp_path)
    queries = read_per_query(first)
    queries.run_key, queries.run_name = json.loads((first / "results.json").read_text())["run_key"], first.name
    write_per_query(second, queries)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=re.escape(f"{second / PER_QUERY_FILE} belongs to run {first.name}")):
        read_per_query(second)
    assert snapshot(tmp_path) == before
    write_per_query(first, queries)
    assert read_per_query(first).run_name == first.name


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_grey_image_is_scaled_not_white(suffix, tmp_path):
    path = tmp_path / f"deep{suffix}"
    levels = np.array([[0, 257 * 64, 257 * 128, 65535]], np.uint16).repeat(4, 0)
    Image.fromarray(levels).save(path)
    assert Image.open(path).mode.startswith("I;16")
    assert np.asarray(read_image(str(path)))[0, :, 0].tolist() == [0, 64, 128, 255]


@pytest.mark.parametrize("mode, kind", [("F", "32-bit float"), ("I", "32-bit integer")])
def test_float_and_32_bit_images_are_refused_by_name(mode, kind, tmp_path):
    path = tmp_path / "wide.tif"
    Image.fromarray(np.full((4, 4), 3, np.float32 if mode == "F" else np.int32), mode).save(path)
    with pytest.raises(BadImageError, match=re.escape(f"image {str(path)!r} has {kind} grey levels (mode {mode})")):
        read_image(str(path))


# ---------------------------------------------------------------- data loss
def test_synth_overwrite_of_a_folder_sagkit_did_not_write_deletes_nothing(tmp_path, sagkit):
    thesis = tmp_path / "thesis"
    (thesis / "chapters").mkdir(parents=True)
    (thesis / "notes.txt").write_text("three years of notes")
    (thesis / "chapters" / "one.tex").write_text("\\chapter{One}")
    before = snapshot(thesis)
    result = sagkit("synth", str(thesis), "--overwrite", "--set", "num_train_ids=4", "--set", "num_test_ids=2")
    assert result.returncode == 2 and snapshot(thesis) == before
    assert f"'{thesis}' holds files but no manifest.json written by sagkit synth" in result.stderr
    assert "deleted nothing" in result.stderr


def test_synth_overwrite_of_a_folder_with_another_tools_manifest_deletes_nothing(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html></html>")
    (site / "manifest.json").write_text(json.dumps({"generator": "webpack", "files": {"index.html": [13, "x"]}}))
    before = snapshot(site)
    with pytest.raises(FileExistsError, match=re.escape(f"{str(site)!r} holds files but no manifest.json written by "
                                                        "sagkit synth")):
        make_synthetic_reid(site, seed=1, overwrite=True, num_train_ids=4, num_test_ids=2)
    assert snapshot(site) == before


def test_synth_overwrite_keeps_a_users_file_inside_a_synthetic_set(tmp_path):
    tiny = dict(num_train_ids=4, num_test_ids=2, images_per_id=4, query_per_id=1, gallery_per_id=2)
    root = make_synthetic_reid(tmp_path / "s", seed=1, **tiny)
    (root / "query" / "my_notes.txt").write_text("keep me")
    before = snapshot(root)
    with pytest.raises(FileExistsError, match=re.escape("holds files sagkit synth did not write: query/my_notes.txt")):
        make_synthetic_reid(root, seed=2, overwrite=True, **tiny)
    assert snapshot(root) == before
    (root / "query" / "my_notes.txt").unlink()
    make_synthetic_reid(root, seed=2, overwrite=True, **tiny)  # only sagkit's files: replaced
    assert json.loads((root / "manifest.json").read_text())["seed"] == 2


# ---------------------------------------------------------------- the same classes elsewhere
@pytest.mark.parametrize("pid", ["٠٠٠٢", "０００２"])
def test_market_name_with_non_ascii_digits_is_refused_by_name(pid, tmp_path):
    base = make_market(tmp_path, inner=None, gt_bbox=False)
    name = f"{pid}_c1s1_009999_00.jpg"
    write_image(base / "bounding_box_train" / name)
    with pytest.raises(DatasetFormatError, match=re.escape(f"in {str(base / 'bounding_box_train')!r} do not follow "
                                                           f"the format") + f".*{name}"):
        load_dataset("market1501", str(base))


def test_cuhk01_name_with_non_ascii_digits_is_refused_by_name(tmp_path):
    campus = make_cuhk01(tmp_path)
    write_image(campus / "000٣001.png")
    with pytest.raises(DatasetFormatError, match="000٣001.png"):
        load_dataset("cuhk01", str(tmp_path))


def test_msmt17_list_line_repeating_an_image_is_refused_naming_the_line(tmp_path):
    base = make_msmt17(tmp_path)
    lists = base / "list_query.txt"
    first = lists.read_text().splitlines()[0]
    lists.write_text(lists.read_text() + first + "\n")
    count = len(lists.read_text().splitlines())
    with pytest.raises(DatasetFormatError, match=re.escape(f"of {str(lists)!r} do not follow") + f".*line {count} "
                       + re.escape(f"{first.split()[0]!r}: repeats line 1")):
        load_dataset("msmt17", str(tmp_path))


def test_msmt17_person_id_in_other_digits_is_refused_naming_the_line(tmp_path):
    base = make_msmt17(tmp_path)
    lists = base / "list_gallery.txt"
    lines = lists.read_text().splitlines()
    rel, label = lines[0].split()
    arabic = label.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    lists.write_text("\n".join([f"{rel} {arabic}"] + lines[1:]))
    with pytest.raises(DatasetFormatError, match=re.escape(str(lists)) + ".*line 1.*is not a non-negative integer"):
        load_dataset("msmt17", str(tmp_path))


def cuhk03_new_protocol(tmp_path: Path, edit) -> Path:
    """The CUHK03 fixture with a new-protocol config (first three images train, next two query, rest gallery)
    whose index lists ``edit(train, query, gallery)`` changes; returns the config's path."""
    make_cuhk03_mat(tmp_path / "cuhk03_release" / "cuhk-03.mat")
    names = sorted(Path(r.path).name for r in load_dataset("cuhk03", str(tmp_path)).query)
    labels = [int(n[2:5]) + 10 * int(n[0]) for n in names]
    lists = [list(range(3)), [3, 4], list(range(5, len(names)))]
    edit(*lists)
    path = tmp_path / "cuhk03_release" / "cuhk03_new_protocol_config_detected.mat"
    return make_cuhk03_new_protocol(path, names, labels, *lists)


def test_cuhk03_new_protocol_listing_an_image_twice_is_refused(tmp_path):
    path = cuhk03_new_protocol(tmp_path, lambda train, query, gallery: query.append(3))
    with pytest.raises(DatasetFormatError, match=re.escape(f"{str(path)!r}: query_idx lists 1 image(s) more than "
                                                           "once (indices [4])")):
        load_dataset("cuhk03", str(tmp_path), protocol="new")


def test_cuhk03_new_protocol_testing_on_training_images_is_refused(tmp_path):
    path = cuhk03_new_protocol(tmp_path, lambda train, query, gallery: train.append(gallery[0]))
    with pytest.raises(DatasetFormatError, match=re.escape(f"{str(path)!r}: 1 image(s) are in train_idx and in "
                                                           "query_idx or gallery_idx (indices [6])")):
        load_dataset("cuhk03", str(tmp_path), protocol="new")


def test_results_tables_out_path_that_is_a_file(tmp_path, sagkit):
    kept_runs(tmp_path, count=1)
    (tmp_path / "taken").write_text("a file")
    result = sagkit("results", "tables", "--results-dir", str(tmp_path / "results"), "--dataset", "synthetic",
                    "--profile", "cpu", "--out", str(tmp_path / "taken" / "tables"))
    assert result.returncode == 2
    assert f"'{tmp_path / 'taken' / 'tables'}' is not a folder: {tmp_path / 'taken'} is a file" in result.stderr
    assert (tmp_path / "taken").read_text() == "a file"


def test_train_runs_dir_that_is_a_file(tmp_path, sagkit):
    (tmp_path / "runs").write_text("a file")
    result = sagkit("train", "--profile", "tiny", "--runs-dir", str(tmp_path / "runs"), "--data-root",
                    str(tmp_path / "data"), "--no-progress")
    assert result.returncode == 2 and not (tmp_path / "data").exists()
    assert f"error: --runs-dir '{tmp_path / 'runs'}' is not a folder: it is a file" in result.stderr


def test_synth_root_that_is_a_file(tmp_path, sagkit):
    (tmp_path / "set").write_text("a file")
    result = sagkit("synth", str(tmp_path / "set"), "--overwrite")
    assert result.returncode == 2 and (tmp_path / "set").read_text() == "a file"
    assert f"'{tmp_path / 'set'}' is a file, not a folder: choose a folder" in result.stderr
