"""The tests' kill switch: with the environment variable ``SAGKIT_TEST_EXIT_AFTER_BATCHES=N`` set, a training
process exits abruptly (``os._exit(3)``, no clean-up, like a kill) after its N-th optimisation step, so that
the tests can check what a killed run leaves behind and how it resumes. Unset, it does nothing."""

from __future__ import annotations

import os
from typing import Callable

__all__ = ["FAULT_ENV", "fault_hook"]

FAULT_ENV = "SAGKIT_TEST_EXIT_AFTER_BATCHES"


def fault_hook() -> Callable[[], None]:
    """A step callback that counts optimisation steps and kills the process after ``$SAGKIT_TEST_EXIT_AFTER_BATCHES``
    of them (a no-op when the variable is unset); ValueError naming the variable when it is not a number."""
    limit = os.environ.get(FAULT_ENV)
    if not limit:
        return lambda: None
    try:
        remaining = [int(limit)]
    except ValueError:
        raise ValueError(f"environment variable {FAULT_ENV}={limit!r} must be a number of optimisation steps (a "
                         "testing hook that kills the run): unset it") from None

    def step() -> None:
        remaining[0] -= 1
        if remaining[0] <= 0:
            os._exit(3)

    return step
