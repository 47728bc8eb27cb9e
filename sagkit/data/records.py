"""Image records and the split container shared by every dataset reader.

A reader turns an on-disk dataset into three lists of :class:`ImageRecord`
(train, query, gallery).  Conventions common to all readers:

* ``camid`` is 0-based (Market camera ``c1`` is ``camid == 0``).
* Train person ids are relabelled ``0..K-1`` (ascending order of the original
  id) so they can index a classifier; query/gallery keep the original ids,
  including ``-1`` (junk) and ``0`` (distractor) where the format has them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

from sagkit.evaluation.protocol import MARKET, Protocol

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
JUNK_PID = -1
DISTRACTOR_PID = 0


class ImageRecord(NamedTuple):
    """One image: its path, person id and 0-based camera id."""

    path: str
    pid: int
    camid: int


class DatasetFormatError(ValueError):
    """A dataset folder exists but its content does not follow the expected format."""


def relabel(records: Iterable[ImageRecord]) -> list[ImageRecord]:
    """Map person ids to ``0..K-1`` in ascending order of the original id."""
    records = list(records)
    mapping = {pid: label for label, pid in enumerate(sorted({r.pid for r in records}))}
    return [ImageRecord(r.path, mapping[r.pid], r.camid) for r in records]


def expected_layout_error(what: str, root: os.PathLike | str, layout: str) -> FileNotFoundError:
    """Build a FileNotFoundError that shows the layout the reader expects."""
    return FileNotFoundError(
        f"{what} not found under {str(root)!r}. Expected layout:\n{layout.rstrip()}\n"
        "Pass the folder that contains this layout as `root`."
    )


def not_a_folder_error(what: str, root: os.PathLike | str) -> NotADirectoryError:
    """Error for a dataset ``root`` that is a file where a folder is expected."""
    return NotADirectoryError(f"{what} {str(root)!r} is a file, not a folder: pass the folder that holds the "
                              "dataset as `root` (data_root)")


def _examples(names: Sequence[str]) -> str:
    """The first five names quoted, and how many more there are."""
    more = f" (and {len(names) - 5} more)" if len(names) > 5 else ""
    return ", ".join(repr(n) for n in list(names)[:5]) + more


def list_image_files(folder: Path) -> list[Path]:
    """Image files (by extension) directly in ``folder``, sorted by name; other files are ignored.

    A link to a missing image raises DatasetFormatError naming it: dropping it silently would change
    the split's counts."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    dangling = [p.name for p in paths if p.is_symlink() and not p.exists()]
    if dangling:
        raise DatasetFormatError(f"{len(dangling)} image link(s) in {str(folder)!r} point at missing files: "
                                 f"{_examples(dangling)}. Restore their targets or remove the links.")
    return [p for p in paths if p.is_file()]


def format_error(folder: Path, bad_names: Sequence[str], expected: str) -> DatasetFormatError:
    """Error listing a few file names that do not match the expected naming."""
    return DatasetFormatError(
        f"{len(bad_names)} file name(s) in {str(folder)!r} do not follow the format {expected}: "
        f"{_examples(bad_names)}. Remove or rename them, or check that `root` points at the right dataset."
    )


def check_split_index(split: object, count: int, protocol: str = "") -> None:
    """Raise ValueError naming ``split`` unless it is an integer in ``0..count-1`` (not a bool or a float)."""
    if isinstance(split, bool) or not isinstance(split, int) or not 0 <= split < count:
        raise ValueError(f"split must be in 0..{count - 1}{protocol} (an integer), got {split!r}")


def require_nonempty(split: str, records: Sequence[ImageRecord], where: str) -> None:
    """Raise if a split has no images (an empty split is always a setup mistake)."""
    if not records:
        raise DatasetFormatError(f"The {split} split is empty ({where}); the dataset looks incomplete.")


@dataclass
class ReIDDataset:
    """Train/query/gallery splits of a re-ID dataset.

    ``train`` pids are ``0..num_train_pids-1``.  ``multi_query`` (Market-1501 only,
    when ``gt_bbox/`` exists) holds the extra images of each query's identity in
    the query's camera, for multi-query evaluation.  ``info`` records protocol
    options (split index, image type, ...).  ``protocol`` is how the test split is scored
    (:class:`sagkit.evaluation.protocol.Protocol`); every reader sets it.  ``distractor_pid`` is the id
    that marks distractor images in query/gallery (Market's ``0000``), or None where every id is a person
    (MSMT17's id 0).
    """

    name: str
    train: list[ImageRecord]
    query: list[ImageRecord]
    gallery: list[ImageRecord]
    root: str | None = None
    multi_query: list[ImageRecord] | None = None
    info: dict = field(default_factory=dict)
    protocol: Protocol = MARKET
    distractor_pid: int | None = DISTRACTOR_PID

    @property
    def num_train_pids(self) -> int:
        return len({r.pid for r in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({r.camid for r in self.train})

    @property
    def num_train_imgs(self) -> int:
        return len(self.train)

    def summary(self, extended: bool = False) -> dict:
        """Counts in the columns of the paper's Table 2.

        ``ids`` = train ids + test ids, where test ids are the identities that
        appear as queries (gallery-only distractor identities are not counted,
        as in Table 2); ``images`` counts distinct image files over the three
        splits (CUHK03 classic uses one list as both query and gallery);
        ``cameras`` counts distinct camera ids.  ``extended=True`` adds junk,
        distractor and gallery-identity counts.
        """
        not_people = {JUNK_PID} if self.distractor_pid is None else {JUNK_PID, self.distractor_pid}
        train_ids = {r.pid for r in self.train}
        test_ids = {r.pid for r in self.query if r.pid not in not_people}
        all_records = self.train + self.query + self.gallery
        out = {
            "ids": len(train_ids) + len(test_ids),
            "images": len({r.path for r in all_records}),
            "cameras": len({r.camid for r in all_records}),
            "train_ids": len(train_ids),
            "train_images": len(self.train),
            "test_ids": len(test_ids),
            "query_images": len(self.query),
            "gallery_images": len(self.gallery),
        }
        if extended:
            out.update(
                gallery_ids=len({r.pid for r in self.gallery if r.pid not in not_people}),
                junk_images=sum(r.pid == JUNK_PID for r in self.gallery),
                distractor_images=sum(r.pid == self.distractor_pid for r in self.gallery),
                multi_query_images=len(self.multi_query) if self.multi_query is not None else 0,
            )
        return out

    def __repr__(self) -> str:
        s = self.summary()
        return (f"ReIDDataset({self.name!r}: train {s['train_ids']} ids/{s['train_images']} imgs, "
                f"query {s['query_images']}, gallery {s['gallery_images']}, {s['cameras']} cameras)")
