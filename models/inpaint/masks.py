"""Random inpainting masks of the three kinds users bring (1 = regenerate, 0 = keep).

  box     an object's bounding box, as a detector reports it: a rectangle of 15-50 % of each
          side, anywhere
  stroke  free-form brush strokes (DeepFill v2's generator, scaled): 1-4 random walks of 4-9
          vertices, a brush of 5-12 % of the side, round joints
  logo    a station logo or watermark: a rectangle, ellipse or row of glyph-like blocks of
          15-45 % x 10-30 % of the side, 2-10 % of the side away from one corner (the element
          diffuses the mask's box plus context, clamped to the frame, so a corner logo fills a
          good part of a crop that it sits in the corner of)

`make(kind, size, rng)` draws one mask; `rng` is a numpy Generator, so a seed gives the same
masks in training, validation and the benchmark.
"""

import math

import numpy as np
from PIL import Image, ImageDraw

KINDS = ("box", "stroke", "logo")


def _box(d, P, rng):
    w, h = (rng.uniform(0.15, 0.5, 2) * P).astype(int)
    x, y = rng.integers(0, P - w + 1), rng.integers(0, P - h + 1)
    d.rectangle([x, y, x + w - 1, y + h - 1], fill=255)


def _stroke(d, P, rng):
    for _ in range(rng.integers(1, 5)):
        width = max(2, int(rng.uniform(0.05, 0.12) * P))
        x, y = rng.uniform(0, P, 2)
        pts = [(x, y)]
        angle = rng.uniform(0, 2 * math.pi)
        for _ in range(rng.integers(4, 10)):
            angle += rng.uniform(-1.2, 1.2)
            step = rng.uniform(0.05, 0.25) * P
            x = float(np.clip(x + step * math.cos(angle), 0, P - 1))
            y = float(np.clip(y + step * math.sin(angle), 0, P - 1))
            pts.append((x, y))
        d.line(pts, fill=255, width=width)
        r = width / 2
        for px, py in pts:     # round joints and ends
            d.ellipse([px - r, py - r, px + r, py + r], fill=255)


def _logo(d, P, rng):
    w, h = int(rng.uniform(0.15, 0.45) * P), int(rng.uniform(0.10, 0.30) * P)
    mx, my = (rng.uniform(0.02, 0.10, 2) * P).astype(int)
    right, bottom = rng.integers(0, 2, 2)
    x = P - mx - w if right else mx
    y = P - my - h if bottom else my
    shape = rng.integers(0, 3)
    if shape == 0:
        d.rectangle([x, y, x + w - 1, y + h - 1], fill=255)
    elif shape == 1:
        d.ellipse([x, y, x + w - 1, y + h - 1], fill=255)
    else:                      # glyphs: blocks of a word, with gaps
        n = int(rng.integers(3, 7))
        gw = w / n
        for i in range(n):
            gh = h * rng.uniform(0.6, 1.0)
            d.rectangle([x + i * gw, y + h - gh, x + (i + 0.75) * gw, y + h - 1], fill=255)


def make(kind, size, rng):
    """-> float32 [size, size], 1 inside the mask, 0 outside (never empty)."""
    img = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(img)
    {"box": _box, "stroke": _stroke, "logo": _logo}[kind](d, size, rng)
    m = (np.asarray(img) > 127).astype(np.float32)
    if not m.any():
        m[size // 2, size // 2] = 1.0
    return m


def batch(n, size, rng, kinds=KINDS):
    """-> float32 [n, 1, size, size], kinds in turn."""
    return np.stack([make(kinds[i % len(kinds)], size, rng)[None] for i in range(n)])
