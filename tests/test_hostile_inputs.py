"""Hostile inputs (issue 15 §2): every entry point fed the bad inputs a user meets.

Each case expects ONE error of a stated type whose message names the offending file or field, or that the
input simply works (grayscale or RGBA images, folders with spaces or non-ASCII characters), and checks that
a failure leaves nothing half-written. Every test here is one bad input; ``pytest
tests/test_hostile_inputs.py -q`` counts them.
"""

import io
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from PIL import Image

from data_fixtures import make_cuhk01, make_cuhk03_mat, make_market, write_image
from sagkit.config import ExperimentConfig, get_profile
from sagkit.data import (BadImageError, DatasetFormatError, ImageDataset, build_test_loader, build_transforms,
                         load_dataset)
from sagkit.runs import train
from sagkit.runs.folder import load_model_from_run
from sagkit.engine.builders import build_model
from sagkit.engine.checkpoint import atomic_torch_save, load_weights, make_checkpoint
from sagkit.runs.folder import CHECKPOINT_BEST, CHECKPOINT_LAST, model_from_checkpoint, prepare_run_dir
from sagkit.workbook import check_parameters

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def snapshot(folder: Path) -> dict:
    """``{relative path: bytes}`` of every file under ``folder``: equal before and after = nothing changed."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 32), (200, 100, 50)).save(buf, fmt)
    return buf.getvalue()


# ---------------------------------------------------------------- images (read_image, ImageDataset, loaders)
BAD_IMAGES = {
    "zero-byte JPEG": ("empty.jpg", lambda p: p.write_bytes(b"")),
    "zero-byte PNG": ("empty.png", lambda p: p.write_bytes(b"")),
    "truncated JPEG": ("cut.jpg", lambda p: p.write_bytes(encoded("JPEG")[:-200])),
    "truncated PNG": ("cut.png", lambda p: p.write_bytes(encoded("PNG")[:-30])),
    "text file named .jpg": ("notes.jpg", lambda p: p.write_text("not an image")),
    "symlink to a missing file": ("gone.jpg", lambda p: p.symlink_to(p.with_name("missing.jpg"))),
}


def bad_image(folder: Path, kind: str) -> Path:
    name, make = BAD_IMAGES[kind]
    folder.mkdir(parents=True, exist_ok=True)
    make(folder / name)
    return folder / name


@pytest.mark.parametrize("kind", sorted(BAD_IMAGES))
def test_bad_image_is_one_error_naming_the_file(kind, tmp_path):
    path = bad_image(tmp_path, kind)
    loader = build_test_loader([(str(path), 0, 0)], None, batch_size=1, num_workers=0)
    with pytest.raises(BadImageError, match=re.escape(repr(str(path))) + ".*Re-extract or remove it"):
        next(iter(loader))


def test_bad_images_are_skipped_with_a_warning_under_on_bad_image_skip(tmp_path):
    bad = [bad_image(tmp_path, kind) for kind in sorted(BAD_IMAGES)]
    good = write_image(tmp_path / "good.jpg")
    with pytest.warns(UserWarning, match=rf"skipped {len(bad)} unreadable image\(s\): .*empty\.jpg"):
        ds = ImageDataset([(str(p), 0, 0) for p in bad + [good]], on_bad_image="skip")
    assert [r.path for r in ds.records] == [str(good)]


@pytest.mark.parametrize("mode, name, pixel", [("L", "gray.jpg", 90), ("RGBA", "alpha.png", (10, 200, 30, 77)),
                                               ("P", "palette.png", 3), ("LA", "gray_alpha.png", (120, 9))])
def test_grayscale_palette_and_alpha_images_load_as_rgb(mode, name, pixel, tmp_path):
    path = tmp_path / name
    Image.new(mode, (8, 16), pixel).save(path)
    expected = Image.new(mode, (1, 1), pixel).convert("RGB").getpixel((0, 0))
    img = ImageDataset([(str(path), 0, 0)])[0][0]
    assert img.mode == "RGB" and img.size == (8, 16)
    assert all(abs(a - b) <= 2 for a, b in zip(img.getpixel((4, 8)), expected))  # JPEG may move a value by 1
    batch = next(iter(build_test_loader([(str(path), 0, 0)], build_transforms(16, 8, train=False), 1, num_workers=0)))
    assert batch[0].shape == (1, 3, 16, 8)


@pytest.mark.parametrize("name", ["with space.jpg", "naïve café.png", "行人 01.jpg"])
def test_image_names_with_spaces_and_non_ascii_characters_load(name, tmp_path):
    path = write_image(tmp_path / "dossier données" / name, value=60)
    batch = next(iter(build_test_loader([(str(path), 0, 0)], build_transforms(16, 8, train=False), 1, num_workers=0)))
    assert batch[0].shape == (1, 3, 16, 8) and batch[0].std() > 0


# ---------------------------------------------------------------- dataset readers (load_dataset)
def make_dataset(name: str, root: Path) -> Path:
    """A tiny copy of ``name`` in its official format under ``root``; returns the folder holding the images."""
    if name == "market1501":
        return make_market(root, inner=None)
    if name == "cuhk01":
        return make_cuhk01(root)
    return make_cuhk03_mat(root / "cuhk-03.mat").parent


@pytest.mark.parametrize("name", ["market1501", "cuhk01", "cuhk03"])
def test_missing_data_root_shows_the_expected_layout(name, tmp_path):
    root = tmp_path / "no such folder"
    with pytest.raises(FileNotFoundError, match=re.escape(repr(str(root))) + r".*Expected layout"):
        load_dataset(name, root)
    assert not root.exists()


@pytest.mark.parametrize("name, error, message", [
    ("market1501", NotADirectoryError, "is a file, not a folder"),
    ("cuhk01", NotADirectoryError, "is a file, not a folder"),
    ("synthetic", NotADirectoryError, "is a file, not a folder"),
    ("cuhk03", DatasetFormatError, r"is not a MATLAB v7\.3 \(HDF5\) file"),
])
def test_data_root_that_is_a_file(name, error, message, tmp_path):
    root = tmp_path / "data.txt"
    root.write_text("not a dataset")
    with pytest.raises(error, match=re.escape(repr(str(root))) + ".*" + message):
        load_dataset(name, root)
    assert snapshot(tmp_path) == {"data.txt": b"not a dataset"}


@pytest.mark.parametrize("split", ["train", "query", "gallery"])
def test_market_empty_split(split, tmp_path):
    base = make_market(tmp_path, inner=None)
    folder = base / {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}[split]
    for p in folder.glob("*.jpg"):
        p.unlink()
    with pytest.raises(DatasetFormatError, match=rf"The {split} split is empty \({re.escape(str(folder))}\)"):
        load_dataset("market1501", base)


@pytest.mark.parametrize("val_ids", [3, 7])
def test_more_validation_identities_than_training_identities(val_ids, tmp_path):
    from sagkit.engine.builders import build_data

    base = make_market(tmp_path, inner=None)  # 3 training identities
    config = get_profile("tiny", dataset="market1501", data_root=str(base), dataset_options={}, val_ids=val_ids)
    with pytest.raises(ValueError, match=rf"val_ids={val_ids} does not fit market1501: cannot hold out {val_ids} of "
                                         r"the 3 training identities for validation \(num_ids must be in 1\.\.2\); use a smaller val_ids, or 0"):
        build_data(config)


def test_cuhk01_without_camera_b_has_an_empty_gallery(tmp_path):
    campus = make_cuhk01(tmp_path)
    for p in campus.glob("*00[34].png"):
        p.unlink()
    with pytest.raises(DatasetFormatError, match=rf"The gallery split is empty \({re.escape(str(campus))}\)"):
        load_dataset("cuhk01", tmp_path)


@pytest.mark.parametrize("name, folder, link", [("market1501", "query", "0001_c2s1_000100_00.jpg"),
                                                ("cuhk01", "", "0004001.png")])
def test_symlink_to_a_missing_image_in_a_dataset_folder(name, folder, link, tmp_path):
    images = make_dataset(name, tmp_path) / folder
    (images / link).symlink_to(tmp_path / "deleted" / link)
    with pytest.raises(DatasetFormatError, match=rf"1 image link\(s\) in {re.escape(repr(str(images)))} point at "
                                                 rf"missing files: '{link}'\. Restore"):
        load_dataset(name, tmp_path)


def test_zero_byte_image_in_a_dataset_is_named_when_loaded(tmp_path):
    base = make_market(tmp_path, inner=None)
    ds = load_dataset("market1501", base)
    Path(ds.query[1].path).write_bytes(b"")
    loader = build_test_loader(ds.query, build_transforms(16, 8, train=False), batch_size=4, num_workers=0)
    with pytest.raises(BadImageError, match=re.escape(ds.query[1].path)):
        next(iter(loader))


def test_file_name_with_a_space_does_not_follow_the_market_format(tmp_path):
    base = make_market(tmp_path, inner=None)
    write_image(base / "query" / "0001_c1s1_000999_00 copy.jpg")
    with pytest.raises(DatasetFormatError, match=r"'0001_c1s1_000999_00 copy\.jpg'.*Remove or rename them"):
        load_dataset("market1501", base)


# counts (train, query, gallery) of the fixtures, as stated in test_data_readers.py and test_data_cuhk03.py
@pytest.mark.parametrize("name, counts", [("market1501", (8, 4, 12)), ("cuhk01", (12, 6, 6)),
                                          ("cuhk03", (30, 11, 11))])
def test_data_root_with_spaces_and_non_ascii_characters_works(name, counts, tmp_path):
    root = tmp_path / "mes données" / "行人 再识别"
    make_dataset(name, root)
    ds = load_dataset(name, root)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == counts
    assert ImageDataset(ds.query)[0][0].mode == "RGB"


@pytest.mark.parametrize("name, options", [
    ("cuhk01", {"split": 10}), ("cuhk01", {"split": -1}), ("cuhk01", {"split": 1.5}), ("cuhk01", {"split": "1"}),
    ("cuhk03", {"split": 3}), ("cuhk03", {"split": -1}), ("cuhk03", {"split": 1, "protocol": "new"}),
])
def test_out_of_range_split(name, options, tmp_path):
    make_dataset(name, tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=rf"split must be in 0\.\.\d|single split \(split=0\), got {options['split']}"):
        load_dataset(name, tmp_path, **options)
    assert snapshot(tmp_path) == before  # cuhk03: no image extracted for a split that does not exist


def test_option_the_reader_does_not_take(tmp_path):
    make_market(tmp_path, inner=None)
    with pytest.raises(ValueError, match=r"unknown market1501 option\(s\) \['num_train_ids'\].*accepts "
                                         r"\['multi_query'\]"):
        load_dataset("market1501", tmp_path, num_train_ids=3)


# ---------------------------------------------------------------- ExperimentConfig.from_json / from_dict
CONFIG_FIELDS = {
    "string where an int is expected": ({"epochs": "3"}, "epochs='3' is invalid: must be an integer"),
    "string where a number is expected": ({"lr_new": "0.1"}, "lr_new='0.1' is invalid: must be a number"),
    "string momentum": ({"momentum": "0.9"}, "momentum='0.9' is invalid: must be a number"),
    "list where a bool is expected": ({"share_weights": [1]}, r"share_weights=\[1\] is invalid: must be true or false"),
    "string where a bool is expected": ({"rerank": "no"}, "rerank='no' is invalid: must be true or false"),
    "float where an int is expected": ({"batch_size": 8.5}, "batch_size=8.5 is invalid: must be an integer"),
    "bool where an int is expected": ({"epochs": True}, "epochs=True is invalid: must be an integer"),
    "negative epochs": ({"epochs": -1}, "epochs=-1 is invalid: must be a positive integer"),
    "unknown field": ({"epoch": 3}, r"unknown ExperimentConfig field\(s\): 'epoch' \(did you mean 'epochs'\?\)"),
    "string depths": ({"depths": "12"}, "depths='12' is invalid: must be a list"),
    "fractional depth": ({"depths": [1.5]}, r"depths=\[1\.5\] is invalid: distinct attention depths"),
    "list where an object is expected": ({"dataset_options": [1]},
                                         r"dataset_options=\[1\] is invalid: must be an object"),
    "number where a string is expected": ({"dataset": 5}, "dataset=5 is invalid: must be a string"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_FIELDS))
def test_config_file_with_a_bad_field_names_the_file_and_the_field(case, tmp_path):
    fields, message = CONFIG_FIELDS[case]
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**get_profile("tiny").to_dict(), **fields}))
    with pytest.raises(ValueError, match=re.escape(f"config file {path}: ") + r"(ExperimentConfig\.)?" + message):
        ExperimentConfig.from_json(path)


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", r"must hold a JSON object .*got \[1, 2\]"), ("3", "must hold a JSON object .*got 3"),
    ("null", "must hold a JSON object .*got null"), ('"epochs"', 'must hold a JSON object .*got "epochs"'),
    ("{epochs: 3}", "is not valid JSON: Expecting property name"), ("", "is not valid JSON"),
])
def test_config_file_that_is_not_a_json_object(text, message, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(f"config file {path} ") + message):
        ExperimentConfig.from_json(path)


def test_config_from_dict_of_a_non_dict():
    with pytest.raises(ValueError, match="ExperimentConfig.from_dict expects a dict, got list"):
        ExperimentConfig.from_dict([("epochs", 3)])


# ---------------------------------------------------------------- the notebooks' parameters (check_parameters)
@pytest.mark.parametrize("case", ["missing data_root", "data_root is a file", "runs_dir is a file",
                                  "figures_dir is a file"])
def test_notebook_paths(case, tmp_path):
    (tmp_path / "afile").write_text("x")
    kwargs, error, field = {
        "missing data_root": ({"dataset": "cuhk01", "data_root": "nowhere"}, FileNotFoundError, "data_root"),
        "data_root is a file": ({"dataset": "market1501", "data_root": "afile"}, NotADirectoryError, "data_root"),
        "runs_dir is a file": ({"runs_dir": "afile"}, NotADirectoryError, "runs_dir"),
        "figures_dir is a file": ({"figures_dir": "afile"}, NotADirectoryError, "figures_dir"),
    }[case]
    name = kwargs.get("data_root", "afile")
    with pytest.raises(error, match=f"{field} {re.escape(repr(str(tmp_path / name)))} (does not exist|is a file)"):
        check_parameters(base=tmp_path, **kwargs)


def test_notebook_cuhk03_data_root_may_be_the_mat_file(tmp_path):
    mat = make_cuhk03_mat(tmp_path / "cuhk-03.mat")
    assert check_parameters(dataset="cuhk03", data_root=str(mat)).data_root == mat
    assert len(load_dataset("cuhk03", mat).query) == 11


@pytest.mark.parametrize("overrides, message", [
    ({"epochs": "2"}, "overrides: ExperimentConfig.epochs='2' is invalid: must be an integer"),
    ({"epoch": 2}, r"overrides: unknown ExperimentConfig field\(s\): 'epoch'"),
    ({"lr_new": -1.0}, "overrides: ExperimentConfig.lr_new=-1.0 is invalid: must be > 0"),
    ([("epochs", 2)], r"overrides must be a dict of ExperimentConfig fields"),
])
def test_notebook_overrides_fail_at_the_parameter_cell(overrides, message):
    with pytest.raises(ValueError, match=message):
        check_parameters(profile="tiny", overrides=overrides)


@pytest.mark.parametrize("kwargs, message", [
    ({"depth": "5"}, "depth must be 0 \\(the baseline\\), an integer 1..4"),
    ({"depth": [1, 1]}, "depth must be 0"), ({"depth": 2.0}, "depth must be 0"),
    ({"attention_depths": 0}, "depths \\(notebook 05\\) must name single-depth SAG runs"),
    ({"retrain": [True]}, "retrain must be True or False"), ({"profile": 3}, "profile 3 is unknown"),
])
def test_notebook_scalar_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_parameters(**kwargs)


# ---------------------------------------------------------------- checkpoints (load_checkpoint, runs, resume)
@pytest.fixture(scope="module")
def tiny(data_root, tmp_path_factory):
    """The tiny profile on the tiny synthetic set (8 training classes once 4 ids are held out), no weights."""
    return get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path_factory.mktemp("runs")), pretrained=None,
                       device="cpu")


def save_checkpoint(path: Path, config: ExperimentConfig, num_classes: int = 8, weights_of=None) -> Path:
    """A sagkit checkpoint of ``config``; ``weights_of=(config, num_classes)`` stores another model's weights."""
    model = build_model(*(weights_of or (config, num_classes)), pretrained=False)
    atomic_torch_save(make_checkpoint(model=model, optimizer=None, lr_scheduler=None, scaler=None, epoch=1,
                                      config=config.to_dict(), best_metric=None, best_epoch=1,
                                      num_classes=num_classes), path)
    return path


@pytest.fixture(scope="module")
def good_checkpoint(tiny, tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "good.pt", tiny).read_bytes()


BAD_CHECKPOINTS = {
    "truncated mid-write": (lambda p, good: p.write_bytes(good[: len(good) // 2]), ValueError,
                            "could not read checkpoint {path}: the file is truncated"),
    "zero-byte .pt": (lambda p, good: p.write_bytes(b""), ValueError, "could not read checkpoint {path}"),
    "text file named .pt": (lambda p, good: p.write_text("weights"), ValueError, "could not read checkpoint {path}"),
    "tensor saved as .pt": (lambda p, good: torch.save(torch.zeros(3), p), ValueError,
                            "{path} is not a sagkit checkpoint: it holds a Tensor"),
    "dict without the entries": (lambda p, good: torch.save({"state_dict": {}}, p), ValueError,
                                 r"{path} is not a sagkit checkpoint \(no \['model', 'config', 'num_classes'\]"),
    "folder named .pt": (lambda p, good: p.mkdir(), FileNotFoundError, "checkpoint {path} is a folder"),
    "symlink to a missing .pt": (lambda p, good: p.symlink_to(p.with_name("gone.pt")), FileNotFoundError,
                                 "checkpoint {path} does not exist"),
}


@pytest.mark.parametrize("kind", sorted(BAD_CHECKPOINTS))
def test_bad_checkpoint_file_is_one_error_naming_it(kind, good_checkpoint, tmp_path):
    make, error, message = BAD_CHECKPOINTS[kind]
    path = tmp_path / "model.pt"
    make(path, good_checkpoint)
    before = snapshot(tmp_path)
    with pytest.raises(error, match=message.format(path=re.escape(str(path)))):
        model_from_checkpoint(path)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("other", ["depths", "backbone", "num_classes"])
def test_checkpoint_holding_the_weights_of_another_model(other, tiny, tmp_path):
    weights_of = {"depths": (tiny.replace(depths=()), 8), "backbone": (tiny.replace(backbone="resnet18"), 8),
                  "num_classes": (tiny, 5)}[other]
    path = save_checkpoint(tmp_path / "mixed.pt", tiny, weights_of=weights_of)
    with pytest.raises(ValueError, match=re.escape(f"checkpoint {path} holds the weights of another model than its "
                                                   "config describes (")):
        model_from_checkpoint(path)
    model = build_model(tiny, 8, pretrained=False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="holds the weights of another model"):
        load_weights(model, torch.load(path, weights_only=True)["model"], path)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # nothing loaded half-way


def test_run_folder_holding_the_checkpoint_of_another_run(tiny):
    run_dir = prepare_run_dir(tiny.replace(name="copied-over"))
    path = save_checkpoint(run_dir / CHECKPOINT_BEST, tiny.replace(name="copied-over", depths=(1,)))
    before = snapshot(run_dir)
    with pytest.raises(ValueError, match=re.escape(f"{path} was written by another experiment than the run in "
                                                   f"{run_dir} (fields ['depths'] differ from its config.json)")):
        load_model_from_run(run_dir)
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("last", ["another experiment", "truncated", "other number of classes", "other backbone"])
def test_resume_from_a_bad_last_checkpoint_changes_nothing(last, tiny, good_checkpoint):
    config = tiny.replace(name=f"resume-{last.replace(' ', '-')}")
    run_dir = prepare_run_dir(config)
    path = run_dir / CHECKPOINT_LAST
    message = {"another experiment": r"it was written by another experiment \(fields \['depths'\] differ\)",
               "truncated": "the file is truncated", "other number of classes": "it has 5 classes but the training "
               r"data now has 8 identities \(did data_root change\?\)", "other backbone": "holds the weights of "
               "another model"}[last]
    if last == "truncated":
        path.write_bytes(good_checkpoint[:1000])
    else:
        save_checkpoint(path, config.replace(depths=(1,)) if last == "another experiment" else config,
                        num_classes=5 if last == "other number of classes" else 8,
                        weights_of=(config.replace(backbone="resnet18"), 8) if last == "other backbone" else None)
    before = snapshot(run_dir)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        train(config, progress=False)
    assert snapshot(run_dir) == before  # config.json, and the checkpoint, as they were; no metrics, no results


# ---------------------------------------------------------------- python -m sagkit train / eval
def sagkit(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "sagkit", *argv], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=600)


TRAIN = ("train", "--profile", "tiny", "--device", "cpu", "--no-progress", "--runs-dir", "runs")
EVAL = ("eval", "--device", "cpu", "--no-rerank")
# case: (arguments, {inputs} = the shared inputs folder, patterns the one error line must match)
CLI_CASES = {
    "train: missing data root": ([*TRAIN, "--dataset", "market1501", "--data-root", "{inputs}/no where"],
                                 [r"market1501 dataset folder '.*/no where' not found under .* Expected layout"]),
    "train: data root is a file": ([*TRAIN, "--dataset", "cuhk01", "--data-root", "{inputs}/afile"],
                                   [r"CUHK01 root '.*/afile' is a file, not a folder"]),
    "train: config with a wrong type": (["train", "--config", "{inputs}/wrong.json", *TRAIN[3:]],
                                        [r"config file .*/wrong\.json: ExperimentConfig\.batch_size='8' is invalid"]),
    "train: config not a JSON object": (["train", "--config", "{inputs}/list.json", *TRAIN[3:]],
                                        [r"config file .*/list\.json must hold a JSON object"]),
    "train: cuhk01 split out of range": ([*TRAIN, "--dataset", "cuhk01", "--data-root", "{inputs}/cuhk01", "--set",
                                          "dataset_options.split=99"],
                                         [r"split must be in 0\.\.9 \(an integer\), got 99"]),
    "train: zero-byte training image": ([*TRAIN, "--dataset", "market1501", "--data-root", "{inputs}/bad-train",
                                         "--set", "val_ids=0", "--set", "batch_size=2", "--set", "pretrained=null"],
                                        [r"cannot read image '.*/bad-train/bounding_box_train/0007_c4s1_\d+_00\.jpg'",
                                         "Re-extract or remove it"]),
    "eval: truncated checkpoint": ([*EVAL, "{inputs}/truncated.pt"],
                                   [r"could not read checkpoint .*/truncated\.pt: the file is truncated"]),
    "eval: checkpoint of another run": ([*EVAL, "{inputs}/runs/other"],
                                        [r"runs/other/checkpoint_best\.pt was written by another experiment .*depths"]),
    "eval: zero-byte query image, in a loader worker": (
        [*EVAL, "{inputs}/good.pt", "--data-root", "{inputs}/bad-query", "--num-workers", "1"],
        [r"cannot read image '.*/bad-query/query/0003_c2s1_\d+_00\.jpg'"]),
}


def cli_inputs(inputs: Path) -> None:
    """What the CLI cases read: Market and CUHK01 fixtures (two with a zero-byte image), configs, checkpoints."""
    (inputs / "afile").write_text("x")
    make_cuhk01(inputs / "cuhk01")
    (inputs / "wrong.json").write_text(json.dumps({**get_profile("tiny").to_dict(), "batch_size": "8"}))
    (inputs / "list.json").write_text("[]")
    for name, folder, pid in (("bad-train", "bounding_box_train", "0007_c4"), ("bad-query", "query", "0003_c2")):
        (image,) = make_market(inputs / name, inner=None).glob(f"{folder}/{pid}*.jpg")
        image.write_bytes(b"")
    config = get_profile("tiny", dataset="market1501", data_root=str(make_market(inputs / "market", inner=None)),
                         dataset_options={}, pretrained=None, val_ids=0, batch_size=2, device="cpu")
    good = save_checkpoint(inputs / "good.pt", config, num_classes=3)
    (inputs / "truncated.pt").write_bytes(good.read_bytes()[:4096])
    other = config.replace(name="other", runs_dir=str(inputs / "runs"))
    save_checkpoint(prepare_run_dir(other) / CHECKPOINT_BEST, other.replace(depths=(2,)), num_classes=3)


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """Every CLI case run once, two processes at a time (most of each is importing torch: ~3 s of CPU).

    Returns ``{case: (process, its working folder)}`` and, under ``"inputs"``, the inputs folder with its
    files before the runs."""
    inputs = tmp_path_factory.mktemp("inputs")
    cli_inputs(inputs)
    before = snapshot(inputs)

    def run(case: str):
        cwd = tmp_path_factory.mktemp("cwd")
        argv = [a.format(inputs=inputs) for a in CLI_CASES[case][0]]
        return case, (sagkit(*argv, cwd=cwd), cwd)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(pool.map(run, CLI_CASES))
    return {**runs, "inputs": (inputs, before)}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_bad_input_is_one_error_line_and_writes_nothing(case, cli_runs):
    proc, cwd = cli_runs[case]
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    command = case.split(":")[0]
    assert len(lines) == 1 and lines[0].startswith(f"sagkit {command}: error: "), proc.stderr  # no traceback
    for pattern in CLI_CASES[case][1]:
        assert re.search(pattern, lines[0]), (pattern, lines[0])
    inputs, before = cli_runs["inputs"]
    assert snapshot(inputs) == before  # no checkpoint, config or dataset changed
    if case == "train: zero-byte training image":  # the run started: config.json only, resumable once fixed
        (run_dir,) = (cwd / "runs").iterdir()
        assert [p.name for p in run_dir.iterdir()] == ["config.json"]
    else:
        assert list(cwd.iterdir()) == []  # no run folder, not even an empty runs/
