"""A finished run's results record, ``<run>/results.json``: :class:`RunResults`, written and read here alone.

The file is a flat JSON object: the run's identity (``name``, ``run_key``, ``dataset``, ``depths`` ...), the test
metrics in percent named ``<prefix><metric>`` (prefixes :data:`SUMMARY_PREFIXES`: ``rank1``, ``rerank_mAP``,
``multi_rank1`` ...), what the run took (``timings``, ``device`` ...) and its ``config``. Files of older versions
lack some entries (``mINP``, ``cmc``, ``intervals``, ``interval_method``, ``protocol``, ``world_size``): they read
back as None and are written back without them, so an old file round-trips unchanged. A file that is not such an
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

__all__ = ["METRIC_NAMES", "RESULTS_ADVICE", "RESULTS_FILE", "RunResults", "SUMMARY_PREFIXES", "is_complete",
           "read_results", "write_results"]

RESULTS_FILE = "results.json"
RESULTS_ADVICE = "restore it (results export copies it again), or train the run again (sagkit train --retrain)"
METRIC_NAMES = INTERVAL_METRICS + ("mINP",)  # the metrics of each evaluation (``Retrieval.summary``), percent
_REQUIRED_METRICS = INTERVAL_METRICS  # single-query, in every results.json sagkit wrote
_NUMBER = (int, float)
# JSON types of the entries: (type(s), may be null); ``None`` for a field that is not read from one entry
_KINDS = {
    "complete": (bool, False), "name": (str, False), "run_dir": (str, False), "run_key": (str, False),
    "dataset": (str, False), "backbone": (str, False), "depths": (list, False), "best_epoch": (int, False),
    "select_metric": (str, False), "best_val": (dict, True), "epochs": (int, False),
    "final_train_loss": (_NUMBER, True), "final_train_acc": (_NUMBER, True), "num_classes": (int, False),
    "num_train_images": (int, False), "num_query": (int, False), "num_gallery": (int, False),
    "timings": (dict, False), "device": (str, False), "precision": (str, False), "torch": (str, False),
    "code_version": (dict, False), "config": (dict, False), "finished_at": (str, False),
    "world_size": (int, True), "cmc": (list, True), "intervals": (dict, True), "interval_method": (dict, True),
    "protocol": (str, True),
}
_LATER = ("world_size", "cmc", "intervals", "interval_method", "protocol")  # absent from older files


@dataclass(frozen=True, eq=False)
class RunResults(Mapping):
    """A finished run's ``results.json``: typed fields, the flat test ``metrics`` ({``rank1``, ``rerank_mAP``,
    ... : percent}), and ``extra`` (entries this version does not know, kept so that they are written back).

    Also a read-only mapping over :meth:`to_json` (``results["rank1"]``, equal to the dict of its file), as
    ``train()`` returned that dict before; sagkit itself reads the fields."""

    name: str
    run_dir: str
    run_key: str
    dataset: str
    backbone: str
    depths: tuple
    metrics: dict
    best_epoch: int
    select_metric: str
    best_val: Optional[dict]
    epochs: int
    final_train_loss: Optional[float]
    final_train_acc: Optional[float]
    num_classes: int
    num_train_images: int
    num_query: int
    num_gallery: int
    timings: dict
    device: str
    precision: str
    torch: str
    code_version: dict
    config: dict
    finished_at: str
    complete: bool = True
    world_size: Optional[int] = None  # None: written before it was recorded (one process)
    cmc: Optional[list] = None
    intervals: Optional[dict] = None
    interval_method: Optional[dict] = None
    protocol: Optional[str] = None
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
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("metrics", "extra")}
        out["depths"] = list(self.depths)
        for name in _LATER:
            if out[name] is None:
                del out[name]
        return {**self.extra, **out, **self.metrics}

    @classmethod
    def from_json(cls, data: Any, path: str | Path = RESULTS_FILE) -> "RunResults":
        """The record of a ``results.json`` object; ValueError naming ``path`` when it is not one."""
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object, not {type(data).__name__}: {RESULTS_ADVICE}")
        metric_keys = {prefix + m for prefix in SUMMARY_PREFIXES.values() for m in METRIC_NAMES}
        for key in sorted(metric_keys & set(data)) + [k for k in _REQUIRED_METRICS if k not in data]:
            _check(path, key, data, _NUMBER, False)
        for key, (kind, nullable) in _KINDS.items():
            if key not in _LATER or key in data:
                _check(path, key, data, kind, nullable)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: data.get(k) for k in known - {"metrics", "extra"}}
        values["depths"] = tuple(data["depths"])
        return cls(**values, metrics={k: data[k] for k in data if k in metric_keys},
                   extra={k: v for k, v in data.items() if k not in known and k not in metric_keys})

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())


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
