"""Embedded synthetic re-ID dataset, written in the Market-1501 layout.

What it is: a small, deterministic (per seed) set of drawn pedestrians that lets
the workbook run end to end on a laptop CPU with no download.  Identities are
defined by clothing colours and patterns (plain, stripes, checks, two-tone) and
small details (chest logo, backpack, handbag, shoe colour, cap).  Identities
come in look-alike groups that differ in exactly one detail, and the views
hide details the way Figure 1 of the paper describes: a back view hides the
logo, a frontal view shows only the straps of a backpack, a side view hides a
handbag carried on the far side.  Each camera has its own background clutter,
illumination gradient, colour cast, noise and preferred viewpoints; people
vary in scale, position and walking pose; some images are partly occluded (a
pole, a car, a bush, another pedestrian).  The gallery holds junk (``-1``,
bad crops) and distractor (``0000``) images as in Market-1501.

What it is not: a substitute for Market-1501, DukeMTMC-reID or CUHK03.  The
drawings are crude, the identities few and the statistics of real cameras
absent; numbers obtained on it say whether code and ideas work, not how a
method ranks on the real benchmarks.

Files: ``bounding_box_train/``, ``bounding_box_test/``, ``query/`` with names
``PPPP_cCsS_FFFFFF_BB.jpg`` (read by the Market-1501 reader), ``README.txt``
(what it is, seed and options), ``metadata.json`` (identity attributes and
per-image view/occluder, for the workbook) and ``manifest.json`` (file sizes
and SHA-256, so a reused folder can be checked for completeness).

Modules, in the order they depend on each other: ``palette`` (colour and clothing
vocabulary), ``config`` (options, cache folder), ``identities`` (outfits, look-alike
groups), ``cameras`` (scenes, backgrounds, photometric look), ``drawing`` (a person),
``render`` (one image with occluders), ``metadata`` (``metadata.json`` written and read),
``plan`` (every image's folder, name and seed), ``manifest`` (``README.txt``,
``manifest.json``), ``generation`` (writing and loading a set).
"""
from sagkit.data.synthetic.cameras import BG_BLUR, BG_CONTRAST, CASTS, SCENES, CameraStyle, apply_camera, draw_background, make_cameras
from sagkit.data.synthetic.config import (GENERATOR_VERSION, SyntheticConfig, default_cache_root, make_config, options_hash,
                     synthetic_cache_dir)
from sagkit.data.synthetic.drawing import draw_person
from sagkit.data.synthetic.generation import load_synthetic, make_synthetic_reid
from sagkit.data.synthetic.identities import Outfit, lookalike_group, make_identities, random_outfit
from sagkit.data.synthetic.manifest import MANIFEST_NAME
from sagkit.data.synthetic.metadata import METADATA_NAME, SyntheticMetadata, read_synthetic_metadata
from sagkit.data.synthetic.palette import (CLOTH, CLOTH_NAMES, CLOTH_WEIGHTS, DETAIL_AXES, DETAIL_COLOURS, HAIR, LOWER_TYPES, PATTERNS,
                      SHOE_COLOURS, SKIN, VIEWS)
from sagkit.data.synthetic.plan import plan_dataset
from sagkit.data.synthetic.render import SUPERSAMPLE, draw_occluder, render_image

__all__ = [
    "BG_BLUR", "BG_CONTRAST", "CASTS", "CLOTH", "CLOTH_NAMES", "CLOTH_WEIGHTS", "CameraStyle", "DETAIL_AXES",
    "DETAIL_COLOURS", "GENERATOR_VERSION", "HAIR", "LOWER_TYPES", "MANIFEST_NAME", "METADATA_NAME", "Outfit",
    "PATTERNS", "SCENES", "SHOE_COLOURS", "SKIN", "SUPERSAMPLE", "SyntheticConfig", "SyntheticMetadata", "VIEWS",
    "apply_camera", "default_cache_root", "draw_background", "draw_occluder", "draw_person", "load_synthetic",
    "lookalike_group", "make_cameras", "make_config", "make_identities", "make_synthetic_reid", "options_hash",
    "plan_dataset", "random_outfit", "read_synthetic_metadata", "render_image", "synthetic_cache_dir",
]
