"""What the subcommands share: the one-line error they raise, ``--set KEY=VALUE`` and ``--depths`` parsing, and
logging to stderr. Torch-free: the parser modules import it."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Optional, Sequence

from sagkit.choices import parse_depths

__all__ = ["CLIError", "check_at_least", "configure_logging", "depths_flag", "optional_path", "parse_overrides"]


class CLIError(Exception):
    """A failure the command line reports as one line (exit status 2)."""


def _literal(text: str) -> Any:
    """A JSON literal when ``text`` parses as one (numbers, true/false/null, lists, dicts), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(items: Sequence[str]) -> dict:
    """``["epochs=3", "dataset_options.num_train_ids=20"]`` → ``{"epochs": 3, "dataset_options":
    {"num_train_ids": 20}}``. Values are JSON literals when possible; dotted keys fill dict fields."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r} is not of the form key=value (e.g. --set epochs=3)")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ValueError(f"--set {item!r} has an empty key")
        parts = key.split(".")
        target = out
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"--set {item!r}: {part!r} is not a dict field")
        target[parts[-1]] = _literal(value)
    return out


def depths_flag(values: list[str]) -> tuple:
    """``--depths 4`` / ``--depths 1 2`` / ``--depths 1,2`` / ``--depths baseline`` (or no value)."""
    text = " ".join(values).strip()
    if text.lower() in ("", "none", "()"):
        return ()
    try:
        return parse_depths(text)
    except ValueError as err:
        raise ValueError(f"--depths {text!r}: {err}") from None


def optional_path(text: Optional[str]) -> Optional[str]:
    """None for an empty path flag (``--data-root ''`` means the default location)."""
    return text if text else None


def check_at_least(flag: str, value: Optional[int], minimum: int) -> None:
    """CLIError naming ``flag`` when an integer option is below ``minimum`` (None: not given)."""
    if value is not None and value < minimum:
        raise CLIError(f"{flag} {value} is out of range: give an integer >= {minimum}")


def configure_logging() -> None:
    """The library's ``sagkit`` logger prints its messages, bare, on stderr (once per process)."""
    logger = logging.getLogger("sagkit")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
