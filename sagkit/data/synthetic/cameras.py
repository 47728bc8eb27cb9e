"""Cameras of the synthetic set: each one's scene, background clutter and photometric signature.

A camera fixes a scene type, wall/ground colours, a colour cast, brightness, contrast, a left-right
light gradient, sensor noise, blur and preferred viewpoints; :func:`draw_background` and
:func:`apply_camera` put that signature into every image the camera takes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from sagkit.data.synthetic.palette import CLOTH, cloth_colour, jitter

BG_BLUR = 4.0  # background blur radius (pixels at 128 px width): out of focus behind the person
BG_CONTRAST = 0.5  # background contrast relative to the person
SCENES = ("street", "park", "indoor", "plaza", "parking", "night")
CASTS = ((1.12, 1.0, 0.84), (0.84, 0.97, 1.18), (0.92, 1.1, 0.9), (1.0, 1.0, 1.0), (1.1, 0.9, 1.06),
         (0.95, 1.02, 1.08))
# (wall, ground) base colours of each scene, pulled towards grey per camera
SCENE_COLOURS = {"street": ((150, 140, 132), (104, 104, 108)), "park": ((120, 160, 110), (78, 128, 64)),
                 "indoor": ((206, 192, 166), (150, 124, 96)), "plaza": ((196, 196, 204), (160, 92, 74)),
                 "parking": ((110, 116, 124), (58, 58, 62)), "night": ((44, 50, 72), (36, 38, 46))}


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


def make_cameras(rng: np.random.Generator, n: int, variation: float = 1.0) -> list[CameraStyle]:
    """``n`` cameras with distinct scenes, colour casts and preferred viewpoints."""
    scenes = [SCENES[i % len(SCENES)] for i in rng.permutation(max(n, len(SCENES)))[:n]]
    casts = [CASTS[i % len(CASTS)] for i in rng.permutation(max(n, len(CASTS)))[:n]]
    cams = []
    for c in range(n):
        scene = scenes[c]
        base = SCENE_COLOURS[scene]
        wall = tuple(int(np.clip(0.35 * 128 + 0.65 * v + rng.integers(-15, 16), 0, 255)) for v in base[0])
        ground = tuple(int(np.clip(0.35 * 128 + 0.65 * v + rng.integers(-15, 16), 0, 255)) for v in base[1])
        clutter = [CLOTH[cloth_colour(rng)] for _ in range(4)] + [tuple(int(v) for v in rng.integers(30, 230, 3))
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


def draw_background(rng: np.random.Generator, cam: CameraStyle, w: int, h: int, clutter: float = 1.0) -> Image.Image:
    """Camera-specific scene: wall/sky and ground with clutter (windows, signs, trees, lines)."""
    hz = int(h * (cam.horizon + rng.uniform(-0.05, 0.05)))
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    # each image sees another part of the camera's scene: base colours vary around the camera's own
    top = np.array(jitter(rng, cam.wall, 28), np.float32) * (0.9 + 0.2 * yy)
    bottom = np.array(jitter(rng, cam.ground, 28), np.float32) * (0.85 + 0.3 * yy)
    arr = np.where(np.arange(h)[:, None, None] < hz, top, bottom) * np.ones((1, w, 1), np.float32)
    im = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    ncl = int(round(clutter * rng.integers(3, 8)))
    for _ in range(ncl):
        col = jitter(rng, cam.clutter[int(rng.integers(len(cam.clutter)))], 20)
        x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.1, 0.9) * hz
        bw, bh = rng.uniform(0.1, 0.6) * w, rng.uniform(0.05, 0.3) * h
        if cam.scene == "park":
            d.ellipse([x0, y0, x0 + bw, y0 + bh * 1.5], fill=jitter(rng, (40, 90, 40), 25))
        elif cam.scene in ("street", "plaza", "indoor"):
            d.rectangle([x0, y0, x0 + bw, y0 + bh], fill=col)
            frame = jitter(rng, (30, 30, 40))
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
