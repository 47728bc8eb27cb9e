"""The ``Workbook`` object the notebooks call: one thin method per step, delegating to the engine (training,
the retrieval pipeline), ``sagkit.report.tables`` (tables) and ``sagkit.workbook.pictures`` (ranked lists, grids,
the explorer). :func:`open_workbook` checks the notebook's parameters first."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sagkit.report import measured, tables
from sagkit.choices import VALID_DEPTHS
from sagkit.config import ExperimentConfig
from sagkit.data import load_dataset
from sagkit.data.synthetic import read_synthetic_metadata
from sagkit.engine.device import run_device
from sagkit.engine.retrieval import Retrieval
from sagkit.runs import train
from sagkit.runs.config import run_config
from sagkit.runs.evaluate import evaluate_run
from sagkit.runs.folder import METRICS_FILE, find_runs, is_complete, load_model_from_run, read_metrics, read_results
from sagkit.runs.per_query import RunQueries, ensure_per_query
from sagkit.runs.record import RunResults
from sagkit.runs.lock import check_not_training
from sagkit.evaluation.bootstrap import run_intervals
from sagkit.viz import is_headless, save_figure
from sagkit.viz.samples import figure1_groups

from sagkit.workbook import pictures
from sagkit.workbook.parameters import WorkbookParameters, check_parameters

__all__ = ["Workbook", "open_workbook"]


def open_workbook(**parameters: Any) -> "Workbook":
    """:func:`check_parameters` then a :class:`Workbook` on them: the first call of every notebook."""
    return Workbook(check_parameters(**parameters))


class Workbook:
    """What the notebooks do, one method per step, for one dataset/profile/device and runs folder."""

    def __init__(self, params: WorkbookParameters):
        self.params = params
        self._dataset = None
        self._retrievals: dict[tuple, tuple[str, Retrieval]] = {}  # (depths, seed) -> (finished_at, result)
        self._model: tuple | None = None  # (depths, seed, finished_at, model): the last model loaded

    def __repr__(self) -> str:
        p = self.params
        return (
            f"Workbook(dataset={p.dataset!r}, data_root={str(p.data_root) if p.data_root else None!r}, "
            f"profile={p.profile!r}, device={p.device!r}, runs_dir={str(p.runs_dir)!r}, "
            f"figures_dir={str(p.figures_dir)!r}, retrain={p.retrain}, seeds={p.seeds})"
        )

    # ------------------------------------------------------------------ configs and runs
    @property
    def depths(self) -> tuple[int, ...]:
        """The ``depth`` parameter of notebook 03 (``()`` when not given)."""
        return self.params.depths or ()

    @property
    def seeds(self) -> tuple[int, ...]:
        """The ``seeds`` parameter of notebook 03 (default ``(0,)``); methods taking ``seed=None`` use the first."""
        return self.params.seeds

    def config(self, depths: Iterable[int] = (), seed: int | None = None) -> ExperimentConfig:
        """The ExperimentConfig of configuration ``depths`` trained with ``seed`` (None: the first of
        :attr:`seeds`) under this workbook's profile and dataset."""
        p = self.params
        if seed is not None or "seed" not in p.overrides:  # seed 0 is the config's default: the same run key
            seed = self.seeds[0] if seed is None else int(seed)
        fields = {"data_root": str(p.data_root) if p.data_root else None, "runs_dir": str(p.runs_dir),
                  "device": p.device, **p.overrides}
        return run_config(p.profile, p.dataset, tuple(depths), seed, **fields)

    def run_dir(self, depths: Iterable[int] = (), seed: int | None = None) -> Path:
        return Path(self.config(depths, seed).run_dir())

    def train(self, depths: Iterable[int] = (), retrain: bool | None = None, seed: int | None = None) -> RunResults:
        """Train configuration ``depths`` (``()`` = baseline) with ``seed`` or reuse its finished run; its
        results record."""
        retrain = self.params.retrain if retrain is None else retrain
        # progress bars in a live notebook; none in executed (papermill) notebooks, which keep every line
        config = self.config(tuple(depths), seed)
        results = train(config, retrain=retrain, progress=not is_headless())
        self._retrievals.pop((tuple(depths), config.seed), None)
        return results

    def train_seeds(self, depths: Iterable[int] = (), retrain: bool | None = None) -> list[RunResults]:
        """:meth:`train` once per seed of :attr:`seeds`; the results records in that order."""
        return [self.train(depths, retrain, seed) for seed in self.seeds]

    def is_finished(self, depths: Iterable[int] = (), seed: int | None = None) -> bool:
        return is_complete(self.run_dir(depths, seed))

    def results(self, depths: Iterable[int] = (), seed: int | None = None) -> RunResults:
        """The results record of a finished configuration (FileNotFoundError naming the run otherwise;
        RunLocked while another process trains it)."""
        run_dir = self.run_dir(depths, seed)
        results = read_results(run_dir)
        complete = results is not None and results.complete
        check_not_training(run_dir, complete)
        if not complete:
            raise FileNotFoundError(
                f"no finished run in {run_dir}: train it first (wb.train({tuple(depths)}) or notebook 03)"
            )
        return results

    def metrics(self, depths: Iterable[int] = ()) -> pd.DataFrame:
        """metrics.csv of a run as a DataFrame (one row per epoch)."""
        run_dir = self.run_dir(depths)
        if not (run_dir / METRICS_FILE).is_file():
            raise FileNotFoundError(f"{run_dir / METRICS_FILE} does not exist: has the run started?")
        return pd.DataFrame(read_metrics(run_dir))

    def finished_runs(self, seeds: Iterable[int] | None = None) -> list[RunResults]:
        """The results records of every finished run in runs_dir made with this dataset and profile (any depths) and
        one of ``seeds`` (default :attr:`seeds`), oldest first."""
        seeds = set(self.seeds if seeds is None else seeds)
        found = []
        for results in find_runs(self.params.runs_dir):
            try:
                config = ExperimentConfig.from_run(dict(results.config))
                if config.seed not in seeds:
                    continue
                wanted = self.config(config.depths, config.seed)
            except (KeyError, TypeError, ValueError):
                continue
            # Exactly the run this workbook would train for these depths (a run predating a new field is not).
            if config.result_fields() == wanted.result_fields():
                found.append(results)
        return sorted(found, key=lambda r: r.finished_at)

    def summary(self, results: RunResults) -> pd.Series:
        """The headline numbers of one run's results record as a pandas Series."""
        row = {"name": results.name, "dataset": results.dataset, "backbone": results.backbone,
               "depths": list(results.depths)}
        row.update({k: results.metrics[k] for k in ("rank1", "rank5", "rank10", "mAP", "rerank_rank1", "rerank_mAP")
                    if k in results.metrics})
        row.update(best_epoch=results.best_epoch, epochs=results.epochs, device=results.device,
                   finished_at=results.finished_at, seed=results.seed, train_time_s=results.timings.get("total_s"))
        return pd.Series(row, dtype=object)

    def summaries(self, runs: Iterable[RunResults]) -> pd.DataFrame:
        """:meth:`summary` of several results records (e.g. one per seed), one row each."""
        return pd.DataFrame([self.summary(r) for r in runs])

    # ------------------------------------------------------------------ tables
    def per_query(self, depths: Iterable[int] = (), seed: int | None = None) -> RunQueries:
        """The per-query results of a finished run's test (its ``per_query.npz``; a run that predates the file
        gets it once from its kept features)."""
        depths = tuple(depths)
        self.results(depths, seed)  # a finished run, not one in training
        return ensure_per_query(self.run_dir(depths, seed), lambda: self.evaluate(depths, seed))

    def intervals(self, depths: Iterable[int] = (), seed: int | None = None) -> dict:
        """The run's bootstrap intervals as results.json names them (computed from per-query results for a run
        that predates them)."""
        return self.results(depths, seed).intervals or run_intervals(self.per_query(depths, seed).scores)

    def table1(self, paper_dataset: str | None = None) -> pd.DataFrame:
        """Table 1 from every finished configuration in runs_dir trained with one of :attr:`seeds`, paper
        order, beside the paper's numbers: means over seeds, their spread and interval, and the paired
        comparison with the baseline (``sagkit.report.seed_stats``)."""
        runs = [(results, self.per_query(results.depths, results.seed)) for results in self.finished_runs()]
        return measured.table1(runs, self.params.dataset, paper_dataset=paper_dataset)

    def table2(self, dataset=None) -> pd.DataFrame:
        """Table 2: this dataset's counts (``source = measured``) above the paper's three rows."""
        return tables.assemble_table2(dataset if dataset is not None else self.load_dataset(), self.params.dataset)

    def sota_rows(self, number: int, configs: Sequence[Iterable[int]] = measured.SOTA_CONFIGS) -> list[dict]:
        """Measured rows of comparison table ``number`` (3-5) for the finished ``configs``."""
        runs = {depths: (self.results(depths), self.measurements(depths), self.intervals(depths))
                for depths in map(tuple, configs) if self.is_finished(depths)}
        return measured.sota_rows(number, self.params.dataset, self.params.profile, runs)

    # ------------------------------------------------------------------ output files
    def save_figure(self, fig, name: str) -> list[Path]:
        """Write ``fig`` as ``<figures_dir>/<name>.png`` and ``.pdf`` atomically."""
        return save_figure(fig, self.params.figures_dir, name)

    def write_table(self, frame, name: str, title: str | None = None) -> tuple[Path, Path]:
        """Write ``<figures_dir>/<name>.csv`` and ``.md`` atomically."""
        return tables.write_table(frame, self.params.figures_dir, name, title=title)

    # ------------------------------------------------------------------ data
    def load_dataset(self):
        """The ReIDDataset of this workbook (loaded once)."""
        if self._dataset is None:
            config = self.config(())
            self._dataset = load_dataset(config.dataset, config.data_root, **config.dataset_options)
        return self._dataset

    def splits(self) -> dict:
        ds = self.load_dataset()
        return {"train": ds.train, "query": ds.query, "gallery": ds.gallery}

    def figure1_groups(self, seed: int = 0, split: str = "train") -> dict:
        """Figure 1's sample groups from ``split`` (synthetic data: its metadata marks look-alikes, occluders)."""
        ds = self.load_dataset()
        metadata = read_synthetic_metadata(ds.root) if self.params.dataset == "synthetic" else None
        return figure1_groups(getattr(ds, split), seed=seed, metadata=metadata)

    def sample_queries(self, num: int, seed: int = 0) -> list:
        """``num`` query records of distinct identities, picked with ``seed`` (then sorted by pid)."""
        by_pid: dict[int, Any] = {}
        for record in self.load_dataset().query:
            by_pid.setdefault(record.pid, record)
        chosen = random.Random(seed).sample(sorted(by_pid), min(num, len(by_pid)))
        return [by_pid[pid] for pid in sorted(chosen)]

    # ------------------------------------------------------------------ models and retrieval
    def device(self) -> torch.device:
        """The workbook's torch device, with the memory settings of its configs (as in training)."""
        return run_device(self.config(()), self.params.device, quiet=True)

    def load_model(self, depths: Iterable[int] = (), seed: int | None = None):
        """The trained model of a finished run (best checkpoint), eval mode, on the workbook's device."""
        depths = tuple(depths)
        config = self.config(depths, seed)
        stamp = self.results(depths, seed).finished_at
        if self._model is None or self._model[:3] != (depths, config.seed, stamp):
            model = load_model_from_run(config.run_dir(), device=self.device())
            self._model = (depths, config.seed, stamp, model)
        return self._model[3]

    def evaluate(self, depths: Iterable[int] = (), seed: int | None = None) -> Retrieval:
        """The retrieval pipeline's result for a finished run on the test split (the run's protocol, its
        re-ranking setting, multi-query), from the features kept in the run folder; kept for later calls."""
        depths = tuple(depths)
        config = self.config(depths, seed)
        key = (depths, config.seed)
        stamp = self.results(depths, seed).finished_at
        if key in self._retrievals and self._retrievals[key][0] == stamp:
            return self._retrievals[key][1]
        result, _ = evaluate_run(config.run_dir(), device=self.device(), data_root=config.data_root or "",
                                 options=config.dataset_options, model=lambda: self.load_model(depths, seed))
        self._retrievals[key] = (stamp, result)
        return result

    def measurements(self, depths: Iterable[int] = ()) -> dict:
        """Single- and multi-query metrics, with and without re-ranking, in percent (``Retrieval.evaluations``)."""
        return self.evaluate(depths).evaluations()

    # ------------------------------------------------------------------ pictures
    def display_image(self, record, depths: Iterable[int] = ()):
        """A record's image as the model sees it (resized to the config's H×W), H×W×3 uint8."""
        return pictures.display_image(self, record, tuple(depths))

    def ranked_examples(self, depths: Iterable[int] = (), num_queries: int = 4, topk: int = 10, seed: int = 0) -> dict:
        """Keyword arguments for :func:`sagkit.viz.plot_ranked_lists`: sample queries and their top-k."""
        return pictures.ranked_examples(self, tuple(depths), num_queries, topk, seed)

    def attention_grids(self, records: Sequence, depths: Iterable[int] = VALID_DEPTHS) -> tuple[list, dict]:
        """(images H×W×3, {d: N×1×h×w}) for single-depth runs D``d``: each depth's grid from its own model."""
        return pictures.attention_grids(self, records, tuple(depths))

    def baseline_activations(self, records: Sequence) -> dict:
        """{"baseline channel norm", "baseline Grad-CAM": N×h×w} of ``records`` (``sagkit.viz.activation``)."""
        return pictures.baseline_activations(self, records)

    def explorer(self, depths: Iterable[int] = VALID_DEPTHS, num_images: int = 8, num_queries: int = 6,
                 topk: int = 5, seed: int = 0, baseline: bool = True):
        """An :class:`sagkit.viz.AttentionExplorer` over sample queries (see ``pictures.explorer``)."""
        return pictures.explorer(self, tuple(depths), num_images, num_queries, topk, seed, baseline)
