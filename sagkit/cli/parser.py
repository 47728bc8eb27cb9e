"""The ``sagkit`` command: its parser (each subcommand's flags from ``sagkit.cli.flags``), the dispatch to the
subcommand's handler module, and the one-line error report.

Torch-free: ``--help`` and argument errors import neither torch nor the library. The handler modules
(``sagkit.cli.train``, ``sagkit.cli.evaluate``, ...) import the library at their top; each parser names its
handler as ``"module:function"`` and :func:`load` imports the one a command runs (and, for an error that may be the library's,
``sagkit.cli.library_errors``): the only place where the command line imports lazily.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import pkgutil
import sys
from typing import Any, Callable, Optional, Sequence

from sagkit.atomic import WriteError
from sagkit.cli.common import CLIError
from sagkit.cli import flags

__all__ = ["build_parser", "flag_modules", "load", "main"]

LIBRARY_ERRORS = "sagkit.cli.library_errors:LIBRARY_ERRORS"
# Packages of an optional extra (pip install -e '.[extra]') that a handler module imports.
EXTRAS = {"onnx": "export", "onnxruntime": "export"}


def load(dotted: str) -> Any:
    """The object that ``"package.module:name"`` names, its module imported now."""
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def flag_modules() -> list:
    """The modules of ``sagkit.cli.flags`` in their ``ORDER``: a new subcommand is one module there (and its
    handler module) and needs no line here."""
    found = [importlib.import_module(f"{flags.__name__}.{info.name}") for info in pkgutil.iter_modules(flags.__path__)]
    return sorted(found, key=lambda module: module.ORDER)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sagkit",
        description="Self Attention Grid (SAG) for person re-identification: train, evaluate, export to ONNX, "
        "embed and search your own images, generate synthetic data, benchmark, run the workbook, keep results "
        "and rebuild the tables from them.",
    )
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    for module in flag_modules():
        module.add(sub)
    sub.metavar = "{" + ",".join(sub.choices) + "}"
    return parser


def _handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], Optional[int]]:
    """The handler of the parsed command; CLIError naming the extra to install when its module needs one."""
    try:
        return load(args.handler)
    except ModuleNotFoundError as err:
        if err.name not in EXTRAS:
            raise
        raise CLIError(f"{args.command} needs the {err.name} package: pip install -e '.[{EXTRAS[err.name]}]'") \
            from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m sagkit`` and of the ``sagkit`` script. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(_handler(args)(args) or 0)
    except KeyboardInterrupt:
        print("sagkit: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every failure becomes one readable line, exit status 2
        if not _is_user_error(err):
            raise
        text = _error_text(err)
        print(f"sagkit {args.command}: error: {text}", file=sys.stderr)
        return 2


def _error_text(err: BaseException) -> str:
    """The message on one line (a layout hint's lines are joined). An error raised in a DataLoader worker
    comes back with the worker's traceback in its message; only the original error's own line is kept."""
    if isinstance(err, OSError) and not isinstance(err, WriteError) and err.errno in _OS_ADVICE and err.filename:
        return " ".join(f"{err.filename}: {err.strerror}; {_OS_ADVICE[err.errno]}".split())
    text = str(err).strip()
    if text.startswith("Caught ") and "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return " ".join(text.split())


# A file system that refuses a write (full, over quota, read-only, not permitted): what the user can do.
_OS_ADVICE = {
    errno.ENOSPC: "the disk is full: free space there, or write elsewhere (--runs-dir, --results-dir, --out)",
    errno.EDQUOT: "the disk quota is used up: free space, or write elsewhere (--runs-dir, --results-dir, --out)",
    errno.EROFS: "the folder is read-only: write elsewhere (--runs-dir, --results-dir, --out)",
    errno.EACCES: "permission denied: make it accessible, or use another folder (--runs-dir, --results-dir, --out)",
    errno.EPERM: "not permitted: make it accessible, or use another folder (--runs-dir, --results-dir, --out)",
}


def _is_user_error(err: BaseException) -> bool:
    if isinstance(err, (CLIError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
                        IsADirectoryError)):
        return True  # decided without importing torch, which the library's classes need
    if isinstance(err, WriteError) or isinstance(err, OSError) and err.errno in _OS_ADVICE:
        return True
    return isinstance(err, load(LIBRARY_ERRORS))
