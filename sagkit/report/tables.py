"""Assemble the paper's tables from measured results and write them as CSV and Markdown.

Measured rows are plain dicts in percent with the metric names of results.json: ``{"depths": (4,),
"rank1": 61.2, "rank5": ..., "rank10": ..., "mAP": ..., "run": "<run name>"}`` for Table 1, and
``{"single": {...}, "single_rr": {...}, "multi": {...}, "multi_rr": {...}}`` evaluations for Tables 3-5
(``Retrieval.evaluations()``). Tables print them under the paper's column names (``COLUMNS``: R1, R5, R10,
mAP). The published numbers come from
:mod:`sagkit.report.reference`; every comparison row says whether it was ``reported`` (paper) or ``measured``
(this workbook) and which dataset it was measured on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from sagkit.report import reference
from sagkit.atomic import atomic_write_text, make_folder
from sagkit.evaluation.bootstrap import INTERVAL_METRICS, SUMMARY_PREFIXES
from sagkit.report.seed_stats import seed_statistics, stat_columns
from sagkit.runs.record import RunResults

METRICS = INTERVAL_METRICS  # the four metrics of the paper's tables
COLUMNS = {"rank1": "R1", "rank5": "R5", "rank10": "R10", "mAP": "mAP"}  # the paper's column names
PAPER_COLUMNS = tuple(COLUMNS[m] for m in METRICS)
STAT_COLUMNS = stat_columns(COLUMNS)  # Table 1's columns after the paper's: seeds, spread, interval, comparison
TABLE1_ORDER = reference.TABLE1_ORDER
SOTA_NAMES = {3: "table3_market1501", 4: "table4_cuhk03", 5: "table5_dukemtmc"}
SOTA_TITLES = {3: "Table 3. Comparison results on Market-1501", 4: "Table 4. Comparison results on CUHK03",
               5: "Table 5. Comparison results on DukeMTMC-reID"}
DEFAULT_PAPER_DATASET = "market1501"


def config_label(depths: Iterable[int]) -> str:
    """Table 1's short name for a configuration: () → 'Baseline', (4,) → 'D4', (1, 2) → 'D1,2'."""
    depths = tuple(sorted(int(d) for d in depths))
    return "Baseline" if not depths else "D" + ",".join(str(d) for d in depths)


def label_depths(label: str) -> tuple[int, ...]:
    """Inverse of :func:`config_label`."""
    if label == "Baseline":
        return ()
    if not label.startswith("D"):
        raise ValueError(f"not a Table 1 configuration label: {label!r} (expected 'Baseline' or e.g. 'D1,2')")
    return tuple(int(d) for d in label[1:].split(","))


def order_key(label: str) -> tuple:
    if label in TABLE1_ORDER:
        return (0, TABLE1_ORDER.index(label), ())
    return (1, len(label_depths(label)), label_depths(label))


def rows_by_config(measured: Iterable[Mapping]) -> dict[str, dict[int, Mapping]]:
    """{config label: {seed: row}} of measured Table 1 rows (each with ``config`` or ``depths``; ``seed``
    defaults to 0)."""
    out: dict[str, dict[int, Mapping]] = {}
    for item in measured:
        label = item["config"] if "config" in item else config_label(item["depths"])
        out.setdefault(label, {})[int(item.get("seed", 0))] = item
    return out


def assemble_table1(
    measured: Iterable[Mapping], dataset: str, paper_dataset: str | None = None
) -> pd.DataFrame:
    """Table 1 from measured rows, in the paper's row order, beside the paper's numbers, with seeds' statistics.

    ``measured``: dicts with ``depths`` (or ``config``), ``rank1``, ``rank5``, ``rank10``, ``mAP`` in percent,
    optionally ``run``, ``seed`` (default 0) and ``queries`` (the run's single-query
    :class:`~sagkit.evaluation.query_scores.QueryScores`), e.g. :func:`table1_row` of a results.json. A later
    row for the same configuration and seed replaces an earlier one. R1..mAP are means over a configuration's
    seeds (:func:`sagkit.report.seed_stats.seed_statistics` adds their spread, 95% interval and the paired
    comparison with the baseline). The paper's numbers are those of ``paper_dataset`` (default: ``dataset`` when the
    paper reports it, else Market-1501); configurations not in the paper come after its eight rows.
    Columns: config, R1, R5, R10, mAP, run, dataset, paper_R1..paper_mAP, paper_dataset, note, then
    :data:`STAT_COLUMNS`.
    """
    if paper_dataset is None:
        paper_dataset = dataset if dataset in reference.PAPER_DATASETS else DEFAULT_PAPER_DATASET
    paper = reference.table1(paper_dataset).set_index("config")
    by_config = rows_by_config(measured)
    baseline = by_config.get("Baseline", {})
    out = []
    for label in sorted(by_config, key=order_key):
        seeds = dict(sorted(by_config[label].items()))
        row = {"config": label}
        for metric in METRICS:
            values = [float(v) for v in (item.get(metric) for item in seeds.values()) if v is not None]
            row[COLUMNS[metric]] = sum(values) / len(values) if values else math.nan
        row["run"] = "; ".join(str(item.get("run", "")) for item in seeds.values())
        row["dataset"] = dataset
        if label in paper.index:
            for column in PAPER_COLUMNS:
                row[f"paper_{column}"] = float(paper.loc[label, column])
            row["note"] = paper.loc[label, "note"]
        else:
            row.update({f"paper_{c}": math.nan for c in PAPER_COLUMNS})
            row["note"] = "not in the paper"
        row["paper_dataset"] = paper_dataset
        row.update(seed_statistics(seeds, baseline if label != "Baseline" else {}, COLUMNS, label))
        out.append(row)
    columns = ["config", *PAPER_COLUMNS, "run", "dataset", *[f"paper_{c}" for c in PAPER_COLUMNS], "paper_dataset",
               "note", *STAT_COLUMNS]
    return pd.DataFrame(out, columns=columns)


def table1_row(results: RunResults, queries=None) -> dict:
    """A measured Table 1 row from one run's results record (``queries``: its single-query QueryScores)."""
    row = {"depths": results.depths, "run": results.name, "seed": results.seed}
    row.update({metric: results.metrics[metric] for metric in METRICS})
    if queries is not None:
        row["queries"] = queries
    return row


def spread(mean: float, sd: float, low: float, high: float, sign: str = "") -> str:
    """``mean ± sd [low, high]`` with two decimals (``sign="+"`` for differences); parts that are NaN left out."""
    if math.isnan(mean):
        return "-"
    text = format(mean, f"{sign}.2f") + ("" if math.isnan(sd) else f" ± {sd:.2f}")
    return text + ("" if math.isnan(low) else f" [{low:{sign}.2f}, {high:{sign}.2f}]")


def table1_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as the README shows it: per configuration its seeds, R1 and mAP as ``mean ± sd [low, high]``
    (sd across seeds, 95% interval) and the difference from the baseline ``d [low, high]`` with its verdict."""
    out = []
    for row in frame.to_dict("records"):
        item = {"config": row["config"], "seeds": row["seeds"]}
        for column in ("R1", "mAP"):
            item[column] = spread(row[column], row[f"{column}_sd"], row[f"{column}_low"], row[f"{column}_high"])
        for column in ("R1", "mAP"):
            item[f"{column} vs baseline"] = spread(row[f"d{column}"], math.nan, row[f"d{column}_low"],
                                                   row[f"d{column}_high"], "+")
            item[f"verdict ({column})"] = row[f"verdict_{column}"] or "-"
        out.append(item)
    return pd.DataFrame(out)


def protocol_note(info: Mapping) -> str:
    """A dataset's protocol options (split, seed, image type...) as 'key=value' text; no local paths."""
    parts = [f"{k}={v}" for k, v in sorted(info.items())
             if isinstance(v, (str, int, float, bool)) and "dir" not in k and "root" not in k and "path" not in k]
    return ", ".join(parts)


def assemble_table2(dataset, name: str) -> pd.DataFrame:
    """Table 2: the counts of ``dataset`` (a ReIDDataset read as ``name``; ``source = measured``) above the
    paper's rows."""
    paper = reference.load_table(2)
    measured = {"dataset": name, "name": name, "citation": "this workbook"}
    measured.update(dataset.summary())
    measured["note"] = protocol_note(dataset.info or {})
    frame = pd.concat([pd.DataFrame([measured]), paper], ignore_index=True)
    frame.insert(3, "source", ["measured"] + ["reported"] * len(paper))
    return frame


def measured_sota_rows(
    number: int, method: str, dataset: str, evaluations: Mapping[str, Mapping[str, float]], note: str = "",
    intervals: Mapping[str, Sequence[float]] | None = None,
) -> list[dict]:
    """Rows for comparison table ``number`` from one model's evaluations (percent).

    ``evaluations`` keys: ``single`` (required), ``multi``, ``single_rr``, ``multi_rr`` (each a dict
    with rank1, rank5, rank10, mAP). Gives ``method`` and, when re-ranked numbers exist, ``method+RR``.
    Table 3 uses single- and multi-query R1/mAP; Tables 4 and 5 single-query R1/R5/R10/mAP.
    ``intervals``: the run's bootstrap intervals named as in results.json (``rank1``, ``rerank_mAP``,
    ``multi_rank1`` ..., :func:`sagkit.evaluation.bootstrap.run_intervals`); each measured column ``C`` then
    gets ``C_low`` and ``C_high``.
    """
    if number not in SOTA_NAMES:
        raise ValueError(f"comparison tables are 3, 4 and 5; got {number!r}")
    if "single" not in evaluations:
        raise ValueError("evaluations need at least the 'single' (single-query, no re-ranking) entry")
    rows = []
    for suffix, single_key, multi_key in (("", "single", "multi"), ("+RR", "single_rr", "multi_rr")):
        single = evaluations.get(single_key)
        if single is None:
            continue
        row = {
            "method": method + suffix,
            "citation": "this workbook",
            "source": "measured",
            "dataset": dataset,
            "arxiv_only": False,
        }
        if number == 3:  # single- and multi-query R1/mAP
            cells = {"sq_R1": (single_key, "rank1"), "sq_mAP": (single_key, "mAP"), "mq_R1": (multi_key, "rank1"),
                     "mq_mAP": (multi_key, "mAP")}
        else:
            cells = {COLUMNS[metric]: (single_key, metric) for metric in METRICS}
        row.update({column: (evaluations.get(evaluation) or {}).get(metric, math.nan)
                    for column, (evaluation, metric) in cells.items()})
        if intervals is not None:
            for column, (evaluation, metric) in cells.items():
                low, high = intervals.get(SUMMARY_PREFIXES[evaluation] + metric, (math.nan, math.nan))
                row[f"{column}_low"], row[f"{column}_high"] = low, high
        row["note"] = "; ".join(part for part in (note, "k-reciprocal re-ranking" if suffix else "") if part)
        rows.append(row)
    return rows


def assemble_sota_table(number: int, measured_rows: Sequence[Mapping] = ()) -> pd.DataFrame:
    """Paper Table 3, 4 or 5 (``source = reported``) followed by ``measured_rows`` (``source = measured``);
    columns the paper has not (the measured intervals) come last, empty in the paper's rows."""
    published = reference.sota_table(number).copy()
    published.insert(2, "source", "reported")
    published.insert(3, "dataset", reference.SOTA_TABLE_DATASET[number])
    rows = [{**row, "arxiv_only": bool(row.get("arxiv_only", False))} for row in measured_rows]
    extra = [c for row in rows for c in row if c not in published.columns]  # e.g. the intervals' _low, _high
    measured = pd.DataFrame(rows, columns=list(published.columns) + list(dict.fromkeys(extra)))
    if measured.empty:
        return published.reset_index(drop=True)
    return pd.concat([published, measured], ignore_index=True)


def _format_cell(value, floatfmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return format(value, floatfmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(frame: pd.DataFrame, floatfmt: str = ".2f") -> str:
    """A GitHub-flavoured Markdown table; NaN prints as '-' like the paper's missing entries."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(frame[c]) else "---" for c in frame.columns) + "|"
    lines = [header, rule]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_format_cell(v, floatfmt) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_table(frame: pd.DataFrame, directory, name: str, title: str | None = None) -> tuple[Path, Path]:
    """Write ``directory/name.csv`` and ``directory/name.md`` atomically; returns both paths.

    The Markdown file starts with ``title`` as a heading when given.
    """
    directory = Path(directory)
    if not name or Path(name).name != name:
        raise ValueError(f"table name must be a plain file stem like 'table1_ablation'; got {name!r}")
    make_folder(directory)
    csv_path, md_path = directory / f"{name}.csv", directory / f"{name}.md"
    atomic_write_text(csv_path, frame.to_csv(index=False, float_format="%.2f"))
    markdown = (f"### {title}\n\n" if title else "") + to_markdown(frame)
    atomic_write_text(md_path, markdown)
    return csv_path, md_path


__all__ = [
    "COLUMNS",
    "METRICS",
    "SOTA_NAMES",
    "SOTA_TITLES",
    "TABLE1_ORDER",
    "assemble_sota_table",
    "assemble_table1",
    "assemble_table2",
    "config_label",
    "label_depths",
    "measured_sota_rows",
    "order_key",
    "protocol_note",
    "rows_by_config",
    "spread",
    "table1_row",
    "table1_summary",
    "to_markdown",
    "write_table",
]
