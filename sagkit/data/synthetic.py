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
per-image view/occluder, for the workbook) and ``manifest.json`` (written last:
file sizes and SHA-256, so a reused folder can be checked for completeness).
Generation goes to a temporary folder renamed into place when complete.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..atomic import publish_dir
from .records import not_a_folder_error

GENERATOR_VERSION = 2  # bump whenever the drawing changes: cached sets are keyed by it
MANIFEST_NAME = "manifest.json"
SUPERSAMPLE = 2
BG_BLUR = 4.0  # background blur radius (pixels at 128 px width): out of focus behind the person
BG_CONTRAST = 0.5  # background contrast relative to the person
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
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sagkit"


def synthetic_cache_dir(seed: int = 0, cache_root: str | Path | None = None, **options) -> Path:
    """Folder ``<cache_root>/synthetic-<hash of seed and options>`` where that dataset lives."""
    cfg = make_config(**options)
    base = Path(cache_root).expanduser() if cache_root is not None else default_cache_root()
    return base / f"synthetic-{options_hash(seed, cfg)}"


# ----------------------------------------------------------------------------------------------
# Identities


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


def _choice(rng: np.random.Generator, items, p=None):
    return items[int(rng.choice(len(items), p=p))]


def _cloth(rng: np.random.Generator, exclude=()) -> str:
    w = np.array([0.0 if n in exclude else x for n, x in zip(CLOTH_NAMES, CLOTH_WEIGHTS)])
    return CLOTH_NAMES[int(rng.choice(len(CLOTH_NAMES), p=w / w.sum()))]


def random_outfit(rng: np.random.Generator) -> Outfit:
    """A base outfit with random details (used for group bases, distractors and passers-by)."""
    upper = _cloth(rng)
    pattern = _choice(rng, PATTERNS, p=[0.4, 0.17, 0.13, 0.15, 0.15])
    return Outfit(
        upper=upper, upper2=_cloth(rng, exclude=(upper,)), pattern=pattern,
        period=float(rng.uniform(0.035, 0.07)), lower=_cloth(rng), lower_type=_choice(rng, LOWER_TYPES),
        long_sleeves=bool(rng.random() < 0.6), skin=int(rng.integers(len(SKIN))),
        hair=int(rng.integers(len(HAIR))), long_hair=bool(rng.random() < 0.3),
        build=float(rng.uniform(0.95, 1.25)), shoes=_choice(rng, SHOE_COLOURS),
        logo=_choice(rng, DETAIL_COLOURS) if rng.random() < 0.3 else None,
        logo_shape=_choice(rng, ("circle", "square", "triangle")),
        backpack=_choice(rng, DETAIL_COLOURS) if rng.random() < 0.25 else None,
        handbag=_choice(rng, DETAIL_COLOURS) if rng.random() < 0.2 else None,
        cap=_choice(rng, DETAIL_COLOURS) if rng.random() < 0.15 else None,
    )


def lookalike_group(rng: np.random.Generator, size: int, group: int) -> list[Outfit]:
    """``size`` outfits identical but for one detail axis, each member with a different value."""
    base = random_outfit(rng)
    if size == 1:
        return [Outfit(**{**asdict(base), "group": group})]
    axis = _choice(rng, DETAIL_AXES)
    pool = list(SHOE_COLOURS) if axis == "shoes" else [None] + list(DETAIL_COLOURS)
    values = [pool[i] for i in rng.permutation(len(pool))[:size]]
    out = []
    for v in values:
        member = Outfit(**{**asdict(base), axis: v, "group": group, "detail_axis": axis})
        out.append(member)
    return out


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


# ----------------------------------------------------------------------------------------------
# Cameras


@dataclass
class CameraStyle:
    """Scene and photometric properties of one camera."""

    scene: str
    wall: tuple
    ground: tuple
    clutter: list
    horizon: float  # fraction of image height where the ground starts
    gain: tuple  # per-channel colour cast
    brightness: float
    contrast: float
    light_slope: float  # left-right illumination gradient
    noise: float
    blur: float
    view_probs: tuple = field(default_factory=tuple)


SCENES = ("street", "park", "indoor", "plaza", "parking", "night")
CASTS = ((1.12, 1.0, 0.84), (0.84, 0.97, 1.18), (0.92, 1.1, 0.9), (1.0, 1.0, 1.0), (1.1, 0.9, 1.06),
         (0.95, 1.02, 1.08))


def make_cameras(rng: np.random.Generator, n: int, variation: float = 1.0) -> list[CameraStyle]:
    """``n`` cameras with distinct scenes, colour casts and preferred viewpoints."""
    scenes = [SCENES[i % len(SCENES)] for i in rng.permutation(max(n, len(SCENES)))[:n]]
    casts = [CASTS[i % len(CASTS)] for i in rng.permutation(max(n, len(CASTS)))[:n]]
    cams = []
    for c in range(n):
        scene = scenes[c]
        base = {"street": ((150, 140, 132), (104, 104, 108)), "park": ((120, 160, 110), (78, 128, 64)),
                "indoor": ((206, 192, 166), (150, 124, 96)), "plaza": ((196, 196, 204), (160, 92, 74)),
                "parking": ((110, 116, 124), (58, 58, 62)), "night": ((44, 50, 72), (36, 38, 46))}[scene]
        wall = tuple(int(np.clip(0.35 * 128 + 0.65 * v + rng.integers(-15, 16), 0, 255)) for v in base[0])
        ground = tuple(int(np.clip(0.35 * 128 + 0.65 * v + rng.integers(-15, 16), 0, 255)) for v in base[1])
        clutter = [CLOTH[_cloth(rng)] for _ in range(4)] + [tuple(int(v) for v in rng.integers(30, 230, 3))
                                                           for _ in range(2)]
        dark = scene == "night"
        probs = rng.dirichlet(np.full(4, 1.2)) * 0.75 + 0.0625  # each view at least 6%, one or two dominant
        vary = lambda x: float(1.0 + variation * (x - 1.0))  # noqa: E731 - pull towards neutral
        cams.append(CameraStyle(
            scene=scene, wall=wall, ground=ground, clutter=clutter, horizon=float(rng.uniform(0.45, 0.7)),
            gain=tuple(vary(g * rng.uniform(0.96, 1.04)) for g in casts[c]),
            brightness=vary(rng.uniform(1.15, 1.4) if dark else rng.uniform(0.78, 1.15)),
            contrast=vary(rng.uniform(0.75, 1.1)), light_slope=variation * float(rng.uniform(-0.25, 0.25)),
            noise=float(rng.uniform(2, 9)), blur=float(rng.choice([0.0, 0.0, 0.4, 0.7])),
            view_probs=tuple(float(p) for p in probs / probs.sum()),
        ))
    return cams


def _jitter(rng, colour, amount=12):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _rect(d: ImageDraw.ImageDraw, box, **kw) -> None:
    """Rectangle given by any two opposite corners."""
    x0, y0, x1, y1 = box
    d.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], **kw)


def draw_background(rng: np.random.Generator, cam: CameraStyle, w: int, h: int, clutter: float = 1.0) -> Image.Image:
    """Camera-specific scene: wall/sky and ground with clutter (windows, signs, trees, lines)."""
    hz = int(h * (cam.horizon + rng.uniform(-0.05, 0.05)))
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    # each image sees another part of the camera's scene: base colours vary around the camera's own
    top = np.array(_jitter(rng, cam.wall, 28), np.float32) * (0.9 + 0.2 * yy)
    bottom = np.array(_jitter(rng, cam.ground, 28), np.float32) * (0.85 + 0.3 * yy)
    arr = np.where(np.arange(h)[:, None, None] < hz, top, bottom) * np.ones((1, w, 1), np.float32)
    im = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    ncl = int(round(clutter * rng.integers(3, 8)))
    for _ in range(ncl):
        col = _jitter(rng, cam.clutter[int(rng.integers(len(cam.clutter)))], 20)
        x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.1, 0.9) * hz
        bw, bh = rng.uniform(0.1, 0.6) * w, rng.uniform(0.05, 0.3) * h
        if cam.scene == "park":
            d.ellipse([x0, y0, x0 + bw, y0 + bh * 1.5], fill=_jitter(rng, (40, 90, 40), 25))
        elif cam.scene in ("street", "plaza", "indoor"):
            d.rectangle([x0, y0, x0 + bw, y0 + bh], fill=col)
            frame = _jitter(rng, (30, 30, 40))
            if rng.random() < 0.5 and bw > 8 and bh > 8:  # window grid / poster frame
                d.rectangle([x0 + 2, y0 + 2, x0 + bw - 2, y0 + bh - 2], outline=frame, width=2)
        else:
            d.rectangle([x0, y0, x0 + bw, y0 + bh * 0.5], fill=col)
    if cam.scene in ("parking", "street"):
        for _ in range(int(rng.integers(1, 4))):  # road markings
            y = rng.uniform(hz, h)
            d.line([(rng.uniform(-0.5, 0.5) * w, y), (rng.uniform(0.5, 1.5) * w, y + rng.uniform(-8, 8))],
                   fill=(210, 190, 60) if cam.scene == "parking" else (220, 220, 220), width=3)
    elif cam.scene == "plaza":
        for y in np.arange(hz, h, 10):  # brick rows
            d.line([(0, y), (w, y)], fill=tuple(int(v * 0.8) for v in cam.ground), width=1)
    elif cam.scene == "indoor":
        step = int(rng.integers(14, 22))
        for x in range(0, w, step):  # floor tiles
            d.line([(x, hz), (x + (x - w / 2) * 0.5, h)], fill=tuple(int(v * 0.85) for v in cam.ground), width=1)
    elif cam.scene == "night":
        cx = rng.uniform(0, w)
        d.ellipse([cx - 12, -10, cx + 12, 14], fill=(250, 230, 170))  # street lamp
    # the background is out of focus and of lower contrast than the person, as in real crops
    arr = np.asarray(im.filter(ImageFilter.GaussianBlur(BG_BLUR * w / 128)), dtype=np.float32)
    arr = arr.mean(axis=(0, 1)) + BG_CONTRAST * (arr - arr.mean(axis=(0, 1)))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


# ----------------------------------------------------------------------------------------------
# People


def _limb(d: ImageDraw.ImageDraw, p0, p1, w0, w1, fill) -> None:
    """Tapered limb from p0 to p1 (widths w0, w1) with rounded ends."""
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    n = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / n, dx / n
    d.polygon([(x0 + nx * w0 / 2, y0 + ny * w0 / 2), (x1 + nx * w1 / 2, y1 + ny * w1 / 2),
               (x1 - nx * w1 / 2, y1 - ny * w1 / 2), (x0 - nx * w0 / 2, y0 - ny * w0 / 2)], fill=fill)
    d.ellipse([x1 - w1 / 2, y1 - w1 / 2, x1 + w1 / 2, y1 + w1 / 2], fill=fill)


def _pattern_patch(o: Outfit, w: int, h: int, x_off: float, y_off: float, ph: float) -> np.ndarray:
    """Torso texture (h x w x 3 uint8) in body coordinates so it scales with the person."""
    c1, c2 = np.array(CLOTH[o.upper], np.uint8), np.array(CLOTH[o.upper2], np.uint8)
    period = max(o.period * ph, 2.0)
    ys = (np.arange(h, dtype=np.float32) + y_off)[:, None]
    xs = (np.arange(w, dtype=np.float32) + x_off)[None, :]
    if o.pattern == "plain":
        sel = np.zeros((h, w), bool)
    elif o.pattern == "hstripes":
        sel = np.broadcast_to((ys // period) % 2 == 1, (h, w))
    elif o.pattern == "vstripes":
        sel = np.broadcast_to((xs // period) % 2 == 1, (h, w))
    elif o.pattern == "checks":
        sel = ((ys // period) + (xs // period)) % 2 == 1
    else:  # twotone: lower half of the torso in the second colour
        sel = np.broadcast_to(ys > 0.33 * ph, (h, w))
    return np.where(sel[..., None], c2, c1)


def draw_person(im: Image.Image, o: Outfit, cx: float, feet_y: float, ph: float, view: str, phase: float) -> None:
    """Draw a walking pedestrian of height ``ph`` pixels, feet at ``feet_y``, seen from ``view``."""
    d = ImageDraw.Draw(im)
    top = feet_y - ph
    y = lambda u: top + u * ph  # noqa: E731 - body-height fraction to pixels
    side = view in ("left", "right")
    face = 1 if view == "right" else -1  # walking direction on screen (side views)
    half_sh = (0.065 if side else 0.12) * ph * o.build
    half_waist = (0.06 if side else 0.1) * ph * o.build
    lower, skin, hair = CLOTH[o.lower], SKIN[o.skin], HAIR[o.hair]
    sleeve = CLOTH[o.upper2 if o.pattern == "twotone" else o.upper]
    shade = lambda c, f=0.7: tuple(int(v * f) for v in c)  # noqa: E731 - far limbs are darker
    swing = math.sin(phase)
    leg_w0, leg_w1 = 0.085 * ph * o.build, 0.055 * ph
    knee_end = {"trousers": 0.95, "shorts": 0.66, "skirt": 0.5}[o.lower_type]

    def leg(hip_x, foot_x, foot_y, colour_f=1.0):
        hip, foot = (hip_x, y(0.5)), (foot_x, foot_y)
        _limb(d, hip, foot, leg_w0, leg_w1, shade(skin, colour_f))
        if knee_end > 0.5:  # clothed part of the leg, as a fraction of hip-to-foot
            t = (knee_end - 0.5) / 0.45
            mid = (hip[0] + (foot[0] - hip[0]) * t, hip[1] + (foot[1] - hip[1]) * t)
            _limb(d, hip, mid, leg_w0, leg_w0 * (1 - 0.3 * t), shade(lower, colour_f))
        shoe_w = 0.07 * ph
        sx = foot_x + (face * 0.02 * ph if side else 0)
        d.ellipse([sx - shoe_w / 2 - (0.01 * ph if side else 0), foot_y - 0.025 * ph, sx + shoe_w / 2,
                   foot_y + 0.02 * ph], fill=shade(CLOTH[o.shoes], colour_f))

    def arm(sh_x, hand_x, colour_f=1.0):
        sh, hand = (sh_x, y(0.17)), (hand_x, y(0.47))
        aw = 0.05 * ph * o.build
        _limb(d, sh, hand, aw, aw * 0.8, shade(skin, colour_f))
        elbow = (sh[0] + (hand[0] - sh[0]) * (1.0 if o.long_sleeves else 0.45),
                 sh[1] + (hand[1] - sh[1]) * (0.92 if o.long_sleeves else 0.45))
        _limb(d, sh, elbow, aw * 1.1, aw, shade(sleeve, colour_f))
        return hand

    def torso():
        pts = [(cx - half_sh, y(0.15)), (cx + half_sh, y(0.15)), (cx + half_waist, y(0.52)),
               (cx - half_waist, y(0.52))]
        x0, y0 = int(cx - half_sh) - 1, int(y(0.15)) - 1
        x1, y1 = int(math.ceil(cx + half_sh)) + 1, int(math.ceil(y(0.52))) + 1
        mask = Image.new("L", (x1 - x0, y1 - y0))
        ImageDraw.Draw(mask).polygon([(px - x0, py - y0) for px, py in pts], fill=255)
        tex = _pattern_patch(o, x1 - x0, y1 - y0, x0 - cx, y0 - y(0.15), ph)
        im.paste(Image.fromarray(tex), (x0, y0), mask)
        if o.lower_type == "skirt":
            d.polygon([(cx - half_waist, y(0.5)), (cx + half_waist, y(0.5)), (cx + half_waist * 1.5, y(0.72)),
                       (cx - half_waist * 1.5, y(0.72))], fill=lower)

    def head(back: bool):
        hw, hh = (0.05 if side else 0.045) * ph, 0.065 * ph
        hx, hy = cx + (face * 0.01 * ph if side else 0), y(0.075)
        _limb(d, (cx, y(0.13)), (cx, y(0.16)), 0.035 * ph, 0.035 * ph, skin)
        box = [hx - hw, hy - hh, hx + hw, hy + hh]
        if back:
            d.ellipse(box, fill=hair)
        else:
            d.ellipse(box, fill=skin)
            if side:
                d.pieslice(box, 90 if face > 0 else 270, 270 if face > 0 else 90, fill=hair)
                d.chord(box, 180, 360, fill=hair)
            else:
                d.chord(box, 180, 360, fill=hair)
        if o.long_hair:
            if back:
                _rect(d, [hx - hw, hy, hx + hw, y(0.2)], fill=hair)
            elif side:
                _rect(d, [min(hx, hx - face * hw), hy, max(hx, hx - face * hw), y(0.2)], fill=hair)
            else:
                _rect(d, [hx - hw, hy, hx - hw * 0.6, y(0.2)], fill=hair)
                _rect(d, [hx + hw * 0.6, hy, hx + hw, y(0.2)], fill=hair)
        if o.cap:
            cap = CLOTH[o.cap]
            d.chord([hx - hw * 1.05, hy - hh * 1.1, hx + hw * 1.05, hy + hh * 0.5], 180, 360, fill=cap)
            if side:
                _rect(d, [hx + (0 if face > 0 else -hw * 1.7), hy - hh * 0.35,
                          hx + (hw * 1.7 if face > 0 else 0), hy - hh * 0.15], fill=cap)
            elif not back:
                _rect(d, [hx - hw * 0.9, hy - hh * 0.35, hx + hw * 0.9, hy - hh * 0.2], fill=cap)

    def handbag(hand):
        bw, bh = 0.09 * ph, 0.08 * ph
        d.line([(hand[0], hand[1]), (hand[0], hand[1] + 0.02 * ph)], fill=(30, 30, 30), width=max(1, int(ph / 80)))
        _rect(d, [hand[0] - bw / 2, hand[1] + 0.02 * ph, hand[0] + bw / 2, hand[1] + 0.02 * ph + bh],
              fill=CLOTH[o.handbag])

    if side:
        far_hand = arm(cx - face * 0.01 * ph, cx - swing * 0.12 * ph, 0.7)
        if o.backpack:
            _rect(d, [cx - face * (half_sh + 0.07 * ph), y(0.17), cx - face * half_sh * 0.6, y(0.42)],
                  fill=CLOTH[o.backpack])
        if o.handbag and face < 0:  # bag in the right hand, on the far side: mostly hidden
            handbag(far_hand)
        leg(cx, cx - swing * 0.16 * ph, feet_y - 0.01 * ph * max(0.0, -swing), 0.75)
        leg(cx, cx + swing * 0.16 * ph, feet_y - 0.01 * ph * max(0.0, swing))
        torso()
        if o.backpack:  # shoulder strap
            d.line([(cx - face * half_sh * 0.6, y(0.16)), (cx + face * half_sh * 0.3, y(0.35))],
                   fill=shade(CLOTH[o.backpack]), width=max(1, int(ph / 60)))
        near_hand = arm(cx + face * 0.01 * ph, cx + swing * 0.12 * ph)
        if o.handbag and face > 0:
            handbag(near_hand)
        head(back=False)
        return

    lift = 0.015 * ph * swing
    leg(cx - 0.05 * ph * o.build, cx - 0.055 * ph, feet_y - max(0.0, lift))
    leg(cx + 0.05 * ph * o.build, cx + 0.055 * ph, feet_y - max(0.0, -lift))
    torso()
    left_hand = arm(cx - half_sh + 0.02 * ph, cx - half_sh - 0.02 * ph * (1 + swing))
    right_hand = arm(cx + half_sh - 0.02 * ph, cx + half_sh + 0.02 * ph * (1 - swing))
    if view == "front":
        if o.logo:
            lx, ly, r = cx - 0.03 * ph, y(0.25), 0.035 * ph
            col = CLOTH[o.logo]
            if o.logo_shape == "circle":
                d.ellipse([lx - r, ly - r, lx + r, ly + r], fill=col)
            elif o.logo_shape == "square":
                _rect(d, [lx - r, ly - r, lx + r, ly + r], fill=col)
            else:
                d.polygon([(lx, ly - r), (lx + r, ly + r), (lx - r, ly + r)], fill=col)
        if o.backpack:  # only the straps show from the front
            sw = max(1, int(ph / 70))
            for sx in (cx - half_sh * 0.55, cx + half_sh * 0.55):
                d.line([(sx, y(0.15)), (sx, y(0.33))], fill=shade(CLOTH[o.backpack]), width=sw)
        if o.handbag:
            handbag(left_hand)  # the person's right hand is on the viewer's left
        head(back=False)
    else:
        head(back=True)
        if o.backpack:
            _rect(d, [cx - half_sh * 0.75, y(0.17), cx + half_sh * 0.75, y(0.42)], fill=CLOTH[o.backpack])
            _rect(d, [cx - half_sh * 0.55, y(0.3), cx + half_sh * 0.55, y(0.4)], fill=shade(CLOTH[o.backpack], 0.8))
        if o.handbag:
            handbag(right_hand)


def draw_occluder(rng: np.random.Generator, im: Image.Image, kind: str, ph: float, cx: float) -> None:
    """Partial occlusion: a pole, a car, a bush or another pedestrian in front of the person."""
    w, h = im.size
    d = ImageDraw.Draw(im)
    if kind == "pole":
        x = cx + rng.uniform(-0.3, 0.3) * w
        pw = rng.uniform(0.06, 0.14) * w
        colour = _choice(rng, [(90, 90, 96), (40, 60, 40), (150, 140, 120)])
        d.rectangle([x - pw / 2, -1, x + pw / 2, h], fill=_jitter(rng, colour, 15))
    elif kind == "car":
        top = h * rng.uniform(0.55, 0.72)
        x0 = rng.uniform(-0.8, -0.1) * w if rng.random() < 0.5 else rng.uniform(0.1, 0.5) * w
        body = CLOTH[_cloth(rng)]
        d.rounded_rectangle([x0, top, x0 + 1.3 * w, h + 10], radius=int(0.08 * w), fill=body)
        d.rectangle([x0 + 0.15 * w, top + 0.03 * h, x0 + 1.1 * w, top + 0.1 * h], fill=(60, 80, 100))
        wy = h - 0.02 * h
        for wx in (x0 + 0.25 * w, x0 + 1.05 * w):
            d.ellipse([wx - 0.12 * w, wy - 0.12 * w, wx + 0.12 * w, wy + 0.12 * w], fill=(20, 20, 20))
    elif kind == "bush":
        for _ in range(5):
            bx, by = rng.uniform(-0.1, 1.1) * w, h * rng.uniform(0.75, 0.95)
            r = rng.uniform(0.15, 0.3) * w
            d.ellipse([bx - r, by - r, bx + r, by + r], fill=_jitter(rng, (46, 100, 40), 20))
    else:  # another pedestrian, partly in front
        side = 1 if rng.random() < 0.5 else -1
        other = random_outfit(rng)
        draw_person(im, other, cx + side * rng.uniform(0.45, 0.7) * w, h * rng.uniform(0.98, 1.05),
                    ph * rng.uniform(0.95, 1.1), _choice(rng, VIEWS), rng.uniform(0, 2 * math.pi))


def apply_camera(rng: np.random.Generator, im: Image.Image, cam: CameraStyle) -> Image.Image:
    """Camera colour cast, brightness/contrast, left-right light gradient and sensor noise."""
    arr = np.asarray(im, dtype=np.float32)
    h, w, _ = arr.shape
    ramp = 1.0 + cam.light_slope * np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    gain = np.array(cam.gain, np.float32) * cam.brightness * float(rng.uniform(0.88, 1.12))
    mean = arr.mean()
    arr = ((arr - mean) * cam.contrast + mean) * gain * ramp
    arr += rng.normal(0.0, cam.noise, size=arr.shape).astype(np.float32)
    out = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    return out.filter(ImageFilter.GaussianBlur(cam.blur)) if cam.blur > 0 else out


def render_image(rng: np.random.Generator, cfg: SyntheticConfig, cam: CameraStyle, outfit: Outfit | None,
                 kind: str = "person") -> tuple[Image.Image, dict]:
    """One H x W image and its attributes.

    ``kind``: "person" (identity ``outfit``), "distractor" (a stranger or an empty scene)
    or "junk" (a bad detection: mostly background or an extreme close-up).
    """
    s = SUPERSAMPLE
    w, h = cfg.width * s, cfg.height * s
    im = draw_background(rng, cam, w, h, cfg.clutter)
    attrs = {"view": None, "occluder": None}
    view = VIEWS[int(rng.choice(4, p=cam.view_probs))]
    phase = float(rng.uniform(0, 2 * math.pi))
    if kind == "junk":
        mode = _choice(rng, ("edge", "closeup"))
        stranger = random_outfit(rng)
        if mode == "edge":
            draw_person(im, stranger, rng.choice([-0.45, 1.45]) * w, h * 1.0, h * 0.95, view, phase)
        else:
            draw_person(im, stranger, w * rng.uniform(0.3, 0.7), h * rng.uniform(1.3, 2.2), h * rng.uniform(2.2, 3.2),
                        view, phase)
        attrs.update(view=view, junk=mode)
    elif kind == "distractor" and rng.random() < 0.4:
        attrs.update(distractor="background")
    else:
        o = outfit if kind == "person" else random_outfit(rng)
        ph = h * rng.uniform(0.8, 0.98)
        cx = w * (0.5 + rng.normal(0, 0.06))
        feet = h * rng.uniform(0.95, 1.03)
        draw_person(im, o, cx, feet, ph, view, phase)
        attrs.update(view=view, scale=round(ph / h, 3))
        if rng.random() < cfg.occlusion_prob:
            occ = _choice(rng, ("pole", "car", "bush", "person"))
            draw_occluder(rng, im, occ, ph, cx)
            attrs["occluder"] = occ
        if kind == "distractor":
            attrs["distractor"] = "stranger"
    im = im.reduce(s)
    return apply_camera(rng, im, cam), attrs


# ----------------------------------------------------------------------------------------------
# Dataset assembly


def _camera_cycle(rng: np.random.Generator, n: int, num_cameras: int) -> list[int]:
    """Cameras for ``n`` images of one identity: a random permutation repeated (spreads over cameras)."""
    perm = rng.permutation(num_cameras)
    return [int(perm[i % num_cameras]) for i in range(n)]


def plan_dataset(seed: int, cfg: SyntheticConfig) -> tuple[list[dict], dict, list[CameraStyle]]:
    """Every image to draw (folder, pid, camera, kind, per-image seed) plus identity metadata."""
    rng = np.random.default_rng(seed)
    cams = make_cameras(rng, cfg.num_cameras, cfg.camera_variation)
    train_outfits = make_identities(rng, cfg.num_train_ids, cfg, 0)
    test_outfits = make_identities(rng, cfg.num_test_ids, cfg, 10_000)
    total = cfg.num_train_ids + cfg.num_test_ids
    numbers = np.sort(rng.choice(np.arange(1, min(9999, max(2 * total, 1501)) + 1), size=total, replace=False))
    order = rng.permutation(total)  # interleave train and test ids as in Market-1501
    train_pids = sorted(int(numbers[i]) for i in order[:cfg.num_train_ids])
    test_pids = sorted(int(numbers[i]) for i in order[cfg.num_train_ids:])
    frame = rng.integers(100, 5000, size=cfg.num_cameras)
    plan: list[dict] = []

    def add(folder, pid, cam, kind, outfit_key):
        frame[cam] += int(rng.integers(1, 400))
        name = (f"{pid:04d}" if pid >= 0 else "-1") + \
            f"_c{cam + 1}s{int(rng.integers(1, 7))}_{int(frame[cam]):06d}_{int(rng.integers(0, 3)):02d}.jpg"
        plan.append(dict(folder=folder, name=name, pid=pid, cam=cam, kind=kind, outfit=outfit_key,
                         seed=int(rng.integers(2 ** 63 - 1))))

    for pid, outfit in zip(train_pids, train_outfits):
        for cam in _camera_cycle(rng, cfg.images_per_id, cfg.num_cameras):
            add("bounding_box_train", pid, cam, "person", pid)
    for pid, outfit in zip(test_pids, test_outfits):
        n = cfg.query_per_id + cfg.gallery_per_id
        cams_ = _camera_cycle(rng, n, cfg.num_cameras)
        # queries: the first image of distinct cameras (cameras repeat only if query_per_id > num_cameras)
        first_of_cam = {}
        for i, c in enumerate(cams_):
            first_of_cam.setdefault(c, i)
        q_idx = list(first_of_cam.values())[:cfg.query_per_id]
        q_idx += [i for i in range(n) if i not in q_idx][:cfg.query_per_id - len(q_idx)]
        for i, cam in enumerate(cams_):
            add("query" if i in q_idx else "bounding_box_test", pid, cam, "person", pid)
    for _ in range(cfg.num_distractors):
        add("bounding_box_test", 0, int(rng.integers(cfg.num_cameras)), "distractor", None)
    for _ in range(cfg.num_junk):
        add("bounding_box_test", -1, int(rng.integers(cfg.num_cameras)), "junk", None)
    outfits = {pid: o for pid, o in zip(train_pids + test_pids, train_outfits + test_outfits)}
    return plan, outfits, cams


def _readme(seed: int, cfg: SyntheticConfig, counts: dict) -> str:
    opts = "\n".join(f"  {k} = {v}" for k, v in asdict(cfg).items())
    cnt = "\n".join(f"  {k}: {v}" for k, v in counts.items())
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


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _manifest_ok(root: Path, seed: int, cfg: SyntheticConfig, check_files: bool = True) -> bool:
    """True when ``root`` holds a complete dataset made with this seed and these options."""
    try:
        with open(root / MANIFEST_NAME) as fh:
            man = json.load(fh)
    except (OSError, ValueError):
        return False
    if man.get("version") != GENERATOR_VERSION or man.get("seed") != seed or man.get("options") != asdict(cfg):
        return False
    if check_files:
        for rel, (size, _) in man["files"].items():
            p = root / rel
            if not p.is_file() or p.stat().st_size != size:
                return False
    return True


def make_synthetic_reid(root: str | Path, seed: int = 0, overwrite: bool = False, **size_options) -> Path:
    """Generate the synthetic dataset into ``root`` (Market-1501 layout) and return ``root``.

    Reuses ``root`` when it already holds a complete dataset with the same seed and options.
    Options are the fields of :class:`SyntheticConfig` (``num_train_ids``, ``num_test_ids``,
    ``images_per_id``, ``num_cameras``, ...).  A different existing dataset in ``root`` is an
    error unless ``overwrite=True``.  Same seed and options give byte-identical files.
    """
    cfg = make_config(**size_options)
    seed = int(seed)
    root = Path(root).expanduser()
    if root.exists():
        if _manifest_ok(root, seed, cfg):
            return root
        if root.is_file() or (any(root.iterdir()) and not overwrite):
            raise FileExistsError(f"{str(root)!r} exists and is not a complete synthetic dataset with seed={seed} "
                                  f"and these options; choose another folder or pass overwrite=True.")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        plan, outfits, cams = plan_dataset(seed, cfg)
        for folder in ("bounding_box_train", "bounding_box_test", "query"):
            (tmp / folder).mkdir()
        files, image_meta = {}, {}
        for item in plan:
            rng = np.random.default_rng(item["seed"])
            outfit = outfits[item["outfit"]] if item["outfit"] is not None else None
            im, attrs = render_image(rng, cfg, cams[item["cam"]], outfit, item["kind"])
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=cfg.jpeg_quality)
            data = buf.getvalue()
            rel = f"{item['folder']}/{item['name']}"
            (tmp / rel).write_bytes(data)
            files[rel] = [len(data), hashlib.sha256(data).hexdigest()]
            image_meta[rel] = attrs
        counts = cfg.expected_counts()
        meta = {"cameras": [asdict(c) for c in cams],
                "identities": {f"{pid:04d}": asdict(o) for pid, o in outfits.items()},
                "images": image_meta}
        texts = {"metadata.json": json.dumps(meta, sort_keys=True), "README.txt": _readme(seed, cfg, counts)}
        for name, text in texts.items():
            data = text.encode()
            (tmp / name).write_bytes(data)
            files[name] = [len(data), hashlib.sha256(data).hexdigest()]
        manifest = {"generator": "sagkit.data.synthetic", "version": GENERATOR_VERSION, "seed": seed,
                    "options": asdict(cfg), "counts": counts, "files": files}
        _write_atomic(tmp / MANIFEST_NAME, json.dumps(manifest, sort_keys=True, indent=1).encode())
        if root.exists():
            if root.is_dir() and not any(root.iterdir()):
                root.rmdir()
            elif overwrite:
                shutil.rmtree(root)
        publish_dir(tmp, root, done_by_other=lambda dest: _manifest_ok(dest, seed, cfg))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def load_synthetic(root: str | Path | None = None, seed: int | None = None, cache_root: str | Path | None = None,
                   **size_options):
    """The synthetic dataset as a ReIDDataset, generated on first use and reused afterwards.

    ``root=None``: lives in ``synthetic_cache_dir(seed, cache_root, **options)``
    (``$SAGKIT_CACHE`` or ``~/.cache/sagkit``); ``seed`` defaults to 0.  ``root`` given: if it
    holds a synthetic dataset (manifest.json) it is read as it is, or checked against
    ``seed``/options when those are given; otherwise ``root`` is used as the cache folder in
    which ``synthetic-<hash>`` is made.
    """
    from .market1501 import MARKET1501, load_market_layout

    cfg = make_config(**size_options)
    folder = Path(root).expanduser() if root is not None else None
    if folder is not None and folder.is_file():
        raise not_a_folder_error("synthetic root", folder)
    if folder is not None and (folder / MANIFEST_NAME).is_file():
        try:
            man = json.loads((folder / MANIFEST_NAME).read_text())
            seed_found, cfg_found = int(man["seed"]), make_config(**man["options"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{str(folder / MANIFEST_NAME)!r} is not a valid synthetic manifest: {exc}") from exc
        if (seed is not None and int(seed) != seed_found) or (size_options and cfg != cfg_found):
            raise ValueError(f"{str(folder)!r} holds a synthetic dataset with seed={seed_found} and other options "
                             f"than requested (see its README.txt); pass its parent folder to generate another.")
        if not _manifest_ok(folder, seed_found, cfg_found):
            raise ValueError(f"{str(folder)!r} is an incomplete synthetic dataset (files missing or changed); "
                             f"delete it and load again to regenerate.")
        seed, cfg = seed_found, cfg_found
    else:
        seed = 0 if seed is None else int(seed)
        folder = synthetic_cache_dir(seed, root if root is not None else cache_root, **size_options)
        make_synthetic_reid(folder, seed=seed, **size_options)
    ds = load_market_layout(folder, MARKET1501, name="synthetic", multi_query=False)
    ds.info.update(seed=seed, options=asdict(cfg))
    return ds
