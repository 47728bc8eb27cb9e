"""sagkit: Self Attention Grid (SAG) for person re-identification.

A small library (``sagkit.models``, ``sagkit.data``, ``sagkit.engine``, ``sagkit.evaluation``,
``sagkit.viz``) and a workbook of notebooks that reproduce the paper's tables and figures.
Sub-packages are imported lazily so that ``import sagkit`` stays cheap.
"""

from importlib import import_module

__version__ = "0.1.0"

_SUBMODULES = ("config", "data", "engine", "evaluation", "models", "images", "report", "runs", "viz", "workbook")


_FUNCTIONS = {"embed": "sagkit.images.embedding", "search": "sagkit.images.gallery"}  # sagkit.embed(...), sagkit.search(...)


def __getattr__(name):
    if name in _SUBMODULES:
        return import_module(f"sagkit.{name}")
    if name in _FUNCTIONS:
        return getattr(import_module(_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'sagkit' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES) + list(_FUNCTIONS))
