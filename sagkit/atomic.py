"""Atomic file writes: write a temporary file beside the target, then ``os.replace`` it into place.

A reader (or a killed run) never sees a half-written checkpoint, results file, table or figure. A write that
fails (full disk, read-only folder) raises :class:`WriteError` naming the file; a process killed mid-write
leaves ``.<name>.<random>.tmp``, which :func:`remove_stale_temporaries` deletes when the folder is next used.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["WriteError", "check_folder", "make_folder", "atomic_write", "atomic_write_text", "publish_dir",
           "remove_stale_temporaries", "TEMP_SUFFIX"]

TEMP_SUFFIX = ".tmp"
# torch.save reports a failed write (ENOSPC, EIO) as a RuntimeError of its zip writer with these words.
_TORCH_WRITE_FAILED = ("PytorchStreamWriter failed", "file write failed", "inline_container")


class WriteError(OSError):
    """Writing a file failed (full disk, quota, read-only folder): one line naming the file and what to do."""

    def __init__(self, path: str | Path, reason: str, code: int = errno.EIO):
        self.path = Path(path)
        advice = ("make the folder writable, or write elsewhere" if code in (errno.EROFS, errno.EACCES, errno.EPERM)
                  else "free space on that disk, or write elsewhere")
        super().__init__(code, f"cannot write {path}: {reason}; {advice}", str(path))

    def __str__(self) -> str:
        return self.strerror


def _is_write_failure(err: BaseException) -> bool:
    """An OSError, or torch.save's RuntimeError for a write the file system refused."""
    return isinstance(err, OSError) or (isinstance(err, RuntimeError)
                                        and any(word in str(err) for word in _TORCH_WRITE_FAILED))


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno is not None:
        return os.strerror(err.errno)
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"{first} (is the disk full?)"


def _file_mode() -> int:
    """Permissions of a normally created file (mkstemp makes 0600): 0666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def make_folder(folder: str | Path, what: str = "output folder") -> Path:
    """Create ``folder`` and its parents (:func:`check_folder` first); WriteError naming it when the file system
    refuses (read-only, full, no permission)."""
    folder = check_folder(folder, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(folder, _reason(err), err.errno or errno.EIO) from err
    return folder


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then move it into place."""
    path = Path(path)
    make_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    except OSError as err:
        raise WriteError(path, _reason(err), err.errno or errno.EIO) from err
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if _is_write_failure(err) and not isinstance(err, WriteError):
            raise WriteError(path, _reason(err), getattr(err, "errno", None) or errno.EIO) from err
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, write)


def publish_dir(tmp: str | Path, dest: str | Path, done_by_other: Callable[[Path], bool]) -> None:
    """Rename the finished folder ``tmp`` to ``dest`` in one step (``dest`` absent or an empty folder).

    When the rename fails because another process published ``dest`` first (``done_by_other(dest)`` is
    true), ``tmp`` is dropped and theirs is kept; any other failure is raised.
    """
    dest = Path(dest)
    try:
        os.replace(tmp, dest)
    except OSError:
        if not done_by_other(dest):
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def check_folder(path: str | Path, what: str = "output folder") -> Path:
    """``path`` as a folder to write into; NotADirectoryError naming ``what`` when it, or a folder above it, is
    a file (mkdir would fail later with a bare "Not a directory")."""
    path = Path(path)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                where = "it" if part == path else str(part)
                raise NotADirectoryError(f"{what} {str(path)!r} is not a folder: {where} is a file; give a folder path")
            break
    return path


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files ``.<name>.<random>.tmp`` that :func:`atomic_write` left in ``folder`` when
    its process was killed mid-write (call it only while no other process writes there, e.g. under the run
    lock). Returns the files removed."""
    removed = []
    for tmp in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
