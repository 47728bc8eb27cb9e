"""Identities of the synthetic set: outfits, and look-alike groups that differ in exactly one detail."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sagkit.data.synthetic.config import SyntheticConfig
from sagkit.data.synthetic.palette import (DETAIL_AXES, DETAIL_COLOURS, HAIR, LOWER_TYPES, PATTERNS, SHOE_COLOURS, SKIN, choice,
                      cloth_colour)


@dataclass
class Outfit:
    """Appearance of one identity (colours are palette names, resolved at drawing time)."""

    upper: str
    upper2: str
    pattern: str
    period: float  # stripe/check period as a fraction of body height
    lower: str
    lower_type: str
    long_sleeves: bool
    skin: int
    hair: int
    long_hair: bool
    build: float
    shoes: str
    logo: str | None = None
    logo_shape: str = "circle"
    backpack: str | None = None
    handbag: str | None = None
    cap: str | None = None
    group: int = -1
    detail_axis: str = ""


def random_outfit(rng: np.random.Generator) -> Outfit:
    """A base outfit with random details (used for group bases, distractors and passers-by)."""
    upper = cloth_colour(rng)
    pattern = choice(rng, PATTERNS, p=[0.4, 0.17, 0.13, 0.15, 0.15])
    return Outfit(
        upper=upper, upper2=cloth_colour(rng, exclude=(upper,)), pattern=pattern,
        period=float(rng.uniform(0.035, 0.07)), lower=cloth_colour(rng), lower_type=choice(rng, LOWER_TYPES),
        long_sleeves=bool(rng.random() < 0.6), skin=int(rng.integers(len(SKIN))),
        hair=int(rng.integers(len(HAIR))), long_hair=bool(rng.random() < 0.3),
        build=float(rng.uniform(0.95, 1.25)), shoes=choice(rng, SHOE_COLOURS),
        logo=choice(rng, DETAIL_COLOURS) if rng.random() < 0.3 else None,
        logo_shape=choice(rng, ("circle", "square", "triangle")),
        backpack=choice(rng, DETAIL_COLOURS) if rng.random() < 0.25 else None,
        handbag=choice(rng, DETAIL_COLOURS) if rng.random() < 0.2 else None,
        cap=choice(rng, DETAIL_COLOURS) if rng.random() < 0.15 else None,
    )


def lookalike_group(rng: np.random.Generator, size: int, group: int) -> list[Outfit]:
    """``size`` outfits identical but for one detail axis, each member with a different value."""
    base = random_outfit(rng)
    if size == 1:
        return [Outfit(**{**asdict(base), "group": group})]
    axis = choice(rng, DETAIL_AXES)
    pool = list(SHOE_COLOURS) if axis == "shoes" else [None] + list(DETAIL_COLOURS)
    values = [pool[i] for i in rng.permutation(len(pool))[:size]]
    return [Outfit(**{**asdict(base), axis: v, "group": group, "detail_axis": axis}) for v in values]


def make_identities(rng: np.random.Generator, n: int, cfg: SyntheticConfig, first_group: int) -> list[Outfit]:
    """``n`` outfits: about ``lookalike_fraction`` of them in look-alike groups, the rest singletons.

    Groups have ``min_group_size..max_group_size`` members (the last one may be smaller);
    the order is shuffled so that look-alikes do not get neighbouring ids.
    """
    out, group = [], first_group
    grouped = int(round(cfg.lookalike_fraction * n))
    while len(out) < grouped:
        size = min(int(rng.integers(cfg.min_group_size, cfg.max_group_size + 1)), grouped - len(out))
        out.extend(lookalike_group(rng, size, group))
        group += 1
    while len(out) < n:
        out.extend(lookalike_group(rng, 1, group))
        group += 1
    return [out[i] for i in rng.permutation(n)]
