"""Command line: ``python -m sagkit {train,eval,export,embed,search,synth,bench,workbook,results}`` (``--help`` on
each).

Errors from bad input are printed as one line ``sagkit <command>: error: ...`` with exit status 2. The parser and
the dispatch live in :mod:`sagkit.cli.parser`, each subcommand's flags in :mod:`sagkit.cli.flags`, and its
handler, a thin layer over the library, in a module of its own (:mod:`sagkit.cli.train`,
:mod:`sagkit.cli.evaluate`, ...).
"""

from sagkit.cli.common import CLIError, parse_overrides
from sagkit.cli.parser import build_parser, main

__all__ = ["CLIError", "build_parser", "main", "parse_overrides"]
