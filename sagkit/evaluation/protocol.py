"""How a dataset's test split is scored: a property every reader sets on its ``ReIDDataset``.

``Protocol("market")``: each query against the whole gallery, images of its identity from its camera
and junk images left out (Market-1501, DukeMTMC-reID, MSMT17, CUHK01, CUHK03's new protocol, synthetic).
``Protocol("cuhk03", num_repeats=N)``: CUHK03's classic single-gallery-shot CMC, one gallery image per
identity drawn at random for each query, N times (torchreid draws 10; the paper's own code drew 100).
"""

from __future__ import annotations

from dataclasses import dataclass

from .metrics import PROTOCOLS

RULES = tuple(sorted(set(PROTOCOLS.values())))


@dataclass(frozen=True)
class Protocol:
    """``rule`` of :func:`sagkit.evaluation.evaluate` (``market`` or ``cuhk03``), and for ``cuhk03`` the number
    of single-gallery-shot draws and the seed of their generator."""

    rule: str = "market"
    num_repeats: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"protocol rule must be one of {RULES}, got {self.rule!r}")
        if isinstance(self.num_repeats, bool) or not isinstance(self.num_repeats, int) or self.num_repeats < 1:
            raise ValueError(f"num_repeats (single-gallery-shot draws) must be an integer >= 1, got "
                             f"{self.num_repeats!r}")

    def options(self) -> dict:
        """Keyword arguments of ``evaluate`` for this protocol."""
        return {"protocol": self.rule, "num_repeats": self.num_repeats, "seed": self.seed}

    def describe(self) -> str:
        """One line for tables and logs."""
        if self.rule == "cuhk03":
            return f"CUHK03 single-gallery-shot CMC, {self.num_repeats} draws (seed {self.seed})"
        return "Market-1501 rule (same identity and camera left out)"


MARKET = Protocol("market")
