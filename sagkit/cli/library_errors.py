"""The library's exception classes that ``sagkit`` reports as one line (exit status 2), beside the built-in ones
``sagkit.cli.parser`` knows without importing torch; loaded by the parser only when such an error may be one."""

from sagkit.data import BadImageError
from sagkit.engine.device import DeviceUnavailableError
from sagkit.engine.trainer import TrainingDiverged
from sagkit.runs.lock import RunLocked
from sagkit.workbook.runner import NotebookFailed

LIBRARY_ERRORS = (BadImageError, DeviceUnavailableError, TrainingDiverged, RunLocked, NotebookFailed)
