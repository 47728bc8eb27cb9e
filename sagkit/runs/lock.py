"""Run lock: one process at a time trains a run folder; readers refuse a run that is still being trained.

``<run folder>/.lock`` is created with ``O_CREAT | O_EXCL`` (the kernel lets exactly one process create
it) and holds JSON naming its holder: ``{"pid", "host", "boot_id", "pid_start", "started", "command"}``
(``pid_start``: the process's start time in clock ticks after boot, field 22 of Linux ``/proc/<pid>/stat``, so
that a pid the kernel has since given to another process is not taken for the holder). ``train()``
holds it from before the reuse check to the end (rank 0 under DDP); a second process waits, polling, or
raises :class:`RunLocked` with ``wait=False``. A lock whose holder is dead (same host, and the pid gone, the pid
now another process's, or the machine rebooted since) is stale and taken over. A holder on another host cannot be checked: the
lock counts as held until that process removes it, or a person deletes the file.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shlex
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

__all__ = ["LOCK_FILE", "LockInfo", "RunLocked", "acquire", "release", "hold", "read_lock", "check_not_training",
           "process_start"]

LOCK_FILE = ".lock"
POLL_S = 1.0  # how often a waiting process looks at the lock again
BROKEN_GRACE_S = 10.0  # a lock (or take-over guard) file unreadable for this long is a leftover
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")  # Linux: changes at every boot

log = logging.getLogger("sagkit.engine")


@dataclass(frozen=True)
class LockInfo:
    """Who holds a run lock. ``pid`` is None when the lock file could not be parsed (``mtime``: its age)."""

    pid: Optional[int]
    host: Optional[str]
    started: str
    command: str = ""
    boot_id: Optional[str] = None
    mtime: float = 0.0
    pid_start: Optional[int] = None

    def describe(self) -> str:
        if self.pid is None:
            return f"an unknown process (the lock file is unreadable; written {_iso(self.mtime)})"
        return f"pid {self.pid} on host {self.host} since {self.started}"

    def to_json(self) -> str:
        return json.dumps({"pid": self.pid, "host": self.host, "started": self.started,
                           "command": self.command, "boot_id": self.boot_id, "pid_start": self.pid_start})


class RunLocked(RuntimeError):
    """Another process is training this run (``holder``: its :class:`LockInfo`)."""

    def __init__(self, run_dir: str | Path, holder: LockInfo, advice: str):
        self.run_dir, self.holder = Path(run_dir), holder
        super().__init__(f"run {run_dir} is being trained by {holder.describe()}; {advice}")


def _iso(seconds: Optional[float] = None) -> str:
    stamp = _dt.datetime.now() if seconds is None else _dt.datetime.fromtimestamp(seconds)
    return stamp.astimezone().isoformat(timespec="seconds")


def _boot_id() -> Optional[str]:
    try:
        return BOOT_ID_FILE.read_text().strip() or None
    except OSError:
        return None


def process_start(pid: int) -> Optional[int]:
    """When process ``pid`` started (clock ticks after boot, field 22 of ``/proc/<pid>/stat``); None where
    there is no /proc (the pid alone is then trusted) or no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the command name (field 2) may hold spaces and parentheses
    try:
        return int(fields[19])  # field 22 overall: fields 3.. start at index 0
    except (IndexError, ValueError):
        return None


def _this_process() -> LockInfo:
    """The :class:`LockInfo` this process writes when it takes a lock."""
    pid = os.getpid()
    return LockInfo(pid, socket.gethostname(), _iso(), shlex.join(sys.orig_argv)[:1000], _boot_id(),
                    pid_start=process_start(pid))


def _read(path: Path) -> Optional[LockInfo]:
    try:
        text, mtime = path.read_text(encoding="utf-8"), path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        start = data.get("pid_start")
        return LockInfo(int(data["pid"]), str(data["host"]), str(data["started"]), str(data.get("command", "")),
                        data.get("boot_id"), mtime, None if start is None else int(start))
    except (ValueError, TypeError, KeyError, AttributeError):
        return LockInfo(None, None, "", mtime=mtime)


def read_lock(run_dir: str | Path) -> Optional[LockInfo]:
    """The holder of ``run_dir``'s lock, or None when the run is not locked."""
    return _read(Path(run_dir) / LOCK_FILE)


def _state(holder: LockInfo) -> str:
    """'self' (this process), 'alive', 'dead' or 'unknown' (another host: its processes cannot be seen)."""
    if holder.pid is None:
        return "dead" if time.time() - holder.mtime > BROKEN_GRACE_S else "alive"
    if holder.host != socket.gethostname():
        return "unknown"
    boot_id = _boot_id()
    if holder.boot_id and boot_id and holder.boot_id != boot_id:
        return "dead"  # written before the last reboot: its pid may belong to another process now
    if holder.pid == os.getpid():
        return "self"
    try:
        os.kill(holder.pid, 0)  # POSIX: signal 0 only checks that the pid exists
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        pass  # it exists, under another user
    if holder.pid_start is not None and process_start(holder.pid) not in (None, holder.pid_start):
        return "dead"  # the pid now belongs to a process started after the holder: the holder is gone
    return "alive"


def _manual_removal(path: Path, holder: LockInfo, state: str) -> str:
    if state != "unknown":
        return ""
    return (f" (a process on another host cannot be checked from {socket.gethostname()}: if none on "
            f"{holder.host} trains this run any more, delete {path})")


def _create(path: Path, info: LockInfo) -> bool:
    """Create the lock file holding ``info``; False when it already exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except FileNotFoundError:  # the empty folder was just removed by a holder leaving it (see hold)
        path.parent.mkdir(parents=True, exist_ok=True)
        return False
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(info.to_json())
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as err:
        path.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:  # a full disk: name the file
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    return True


def _break(path: Path, stale: LockInfo) -> bool:
    """Delete the stale lock ``stale``, unless it changed meanwhile; True if this process deleted it.

    Waiters that all see the same stale lock go through ``.lock.break`` (created with O_EXCL) one at a
    time, and each deletes the lock only if it still holds ``stale``: none deletes a fresh lock.
    """
    guard = path.with_name(path.name + ".break")
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - guard.stat().st_mtime > BROKEN_GRACE_S:
                guard.unlink(missing_ok=True)  # left by a process killed while breaking a lock
        except FileNotFoundError:
            pass
        return False
    try:
        if _read(path) != stale:
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)
        guard.unlink(missing_ok=True)


def acquire(run_dir: str | Path, *, wait: bool = True, poll_s: float = POLL_S) -> LockInfo:
    """Take ``run_dir``'s lock (creating the folder); returns the :class:`LockInfo` written.

    While another live process holds it: wait (a warning names the holder, then the lock is polled every
    ``poll_s`` seconds) or, with ``wait=False``, raise :class:`RunLocked`. A stale lock is taken over.
    """
    run_dir = Path(run_dir)
    path = run_dir / LOCK_FILE
    run_dir.mkdir(parents=True, exist_ok=True)
    mine, announced = _this_process(), None
    while True:
        if _create(path, mine):
            return mine
        holder = _read(path)
        if holder is None:
            continue  # released between our attempt and the read
        state = _state(holder)
        if state == "dead":
            if _break(path, holder):
                log.warning("sagkit: took over the stale lock of run %s: its holder, %s, is no longer running",
                            run_dir, holder.describe())
            else:
                time.sleep(min(poll_s, 0.05))  # another waiter is breaking it
            continue
        if state == "self":
            raise RunLocked(run_dir, holder, "this process already holds its lock: a train() of this run is "
                            "still running in it (in another thread?)")
        extra = _manual_removal(path, holder, state)
        if not wait:
            raise RunLocked(run_dir, holder, "wait for it to finish: train without --no-wait (wait=True) and "
                            f"the run is reused once it is done{extra}")
        if holder != announced:
            log.warning("sagkit: run %s is being trained by %s (%s); waiting for it to finish, then its "
                        "results are reused (--no-wait exits instead)%s", run_dir, holder.describe(),
                        f"command: {holder.command}" if holder.command else "command unknown", extra)
            announced = holder
        time.sleep(poll_s)


def release(run_dir: str | Path, info: LockInfo) -> None:
    """Delete ``run_dir``'s lock if it is still the one ``info`` describes."""
    path = Path(run_dir) / LOCK_FILE
    current = _read(path)
    if current is not None and current.to_json() == info.to_json():
        path.unlink(missing_ok=True)
    else:
        log.warning("sagkit: the lock of run %s is no longer this process's (now: %s); left as it is",
                    run_dir, current.describe() if current else "none")


@contextmanager
def hold(run_dir: str | Path, *, wait: bool = True, enabled: bool = True) -> Iterator[Optional[LockInfo]]:
    """``with hold(run_dir):`` the lock is held inside the block and released however it ends
    (exceptions, KeyboardInterrupt); a run folder it created is removed again if left empty.
    ``enabled=False`` holds nothing (the DDP ranks other than 0)."""
    if not enabled:
        yield None
        return
    run_dir = Path(run_dir)
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
    info = acquire(run_dir, wait=wait)
    try:
        yield info
    finally:
        release(run_dir, info)
        _remove_if_empty(created)


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders (innermost first) that the lock created and nothing filled, e.g. the run folder
    and ``runs/`` of a run whose data could not be loaded."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty: a run, or another process's lock


def check_not_training(run_dir: str | Path, complete: bool) -> None:
    """Readers of a run folder call this first: raise :class:`RunLocked` when the run is not ``complete``
    and another live process (or one on another host) holds its lock, rather than read a half-written run."""
    if complete:
        return
    path = Path(run_dir) / LOCK_FILE
    holder = _read(path)
    if holder is None:
        return
    state = _state(holder)
    if state in ("alive", "unknown"):
        extra = _manual_removal(path, holder, state)
        raise RunLocked(run_dir, holder, "wait for it to finish and read it then (train() of the same config, "
                        f"or sagkit train, waits for it and returns its results){extra}")
