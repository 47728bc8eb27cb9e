"""Tables as a person reads them: captions that name the dataset, profile and seeds; Table 1 short (config, R1
and mAP as ``mean ± sd [low, high]``, the paired difference with the baseline and its verdict); Tables 3-5 with
the published rows and the rows measured here in separate blocks, so measured rows are never read as results
on the paper's dataset. The full DataFrames stay one call away (``wb.table1()``,
``tables.assemble_sota_table``); these views only choose what is shown and how it is labelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from sagkit.choices import PAPER_DATASET_TITLES
from sagkit.report import reference

from sagkit.report import tables
from sagkit.atomic import atomic_write_text

__all__ = ["Blocks", "show_sota", "show_table1", "sota_blocks", "table1_caption", "table1_note",
           "table1_seeds", "write_sota_table"]



class Blocks:
    """Captioned tables shown one after the other: HTML (styled, caption above) in a notebook, Markdown as
    text (headless runs, ``print``)."""

    def __init__(self, blocks: Sequence[tuple[str, pd.DataFrame]]):
        self.blocks = list(blocks)

    def __repr__(self) -> str:
        return "\n".join(f"{caption}\n\n{tables.to_markdown(frame)}" for caption, frame in self.blocks)

    def _repr_html_(self) -> str:
        parts = []
        for caption, frame in self.blocks:
            styler = frame.style.hide(axis="index").set_caption(caption).format(precision=2, na_rep="-")
            styler = styler.set_table_styles([
                {"selector": "caption", "props": "caption-side: top; font-weight: bold; text-align: left"},
                {"selector": "td, th", "props": "text-align: left; padding: 2px 8px"},
            ])
            parts.append(styler.to_html())
        return "<br>".join(parts)

    def to_markdown(self) -> str:
        """Each block as ``### caption`` then its Markdown table."""
        return "\n".join(f"### {caption}\n\n{tables.to_markdown(frame)}" for caption, frame in self.blocks)


def table1_seeds(frame: pd.DataFrame) -> list[int]:
    """Every seed some configuration of Table 1 was trained with (the ``seeds`` column, e.g. '0,1,2')."""
    found = {int(s) for cell in frame["seeds"].dropna().astype(str) for s in cell.split(",") if s.strip()}
    return sorted(found)


def _seed_text(seeds: Iterable[int]) -> str:
    seeds = list(seeds)
    return ("seed " if len(seeds) == 1 else "seeds ") + ",".join(map(str, seeds))


def table1_caption(frame: pd.DataFrame, dataset: str, profile: str) -> str:
    """'Table 1. Impact of the SAG depth: <dataset>, profile <profile>, seeds 0,1,2, no re-ranking'."""
    return (f"Table 1. Impact of the SAG depth: {dataset}, profile {profile}, {_seed_text(table1_seeds(frame))}, "
            "no re-ranking")


def show_table1(frame: pd.DataFrame, dataset: str, profile: str) -> Blocks:
    """Table 1 short (:func:`sagkit.report.tables.table1_summary`) under a caption naming dataset, profile and seeds."""
    return Blocks([(table1_caption(frame, dataset, profile), tables.table1_summary(frame))])


def table1_note(frame: pd.DataFrame, depths: Sequence[int], last_copy: str) -> str:
    """What one execution of notebook 03 holds: the configuration it trained, the ones Table 1 has so far, and
    the copy (``last_copy``, e.g. '03_ablation_D4') that the workbook executes last, which holds them all."""
    labels = ", ".join(frame["config"])
    return (f"This execution trained {tables.config_label(depths)}. Table 1 holds the {len(frame)} configuration(s) "
            f"finished so far ({labels}). The workbook runs this notebook once per configuration; its last copy, "
            f"{last_copy}.ipynb, holds the full table. `table1` holds every column.")


def _dropna_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[:, [c for c in frame.columns if frame[c].notna().any()]]


def _with_intervals(rows: pd.DataFrame) -> pd.DataFrame:
    """Each measured column ``C`` with ``C_low``/``C_high`` as one cell ``'value [low, high]'``."""
    out = rows.copy()
    for column in [c for c in rows.columns if f"{c}_low" in rows.columns and f"{c}_high" in rows.columns]:
        out[column] = [("-" if pd.isna(v) else f"{v:.2f}") + ("" if pd.isna(lo) else f" [{lo:.2f}, {hi:.2f}]")
                       for v, lo, hi in zip(rows[column], rows[f"{column}_low"], rows[f"{column}_high"])]
        out = out.drop(columns=[f"{column}_low", f"{column}_high"])
    return out


def sota_blocks(number: int, frame: pd.DataFrame, profile: str, seeds: Iterable[int] = (0,)
                ) -> list[tuple[str, pd.DataFrame]]:
    """Comparison table ``number`` (3-5, from :func:`sagkit.report.tables.assemble_sota_table`) as two blocks: the
    published rows under the paper's title, then the measured rows under a caption naming the dataset they
    were measured on (and that it is not the paper's), the profile and the seeds."""
    paper = PAPER_DATASET_TITLES[reference.SOTA_TABLE_DATASET[number]]
    published = frame[frame["source"] == "reported"].copy()
    published["method"] = [m + ("*" if arxiv else "") for m, arxiv in zip(published["method"], published["arxiv_only"])]
    published = published.drop(columns=["source", "dataset", "arxiv_only"])
    blocks = [(f"{tables.SOTA_TITLES[number]}: published (* arXiv only)",
               _dropna_columns(published).reset_index(drop=True))]
    measured = frame[frame["source"] == "measured"]
    for dataset, rows in measured.groupby("dataset", sort=False):
        other = "" if dataset == reference.SOTA_TABLE_DATASET[number] else f", not {paper}"
        caption = f"Measured here on {dataset}{other}: profile {profile}, {_seed_text(seeds)}"
        shown = _with_intervals(_dropna_columns(rows.drop(columns=["source", "dataset", "citation", "arxiv_only"])))
        blocks.append((caption, shown.reset_index(drop=True)))
    return blocks


def show_sota(number: int, frame: pd.DataFrame, profile: str, seeds: Iterable[int] = (0,)) -> Blocks:
    """Table ``number`` shown as :func:`sota_blocks`."""
    return Blocks(sota_blocks(number, frame, profile, seeds))


def write_sota_table(frame: pd.DataFrame, directory, number: int, profile: str,
                     seeds: Iterable[int] = (0,)) -> tuple[Path, Path]:
    """``<name>.csv`` (every row and column) and ``<name>.md`` (the blocks of :func:`sota_blocks`), atomically."""
    csv_path, md_path = tables.write_table(frame, directory, tables.SOTA_NAMES[number])
    atomic_write_text(md_path, Blocks(sota_blocks(number, frame, profile, seeds)).to_markdown())
    return csv_path, md_path
