"""Atomic file writes: write a temporary file beside the target, then ``os.replace`` it into place.

A reader (or a killed run) never sees a half-written checkpoint, results file, table or figure.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write", "atomic_write_text", "check_folder", "make_folder", "publish_dir"]


def _file_mode() -> int:
    """Permissions of a normally created file (mkstemp makes 0600): 0666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_folder(folder: str | Path) -> Path:
    """``folder`` as a Path; NotADirectoryError naming the file in the way when ``folder`` or one of its
    parents is a file (an output path given as a file), instead of an errno line later."""
    folder = Path(folder)
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise NotADirectoryError(f"{blocker} is a file, not a folder, so {folder} cannot be made: give an output "
                                 "folder that is not a file")
    return folder


def make_folder(folder: str | Path) -> Path:
    """Create ``folder`` and its parents (:func:`check_folder` first)."""
    folder = check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then move it into place."""
    path = Path(path)
    make_folder(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
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
