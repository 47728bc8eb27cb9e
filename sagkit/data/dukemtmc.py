"""DukeMTMC-reID reader: Market layout, names ``PPPP_cC_fFFFFFFF.jpg``, 8 cameras (camid 0-based).

The gallery holds the 702 test identities plus 408 gallery-only distractor
identities (ordinary positive ids, not ``0000``); all stay in the gallery.
"""
from __future__ import annotations

from pathlib import Path

from sagkit.data.market1501 import DUKEMTMC, load_market_layout
from sagkit.data.records import ReIDDataset


def load_dukemtmc(root: str | Path) -> ReIDDataset:
    """DukeMTMC-reID from ``root`` or its ``DukeMTMC-reID`` folder."""
    return load_market_layout(root, DUKEMTMC, multi_query=False)
