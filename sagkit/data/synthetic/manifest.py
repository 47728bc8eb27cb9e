"""The two files that describe a finished synthetic set: ``README.txt`` and ``manifest.json``.

``manifest.json`` records the generator version, seed, options, counts and every file's size and
SHA-256; a folder is reused only when it matches the request and every listed file has its size.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from sagkit.data.synthetic.config import GENERATOR_VERSION, SyntheticConfig, make_config

MANIFEST_NAME = "manifest.json"
GENERATOR = "sagkit.data.synthetic"  # the manifest's "generator": the marker of a set sagkit wrote
README_NAME = "README.txt"


def readme_text(seed: int, cfg: SyntheticConfig) -> str:
    """What the set is (and is not), its seed, options and counts, for whoever finds the folder."""
    opts = "\n".join(f"  {k} = {v}" for k, v in asdict(cfg).items())
    cnt = "\n".join(f"  {k}: {v}" for k, v in cfg.expected_counts().items())
    return f"""sagkit synthetic re-identification dataset (generator version {GENERATOR_VERSION})

Drawn pedestrians in the Market-1501 layout (bounding_box_train/, bounding_box_test/, query/;
names PPPP_cCsS_FFFFFF_BB.jpg; id 0000 = distractor, -1 = junk). Made by
sagkit.data.make_synthetic_reid for exploring the sagkit workbook on a CPU without downloads.
It is a stand-in, NOT a substitute for Market-1501/DukeMTMC-reID/CUHK03: results on it say
whether code and ideas work, not how a method ranks on real benchmarks.

Identities: clothing colours/patterns plus one small detail (logo, backpack, handbag, shoes,
cap) distinguishing members of look-alike groups; views hide details; each camera has its
own background clutter, illumination and colour cast; scale/pose/viewpoint vary; some
images are partly occluded. Attributes are in metadata.json; manifest.json lists every
file with its size and SHA-256.

seed = {seed}
options:
{opts}
counts:
{cnt}
"""


def manifest_text(seed: int, cfg: SyntheticConfig, files: dict) -> str:
    """The JSON text of ``manifest.json``; ``files`` maps each relative path to ``[size, sha256]``."""
    manifest = {"generator": GENERATOR, "version": GENERATOR_VERSION, "seed": seed,
                "options": asdict(cfg), "counts": cfg.expected_counts(), "files": files}
    return json.dumps(manifest, sort_keys=True, indent=1)


def manifest_ok(root: Path, seed: int, cfg: SyntheticConfig) -> bool:
    """True when ``root`` holds a complete dataset made with this seed and these options."""
    try:
        with open(root / MANIFEST_NAME) as fh:
            man = json.load(fh)
    except (OSError, ValueError):
        return False
    if man.get("version") != GENERATOR_VERSION or man.get("seed") != seed or man.get("options") != asdict(cfg):
        return False
    for rel, (size, _) in man["files"].items():
        p = root / rel
        if not p.is_file() or p.stat().st_size != size:
            return False
    return True


def read_manifest(folder: Path) -> tuple[int, SyntheticConfig]:
    """Seed and options recorded in ``folder``'s manifest; a ValueError naming the file when it is unreadable."""
    path = folder / MANIFEST_NAME
    try:
        man = json.loads(path.read_text())
        return int(man["seed"]), make_config(**man["options"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{str(path)!r} is not a valid synthetic manifest: {exc}") from exc
