"""A finished run's results record, ``<run>/results.json``: :class:`RunResults`, written and read here alone.

The file is a flat JSON object: the run's identity (``name``, ``run_key``, ``dataset``, ``depths`` ...), the test
metrics in percent named ``<prefix><metric>`` (prefixes :data:`SUMMARY_PREFIXES`: ``rank1``, ``rerank_mAP``,
``multi_rank1`` ...), what the run took (``timings``, ``device`` ...) and its ``config``. Files of older versions
lack some entries (``cmc``, ``intervals``, ``interval_method``, ``protocol``, ``world_size``; the ``mINP`` metrics):
they read back as None (absent from ``metrics``) and are written back without them, so an old file round-trips
unchanged. A file that is not such an
object (a required entry missing, a value of the wrong type) is one ValueError naming it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from sagkit.evaluation.bootstrap import INTERVAL_METRICS, SUMMARY_PREFIXES

from sagkit.engine.checkpoint import atomic_write_json

__all__ = ["METRIC_NAMES", "RESULTS_ADVICE", "RESULTS_FILE", "RunResults", "is_complete", "read_results",
           "write_results"]

RESULTS_FILE = "results.json"
RESULTS_ADVICE = "restore it (results export copies it again), or train the run again (sagkit train --retrain)"
METRIC_NAMES = INTERVAL_METRICS + ("mINP",)  # the metrics of each evaluation (``Retrieval.summary``), percent
_REQUIRED_METRICS = INTERVAL_METRICS  # single-query, in every results.json sagkit wrote
_NUMBER = (int, float)


def _entry(kind, nullable: bool = False, later: bool = False):
    """A field read from the entry of its name: its JSON type(s), whether it may be null, and whether files of
    older versions lack it (then it is None, and left out when written back)."""
    meta = {"kind": kind, "nullable": nullable or later, "later": later}
    return field(default=None, metadata=meta) if later else field(metadata=meta)


@dataclass(frozen=True, eq=False)
class RunResults(Mapping):
    """A finished run's ``results.json``: typed fields, the flat test ``metrics`` ({``rank1``, ``rerank_mAP``,
    ... : percent}), and ``extra`` (entries this version does not know, kept so that they are written back).

    Also a read-only mapping over :meth:`to_json` (``results["rank1"]``, equal to the dict of its file), as
    ``train()`` returned that dict before; sagkit itself reads the fields."""

    metrics: dict
    complete: bool = _entry(bool)
    name: str = _entry(str)
    run_dir: str = _entry(str)
    run_key: str = _entry(str)
    dataset: str = _entry(str)
    backbone: str = _entry(str)
    depths: tuple = _entry(list)
    best_epoch: int = _entry(int)
    select_metric: str = _entry(str)
    best_val: Optional[dict] = _entry(dict, nullable=True)
    epochs: int = _entry(int)
    final_train_loss: Optional[float] = _entry(_NUMBER, nullable=True)
    final_train_acc: Optional[float] = _entry(_NUMBER, nullable=True)
    num_classes: int = _entry(int)
    num_train_images: int = _entry(int)
    num_query: int = _entry(int)
    num_gallery: int = _entry(int)
    timings: dict = _entry(dict)
    device: str = _entry(str)
    precision: str = _entry(str)
    torch: str = _entry(str)
    code_version: dict = _entry(dict)
    config: dict = _entry(dict)
    finished_at: str = _entry(str)
    world_size: Optional[int] = _entry(int, later=True)  # None: written before it was recorded (one process)
    cmc: Optional[list] = _entry(list, later=True)
    intervals: Optional[dict] = _entry(dict, later=True)
    interval_method: Optional[dict] = _entry(dict, later=True)
    protocol: Optional[str] = _entry(str, later=True)
    extra: dict = field(default_factory=dict)

    @property
    def seed(self) -> int:
        """The training seed (``config["seed"]``; 0, the default, in a config that predates it)."""
        return int(self.config.get("seed", 0))

    @property
    def processes(self) -> int:
        """How many processes trained the run (``world_size``, 1 when not recorded)."""
        return 1 if self.world_size is None else int(self.world_size)

    def evaluations(self) -> dict:
        """``{"single": {metric: percent}, "single_rr": ..., "multi": ..., "multi_rr": ...}``, those the run has
        (the metrics of :data:`INTERVAL_METRICS`)."""
        return {name: {m: self.metrics[prefix + m] for m in INTERVAL_METRICS}
                for name, prefix in SUMMARY_PREFIXES.items() if prefix + "rank1" in self.metrics}

    def to_json(self) -> dict:
        """The JSON object of ``results.json`` (entries an older file lacked are left out)."""
        out = {f.name: getattr(self, f.name) for f in _ENTRIES
               if not (f.metadata["later"] and getattr(self, f.name) is None)}
        out["depths"] = list(self.depths)
        return {**self.extra, **out, **self.metrics}

    @classmethod
    def from_json(cls, data: Any, path: str | Path = RESULTS_FILE) -> "RunResults":
        """The record of a ``results.json`` object; ValueError naming ``path`` when it is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object, not {type(data).__name__}: {RESULTS_ADVICE}")
        metric_keys = {prefix + m for prefix in SUMMARY_PREFIXES.values() for m in METRIC_NAMES}
        for key in sorted(metric_keys & set(data)) + [k for k in _REQUIRED_METRICS if k not in data]:
            _check(path, key, data, _NUMBER, False)
        for f in _ENTRIES:
            if not f.metadata["later"] or f.name in data:
                _check(path, f.name, data, f.metadata["kind"], f.metadata["nullable"])
        values = {f.name: data.get(f.name) for f in _ENTRIES}
        values["depths"] = tuple(data["depths"])
        return cls(**values, metrics={k: data[k] for k in data if k in metric_keys},
                   extra={k: v for k, v in data.items() if k not in values and k not in metric_keys})

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


_ENTRIES = tuple(f for f in dataclasses.fields(RunResults) if "kind" in f.metadata)


def _check(path, key: str, data: dict, kind, nullable: bool) -> None:
    """ValueError naming ``path`` unless ``data[key]`` exists and is of ``kind`` (or null when ``nullable``)."""
    if key not in data:
        raise ValueError(f"{path}: entry {key!r} is missing: {RESULTS_ADVICE}")
    value = data[key]
    if value is None and nullable:
        return
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        name = {dict: "JSON object", list: "list", str: "string", int: "whole number", bool: "true or false"}.get(
            kind, "number")
        raise ValueError(f"{path}: entry {key!r} is {value!r}, not a {name}: {RESULTS_ADVICE}")


def read_results(run_dir: str | Path) -> Optional[RunResults]:
    """The :class:`RunResults` of ``<run_dir>/results.json``, or None when the run has not finished; ValueError
    naming the file when it is damaged."""
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}): the file is damaged; {RESULTS_ADVICE}") from None
    return RunResults.from_json(data, path)


def write_results(run_dir: str | Path, results: RunResults) -> Path:
    """Write ``<run_dir>/results.json`` atomically."""
    return atomic_write_json(Path(run_dir) / RESULTS_FILE, results.to_json())


def is_complete(run_dir: str | Path) -> bool:
    """True when ``results.json`` exists and says the run finished."""
    results = read_results(run_dir)
    return results is not None and results.complete
