"""The run lock (sagkit.runs.lock): one trainer per run folder, waiting or --no-wait, stale locks taken
over, readers refusing a run in training. Lock-only tests run helper processes that load run_lock.py alone
(no torch import); the end-to-end tests start real training processes on the tiny profile."""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from sagkit import workbook
from sagkit.cli.metrics import format_metrics
from sagkit.config import get_profile
from sagkit.data import load_dataset
from sagkit.runs import train
from sagkit.runs.folder import load_model_from_run, load_run
from sagkit.runs.lock import RunLocked
from sagkit.runs import lock as run_lock
from sagkit.runs.folder import read_metrics
from sagkit.runs.lock import LOCK_FILE, acquire, check_not_training, hold, read_lock, release

REPO = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()
DEADLINE_S = 180.0

# A lock holder that imports run_lock.py by itself (no torch): "hold" takes the lock, says "held" and keeps
# it until its stdin closes; "race" waits for a start file, then tries once without waiting.
LOCK_SCRIPT = f"""
import importlib.util, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("run_lock", {str(REPO / "sagkit/runs/lock.py")!r})
lock = sys.modules["run_lock"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)
run_dir, mode = sys.argv[1], sys.argv[2]
if mode == "race":
    while not Path(sys.argv[3]).exists():
        time.sleep(0.001)
try:
    info = lock.acquire(run_dir, wait=False)
except lock.RunLocked:
    print("locked", flush=True)
    sys.exit(0)
print("held" if mode == "hold" else "won", flush=True)
sys.stdin.read()
lock.release(run_dir, info)
"""

# A real training process that stops at training.<gate> (holding the run lock) until the file <go> exists,
# after touching <go>.reached.
GATED_TRAIN = """
import logging, sys, time
from pathlib import Path
from sagkit.config import ExperimentConfig
from sagkit.runs import training

logging.basicConfig(level=logging.INFO, format="%(message)s")
config_file, gate, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
real = getattr(training, gate)

def gated(*args, **kwargs):
    go.with_suffix(".reached").touch()
    while not go.exists():
        time.sleep(0.02)
    return real(*args, **kwargs)

setattr(training, gate, gated)
training.train(ExperimentConfig.from_json(config_file), progress=False)
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _start_holder(run_dir: Path, mode: str = "hold", *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", LOCK_SCRIPT, str(run_dir), mode, *extra], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=_env())
    if mode == "hold":
        assert proc.stdout.readline().strip() == "held"
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.stdin:
        proc.stdin.close()
    assert proc.wait(timeout=30) == 0


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()  # exited and reaped: no process has this pid now
    return proc.pid


def _write_lock(run_dir: Path, **fields) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    holder = {"pid": 1, "host": HOST, "started": "2020-01-01T00:00:00+00:00", "command": "sagkit train",
              "boot_id": None, **fields}
    path = run_dir / LOCK_FILE
    path.write_text(json.dumps(holder))
    return path


# ---------------------------------------------------------------------- the lock itself
def test_acquire_writes_its_holder_and_release_removes_the_file(tmp_path):
    run = tmp_path / "run"
    info = acquire(run, wait=False)
    stored = json.loads((run / LOCK_FILE).read_text())
    assert stored["pid"] == os.getpid() and stored["host"] == HOST
    assert abs(datetime.fromisoformat(stored["started"]).timestamp() - time.time()) < 60
    assert "pytest" in stored["command"] or "python" in stored["command"]
    assert read_lock(run).to_json() == info.to_json()
    release(run, info)
    assert not (run / LOCK_FILE).exists() and read_lock(run) is None


def test_a_held_lock_refuses_without_wait_and_names_its_holder(tmp_path):
    holder = _start_holder(tmp_path)
    try:
        before = (tmp_path / LOCK_FILE).read_text()
        with pytest.raises(RunLocked) as err:
            acquire(tmp_path, wait=False)
        assert err.value.holder.pid == holder.pid
        assert f"run {tmp_path} is being trained by pid {holder.pid} on host {HOST} since " in str(err.value)
        assert "--no-wait" in str(err.value)
        assert (tmp_path / LOCK_FILE).read_text() == before  # the holder's lock is untouched
    finally:
        _stop(holder)
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_waiter_names_the_holder_then_gets_the_lock_when_it_is_released(tmp_path, caplog):
    holder = _start_holder(tmp_path)
    threading.Timer(0.5, holder.stdin.close).start()
    with caplog.at_level(logging.WARNING, logger="sagkit.engine"):
        info = acquire(tmp_path, wait=True, poll_s=0.05)
    assert holder.wait(timeout=30) == 0  # it had to finish before this process got the lock
    waits = [r.getMessage() for r in caplog.records if "waiting for it to finish" in r.getMessage()]
    assert len(waits) == 1 and f"pid {holder.pid} on host {HOST}" in waits[0]
    assert read_lock(tmp_path).pid == os.getpid()
    release(tmp_path, info)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_hold_releases_the_lock_however_the_block_ends(tmp_path, error):
    with pytest.raises(error):
        with hold(tmp_path) as info:
            assert read_lock(tmp_path).to_json() == info.to_json()
            raise error("stop")
    assert not (tmp_path / LOCK_FILE).exists() and tmp_path.is_dir()  # a folder that was there stays
    new = tmp_path / "new-run"
    with pytest.raises(error):
        with hold(new):
            raise error("stop")
    assert not new.exists()  # the folder the lock created is not left behind empty
    with hold(tmp_path, enabled=False) as info:  # a DDP rank other than 0 takes nothing
        assert info is None and read_lock(tmp_path) is None


def test_of_processes_racing_for_one_lock_exactly_one_gets_it(tmp_path):
    start = tmp_path / "start"
    procs = [_start_holder(tmp_path / "run", "race", str(start)) for _ in range(6)]
    time.sleep(1.0)  # let them all reach the start line
    start.touch()
    answers = [p.stdout.readline().strip() for p in procs]
    assert sorted(answers) == ["locked"] * 5 + ["won"], answers
    winner = procs[answers.index("won")]
    assert read_lock(tmp_path / "run").pid == winner.pid
    for proc in procs:
        _stop(proc)
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def test_this_process_taking_its_own_lock_again_fails_at_once(tmp_path):
    with hold(tmp_path):
        with pytest.raises(RunLocked, match="this process already holds its lock"):
            acquire(tmp_path, wait=True)


def test_the_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    dead = _dead_pid()
    _write_lock(tmp_path, pid=dead)
    with caplog.at_level(logging.WARNING, logger="sagkit.engine"):
        info = acquire(tmp_path, wait=False)
    assert read_lock(tmp_path).pid == os.getpid()
    taken = [r.getMessage() for r in caplog.records if "took over the stale lock" in r.getMessage()]
    assert len(taken) == 1 and f"pid {dead} on host {HOST}" in taken[0]
    release(tmp_path, info)


@pytest.mark.skipif(not run_lock.BOOT_ID_FILE.is_file(), reason="no boot id on this system")
def test_a_lock_written_before_the_last_reboot_is_stale_even_if_its_pid_is_in_use(tmp_path):
    _write_lock(tmp_path, pid=os.getppid(), boot_id="another-boot")  # a live pid, from another boot
    release(tmp_path, acquire(tmp_path, wait=False))
    _write_lock(tmp_path, pid=os.getppid(), boot_id=run_lock.BOOT_ID_FILE.read_text().strip())
    with pytest.raises(RunLocked, match=f"pid {os.getppid()} "):
        acquire(tmp_path, wait=False)


def test_a_lock_from_another_host_is_waited_for_until_deleted_by_hand(tmp_path, caplog):
    path = _write_lock(tmp_path, host="elsewhere.example", pid=_dead_pid())
    with pytest.raises(RunLocked) as err:
        acquire(tmp_path, wait=False)
    assert "on host elsewhere.example" in str(err.value) and f"delete {path}" in str(err.value)
    with pytest.raises(RunLocked, match="cannot be checked"):
        check_not_training(tmp_path, complete=False)

    got = []
    waiter = threading.Thread(target=lambda: got.append(acquire(tmp_path, wait=True, poll_s=0.05)))
    with caplog.at_level(logging.WARNING, logger="sagkit.engine"):
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and not got  # a pid on another host is never presumed dead
        path.unlink()  # what the message tells a person to do
        waiter.join(timeout=10)
    assert got and read_lock(tmp_path).pid == os.getpid()
    assert any("elsewhere.example" in r.getMessage() and "waiting" in r.getMessage() for r in caplog.records)
    release(tmp_path, got[0])


def test_an_unreadable_lock_counts_as_held_until_it_is_old(tmp_path):
    path = tmp_path / LOCK_FILE
    path.write_text("")  # as between another process's O_EXCL create and its write
    with pytest.raises(RunLocked, match="an unknown process"):
        acquire(tmp_path, wait=False)
    old = time.time() - 2 * run_lock.BROKEN_GRACE_S
    os.utime(path, (old, old))
    release(tmp_path, acquire(tmp_path, wait=False))
    assert not path.exists()


def test_release_leaves_a_lock_that_is_no_longer_this_processs(tmp_path, caplog):
    info = acquire(tmp_path, wait=False)
    path = _write_lock(tmp_path, pid=12345)
    with caplog.at_level(logging.WARNING, logger="sagkit.engine"):
        release(tmp_path, info)
    assert json.loads(path.read_text())["pid"] == 12345
    assert any("no longer this process's" in r.getMessage() for r in caplog.records)


def test_readers_refuse_only_an_unfinished_run_held_by_another_live_process(tmp_path):
    holder = _start_holder(tmp_path)
    try:
        with pytest.raises(RunLocked) as err:
            check_not_training(tmp_path, complete=False)
        assert f"is being trained by pid {holder.pid} on host {HOST} since" in str(err.value)
        assert "wait for it to finish" in str(err.value)
        check_not_training(tmp_path, complete=True)  # a finished run is read even while it is locked
    finally:
        _stop(holder)
    check_not_training(tmp_path, complete=False)  # not locked
    _write_lock(tmp_path, pid=_dead_pid())
    check_not_training(tmp_path, complete=False)  # a dead holder: an interrupted run, readable
    (tmp_path / LOCK_FILE).unlink()
    with hold(tmp_path):
        check_not_training(tmp_path, complete=False)  # the trainer itself reads its own run


# ---------------------------------------------------------------------- two real training processes
@pytest.fixture(scope="module")
def tiny_data(data_root):
    """The tiny synthetic set, generated once before the processes start."""
    config = get_profile("tiny", data_root=data_root)
    load_dataset(config.dataset, config.data_root, **config.dataset_options)
    return data_root


def _config(data_root: str, tmp_path: Path):
    return get_profile("tiny", data_root=data_root, runs_dir=str(tmp_path / "runs"), depths=(), epochs=1,
                       max_train_batches=2, device="cpu")


def _cli(tmp_path: Path, name: str, *argv: str) -> tuple[subprocess.Popen, Path]:
    """``python -m sagkit ARGV`` in the background; stdout and stderr go to ``<name>.out`` / ``.err``."""
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    proc = subprocess.Popen([sys.executable, "-m", "sagkit", *argv], stdout=out.open("w"), stderr=err.open("w"),
                            env=_env(), cwd=tmp_path)
    return proc, err


def _train_argv(config, *extra: str) -> list[str]:
    return ["train", "--profile", "tiny", "--data-root", config.data_root, "--runs-dir", config.runs_dir,
            "--depths", "baseline", "--set", "epochs=1", "--set", "max_train_batches=2", "--device", "cpu",
            "--no-progress", *extra]


def _start_gated(config, tmp_path: Path, gate: str) -> tuple[subprocess.Popen, Path, Path]:
    """A training process of ``config`` that waits at ``training.<gate>`` until the returned go file exists."""
    cfg_file, go = tmp_path / "config.json", tmp_path / "go"
    config.to_json(cfg_file)
    err = tmp_path / "holder.err"
    proc = subprocess.Popen([sys.executable, "-c", GATED_TRAIN, str(cfg_file), gate, str(go)],
                            stdout=subprocess.DEVNULL, stderr=err.open("w"), env=_env(), cwd=tmp_path)
    _until(lambda: go.with_suffix(".reached").exists(), proc, err)
    return proc, go, err


def _kill(*procs: subprocess.Popen) -> None:
    """Stop processes a failed test left running (a passing test has waited for them already)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _until(condition, proc: subprocess.Popen, err: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert proc.poll() is None, f"process exited with {proc.returncode}: {err.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out; stderr so far: {err.read_text()[-3000:]}"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_second_trainer_waits_for_the_first_and_reuses_its_run(tiny_data, tmp_path):
    config = _config(tiny_data, tmp_path)
    holder, go, holder_err = _start_gated(config, tmp_path, "setup_session")
    second, second_err = _cli(tmp_path, "second", *_train_argv(config))
    try:
        _until(lambda: "waiting for it to finish" in second_err.read_text(), second, second_err)
        go.touch()
        assert holder.wait(timeout=DEADLINE_S) == 0, holder_err.read_text()
        assert second.wait(timeout=DEADLINE_S) == 0, second_err.read_text()
    finally:
        go.touch()
        _kill(holder, second)
    log = second_err.read_text()
    assert f"is being trained by pid {holder.pid} on host {HOST} since " in log
    assert f"reusing the finished run {config.run_dir()}" in log and "epoch 1/1" not in log
    assert holder_err.read_text().count("sagkit: epoch 1/1") == 1  # trained once, by the holder
    assert [r["epoch"] for r in read_metrics(config.run_dir())] == [1]
    results = json.loads((config.run_dir() / "results.json").read_text())
    out = (tmp_path / "second.out").read_text()
    assert f"run: {config.run_dir()}" in out and format_metrics(results) in out
    assert not (config.run_dir() / LOCK_FILE).exists()


@pytest.mark.slow
def test_no_wait_and_readers_of_a_run_in_training_fail_with_one_clear_line(tiny_data, tmp_path):
    config = _config(tiny_data, tmp_path)
    run = config.run_dir()
    wb = workbook.open_workbook(profile="tiny", data_root=tiny_data, runs_dir=config.runs_dir, device="cpu",
                                overrides={"epochs": 1, "max_train_batches": 2})
    assert wb.run_dir(()) == run
    holder, go, holder_err = _start_gated(config, tmp_path, "_test")  # trained, not yet tested
    try:
        assert (run / "checkpoint_best.pt").is_file() and not (run / "results.json").exists()
        no_wait, no_wait_err = _cli(tmp_path, "nowait", *_train_argv(config, "--no-wait"))
        reader, reader_err = _cli(tmp_path, "eval", "eval", str(run), "--no-rerank")
        assert no_wait.wait(timeout=DEADLINE_S) == 2 and reader.wait(timeout=DEADLINE_S) == 2
        locked = f"run {run} is being trained by pid {holder.pid} on host {HOST} since "
        for command, err in (("train", no_wait_err), ("eval", reader_err)):
            text = err.read_text().strip()
            assert text.count("\n") == 0 and text.startswith(f"sagkit {command}: error: {locked}"), text
        assert "--no-wait" in no_wait_err.read_text() and "wait for it to finish" in reader_err.read_text()
        for read in (load_run, load_model_from_run, lambda _: wb.results(())):
            with pytest.raises(RunLocked, match=f"pid {holder.pid} on host"):
                read(run)
        go.touch()
        assert holder.wait(timeout=DEADLINE_S) == 0, holder_err.read_text()
    finally:
        go.touch()
        _kill(holder)
    assert load_run(run)["complete"] and wb.results(())["run_dir"] == str(run)
    assert [r["epoch"] for r in read_metrics(run)] == [1]


@pytest.mark.slow
def test_the_lock_of_a_killed_trainer_is_taken_over(tiny_data, tmp_path, caplog):
    config = _config(tiny_data, tmp_path)
    holder, go, _ = _start_gated(config, tmp_path, "setup_session")
    holder.kill()  # SIGKILL: no clean-up, the lock file stays
    holder.wait(timeout=30)
    assert read_lock(config.run_dir()).pid == holder.pid
    with caplog.at_level(logging.INFO, logger="sagkit.engine"):
        results = train(config, progress=False)
    messages = [r.getMessage() for r in caplog.records]
    taken = [m for m in messages if "took over the stale lock" in m]
    assert len(taken) == 1 and f"pid {holder.pid} on host {HOST}" in taken[0]
    assert sum("epoch 1/1" in m for m in messages) == 1 and results["complete"]
    assert [r["epoch"] for r in read_metrics(config.run_dir())] == [1]
    assert not (config.run_dir() / LOCK_FILE).exists()
