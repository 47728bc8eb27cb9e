"""Options of the synthetic dataset (:class:`SyntheticConfig`), their check, and the cache folder they name."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from sagkit.data.synthetic.palette import SHOE_COLOURS

GENERATOR_VERSION = 2  # bump whenever the drawing changes: cached sets are keyed by it


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and difficulty options of the synthetic dataset (all counts are parameters).

    ``images_per_id`` images of each of ``num_train_ids`` training identities;
    ``query_per_id`` query images (from distinct cameras) and ``gallery_per_id`` gallery
    images of each of ``num_test_ids`` test identities; identities come in look-alike
    groups of ``min_group_size..max_group_size`` (a ``lookalike_fraction`` of them; the others
    have no look-alike by construction); images are ``height`` x ``width`` JPEGs.
    ``distractor_fraction`` / ``junk_fraction`` are relative to the number of gallery
    images of the test identities (``num_test_ids * gallery_per_id``).  Difficulty knobs:
    ``camera_variation`` scales how far each camera's colour cast, brightness, contrast and
    light gradient depart from neutral (0 = identical cameras); ``clutter`` scales the number
    of background objects; ``occlusion_prob`` is the chance of an occluder per image.
    """

    num_train_ids: int = 100
    num_test_ids: int = 75
    images_per_id: int = 6
    query_per_id: int = 2
    gallery_per_id: int = 6
    num_cameras: int = 4
    distractor_fraction: float = 0.10
    junk_fraction: float = 0.05
    lookalike_fraction: float = 0.5
    min_group_size: int = 2
    max_group_size: int = 3
    occlusion_prob: float = 0.3
    camera_variation: float = 0.6
    clutter: float = 0.6
    height: int = 128
    width: int = 64
    jpeg_quality: int = 90

    def validate(self) -> None:
        if self.num_train_ids < 1 or self.num_test_ids < 1:
            raise ValueError("num_train_ids and num_test_ids must be >= 1")
        if self.num_train_ids + self.num_test_ids > 4000:
            raise ValueError("at most 4000 identities (4-digit person ids)")
        if self.images_per_id < 2:
            raise ValueError("images_per_id must be >= 2 (an identity needs two views to be learnt)")
        if self.query_per_id < 1 or self.gallery_per_id < 1:
            raise ValueError("query_per_id and gallery_per_id must be >= 1")
        if not 2 <= self.num_cameras <= 9:
            raise ValueError("num_cameras must be in 2..9 (one digit in Market-1501 names)")
        if not (0 <= self.distractor_fraction <= 5 and 0 <= self.junk_fraction <= 5):
            raise ValueError("distractor_fraction and junk_fraction must be in [0, 5]")
        if not 1 <= self.min_group_size <= self.max_group_size <= len(SHOE_COLOURS):
            raise ValueError(f"need 1 <= min_group_size <= max_group_size <= {len(SHOE_COLOURS)}")
        if not 0 <= self.lookalike_fraction <= 1:
            raise ValueError("lookalike_fraction must be in [0, 1]")
        if not 0 <= self.occlusion_prob <= 1:
            raise ValueError("occlusion_prob must be in [0, 1]")
        if not (0 <= self.camera_variation <= 2 and 0 <= self.clutter <= 3):
            raise ValueError("camera_variation must be in [0, 2] and clutter in [0, 3]")
        if self.height < 32 or self.width < 16:
            raise ValueError("height/width must be at least 32x16")

    @property
    def num_distractors(self) -> int:
        return int(round(self.distractor_fraction * self.num_test_ids * self.gallery_per_id))

    @property
    def num_junk(self) -> int:
        return int(round(self.junk_fraction * self.num_test_ids * self.gallery_per_id))

    def expected_counts(self) -> dict:
        """Images per folder that this configuration promises."""
        return {
            "train_ids": self.num_train_ids,
            "train_images": self.num_train_ids * self.images_per_id,
            "test_ids": self.num_test_ids,
            "query_images": self.num_test_ids * self.query_per_id,
            "gallery_images": self.num_test_ids * self.gallery_per_id + self.num_distractors + self.num_junk,
            "distractor_images": self.num_distractors,
            "junk_images": self.num_junk,
            "cameras": self.num_cameras,
        }


def make_config(**options) -> SyntheticConfig:
    """A validated config; unknown option names raise a ValueError listing the valid ones."""
    names = {f.name for f in fields(SyntheticConfig)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ValueError(f"unknown synthetic option(s) {unknown}; valid: {sorted(names)}")
    cfg = SyntheticConfig(**options)
    cfg.validate()
    return cfg


def options_hash(seed: int, config: SyntheticConfig) -> str:
    """Short hash of (generator version, seed, options): names the cache folder."""
    payload = json.dumps({"version": GENERATOR_VERSION, "seed": int(seed), "options": asdict(config)},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def default_cache_root() -> Path:
    """``$SAGKIT_CACHE`` if set, else ``~/.cache/sagkit``."""
    env = os.environ.get("SAGKIT_CACHE")
    if env and Path(env).expanduser().exists() and not Path(env).expanduser().is_dir():
        raise NotADirectoryError(f"SAGKIT_CACHE={env!r} is a file: point it at a folder (or unset it)")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sagkit"


def synthetic_cache_dir(seed: int = 0, cache_root: str | Path | None = None, **options) -> Path:
    """Folder ``<cache_root>/synthetic-<hash of seed and options>`` where that dataset lives."""
    cfg = make_config(**options)
    base = Path(cache_root).expanduser() if cache_root is not None else default_cache_root()
    return base / f"synthetic-{options_hash(seed, cfg)}"
