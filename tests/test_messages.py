"""The CPU note only for GPU-sized configs, and `sagkit train` asks for a profile instead of starting ResNet50."""
import logging

import pytest
import torch

from sagkit.cli import main
from sagkit.config import PROFILES, PROFILE_COSTS, get_profile, sized_for_gpu
from sagkit.engine import device as dv

pytestmark = pytest.mark.usefixtures("one_thread")
NOTE = "no CUDA device found"


def test_train_without_a_profile_asks_for_one_and_says_what_each_costs(capsys):
    assert main(["train", "--depths", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--profile" in err
    assert set(PROFILE_COSTS) == set(PROFILES) and all(f"{name}: " in err for name in PROFILES)


@pytest.mark.parametrize("profile, gpu", [("paper", True), ("bot", True), ("cpu", False), ("tiny", False)])
def test_sized_for_gpu(profile, gpu):
    assert sized_for_gpu(get_profile(profile)) is gpu


@pytest.mark.parametrize("profile, noted", [("paper", True), ("cpu", False)])
def test_the_cpu_note_only_for_a_gpu_profile(profile, noted, monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="sagkit"):
        assert dv.resolve_device("auto", quiet=not sized_for_gpu(get_profile(profile))) == torch.device("cpu")
    assert (NOTE in caplog.text) is noted


def test_training_the_cpu_profile_on_the_cpu_prints_no_note(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["train", "--profile", "tiny", "--depths", "baseline", "--epochs", "1", "--set", "max_train_batches=2",
            "--set", f"data_root={tmp_path / 'data'}", "--runs-dir", str(tmp_path / "runs"), "--device", "auto",
            "--no-progress"]
    with caplog.at_level(logging.INFO, logger="sagkit"):
        assert main(argv) == 0
    assert "epoch" in caplog.text.lower() or (tmp_path / "runs").exists()
    assert NOTE not in caplog.text
