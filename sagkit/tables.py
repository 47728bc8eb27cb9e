"""Assemble the paper's tables from measured results and write them as CSV and Markdown.

Measured rows are plain dicts in percent with the metric names of results.json: ``{"depths": (4,),
"rank1": 61.2, "rank5": ..., "rank10": ..., "mAP": ..., "run": "<run name>"}`` for Table 1, and
``{"single": {...}, "single_rr": {...}, "multi": {...}, "multi_rr": {...}}`` evaluations for Tables 3-5
(``Retrieval.evaluations()``). Tables print them under the paper's column names (``COLUMNS``: R1, R5, R10,
mAP). The published numbers come from
:mod:`sagkit.reference`; every comparison row says whether it was ``reported`` (paper) or ``measured``
(this workbook) and which dataset it was measured on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from sagkit import reference
from sagkit.atomic import atomic_write_text

METRICS = ("rank1", "rank5", "rank10", "mAP")
COLUMNS = {"rank1": "R1", "rank5": "R5", "rank10": "R10", "mAP": "mAP"}  # the paper's column names
PAPER_COLUMNS = tuple(COLUMNS[m] for m in METRICS)
TABLE1_ORDER = reference.TABLE1_ORDER
SOTA_NAMES = {3: "table3_market1501", 4: "table4_cuhk03", 5: "table5_dukemtmc"}
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


def _order_key(label: str) -> tuple:
    if label in TABLE1_ORDER:
        return (0, TABLE1_ORDER.index(label), ())
    return (1, len(label_depths(label)), label_depths(label))


def assemble_table1(
    measured: Iterable[Mapping], dataset: str, paper_dataset: str | None = None
) -> pd.DataFrame:
    """Table 1 from measured rows, in the paper's row order, beside the paper's numbers.

    ``measured``: dicts with ``depths`` (or ``config``), ``rank1``, ``rank5``, ``rank10``, ``mAP`` in percent
    and optionally ``run`` (e.g. :func:`table1_row` of a results.json). A later row for the same configuration replaces an earlier one. The paper's
    numbers are those of ``paper_dataset`` (default: ``dataset`` when the paper reports it, else
    Market-1501); configurations not in the paper come after its eight rows.
    Columns: config, R1, R5, R10, mAP, run, dataset, paper_R1..paper_mAP, paper_dataset, note.
    """
    if paper_dataset is None:
        paper_dataset = dataset if dataset in reference.PAPER_DATASETS else DEFAULT_PAPER_DATASET
    paper = reference.table1(paper_dataset).set_index("config")
    rows: dict[str, dict] = {}
    for item in measured:
        label = item["config"] if "config" in item else config_label(item["depths"])
        row = {"config": label}
        for metric in METRICS:
            value = item.get(metric)
            row[COLUMNS[metric]] = float(value) if value is not None else math.nan
        row["run"] = item.get("run", "")
        rows[label] = row
    out = []
    for label in sorted(rows, key=_order_key):
        row = dict(rows[label])
        row["dataset"] = dataset
        if label in paper.index:
            for column in PAPER_COLUMNS:
                row[f"paper_{column}"] = float(paper.loc[label, column])
            row["note"] = paper.loc[label, "note"]
        else:
            row.update({f"paper_{c}": math.nan for c in PAPER_COLUMNS})
            row["note"] = "not in the paper"
        row["paper_dataset"] = paper_dataset
        out.append(row)
    columns = ["config", *PAPER_COLUMNS, "run", "dataset", *[f"paper_{c}" for c in PAPER_COLUMNS], "paper_dataset",
               "note"]
    return pd.DataFrame(out, columns=columns)


def table1_row(results: Mapping) -> dict:
    """A measured Table 1 row from one run's results.json."""
    row = {"depths": tuple(results.get("depths") or ()), "run": results.get("name", "")}
    row.update({metric: results.get(metric) for metric in METRICS})
    return row


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
    number: int, method: str, dataset: str, evaluations: Mapping[str, Mapping[str, float]], note: str = ""
) -> list[dict]:
    """Rows for comparison table ``number`` from one model's evaluations (percent).

    ``evaluations`` keys: ``single`` (required), ``multi``, ``single_rr``, ``multi_rr`` (each a dict
    with rank1, rank5, rank10, mAP). Gives ``method`` and, when re-ranked numbers exist, ``method+RR``.
    Table 3 uses single- and multi-query R1/mAP; Tables 4 and 5 single-query R1/R5/R10/mAP.
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
        if number == 3:
            multi = evaluations.get(multi_key) or {}
            row.update(
                sq_R1=single.get("rank1", math.nan),
                sq_mAP=single.get("mAP", math.nan),
                mq_R1=multi.get("rank1", math.nan),
                mq_mAP=multi.get("mAP", math.nan),
            )
        else:
            row.update({COLUMNS[metric]: single.get(metric, math.nan) for metric in METRICS})
        row["note"] = "; ".join(part for part in (note, "k-reciprocal re-ranking" if suffix else "") if part)
        rows.append(row)
    return rows


def assemble_sota_table(number: int, measured_rows: Sequence[Mapping] = ()) -> pd.DataFrame:
    """Paper Table 3, 4 or 5 (``source = reported``) followed by ``measured_rows`` (``source = measured``)."""
    published = reference.sota_table(number).copy()
    published.insert(2, "source", "reported")
    published.insert(3, "dataset", reference.SOTA_TABLE_DATASET[number])
    rows = [{**row, "arxiv_only": bool(row.get("arxiv_only", False))} for row in measured_rows]
    measured = pd.DataFrame(rows, columns=list(published.columns))
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
    directory.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = directory / f"{name}.csv", directory / f"{name}.md"
    atomic_write_text(csv_path, frame.to_csv(index=False, float_format="%.2f"))
    markdown = (f"### {title}\n\n" if title else "") + to_markdown(frame)
    atomic_write_text(md_path, markdown)
    return csv_path, md_path


__all__ = [
    "COLUMNS",
    "METRICS",
    "SOTA_NAMES",
    "TABLE1_ORDER",
    "assemble_sota_table",
    "assemble_table1",
    "assemble_table2",
    "config_label",
    "label_depths",
    "measured_sota_rows",
    "protocol_note",
    "table1_row",
    "to_markdown",
    "write_table",
]
