"""The appearance vocabulary of the synthetic set (clothing, skin, hair, views) and random draws from it.

Colours are RGB tuples named by palette keys; identities store the names, drawing resolves them.
"""
from __future__ import annotations

import numpy as np

VIEWS = ("front", "back", "left", "right")
DETAIL_AXES = ("logo", "backpack", "handbag", "shoes", "cap")

# Clothing palette (RGB); weights favour the dark/neutral colours that dominate real street clothing,
# so many identities share colours and a colour histogram alone cannot tell them apart.
CLOTH = {
    "black": (28, 28, 32), "white": (232, 232, 226), "grey": (128, 128, 130), "charcoal": (68, 70, 76),
    "navy": (32, 42, 92), "blue": (46, 92, 196), "lightblue": (135, 180, 228), "red": (196, 34, 38),
    "maroon": (118, 24, 36), "green": (44, 138, 62), "olive": (108, 116, 52), "yellow": (228, 198, 44),
    "orange": (236, 128, 36), "pink": (236, 150, 180), "purple": (118, 52, 148), "brown": (108, 70, 42),
    "beige": (208, 188, 148), "teal": (34, 136, 138),
}
CLOTH_NAMES = tuple(CLOTH)
CLOTH_WEIGHTS = np.array([3, 2, 2, 2, 2.5, 1.5, 1, 1, 1, 1, 1, 0.7, 0.7, 0.7, 0.7, 1, 1.2, 0.7])
DETAIL_COLOURS = ("red", "yellow", "blue", "green", "white", "black", "orange", "pink", "purple", "teal")
SHOE_COLOURS = ("black", "white", "red", "blue", "brown", "yellow", "grey")
SKIN = ((236, 198, 168), (214, 170, 130), (176, 128, 92), (128, 88, 60), (92, 62, 44))
HAIR = ((20, 18, 18), (62, 40, 26), (112, 78, 44), (200, 168, 100), (150, 150, 150))
PATTERNS = ("plain", "hstripes", "vstripes", "checks", "twotone")
LOWER_TYPES = ("trousers", "trousers", "shorts", "skirt")


def choice(rng: np.random.Generator, items, p=None):
    """One element of the sequence ``items`` (optional probabilities ``p``)."""
    return items[int(rng.choice(len(items), p=p))]


def cloth_colour(rng: np.random.Generator, exclude=()) -> str:
    """A clothing colour name drawn with the palette weights, never one of ``exclude``."""
    w = np.array([0.0 if n in exclude else x for n, x in zip(CLOTH_NAMES, CLOTH_WEIGHTS)])
    return CLOTH_NAMES[int(rng.choice(len(CLOTH_NAMES), p=w / w.sum()))]


def jitter(rng: np.random.Generator, colour, amount=12) -> tuple:
    """``colour`` with each channel moved by up to ``amount`` (clipped to 0..255)."""
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)
