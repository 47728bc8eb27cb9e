"""Hostile inputs, issue 26 "Tracebacks and stuck runs": faults of the file system (full disk, read-only and
non-UTF-8 folders), damaged run files, a lock whose pid was reused, data and numbers a run cannot train on,
notebook parameters and the workbook's needs. Each case is one line naming the file or field (exit status 2 on
the command line), or the run simply goes on; nothing half-written is left. See docs/hostile_inputs_faults.md.
"""

import errno
import json
import logging
import os
import re
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
import torch

from data_fixtures import make_market
from sagkit import atomic, cli
from sagkit.atomic import WriteError, check_folder, remove_stale_temporaries
from sagkit.config import ExperimentConfig, get_profile
from sagkit.data import BadImageError, read_image
from sagkit.runs import train
from sagkit.runs import lock as run_lock
from sagkit.engine.builders import build_data
from sagkit.runs.folder import (CHECKPOINT_LAST, METRICS_FILE, RESULTS_FILE, prepare_run_dir, read_metrics,
                                   read_results)
from sagkit.runs.lock import LOCK_FILE, acquire, process_start, read_lock, release
from sagkit.engine.tb_log import ScalarLog
from sagkit.workbook import check_notebook_parameters, notebooks_dir, run_workbook
from sagkit.workbook.parameters import injected_parameters

pytestmark = pytest.mark.usefixtures("one_thread")

TORCH_FULL_DISK = ("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: "
                   "file write failed")


def one_error_line(capsys, command: str) -> str:
    """The single stderr line of a failed ``sagkit <command>`` (no traceback)."""
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("sagkit")]
    errors = [line for line in lines if line.startswith(f"sagkit {command}: error: ")]
    assert len(errors) == 1, lines
    return errors[0]


@pytest.fixture(scope="module")
def tiny(data_root, tmp_path_factory):
    """The tiny profile, one epoch: a run trains in seconds."""
    return get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path_factory.mktemp("runs")), device="cpu",
                       epochs=1)


@pytest.fixture(scope="module")
def finished(tiny):
    """``(config, results)`` of the tiny run, trained once for this module."""
    return tiny, train(tiny, progress=False)


def tiny_args(config: ExperimentConfig, *extra: str) -> list[str]:
    return ["train", "--profile", "tiny", "--data-root", config.data_root, "--runs-dir", config.runs_dir,
            "--device", "cpu", "--no-progress", "--set", "epochs=1", *extra]


def temporaries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.tmp"))


# ---------------------------------------------------------------- full disk, read-only folders
def test_a_write_refused_by_the_file_system_names_the_file_and_leaves_no_temporary(tmp_path):
    def full(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    target = tmp_path / "results.json"
    with pytest.raises(WriteError, match=f"cannot write {target}: No space left on device"):
        atomic.atomic_write(target, full)
    assert list(tmp_path.iterdir()) == []


def test_full_disk_while_training_is_one_line_naming_the_checkpoint(tiny, tmp_path, monkeypatch, capsys):
    """torch.save on a full disk raises a RuntimeError of its zip writer (a 5 MB tmpfs as --runs-dir)."""
    def save(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"part of a checkpoint")
        raise RuntimeError(TORCH_FULL_DISK)

    monkeypatch.setattr(torch, "save", save)
    runs = tmp_path / "runs"
    assert cli.main(tiny_args(tiny.replace(runs_dir=str(runs)))) == 2
    line = one_error_line(capsys, "train")
    assert "cannot write " in line and "checkpoint_" in line and "is the disk full?" in line, line
    assert temporaries(runs) == []


def test_a_full_disk_while_writing_the_lock_names_it_and_leaves_none(tmp_path, monkeypatch, capsys):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(run_lock.os, "fsync", full)
    with pytest.raises(OSError, match=f"No space left on device: '{tmp_path / 'run' / LOCK_FILE}'"):
        acquire(tmp_path / "run", wait=False)
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def read_only(monkeypatch, folder: Path) -> None:
    """Writes under ``folder`` fail as on a read-only mount (root ignores chmod): the lock file and every atomic
    write's temporary file."""
    real_open, real_mkstemp = os.open, tempfile.mkstemp

    def refuse(path) -> None:
        if Path(path).resolve().is_relative_to(folder.resolve()):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def fake_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    def fake_mkstemp(*args, dir=None, **kwargs):
        refuse(dir)
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(run_lock.os, "open", fake_open)
    monkeypatch.setattr(atomic.tempfile, "mkstemp", fake_mkstemp)


def test_reusing_a_finished_run_in_a_read_only_runs_folder(finished, monkeypatch):
    config, results = finished
    read_only(monkeypatch, Path(config.runs_dir))
    assert train(config, progress=False) == results
    assert read_lock(config.run_dir()) is None


def test_training_in_a_read_only_runs_folder_is_one_line_naming_the_lock(tiny, tmp_path, monkeypatch, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    read_only(monkeypatch, runs)
    assert cli.main(tiny_args(tiny.replace(runs_dir=str(runs)))) == 2
    line = one_error_line(capsys, "train")
    assert f"{runs}/" in line and f"{LOCK_FILE}: Read-only file system; the folder is read-only" in line, line


def test_eval_of_uncached_data_in_a_read_only_run_still_gives_its_metrics(finished, monkeypatch, capsys, caplog):
    config, results = finished
    read_only(monkeypatch, Path(config.runs_dir))
    with caplog.at_level(logging.WARNING, logger="sagkit"):
        assert cli.main(["eval", str(config.run_dir()), "--device", "cpu", "--no-rerank", "--flip"]) == 0
    assert "R1 " in capsys.readouterr().out
    assert f"features are not kept in {config.run_dir() / 'features'}" in caplog.text
    assert "Read-only file system" in caplog.text


def test_results_export_into_a_read_only_folder_is_one_line(finished, tmp_path, monkeypatch, capsys):
    config, _ = finished
    kept = tmp_path / "results"
    read_only(monkeypatch, kept)
    assert cli.main(["results", "export", config.runs_dir, "--results-dir", str(kept)]) == 2
    line = one_error_line(capsys, "results")
    assert f"cannot write {kept}/synthetic/{config.run_name()}/" in line and "Read-only file system" in line, line


# ---------------------------------------------------------------- a runs folder whose name is not UTF-8
def test_tensorboard_that_cannot_encode_the_folder_name_warns_once_and_the_run_goes_on(tmp_path, caplog):
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/runs\xff")) / "run" / "tensorboard"
    scalars = ScalarLog(folder)
    with caplog.at_level(logging.WARNING, logger="sagkit"):
        scalars.write(1, {"loss": 1.0})
        scalars.write(2, {"loss": 0.5})
    scalars.close()
    assert caplog.text.count("cannot write TensorBoard event files") == 1, caplog.text
    assert "runs\\udcff" in caplog.text


def test_training_in_a_runs_folder_whose_name_is_not_utf8_finishes(tiny, tmp_path):
    config = tiny.replace(runs_dir=os.fsdecode(bytes(tmp_path) + b"/runs\xff"))
    results = train(config, progress=False)
    assert results["complete"] and read_results(config.run_dir())["rank1"] == results["rank1"]


# ---------------------------------------------------------------- images, model options
def png_header(width: int, height: int) -> bytes:
    """A PNG whose header states ``width`` × ``height`` RGB pixels (PIL reads the size when it opens it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_a_20000_by_20000_png_is_one_error_naming_it(tmp_path):
    path = tmp_path / "0001_c1s1_000001_00.png"
    path.write_bytes(png_header(20000, 20000))
    with pytest.raises(BadImageError, match=f"cannot read image '{path}': Image size .* decompression bomb"):
        read_image(str(path))


def test_unknown_model_option_is_one_line_and_leaves_no_folder(tiny, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert cli.main(tiny_args(tiny.replace(runs_dir=str(runs)), "--set", "model_options.bogus=1")) == 2
    line = one_error_line(capsys, "train")
    assert "ExperimentConfig.model_options={'bogus': 1} is invalid: unknown key(s) 'bogus'" in line, line
    assert "grid_scale" in line
    assert not runs.exists()


def test_a_model_option_that_is_a_config_field_says_so(tiny):
    with pytest.raises(ValueError, match=r"'depths' \(depths: set the ExperimentConfig field itself\)"):
        train(tiny.replace(model_options={"depths": [1]}), progress=False)


# ---------------------------------------------------------------- damaged results.json and metrics.csv
BAD_RESULTS = {  # (content, message)
    "a list": ("[1, 2]", "must hold a JSON object, not list"),
    "no dataset": ({"drop": "dataset"}, "entry 'dataset' is missing"),
    "no config": ({"drop": "config"}, "entry 'config' is missing"),
    "truncated": ('{"complete": true, "rank1": 5', "is not valid JSON"),
    "a string for a number": ({"rank1": "95.0"}, "entry 'rank1' is '95.0', not a number"),
    "a number for the depths": ({"depths": 4}, "entry 'depths' is 4, not a list"),
    "text for the world size": ({"world_size": "2"}, "entry 'world_size' is '2', not a whole number"),
    "binary": (b"\x89PNG\r\n\x00\xff", "is not valid JSON"),
}


def write_bad(path: Path, good: dict, spec) -> None:
    if isinstance(spec, bytes):
        path.write_bytes(spec)
    elif isinstance(spec, str):
        path.write_text(spec)
    elif "drop" in spec:
        path.write_text(json.dumps({k: v for k, v in good.items() if k != spec["drop"]}))
    else:
        path.write_text(json.dumps({**good, **spec}))


@pytest.mark.parametrize("case", sorted(BAD_RESULTS))
def test_damaged_results_json_is_one_error_naming_it(case, finished, tmp_path):
    config, results = finished
    run = tmp_path / "run"
    run.mkdir()
    spec, message = BAD_RESULTS[case]
    write_bad(run / RESULTS_FILE, results, spec)
    with pytest.raises(ValueError, match=f"{run / RESULTS_FILE}.*{message}"):
        read_results(run)


def test_damaged_results_json_in_the_results_folder_is_one_line(finished, tmp_path, capsys):
    config, results = finished
    run = tmp_path / "results" / "synthetic" / config.run_name()
    run.mkdir(parents=True)
    write_bad(run / RESULTS_FILE, results, {"drop": "config"})
    assert cli.main(["results", "tables", "--results-dir", str(tmp_path / "results"), "--profile", "tiny",
                     "--out", str(tmp_path / "figures")]) == 2
    assert f"{run / RESULTS_FILE}: entry 'config' is missing" in one_error_line(capsys, "results")


BAD_METRICS = {
    "no epoch column": ("step,loss\n1,0.5\n", "has no 'epoch' column"),
    "binary": (b"epoch,loss\n\x00\xff\xfe\x00", "is not a metrics table"),
    "non-numeric epoch": ("epoch,loss\n1,0.5\ntwo,0.4\n", r"line 3: epoch 'two' is not a whole number"),
    "fractional epoch": ("epoch,loss\n1.0,0.5\n1.5,0.5\n", "line 3: epoch 1.5 is not a whole number"),
    "epoch 0": ("epoch,loss\n0,0.5\n", "line 2: epoch 0 is not a whole number >= 1"),
    "a row longer than the header": ("epoch,loss\n1,0.5,7\n", "is not a metrics table"),
}


@pytest.mark.parametrize("case", sorted(BAD_METRICS))
def test_damaged_metrics_csv_is_one_error_naming_it(case, tmp_path):
    text, message = BAD_METRICS[case]
    path = tmp_path / METRICS_FILE
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=f"{path}.*{message}"):
        read_metrics(tmp_path)


# ---------------------------------------------------------------- a lock whose pid now belongs to another process
def fake_lock(run_dir: Path, pid: int, pid_start) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    holder = run_lock.LockInfo(pid, run_lock.socket.gethostname(), "2026-01-01T00:00:00+00:00", "sagkit train",
                               run_lock._boot_id(), pid_start=pid_start)
    (run_dir / LOCK_FILE).write_text(holder.to_json())


def test_a_lock_whose_pid_was_reused_by_another_process_is_taken_over(tmp_path):
    other = os.getppid()  # alive, but started at another time than the lock says
    assert process_start(other) is not None
    fake_lock(tmp_path / "run", other, process_start(other) - 1)
    info = acquire(tmp_path / "run", wait=False)
    assert info.pid == os.getpid() and info.pid_start == process_start(os.getpid())
    release(tmp_path / "run", info)


def test_a_lock_whose_holder_still_runs_is_still_held(tmp_path):
    other = os.getppid()
    fake_lock(tmp_path / "run", other, process_start(other))
    with pytest.raises(run_lock.RunLocked, match=f"pid {other}"):
        acquire(tmp_path / "run", wait=False)


# ---------------------------------------------------------------- checks before the first training step
def market_config(root: Path, runs: Path) -> ExperimentConfig:
    return get_profile("tiny", dataset="market1501", data_root=str(root), dataset_options={}, pretrained=None,
                       val_ids=0, batch_size=2, device="cpu", runs_dir=str(runs), epochs=1)


def test_no_query_with_a_match_in_the_gallery_fails_before_training(tmp_path, capsys):
    root = make_market(tmp_path / "market", inner=None)
    for pid in ("0001", "0003", "0005"):
        for image in (root / "bounding_box_test").glob(f"{pid}_*.jpg"):
            image.unlink()
    config = market_config(root, tmp_path / "runs")
    with pytest.raises(ValueError, match=r"no query of market1501 in .*/market.* is a person with an image in the gallery"):
        build_data(config)
    config.to_json(tmp_path / "config.json")
    assert cli.main(["train", "--config", str(tmp_path / "config.json"), "--no-progress"]) == 2
    assert "no query of market1501" in one_error_line(capsys, "train")
    assert not (tmp_path / "runs").exists()


def test_a_training_split_with_a_single_identity_fails_before_training(tmp_path):
    root = make_market(tmp_path / "market", inner=None)
    for pid in ("0007", "0010"):
        for image in (root / "bounding_box_train").glob(f"{pid}_*.jpg"):
            image.unlink()
    with pytest.raises(ValueError, match=r"the training split of market1501 .* has 1 identity"):
        build_data(market_config(root, tmp_path / "runs"))


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "1"], "ExperimentConfig.batch_size=1 is invalid: at least 2 images per batch"),
    (["--set", "weight_decay=NaN"], "ExperimentConfig.weight_decay=nan is invalid: must be a finite number"),
    (["--set", "lr_new=Infinity"], "ExperimentConfig.lr_new=inf is invalid: must be a finite number"),
    (["--set", "momentum=-Infinity"], "ExperimentConfig.momentum=-inf is invalid: must be a finite number"),
    (["--set", "label_smoothing=NaN"], "ExperimentConfig.label_smoothing=nan is invalid: must be a finite number"),
    (["--set", "rerank_lambda=NaN"], "ExperimentConfig.rerank_lambda=nan is invalid: must be a finite number"),
    (["--set", "rerank_lambda=5"], r"ExperimentConfig.rerank_lambda=5 is invalid: .* in \[0, 1\]"),
])
def test_numbers_a_run_cannot_train_with_are_refused_by_name(args, message, tiny, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert cli.main(tiny_args(tiny.replace(runs_dir=str(runs)), *args)) == 2
    line = one_error_line(capsys, "train")
    assert re.search(message, line), line
    assert not runs.exists()


# ---------------------------------------------------------------- stale temporary files
def test_temporaries_of_a_killed_write_are_removed_when_the_run_starts_again(tiny, tmp_path, caplog):
    config = tiny.replace(runs_dir=str(tmp_path / "runs"))
    run = prepare_run_dir(config)
    stale = [run / f".{CHECKPOINT_LAST}.x1y2z3.tmp", run / "features" / ".query-abc.pt.k9.tmp"]
    for path in stale:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"\0" * 1000)
    with caplog.at_level(logging.INFO, logger="sagkit"):
        train(config, progress=False)
    assert temporaries(run) == []
    assert "removed 2 temporary file(s)" in caplog.text


def test_remove_stale_temporaries_keeps_other_files(tmp_path):
    (tmp_path / "notes.tmp.txt").write_text("mine")
    (tmp_path / ".results.json.abc.tmp").write_text("{")
    assert remove_stale_temporaries(tmp_path) == [tmp_path / ".results.json.abc.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["notes.tmp.txt"]


# ---------------------------------------------------------------- notebooks: unknown parameters, the workbook
def parameters_cell(notebook: Path) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    (cell,) = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    return "".join(cell["source"])


@pytest.mark.parametrize("notebook", sorted(p.name for p in notebooks_dir().glob("*.ipynb")))
def test_every_notebook_refuses_a_parameter_it_does_not_declare(notebook):
    path = notebooks_dir() / notebook
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    first = "".join(next(c for c in cells if c["cell_type"] == "code" and "parameters" not in
                         c["metadata"].get("tags", []))["source"])
    statements = [line for line in first.splitlines()
                  if line.strip() and not line.startswith(("import ", "from ", "#"))]
    assert statements[0].startswith("check_notebook_parameters(globals())"), f"{notebook}: check the parameters first"
    declared = parameters_cell(path)
    names = [line.split("=")[0].strip() for line in declared.splitlines() if "=" in line and not line.startswith("#")]
    history = ["", declared, f"# Parameters\n{names[0]} = None\ndept = 1\n"]
    assert injected_parameters(history)[0] == [names[0], "dept"]
    with pytest.raises(ValueError, match=r"unknown notebook parameter\(s\) 'dept'.*: this notebook takes "
                                         + re.escape(", ".join(names))):
        check_notebook_parameters({"In": history})
    check_notebook_parameters({"In": ["", declared, f"# Parameters\n{names[-1]} = None\n"]})  # known: accepted
    check_notebook_parameters({"In": ["", declared]})  # no papermill: nothing to check
    check_notebook_parameters({})  # not in IPython


def test_notebook_parameter_hint_names_the_close_match():
    history = ["", "depth = 4\nseeds = \"0\"\n", "# Parameters\ndept = 1\n"]
    with pytest.raises(ValueError, match=r"'dept' \(did you mean 'depth'\?\): this notebook takes depth, seeds"):
        check_notebook_parameters({"In": history})


def test_workbook_notebook_failure_is_one_line_naming_the_executed_notebook(tmp_path, data_root):
    """The one papermill run here: notebook 01 on the tiny profile fails at its first cell."""
    with pytest.raises(Exception) as caught:
        run_workbook(data_root=data_root, profile="tiny", device="cpu", runs_dir=str(tmp_path / "runs"),
                     figures_dir=str(tmp_path / "figures"), notebooks=["01_data_exploration"],
                     parameters={"dept": 1})
    output = tmp_path / "runs" / "notebooks" / "synthetic" / "01_data_exploration.ipynb"
    assert type(caught.value).__name__ == "NotebookFailed"
    assert str(caught.value) == (f"notebook 01_data_exploration failed: ValueError: unknown notebook parameter(s) "
                                 f"'dept': this notebook takes dataset, data_root, profile, device, runs_dir, "
                                 f"figures_dir, retrain; the executed notebook, with the traceback, is {output}")
    assert output.is_file()


def test_sagkit_workbook_reports_a_failed_notebook_in_one_line(tmp_path, data_root, monkeypatch, capsys):
    import papermill

    def fail(source, output, **kwargs):
        Path(output).write_text("{}")
        raise papermill.PapermillExecutionError(3, 2, "wb = ...", "ValueError", "bad value\nover two lines",
                                                ["Traceback ..."])

    monkeypatch.setattr(papermill, "execute_notebook", fail)
    assert cli.main(["workbook", "--profile", "tiny", "--data-root", data_root, "--runs-dir", str(tmp_path / "runs"),
                     "--figures-dir", str(tmp_path / "figures")]) == 2
    output = tmp_path / "runs" / "notebooks" / "synthetic" / "01_data_exploration.ipynb"
    assert one_error_line(capsys, "workbook") == (
        "sagkit workbook: error: notebook 01_data_exploration failed: ValueError: bad value over two lines; the "
        f"executed notebook, with the traceback, is {output}")


def test_workbook_without_the_profiles_weights_fails_before_the_first_notebook(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert cli.main(["workbook", "--profile", "bot", "--runs-dir", str(tmp_path / "runs"), "--figures-dir",
                     str(tmp_path / "figures")]) == 2
    line = one_error_line(capsys, "workbook")
    assert "profile 'bot' trains synthetic-resnet50-" in line and "ImageNet weights for resnet50 not found" in line
    assert f"{tmp_path / 'torch'}/hub/checkpoints" in line, line
    assert not (tmp_path / "runs" / "notebooks").exists()


def test_workbook_on_a_dataset_folder_without_the_layout_fails_before_the_first_notebook(tmp_path, capsys):
    (tmp_path / "market").mkdir()
    assert cli.main(["workbook", "--dataset", "market1501", "--data-root", str(tmp_path / "market"), "--profile",
                     "tiny", "--runs-dir", str(tmp_path / "runs"), "--figures-dir", str(tmp_path / "figures")]) == 2
    line = one_error_line(capsys, "workbook")
    assert f"market1501 split folders not found under '{tmp_path}/market'" in line and "Expected layout" in line
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- the same classes elsewhere
def test_config_file_in_another_encoding_names_the_file(tmp_path, capsys):
    path = tmp_path / "utf16.json"
    path.write_text(json.dumps({"epochs": 1}), encoding="utf-16")
    assert cli.main(["train", "--config", str(path), "--print-config"]) == 2
    assert f"config file {path} is not UTF-8 text" in one_error_line(capsys, "train")
    bom = tmp_path / "bom.json"
    bom.write_text(json.dumps({"epochs": 1}), encoding="utf-8-sig")  # a byte-order mark is simply accepted
    assert ExperimentConfig.from_json(bom).epochs == 1


def test_output_folders_that_are_files_are_named(tiny, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match=f"runs_dir '{afile}' is not a folder: it is a file"):
        train(tiny.replace(runs_dir=str(afile)), progress=False)
    with pytest.raises(NotADirectoryError, match=f"output folder '{afile}/figures' is not a folder: {afile} is a file"):
        check_folder(afile / "figures", "output folder")
    assert cli.main(["results", "tables", "--results-dir", str(tmp_path), "--out", str(afile)]) == 2
    assert f"output folder '{afile}' is not a folder: it is a file" in one_error_line(capsys, "results")


def test_sagkit_cache_pointing_at_a_file_is_named(tmp_path, monkeypatch):
    from sagkit.data.synthetic.config import default_cache_root

    monkeypatch.setenv("SAGKIT_CACHE", str(tmp_path / "afile"))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError, match=f"SAGKIT_CACHE='{tmp_path}/afile' is a file"):
        default_cache_root()


def test_torch_home_pointing_at_a_file_is_named(tmp_path, monkeypatch):
    from sagkit.models import imagenet_weights_path

    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "afile"))
    with pytest.raises(NotADirectoryError, match=r"the torch hub checkpoint folder \(from TORCH_HOME\) '"
                       f"{tmp_path}/afile/hub/checkpoints' is not a folder: {tmp_path}/afile is a file"):
        imagenet_weights_path("resnet50")


def test_the_fault_hook_variable_that_is_not_a_number_is_named(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAGKIT_TEST_EXIT_AFTER_BATCHES", "three")
    assert cli.main(tiny_args(tiny.replace(runs_dir=str(tmp_path / "runs")))) == 2
    assert "environment variable SAGKIT_TEST_EXIT_AFTER_BATCHES='three' must be a number" in one_error_line(
        capsys, "train")


@pytest.mark.parametrize("args, message", [
    (["synth", "{tmp}/out", "--seed", "-1"], "--seed -1 is out of range: give an integer >= 0"),
    (["eval", "{tmp}", "--batch-size", "0"], "--batch-size 0 is out of range: give an integer >= 1"),
    (["eval", "{tmp}", "--num-workers", "-2"], "--num-workers -2 is out of range: give an integer >= 0"),
])
def test_out_of_range_numbers_on_the_command_line_name_the_flag(args, message, tmp_path, capsys):
    assert cli.main([a.format(tmp=tmp_path) for a in args]) == 2
    assert message in one_error_line(capsys, args[0])
    assert not (tmp_path / "out").exists()
