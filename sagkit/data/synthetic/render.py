"""One synthetic image: background, person (or stranger, or bad crop), occluder, then the camera's look.

Drawing happens at ``SUPERSAMPLE`` times the output size and is reduced at the end (anti-aliasing).
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from sagkit.data.synthetic.cameras import CameraStyle, apply_camera, draw_background
from sagkit.data.synthetic.config import SyntheticConfig
from sagkit.data.synthetic.drawing import draw_person
from sagkit.data.synthetic.identities import Outfit, random_outfit
from sagkit.data.synthetic.palette import CLOTH, VIEWS, choice, cloth_colour, jitter

SUPERSAMPLE = 2


def draw_occluder(rng: np.random.Generator, im: Image.Image, kind: str, ph: float, cx: float) -> None:
    """Partial occlusion: a pole, a car, a bush or another pedestrian in front of the person."""
    w, h = im.size
    d = ImageDraw.Draw(im)
    if kind == "pole":
        x = cx + rng.uniform(-0.3, 0.3) * w
        pw = rng.uniform(0.06, 0.14) * w
        colour = choice(rng, [(90, 90, 96), (40, 60, 40), (150, 140, 120)])
        d.rectangle([x - pw / 2, -1, x + pw / 2, h], fill=jitter(rng, colour, 15))
    elif kind == "car":
        top = h * rng.uniform(0.55, 0.72)
        x0 = rng.uniform(-0.8, -0.1) * w if rng.random() < 0.5 else rng.uniform(0.1, 0.5) * w
        body = CLOTH[cloth_colour(rng)]
        d.rounded_rectangle([x0, top, x0 + 1.3 * w, h + 10], radius=int(0.08 * w), fill=body)
        d.rectangle([x0 + 0.15 * w, top + 0.03 * h, x0 + 1.1 * w, top + 0.1 * h], fill=(60, 80, 100))
        wy = h - 0.02 * h
        for wx in (x0 + 0.25 * w, x0 + 1.05 * w):
            d.ellipse([wx - 0.12 * w, wy - 0.12 * w, wx + 0.12 * w, wy + 0.12 * w], fill=(20, 20, 20))
    elif kind == "bush":
        for _ in range(5):
            bx, by = rng.uniform(-0.1, 1.1) * w, h * rng.uniform(0.75, 0.95)
            r = rng.uniform(0.15, 0.3) * w
            d.ellipse([bx - r, by - r, bx + r, by + r], fill=jitter(rng, (46, 100, 40), 20))
    else:  # another pedestrian, partly in front
        side = 1 if rng.random() < 0.5 else -1
        other = random_outfit(rng)
        draw_person(im, other, cx + side * rng.uniform(0.45, 0.7) * w, h * rng.uniform(0.98, 1.05),
                    ph * rng.uniform(0.95, 1.1), choice(rng, VIEWS), rng.uniform(0, 2 * math.pi))


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
        mode = choice(rng, ("edge", "closeup"))
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
            occ = choice(rng, ("pole", "car", "bush", "person"))
            draw_occluder(rng, im, occ, ph, cx)
            attrs["occluder"] = occ
        if kind == "distractor":
            attrs["distractor"] = "stranger"
    im = im.reduce(s)
    return apply_camera(rng, im, cam), attrs
