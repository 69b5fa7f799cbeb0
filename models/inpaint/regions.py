"""The regions engine/ge-inpaint.h diffuses and blends, written out from its specification in
Python: the reference that tests/golden/make_inpaint_golden.py and bench/inpaint_speed.py use.

- components: bounding boxes of the mask's 8-connected parts;
- boxes_of: each grown by max(larger side / 2, 16) + feather, clamped to the frame, then
  widened to the U-Net's size multiple and merged while they overlap;
- chamfer: 3-4 chamfer distance (thirds of a pixel) to the mask inside a box, capped at
  3 * (feather + 1);
- alpha_of: the blend weight, 1 on the mask, smootherstep to 0 at feather + 1 pixels;
- blend_into: the box's result blended into the frame where the weight is above 0.
"""

import numpy as np

MIN_CONTEXT = 16


def components(mask):
    """Bounding boxes [x0, y0, x1, y1) of the 8-connected parts, in raster order of their first pixel."""
    H, W = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    boxes = []
    for y in range(H):
        for x in range(W):
            if not mask[y, x] or seen[y, x]:
                continue
            todo, b = [(y, x)], [x, y, x + 1, y + 1]
            seen[y, x] = True
            while todo:
                py, px = todo.pop()
                b = [min(b[0], px), min(b[1], py), max(b[2], px + 1), max(b[3], py + 1)]
                for qy in range(py - 1, py + 2):
                    for qx in range(px - 1, px + 2):
                        if 0 <= qy < H and 0 <= qx < W and mask[qy, qx] and not seen[qy, qx]:
                            seen[qy, qx] = True
                            todo.append((qy, qx))
            boxes.append(b)
    return boxes


def widen(a, b, length, n):
    extra = length - (b - a)
    a, b = a - extra // 2, b + extra - extra // 2
    if b > n:
        a, b = a - (b - n), n
    if a < 0:
        a, b = 0, b - a
    return a, b


def boxes_of(mask, m, feather):
    H, W = mask.shape
    out = []
    for x0, y0, x1, y1 in components(mask):
        c = max(max(x1 - x0, y1 - y0) // 2, MIN_CONTEXT) + feather
        out.append([max(x0 - c, 0), max(y0 - c, 0), min(x1 + c, W), min(y1 + c, H)])
    changed = True
    while changed:
        changed = False
        for b in out:
            old = list(b)
            b[0], b[2] = widen(b[0], b[2], max(-(-(b[2] - b[0]) // m) * m, m), W)
            b[1], b[3] = widen(b[1], b[3], max(-(-(b[3] - b[1]) // m) * m, m), H)
            changed |= old != b
        merged = True
        while merged:
            merged = False
            for i in range(len(out)):
                for j in range(i + 1, len(out)):
                    a, b = out[i], out[j]
                    if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                        out[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                        del out[j]
                        merged = changed = True
                        break
                if merged:
                    break
    return out


def chamfer(inside, feather):
    """3-4 chamfer distance (thirds of a pixel) to the True pixels, capped at 3 (feather + 1)."""
    cap = 3 * (feather + 1)
    h, w = inside.shape
    d = np.where(inside, 0, cap).astype(np.int64)
    for y in range(h):
        for x in range(w):
            for dy, dx, c in ((0, -1, 3), (-1, -1, 4), (-1, 0, 3), (-1, 1, 4)):
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    d[y, x] = min(d[y, x], d[y + dy, x + dx] + c)
    for y in range(h - 1, -1, -1):
        for x in range(w - 1, -1, -1):
            for dy, dx, c in ((0, 1, 3), (1, 1, 4), (1, 0, 3), (1, -1, 4)):
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    d[y, x] = min(d[y, x], d[y + dy, x + dx] + c)
    return d


def alpha_of(d, feather):
    t = 1.0 - d.astype(np.float32) / np.float32(3.0 * (feather + 1))
    a = np.where(t <= 0, 0.0, t * t * t * (t * (t * 6 - 15) + 10)).astype(np.float32)
    return np.where(d == 0, np.float32(1), a)


def blend_into(out, g, d, box, feather):
    """Blends the box's result @g (float 0..255, [h, w, 3]) into the frame @out (uint8, in
    place) with alpha_of(@d); pixels of weight 0 and past the frame stay."""
    x0, y0, x1, y1 = box
    H, W = out.shape[:2]
    hh, ww = min(y1, H) - y0, min(x1, W) - x0
    a = alpha_of(d, feather)[:hh, :ww, None]
    region = out[y0:y0 + hh, x0:x0 + ww].astype(np.float32)
    v = a * g[:hh, :ww] + (1 - a) * region + np.float32(0.5)
    blended = np.clip(np.floor(v), 0, 255).astype(np.uint8)
    out[y0:y0 + hh, x0:x0 + ww] = np.where(a > 0, blended, out[y0:y0 + hh, x0:x0 + ww])
