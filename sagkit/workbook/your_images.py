"""Notebook 07 under the workbook: it searches a folder copy of the dataset's test split
(``<runs_dir>/your_images/<dataset>/``, links to the images) with the D4 run that notebook 04 trains and 05
draws, for a couple of the copy's query images against its gallery split, and writes its ranked lists into the
figures folder."""

from __future__ import annotations

from pathlib import Path

from sagkit.choices import DEFAULT_SEEDS
from sagkit.data.folder_copy import copy_queries, write_folder_copy

from sagkit.workbook.parameters import WorkbookParameters
from sagkit.workbook.session import Workbook

__all__ = ["SEARCH_RUN", "YOUR_IMAGES", "search_run_dir", "your_images_folder", "your_images_parameters"]

YOUR_IMAGES = "07_your_images"
SEARCH_RUN = ((4,), DEFAULT_SEEDS[0])  # (depths, seed): notebook 04's D4, no training of its own
QUERY_IMAGES = 2


def search_run_dir(params: WorkbookParameters) -> Path:
    """The run folder notebook 07 searches with."""
    return Workbook(params).run_dir(*SEARCH_RUN)


def your_images_folder(params: WorkbookParameters) -> Path:
    """Where the workbook keeps the folder copy of ``params.dataset``'s test split."""
    return params.runs_dir / "your_images" / params.dataset


def your_images_parameters(params: WorkbookParameters) -> dict:
    """Notebook 07's papermill parameters; builds the folder copy first (reused when already complete)."""
    folder = write_folder_copy(Workbook(params).load_dataset(), your_images_folder(params))
    gallery = folder / "gallery"  # ranked without the query split, so a query is not its own first match
    return {"run": str(search_run_dir(params)), "folder": str(folder), "query": copy_queries(folder, QUERY_IMAGES),
            "gallery_folder": str(gallery) if gallery.is_dir() else None, "device": params.device,
            "figures_dir": str(params.figures_dir)}
