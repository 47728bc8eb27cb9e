"""Drawing a pedestrian: body, clothing texture and the small details that tell look-alikes apart.

Views hide details as in Figure 1 of the paper: a back view hides the logo, a frontal view shows only
the straps of a backpack, a side view hides a handbag carried on the far side.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from sagkit.data.synthetic.identities import Outfit
from sagkit.data.synthetic.palette import CLOTH, HAIR, SKIN


def _rect(d: ImageDraw.ImageDraw, box, **kw) -> None:
    """Rectangle given by any two opposite corners."""
    x0, y0, x1, y1 = box
    d.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], **kw)


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
