"""Whether a test split shares people with the training split a model learned from: evaluating a model on
identities it was trained on inflates every metric, so ``sagkit eval`` refuses it unless asked, and marks it.

Images are matched by file name and size (not path), so that another copy of the same dataset is
recognised; the identities counted are those of the test images (query or gallery) whose file the
training split holds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from sagkit.data.records import JUNK_PID, ImageRecord, ReIDDataset


def _identity(path: str) -> tuple[str, int]:
    """(file name, size): the same image in any copy of the dataset."""
    return Path(path).name, Path(path).stat().st_size


def train_overlap(train: Sequence[ImageRecord], test: ReIDDataset) -> dict | None:
    """``{"identities": n, "test_identities": m, "images": k}`` when ``n`` of the ``m`` people of ``test``'s
    query and gallery have ``k`` images among ``train`` (the model's training split, held-out validation
    identities included); None when they share no image."""
    trained = {_identity(r.path) for r in train}
    not_people = {JUNK_PID} | ({test.distractor_pid} if test.distractor_pid is not None else set())
    people = [r for r in list(test.query) + list(test.gallery) if r.pid not in not_people]
    shared = [r for r in people if _identity(r.path) in trained]
    if not shared:
        return None
    return {"identities": len({r.pid for r in shared}), "test_identities": len({r.pid for r in people}),
            "images": len({r.path for r in shared})}


def overlap_text(overlap: dict, where: str) -> str:
    """One line saying how far ``where`` (e.g. ``cuhk01 split 1``) overlaps the run's training identities."""
    return (f"{overlap['identities']} of the {overlap['test_identities']} test identities of {where} "
            f"({overlap['images']} images) are among the run's training images: its metrics are inflated")
