"""How a dataset's test split is scored: a property every reader sets on its ``ReIDDataset``.

``Protocol("market")``: each query against the whole gallery, images of its identity from its camera
and junk images left out (Market-1501, DukeMTMC-reID, MSMT17, CUHK01, CUHK03's new protocol, synthetic).
``Protocol("cuhk03", num_repeats=N)``: CUHK03's classic single-gallery-shot CMC, one gallery image per
identity drawn at random for each query, N times (torchreid draws 10; the paper's own code drew 100).
``cameras=False`` (a ``folder`` dataset without camera ids): same-camera matches cannot be told apart, so
only the query's own file is left out; :meth:`Protocol.match_ids` is where every evaluation path gets this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sagkit.evaluation.metrics import PROTOCOLS

RULES = tuple(sorted(set(PROTOCOLS.values())))


@dataclass(frozen=True)
class Protocol:
    """``rule`` of :func:`sagkit.evaluation.evaluate` (``market`` or ``cuhk03``), and for ``cuhk03`` the number
    of single-gallery-shot draws and the seed of their generator; ``cameras`` False when the records carry
    no camera ids (then only the query's own file is left out of its ranking)."""

    rule: str = "market"
    num_repeats: int = 10
    seed: int = 0
    cameras: bool = True

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"protocol rule must be one of {RULES}, got {self.rule!r}")
        if isinstance(self.num_repeats, bool) or not isinstance(self.num_repeats, int) or self.num_repeats < 1:
            raise ValueError(f"num_repeats (single-gallery-shot draws) must be an integer >= 1, got "
                             f"{self.num_repeats!r}")
        if not isinstance(self.cameras, bool):
            raise ValueError(f"cameras must be True or False, got {self.cameras!r}")

    def options(self) -> dict:
        """Keyword arguments of ``evaluate`` for this protocol."""
        return {"protocol": self.rule, "num_repeats": self.num_repeats, "seed": self.seed}

    def match_ids(self, query: Sequence, gallery: Sequence) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(q_pids, q_cams, g_pids, g_cams)`` int64 arrays that ``evaluate`` scores ``query`` against
        ``gallery`` (records with ``.path``, ``.pid``, ``.camid``) with. With ``cameras`` False each image's
        camera id is its file's index over both lists, so the same-identity-same-camera rule drops only the
        query's own file (the same path in the gallery) and keeps every other image of its identity."""
        if self.cameras:
            cams = [np.array([r.camid for r in recs], dtype=np.int64) for recs in (query, gallery)]
        else:
            files: dict[str, int] = {}
            cams = [np.array([files.setdefault(r.path, len(files)) for r in recs], dtype=np.int64)
                    for recs in (query, gallery)]
        pids = [np.array([r.pid for r in recs], dtype=np.int64) for recs in (query, gallery)]
        return pids[0], cams[0], pids[1], cams[1]

    def describe(self) -> str:
        """One line for tables and logs."""
        if self.rule == "cuhk03":
            text = f"CUHK03 single-gallery-shot CMC, {self.num_repeats} draws (seed {self.seed})"
        else:
            text = "Market-1501 rule (same identity and camera left out)"
        if not self.cameras:
            text = ("no camera ids: every gallery image except the query's own file is kept, so same-camera "
                    "matches count; " + text.split(" (")[0])
        return text


MARKET = Protocol("market")
NO_CAMERAS = Protocol("market", cameras=False)
