"""The workbook's glue: notebook parameter checks, one ``Workbook`` object the notebooks call, the runner.

Notebooks stay thin: they call :func:`open_workbook` with their parameters (bad values fail at once
with a message naming what is allowed), then ``wb.train(depths)``, ``wb.table1()``, ``wb.save_figure``...
:func:`run_workbook` executes notebooks 01..05 in order with papermill (03 once per depth).

Paths: relative ``runs_dir``, ``figures_dir`` and ``data_root`` are resolved against the working
directory, except when that is the repository's ``notebooks/`` folder (where JupyterLab starts a
kernel): then against the repository root. Figures for a dataset other than ``synthetic`` go to
``<figures_dir>/<dataset>/`` so that the committed synthetic figures are not overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagkit.config import ExperimentConfig, get_profile

log = logging.getLogger("sagkit.workbook")

DATASETS = ("synthetic", "market1501", "dukemtmc", "cuhk03", "cuhk01")
PROFILES = ("paper", "cpu", "tiny")
NOTEBOOKS = (
    "01_data_exploration",
    "02_baseline",
    "03_ablation",
    "04_sota_tables",
    "05_attention_heatmaps",
)
DEFAULT_DEPTHS = ((), (1,), (2,), (3,), (4,))
SINGLE_DEPTHS = (1, 2, 3, 4)
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
DEPTH_HELP = (
    "depth must be 0 (the baseline), an integer 1..4 (one SAG module at that depth) or a comma-separated "
    "list of distinct depths such as '1,2,3' (stacked modules)"
)
REPO_ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- parameters
def parse_depths(value: Any) -> tuple[int, ...]:
    """A notebook ``depth`` parameter as a sorted tuple: 0 / '0' / 'baseline' / () → (); 4 → (4,);
    '1,2,3' or [1, 2, 3] → (1, 2, 3). Anything else raises ValueError quoting :data:`DEPTH_HELP`."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"{DEPTH_HELP}; got {value!r}")
    if isinstance(value, int):
        items: list = [value]
    elif isinstance(value, str):
        text = value.strip().strip("()[]").strip()
        if text.lower() in ("baseline", "0"):
            return ()
        parts = [p.strip().lstrip("Dd") for p in text.split(",") if p.strip()]
        try:
            items = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"{DEPTH_HELP}; got {value!r}") from None
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if not items:
            return ()
        if any(isinstance(d, bool) or not isinstance(d, int) for d in items):
            raise ValueError(f"{DEPTH_HELP}; got {value!r}")
    else:
        raise ValueError(f"{DEPTH_HELP}; got {value!r}")
    if items == [0]:
        return ()
    if not items or any(d not in SINGLE_DEPTHS for d in items) or len(set(items)) != len(items):
        raise ValueError(f"{DEPTH_HELP}; got {value!r}")
    return tuple(sorted(items))


def parse_attention_depths(value: Any) -> tuple[int, ...]:
    """Notebook 05's ``depths``: single-depth runs whose grids are shown, e.g. 4, '1,2,3,4' or [2, 4]."""
    try:
        depths = parse_depths(value)
    except ValueError:
        depths = ()
    if not depths:
        raise ValueError(
            "depths (notebook 05) must name single-depth SAG runs to show: an integer 1..4 or a "
            f"comma-separated list such as '1,2,3,4' (the baseline has no attention grid); got {value!r}"
        )
    return depths


def parse_depth_list(value: Any) -> list[tuple[int, ...]]:
    """Several configurations: '0 1 2 3 4' or '0;1;1,2' or [0, 1, '1,2', (1, 2, 3)] → list of tuples."""
    if isinstance(value, str):
        value = [v for v in re.split(r"[;\s]+", value.strip()) if v]
    elif isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    configs = []
    for item in value:
        depths = parse_depths(item)
        if depths not in configs:
            configs.append(depths)
    if not configs:
        raise ValueError(f"give at least one configuration ({DEPTH_HELP})")
    return configs


def workbook_base(cwd: Path | None = None) -> Path:
    """The folder relative paths are resolved against (see the module docstring)."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    if cwd.name == "notebooks" and (cwd.parent / "pyproject.toml").is_file():
        return cwd.parent
    return cwd


def resolve_path(path: str | os.PathLike, base: Path | None = None) -> Path:
    """``path`` made absolute against :func:`workbook_base` (``~`` expanded)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (workbook_base() if base is None else Path(base)) / p


def figures_dir_for(figures_dir: str | os.PathLike, dataset: str, base: Path | None = None) -> Path:
    """``figures_dir`` for the synthetic data, ``figures_dir/<dataset>`` for any other dataset."""
    root = resolve_path(figures_dir, base)
    return root if dataset == "synthetic" else root / dataset


def _optional_text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "None", "none") else text


@dataclass(frozen=True)
class WorkbookParameters:
    """Checked notebook parameters; paths absolute; ``figures_dir`` already per dataset."""

    dataset: str
    data_root: Path | None
    profile: str
    device: str
    runs_dir: Path
    figures_dir: Path
    depths: tuple[int, ...] | None = None
    retrain: bool = False
    overrides: dict = field(default_factory=dict)
    attention_depths: tuple[int, ...] | None = None


def check_parameters(
    dataset: str = "synthetic",
    data_root: str | os.PathLike | None = None,
    profile: str = "cpu",
    device: str = "auto",
    runs_dir: str | os.PathLike = "runs",
    figures_dir: str | os.PathLike = "figures",
    retrain: bool = False,
    depth: Any = None,
    overrides: Mapping[str, Any] | None = None,
    base: Path | None = None,
    attention_depths: Any = None,
) -> WorkbookParameters:
    """Validate the common notebook parameters; raise ValueError/FileNotFoundError saying what is allowed.

    ``dataset``: one of :data:`DATASETS`. ``data_root``: required and must exist for the real datasets;
    optional for ``synthetic`` (default: the generator's cache folder). ``profile``: paper, cpu or tiny.
    ``device``: auto, cpu, cuda or cuda:N. ``depth`` (notebook 03): see :func:`parse_depths`.
    ``attention_depths`` (notebook 05): see :func:`parse_attention_depths`.
    ``overrides``: extra ExperimentConfig fields (e.g. ``{"epochs": 1}``).
    """
    if not isinstance(dataset, str) or dataset not in DATASETS:
        raise ValueError(f"dataset {dataset!r} is unknown: use one of {', '.join(DATASETS)}")
    if not isinstance(profile, str) or profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is unknown: use one of {', '.join(PROFILES)}")
    if not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise ValueError(f"device {device!r} is invalid: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not isinstance(retrain, bool):
        raise ValueError(f"retrain must be True or False; got {retrain!r}")
    root_text = _optional_text(data_root)
    root = resolve_path(root_text, base) if root_text else None
    if dataset != "synthetic":
        if root is None:
            raise ValueError(
                f"dataset {dataset!r} needs data_root: the folder that holds the {dataset} files "
                "(see the README's data section), e.g. data_root='../shared/data/cuhk01'"
            )
        if not root.exists():
            raise FileNotFoundError(
                f"data_root {str(root)!r} does not exist: pass data_root=<the folder holding {dataset}> "
                f"(relative paths are resolved against {workbook_base() if base is None else base})"
            )
    if root is not None and root.is_file() and dataset != "cuhk03":  # cuhk03 may be given its .mat file
        raise NotADirectoryError(f"data_root {str(root)!r} is a file: pass the folder holding {dataset}")
    depths = None if depth is None else parse_depths(depth)
    shown = None if attention_depths is None else parse_attention_depths(attention_depths)
    for name, value in (("runs_dir", runs_dir), ("figures_dir", figures_dir)):
        if _optional_text(value) is None:
            raise ValueError(f"{name} must be a folder path; got {value!r}")
        if resolve_path(value, base).is_file():
            raise NotADirectoryError(f"{name} {str(resolve_path(value, base))!r} is a file: pass a folder path")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ValueError(f"overrides must be a dict of ExperimentConfig fields, e.g. {{'epochs': 1}}; "
                         f"got {overrides!r}")
    try:
        get_profile(profile, **dict(overrides or {}))  # a bad field fails here, not in the middle of a notebook
    except (TypeError, ValueError) as err:
        raise ValueError(f"overrides: {err}") from None
    return WorkbookParameters(
        dataset=dataset,
        data_root=root,
        profile=profile,
        device=device,
        runs_dir=resolve_path(runs_dir, base),
        figures_dir=figures_dir_for(figures_dir, dataset, base),
        depths=depths,
        retrain=retrain,
        overrides=dict(overrides or {}),
        attention_depths=shown,
    )


def open_workbook(**parameters: Any) -> "Workbook":
    """:func:`check_parameters` then a :class:`Workbook` on them: the first call of every notebook."""
    return Workbook(check_parameters(**parameters))


# ---------------------------------------------------------------------------------------------- workbook
def _percent_row(results: Mapping) -> dict:
    return {
        "depths": tuple(results.get("depths") or ()),
        "R1": results.get("rank1"),
        "R5": results.get("rank5"),
        "R10": results.get("rank10"),
        "mAP": results.get("mAP"),
        "run": results.get("name", ""),
    }


def _protocol_note(info: Mapping) -> str:
    """The dataset's protocol options (split, seed, image type...) as 'key=value' text; no local paths."""
    parts = [f"{k}={v}" for k, v in sorted(info.items())
             if isinstance(v, (str, int, float, bool)) and "dir" not in k and "root" not in k and "path" not in k]
    return ", ".join(parts)


def _metrics_from_cmc(cmc, mAP) -> dict:
    cmc = [float(v) for v in cmc]

    def rank(k: int) -> float:
        return 100.0 * cmc[min(k, len(cmc)) - 1]

    return {"R1": rank(1), "R5": rank(5), "R10": rank(10), "mAP": 100.0 * float(mAP)}


@dataclass
class Evaluation:
    """Features and retrieval results of one run on the test split (distances query × gallery)."""

    query: list
    gallery: list
    distmat: Any
    cmc: Any
    mAP: float
    query_feats: Any
    gallery_feats: Any


class Workbook:
    """What the notebooks do, one method per step, for one dataset/profile/device and runs folder."""

    def __init__(self, params: WorkbookParameters):
        self.params = params
        self._dataset = None
        self._evaluations: dict[tuple, Evaluation] = {}
        self._model: tuple | None = None  # (depths, finished_at, model): the last model loaded

    def __repr__(self) -> str:
        p = self.params
        return (
            f"Workbook(dataset={p.dataset!r}, data_root={str(p.data_root) if p.data_root else None!r}, "
            f"profile={p.profile!r}, device={p.device!r}, runs_dir={str(p.runs_dir)!r}, "
            f"figures_dir={str(p.figures_dir)!r}, retrain={p.retrain})"
        )

    # ------------------------------------------------------------------ configs and runs
    @property
    def depths(self) -> tuple[int, ...]:
        """The ``depth`` parameter of notebook 03 (``()`` when not given)."""
        return self.params.depths or ()

    def config(self, depths: Iterable[int] = ()):
        """The ExperimentConfig of configuration ``depths`` under this workbook's profile and dataset."""
        p = self.params
        fields: dict[str, Any] = {
            "dataset": p.dataset,
            "data_root": str(p.data_root) if p.data_root else None,
            "runs_dir": str(p.runs_dir),
            "device": p.device,
            "depths": tuple(depths),
        }
        if p.dataset != "synthetic":
            fields["dataset_options"] = {}
        fields.update(p.overrides)
        return get_profile(p.profile, **fields)

    def run_dir(self, depths: Iterable[int] = ()) -> Path:
        return Path(self.config(depths).run_dir())

    def train(self, depths: Iterable[int] = (), retrain: bool | None = None) -> dict:
        """Train configuration ``depths`` (``()`` = baseline) or reuse its finished run; its results dict."""
        from sagkit.engine import train
        from sagkit.viz import is_headless

        retrain = self.params.retrain if retrain is None else retrain
        # progress bars in a live notebook; none in executed (papermill) notebooks, which keep every line
        results = train(self.config(tuple(depths)), retrain=retrain, progress=not is_headless())
        self._evaluations.pop(tuple(depths), None)
        return results

    def is_finished(self, depths: Iterable[int] = ()) -> bool:
        from sagkit.engine.run_dir import is_complete

        return is_complete(self.run_dir(depths))

    def results(self, depths: Iterable[int] = ()) -> dict:
        """results.json of a finished configuration (FileNotFoundError naming the run otherwise; RunLocked
        while another process trains it)."""
        from sagkit.engine.run_dir import read_results
        from sagkit.engine.run_lock import check_not_training

        run_dir = self.run_dir(depths)
        results = read_results(run_dir)
        check_not_training(run_dir, bool(results and results.get("complete")))
        if not results or not results.get("complete"):
            raise FileNotFoundError(
                f"no finished run in {run_dir}: train it first (wb.train({tuple(depths)}) or notebook 03)"
            )
        return results

    def metrics(self, depths: Iterable[int] = ()):
        """metrics.csv of a run as a DataFrame (one row per epoch)."""
        import pandas as pd

        path = self.run_dir(depths) / "metrics.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: has the run started?")
        return pd.read_csv(path)

    def finished_runs(self) -> list[dict]:
        """results.json of every finished run in runs_dir made with this dataset and profile (any depths),
        oldest first."""
        from sagkit.engine import find_runs

        found = []
        for results in find_runs(self.params.runs_dir):
            try:
                config = ExperimentConfig.from_run(dict(results["config"]))
                wanted = self.config(config.depths)
            except (KeyError, TypeError, ValueError):
                continue
            # Exactly the run this workbook would train for these depths (a run predating a new field is not).
            if config.result_fields() == wanted.result_fields():
                found.append(results)
        return sorted(found, key=lambda r: str(r.get("finished_at", "")))

    def summary(self, results: Mapping):
        """The headline numbers of one run's results.json as a pandas Series."""
        import pandas as pd

        keys = ("name", "dataset", "backbone", "depths", "rank1", "rank5", "rank10", "mAP", "rerank_rank1",
                "rerank_mAP", "best_epoch", "epochs", "device", "finished_at")
        row = {k: results[k] for k in keys if k in results}
        if "timings" in results:
            row["train_time_s"] = results["timings"].get("total_s")
        return pd.Series(row, dtype=object)

    # ------------------------------------------------------------------ tables
    def table1(self, paper_dataset: str | None = None):
        """Table 1 from every finished configuration in runs_dir, paper order, beside the paper's numbers."""
        from sagkit.tables import assemble_table1

        rows = [_percent_row(r) for r in self.finished_runs()]
        return assemble_table1(rows, self.params.dataset, paper_dataset=paper_dataset)

    def table2(self, dataset=None):
        """Table 2: this dataset's counts (``source = measured``) above the paper's three rows."""
        import pandas as pd

        from sagkit import reference

        dataset = dataset if dataset is not None else self.load_dataset()
        paper = reference.load_table(2)
        measured = {"dataset": self.params.dataset, "name": self.params.dataset, "citation": "this workbook"}
        measured.update(dataset.summary())
        measured["note"] = _protocol_note(getattr(dataset, "info", None) or {})
        frame = pd.concat([pd.DataFrame([measured]), paper], ignore_index=True)
        frame.insert(3, "source", ["measured"] + ["reported"] * len(paper))
        return frame

    def sota_rows(self, number: int, configs: Sequence[Iterable[int]] = ((), (4,))) -> list[dict]:
        """Measured rows of comparison table ``number`` (3-5) for the finished ``configs``."""
        from sagkit.tables import config_label, measured_sota_rows

        rows = []
        for depths in configs:
            depths = tuple(depths)
            if not self.is_finished(depths):
                continue
            name = "Baseline" if not depths else f"SAG {config_label(depths)}"
            config = self.config(depths)
            note = f"{config.backbone}, profile {self.params.profile}, run {config.run_name()}"
            rows += measured_sota_rows(number, name, self.params.dataset, self.measurements(depths), note=note)
        return rows

    # ------------------------------------------------------------------ output files
    def save_figure(self, fig, name: str) -> list[Path]:
        """Write ``fig`` as ``<figures_dir>/<name>.png`` and ``.pdf`` atomically."""
        from sagkit.viz import save_figure

        return save_figure(fig, self.params.figures_dir, name)

    def write_table(self, frame, name: str, title: str | None = None) -> tuple[Path, Path]:
        """Write ``<figures_dir>/<name>.csv`` and ``.md`` atomically."""
        from sagkit.tables import write_table

        return write_table(frame, self.params.figures_dir, name, title=title)

    # ------------------------------------------------------------------ data
    def load_dataset(self):
        """The ReIDDataset of this workbook (loaded once)."""
        if self._dataset is None:
            from sagkit.data import load_dataset

            config = self.config(())
            self._dataset = load_dataset(config.dataset, config.data_root, **config.dataset_options)
        return self._dataset

    def splits(self) -> dict:
        ds = self.load_dataset()
        return {"train": ds.train, "query": ds.query, "gallery": ds.gallery}

    def figure1_groups(self, seed: int = 0, split: str = "train") -> dict:
        """Figure 1's sample groups from ``split`` (synthetic data: its metadata marks look-alikes, occluders)."""
        from sagkit.viz.samples import figure1_groups, read_synthetic_metadata

        ds = self.load_dataset()
        metadata = read_synthetic_metadata(ds.root) if self.params.dataset == "synthetic" else None
        return figure1_groups(getattr(ds, split), seed=seed, metadata=metadata)

    def sample_queries(self, num: int, seed: int = 0) -> list:
        """``num`` query records of distinct identities, picked with ``seed`` (then sorted by pid)."""
        ds = self.load_dataset()
        by_pid: dict[int, Any] = {}
        for record in ds.query:
            by_pid.setdefault(record.pid, record)
        pids = sorted(by_pid)
        chosen = random.Random(seed).sample(pids, min(num, len(pids)))
        return [by_pid[pid] for pid in sorted(chosen)]

    # ------------------------------------------------------------------ models and features
    def device(self):
        """The workbook's torch device; on the CPU, glibc malloc is set to retain freed memory as in training."""
        from sagkit.engine import resolve_device
        from sagkit.engine.device import retain_freed_memory

        device = resolve_device(self.params.device, quiet=True)
        if device.type == "cpu" and self.config(()).retain_memory:
            retain_freed_memory()
        return device

    def load_model(self, depths: Iterable[int] = ()):
        """The trained model of a finished run (best checkpoint), eval mode, on the workbook's device."""
        import torch

        from sagkit.engine import load_model_from_run

        depths = tuple(depths)
        stamp = self.results(depths).get("finished_at")
        if self._model is None or self._model[:2] != (depths, stamp):
            model = load_model_from_run(self.run_dir(depths), device=self.device())
            if self.config(depths).channels_last:
                model = model.to(memory_format=torch.channels_last)
            self._model = (depths, stamp, model)
        return self._model[2]

    def test_transform(self, model, depths: Iterable[int] = ()):
        from sagkit.data import build_transforms

        config = self.config(tuple(depths))
        return build_transforms(config.height, config.width, train=False, mean=model.input_mean, std=model.input_std)

    def _protocol(self) -> str:
        info = getattr(self.load_dataset(), "info", None) or {}
        return str(info.get("eval_protocol", "market"))

    def _features(self, depths: tuple, split: str, records: Sequence):
        """N×D features of ``records`` under run ``depths``; cached on disk per run and split, so that
        the notebooks (separate kernels) extract each split once per trained model."""
        import torch

        from sagkit.engine import extract_split_features
        from sagkit.engine.checkpoint import atomic_torch_save

        results = self.results(depths)
        digest = hashlib.sha256("\n".join(r.path for r in records).encode()).hexdigest()[:10]
        cache = self._cache_path(results, f"{split}-{digest}-features.pt")
        if cache.is_file():
            return torch.load(cache, map_location="cpu", weights_only=True)
        model, config = self.load_model(depths), self.config(depths)
        feats = extract_split_features(
            model, list(records), self.test_transform(model, depths), device=self.device(),
            batch_size=config.eval_batch_size, num_workers=0, flip=config.flip_eval,
            channels_last=config.channels_last,
        )
        atomic_torch_save(feats, cache)
        return feats

    def evaluate(self, depths: Iterable[int] = ()) -> Evaluation:
        """Test-split features, distances, CMC curve and mAP of a finished run (kept for later calls)."""
        import numpy as np

        from sagkit.evaluation import compute_distance_matrix, evaluate

        depths = tuple(depths)
        if depths in self._evaluations:
            return self._evaluations[depths]
        ds = self.load_dataset()
        q = self._features(depths, "query", ds.query)
        g = self._features(depths, "gallery", ds.gallery)
        distmat = compute_distance_matrix(q, g, metric="euclidean")
        cmc, mAP = evaluate(distmat, *_ids(ds.query, ds.gallery), max_rank=min(50, len(ds.gallery)),
                            protocol=self._protocol())[:2]
        result = Evaluation(list(ds.query), list(ds.gallery), distmat, np.asarray(cmc), float(mAP), q, g)
        self._evaluations[depths] = result
        return result

    def measurements(self, depths: Iterable[int] = ()) -> dict:
        """Single- and multi-query metrics, with and without re-ranking, in percent (cached per run).

        Single query comes from results.json; multi-query pools the features of each query identity's
        images in the query's camera (Market-1501's ``gt_bbox`` images when the dataset has them, else
        the query images themselves) and is measured here.
        """
        import json

        from sagkit.engine.checkpoint import atomic_write_json

        depths = tuple(depths)
        results = self.results(depths)
        cache = self._cache_path(results, "measurements.json")
        if cache.is_file():
            return json.loads(cache.read_text())
        names = (("R1", "rank1"), ("R5", "rank5"), ("R10", "rank10"), ("mAP", "mAP"))
        out = {"single": {key: results[name] for key, name in names}}
        if "rerank_rank1" in results:
            out["single_rr"] = {key: results[f"rerank_{name}"] for key, name in names}
        out.update(self._multi_query(depths))
        atomic_write_json(cache, out)
        return out

    def _multi_query(self, depths: tuple) -> dict:
        import torch

        from sagkit.evaluation import compute_distance_matrix, evaluate, pool_multi_query, re_rank_features

        ds, config = self.load_dataset(), self.config(depths)
        ev = self.evaluate(depths)
        records, feats = list(ev.query), ev.query_feats
        extra = list(getattr(ds, "multi_query", None) or [])
        if extra:
            records += extra
            feats = torch.cat([feats, self._features(depths, "multi_query", extra)])
        q_pids, q_cams = _ids(records, [])[::2]
        pooled, q_pids, q_cams = pool_multi_query(feats, q_pids, q_cams, mode="mean", normalize=True)
        _, g_pids, _, g_cams = _ids([], ev.gallery)
        kwargs = dict(max_rank=min(50, len(ev.gallery)), protocol=self._protocol())
        distmat = compute_distance_matrix(pooled, ev.gallery_feats, metric="euclidean")
        out = {"multi": _metrics_from_cmc(*evaluate(distmat, q_pids, g_pids, q_cams, g_cams, **kwargs)[:2])}
        if config.rerank:
            rr = re_rank_features(pooled, ev.gallery_feats, k1=config.rerank_k1, k2=config.rerank_k2,
                                  lambda_value=config.rerank_lambda)
            out["multi_rr"] = _metrics_from_cmc(*evaluate(rr, q_pids, g_pids, q_cams, g_cams, **kwargs)[:2])
        return out

    def _cache_path(self, results: Mapping, name: str) -> Path:
        stamp = hashlib.sha256(f"{results.get('name')}|{results.get('finished_at')}".encode()).hexdigest()[:10]
        folder = self.params.runs_dir / "workbook_cache"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{results.get('name')}-{stamp}-{name}"

    # ------------------------------------------------------------------ pictures from models
    def display_image(self, record, depths: Iterable[int] = ()):
        """A record's image as the model sees it (resized to the config's H×W), H×W×3 uint8."""
        from sagkit.viz import resize_image, to_uint8_image

        config = self.config(tuple(depths))
        return resize_image(to_uint8_image(record.path), (config.height, config.width))

    def ranked_examples(self, depths: Iterable[int] = (), num_queries: int = 4, topk: int = 10, seed: int = 0) -> dict:
        """Keyword arguments for :func:`sagkit.viz.plot_ranked_lists`: sample queries and their top-k."""
        depths = tuple(depths)
        out: dict[str, list] = {"query_images": [], "gallery_images": [], "matches": [], "titles": []}
        for record, idx, matches in self._ranked(depths, self.sample_queries(num_queries, seed), topk):
            gallery = self.evaluate(depths).gallery
            out["query_images"].append(self.display_image(record, depths))
            out["gallery_images"].append([self.display_image(gallery[i], depths) for i in idx])
            out["matches"].append(matches.tolist())
            out["titles"].append(f"query id {record.pid} (camera {record.camid}): {int(matches.sum())} of top-{topk} right")
        return out

    def _ranked(self, depths: tuple, queries: Sequence, topk: int) -> list:
        """[(query record, top-k gallery indices, match flags)] under run ``depths``."""
        from sagkit.viz import rank_gallery

        ev = self.evaluate(depths)
        index = {r.path: i for i, r in enumerate(ev.query)}
        _, g_pids, _, g_cams = _ids([], ev.gallery)
        out = []
        for record in queries:
            idx, matches = rank_gallery(ev.distmat[index[record.path]], record.pid, record.camid, g_pids, g_cams,
                                        topk=topk)
            out.append((record, idx, matches))
        return out

    def _grids(self, depth: int, records: Sequence):
        """N×1×h×w attention grids of ``records`` from the single-depth run D``depth`` (batched)."""
        import torch

        model = self.load_model((depth,))
        transform = self.test_transform(model, (depth,))
        size = self.config((depth,)).eval_batch_size
        maps = []
        for start in range(0, len(records), size):
            batch = torch.stack([transform(_open_rgb(r.path)) for r in records[start:start + size]])
            maps.append(model.attention_grids(batch.to(self.device()))[depth].float().cpu())
        return torch.cat(maps)

    def attention_grids(self, records: Sequence, depths: Iterable[int] = SINGLE_DEPTHS) -> tuple[list, dict]:
        """(images H×W×3, {d: N×1×h×w}) for single-depth runs D``d``: each depth's grid from its own model."""
        images = [self.display_image(r, ()) for r in records]
        return images, {depth: self._grids(depth, records) for depth in depths}

    def baseline_activations(self, records: Sequence) -> dict:
        """{"baseline channel norm", "baseline Grad-CAM": N×h×w} of ``records`` (sagkit.viz.activation)."""
        import torch

        from sagkit.viz.activation import named_activation_maps

        model, size = self.load_model(()), self.config(()).eval_batch_size
        transform = self.test_transform(model, ())
        batches = (torch.stack([transform(_open_rgb(r.path)) for r in records[s:s + size]]).to(self.device())
                   for s in range(0, len(records), size))
        return named_activation_maps(model, batches)

    def explorer(self, depths: Iterable[int] = SINGLE_DEPTHS, num_images: int = 8, num_queries: int = 6,
                 topk: int = 5, seed: int = 0, baseline: bool = True):
        """An :class:`sagkit.viz.AttentionExplorer` over sample queries: overlays at each depth (and the
        baseline's activation maps unless ``baseline=False``) and, for each depth's model, the ranked
        gallery with its own grids."""
        from sagkit.viz import AttentionExplorer, RankedQuery

        depths = tuple(depths)
        samples = self.sample_queries(max(num_images, num_queries), seed)
        images = [self.display_image(r, ()) for r in samples]
        grids, queries = {}, {}
        for depth in depths:
            ranked = self._ranked((depth,), samples[:num_queries], topk)
            gallery = self.evaluate((depth,)).gallery
            shown = [gallery[i] for _, idx, _ in ranked for i in idx]
            maps = self._grids(depth, list(samples) + shown)
            grids[depth] = maps[: len(samples)]
            queries[depth], offset = [], len(samples)
            for q, (record, idx, matches) in enumerate(ranked):
                queries[depth].append(RankedQuery(
                    image=images[q],
                    gallery=[self.display_image(gallery[i], (depth,)) for i in idx],
                    matches=matches.tolist(),
                    grids={depth: maps[q]},
                    gallery_grids={depth: maps[offset: offset + len(idx)]},
                    title=f"query id {record.pid} / cam {record.camid}",
                ))
                offset += len(idx)
        titles = [f"id {r.pid} / cam {r.camid}" for r in samples]
        activations = self.baseline_activations(samples) if baseline else None
        return AttentionExplorer(images, grids, queries=queries, titles=titles, activations=activations)


def _ids(query: Sequence, gallery: Sequence) -> tuple:
    """(q_pids, g_pids, q_camids, g_camids) int64 arrays, the argument order of ``evaluate``."""
    import numpy as np

    def arr(records, field):
        return np.array([getattr(r, field) for r in records], dtype=np.int64)

    return arr(query, "pid"), arr(gallery, "pid"), arr(query, "camid"), arr(gallery, "camid")


def _open_rgb(path: str):
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


# ---------------------------------------------------------------------------------------------- runner
def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (sagkit is installed in editable mode)."""
    folder = REPO_ROOT / "notebooks"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} does not exist: run the workbook from a checkout of the sagkit repository "
            "(pip install -e .), where notebooks/ sits next to the sagkit package"
        )
    return folder


def workbook_plan(configs: Sequence[tuple[int, ...]] = DEFAULT_DEPTHS) -> list[tuple[str, dict, str]]:
    """(notebook, extra parameters, output stem) in execution order: 01, 02, 03 per config, 04, 05."""
    from sagkit.tables import config_label

    plan: list[tuple[str, dict, str]] = [("01_data_exploration", {}, "01_data_exploration"),
                                         ("02_baseline", {}, "02_baseline")]
    for depths in configs:
        value: Any = depths[0] if len(depths) == 1 else (",".join(map(str, depths)) if depths else 0)
        plan.append(("03_ablation", {"depth": value}, f"03_ablation_{config_label(depths).replace(',', '-')}"))
    plan.append(("04_sota_tables", {}, "04_sota_tables"))
    singles = [d[0] for d in configs if len(d) == 1]
    plan.append(("05_attention_heatmaps", {"depths": ",".join(map(str, singles or [4])), "interactive": False},
                 "05_attention_heatmaps"))
    return plan


@contextlib.contextmanager
def _environment(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _ensure_log_handler() -> None:
    logger = logging.getLogger("sagkit")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}m{secs:04.1f}s" if minutes else f"{secs:.1f}s"


def run_workbook(
    dataset: str = "synthetic",
    data_root: str | os.PathLike | None = None,
    profile: str = "cpu",
    device: str = "auto",
    runs_dir: str | os.PathLike = "runs",
    figures_dir: str | os.PathLike = "figures",
    depths: Any = (0, 1, 2, 3, 4),
    retrain: bool = False,
    notebooks: Sequence[str] | None = None,
    output_dir: str | os.PathLike | None = None,
    kernel_name: str = "python3",
    parameters: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Execute notebooks 01..05 with papermill, in order; 03 once per configuration in ``depths``.

    Each notebook trains what it needs or reuses finished runs (``retrain=True`` retrains each
    configuration once). Executed notebooks go to ``output_dir`` (default ``<runs_dir>/notebooks/
    <dataset>/``), figures and tables to ``figures_dir`` (``figures_dir/<dataset>`` for real data).
    ``notebooks`` restricts to some of :data:`NOTEBOOKS`; ``parameters`` are passed to every notebook.
    Logs one line per notebook and the total time; returns the executed notebooks' paths.
    Stops at the first failing notebook (papermill's PapermillExecutionError, naming the output file).
    """
    import papermill

    params = check_parameters(dataset, data_root, profile, device, runs_dir, figures_dir, retrain)
    configs = parse_depth_list(depths)
    if notebooks is not None:
        unknown = sorted(set(notebooks) - set(NOTEBOOKS))
        if unknown:
            raise ValueError(f"unknown notebook(s) {unknown}: choose from {', '.join(NOTEBOOKS)}")
    source = notebooks_dir()
    out_dir = resolve_path(output_dir) if output_dir is not None else params.runs_dir / "notebooks" / dataset
    out_dir.mkdir(parents=True, exist_ok=True)
    common = {
        "dataset": params.dataset,
        "data_root": str(params.data_root) if params.data_root else None,
        "profile": params.profile,
        "device": params.device,
        "runs_dir": str(params.runs_dir),
        "figures_dir": str(resolve_path(figures_dir)),
        **dict(parameters or {}),
    }
    plan = [step for step in workbook_plan(configs) if notebooks is None or step[0] in notebooks]
    _ensure_log_handler()
    log.info("sagkit workbook: %d notebooks, dataset=%s profile=%s device=%s; runs in %s, figures in %s",
             len(plan), params.dataset, params.profile, params.device, params.runs_dir, params.figures_dir)
    retrained: set = set()
    executed = []
    start = time.perf_counter()
    for i, (name, extra, stem) in enumerate(plan, start=1):
        step_params = {**common, **extra}
        trains = _trained_configs(name, extra, configs)
        step_params["retrain"] = bool(retrain and trains and not trains <= retrained)
        retrained |= trains
        label = name + "".join(f" {k}={v}" for k, v in extra.items() if k != "interactive")
        output = out_dir / f"{stem}.ipynb"
        log.info("[%d/%d] %s ...", i, len(plan), label)
        t0 = time.perf_counter()
        with _environment(SAGKIT_HEADLESS="1"):
            papermill.execute_notebook(
                str(source / f"{name}.ipynb"), str(output), parameters=step_params, kernel_name=kernel_name,
                cwd=str(workbook_base()), progress_bar=False, log_output=False,
            )
        log.info("[%d/%d] %s done in %s -> %s", i, len(plan), label, _duration(time.perf_counter() - t0), output)
        executed.append(output)
    log.info("sagkit workbook: %d notebooks in %s; figures and tables in %s", len(plan),
             _duration(time.perf_counter() - start), params.figures_dir)
    return executed


def _trained_configs(name: str, extra: Mapping, configs: Sequence[tuple]) -> set:
    if name == "02_baseline":
        return {()}
    if name == "03_ablation":
        return {parse_depths(extra["depth"])}
    if name == "04_sota_tables":
        return {(4,)}
    if name == "05_attention_heatmaps":
        return {(d,) for d in parse_depths(extra["depths"])}
    return set()


__all__ = [
    "DATASETS",
    "DEFAULT_DEPTHS",
    "DEPTH_HELP",
    "Evaluation",
    "NOTEBOOKS",
    "PROFILES",
    "Workbook",
    "WorkbookParameters",
    "check_parameters",
    "figures_dir_for",
    "notebooks_dir",
    "open_workbook",
    "parse_attention_depths",
    "parse_depth_list",
    "parse_depths",
    "resolve_path",
    "run_workbook",
    "workbook_base",
    "workbook_plan",
]
