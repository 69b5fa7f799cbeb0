"""The exemplar fill of engine/tasks/patchmatch.h written again from its specification, in
numpy and plain Python loops (slow: for the small golden cases of make_inpaint_golden.py).

Multi-scale PatchMatch with voting (Wexler et al. 2007, Barnes et al. 2009) on 8-bit RGB, all
in integers:

- pyramid: level l + 1 halves level l (sides rounded up); a pixel is hole if any of its (up to
  four; the last row and column repeated on odd sides) children is, a known one the rounded mean
  (sum + 2) // 4 of its children; levels are added while the next one's shorter side is at
  least COARSE_MIN_SIDE and the hole (its bounding box's longer side at level 0, divided by 2^l
  rounded up) spans more than two patches at the current one; coarse levels without a source
  are dropped;
- target: a pixel whose 7x7 window (clipped to the image) holds a hole pixel; source: a pixel
  whose 7x7 window lies in the image and holds none; the distance is the sum of squared RGB
  differences over the target's window clipped to the image;
- draws: Philox4x32-10 keyed by the seed (lo, hi), counter (pos, tag, 2, 0) with pos = (Y &
  0xffff) << 16 | (X & 0xffff), (X, Y) = frame origin + (x << l, y << l), tag = l << 24 |
  round << 8 | k; a uniform integer below n is (word * n) >> 32; random init: round 0xffff,
  k 0, word 0, an index into the sources listed in raster order;
- coarsest level: known targets matched at random; the hole filled ring by ring (the unfilled
  hole pixels with a filled 8-neighbour, filled before the ring): each ring pixel compares every
  source on its filled window pixels only, best distance b, threshold b + b // 4 + 147; the
  draw (round 0xffff, k 1, word 0) picks one of the sources within the threshold in list order;
  the pixel takes the value its match is centred on;
- finer levels: the coarser field doubled (match of (x // 2, y // 2) clamped, times 2 plus
  (x & 1, y & 1)) where that is a source, else a random source; then a vote;
- rounds: for it in range(iters), pass in range(passes): round = it * passes + pass, backward
  = round & 1; 8 row bands [b h // 8, (b + 1) h // 8), each scanned (forward: rows down,
  columns right; backward: the reverse) and propagating only within itself; per target:
  propagation from the previous neighbour in x then in y (its match shifted back by one), then
  random search: radius from max(w, h) halving to 1 (k = 0, 1, ...), words 0 and 1 give the
  offset below 2 rad + 1 minus rad around the current best, clamped to the image; a candidate
  is taken when it is a source, not the current best, and strictly closer; then a vote (the
  rounded mean (sum + n // 2) // n of what the patches over each hole pixel copy), at the
  finest level's last round with centre_pick the pixel its own match is centred on.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "models", "common"))
import ge_rng  # noqa: E402

R = 3
P = 2 * R + 1
MAX_LEVELS = 8
N_BANDS = 8
INIT_ROUND = 0xFFFF


def draw4(seed, pos, tag):
    out = ge_rng.philox4x32_10(np.uint32(pos), np.uint32(tag), np.uint32(2), np.uint32(0),
                               seed & 0xFFFFFFFF, seed >> 32)
    return [int(v) for v in out]


def below(u, n):
    return (u * n) >> 32


class Level:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.rgb = np.zeros((h, w, 3), np.int64)
        self.hole = np.zeros((h, w), bool)
        self.ok = np.zeros((h, w), bool)


def downsample(a):
    b = Level((a.w + 1) // 2, (a.h + 1) // 2)
    for y in range(b.h):
        for x in range(b.w):
            xs = [2 * x, min(2 * x + 1, a.w - 1)]
            ys = [2 * y, min(2 * y + 1, a.h - 1)]
            hole = any(a.hole[yy, xx] for yy in ys for xx in xs)
            s = sum(a.rgb[yy, xx] for yy in ys for xx in xs)
            b.hole[y, x] = hole
            b.rgb[y, x] = 0 if hole else (s + 2) // 4
    return b


class Fill:
    def __init__(self, seed, fx0, fy0, em_iters, coarse_em_iters, passes, centre_pick,
                 coarse_min_side):
        self.seed, self.fx0, self.fy0 = seed, fx0, fy0
        self.em_iters, self.coarse_em_iters, self.passes = em_iters, coarse_em_iters, passes
        self.centre_pick, self.coarse_min_side = centre_pick, coarse_min_side

    def pos(self, x, y):
        X, Y = self.fx0 + (x << self.level), self.fy0 + (y << self.level)
        return ((Y & 0xFFFF) << 16) | (X & 0xFFFF)

    def tag(self, rnd, k):
        return (self.level << 24) | (rnd << 8) | k

    def mark(self):
        L = self.L
        self.target = np.zeros((L.h, L.w), bool)
        self.sources = []
        for y in range(L.h):
            for x in range(L.w):
                n = L.hole[max(y - R, 0):y + R + 1, max(x - R, 0):x + R + 1].any()
                self.target[y, x] = n
                L.ok[y, x] = (not n) and R <= x < L.w - R and R <= y < L.h - R
                if L.ok[y, x]:
                    self.sources.append((x, y))

    def random_source(self, x, y):
        u = draw4(self.seed, self.pos(x, y), self.tag(INIT_ROUND, 0))
        return self.sources[below(u[0], len(self.sources))]

    def ssd(self, px, py, qx, qy):
        """Squared differences over the target's window clipped to the image (the engine stops
        summing early once past the best; that changes no decision)."""
        L = self.L
        x0, x1 = max(px - R, 0), min(px + R, L.w - 1)
        y0, y1 = max(py - R, 0), min(py + R, L.h - 1)
        t = L.rgb[y0:y1 + 1, x0:x1 + 1]
        src = L.rgb[qy + y0 - py:qy + y1 - py + 1, qx + x0 - px:qx + x1 - px + 1]
        return int(((t - src) ** 2).sum())

    def masked_ssd_all(self, st, px, py):
        """The masked distance of the target at (px, py) to every source, over its window's
        filled (st == 1) pixels."""
        L = self.L
        d = np.zeros(len(self.sources), np.int64)
        qx = np.array([q[0] for q in self.sources])
        qy = np.array([q[1] for q in self.sources])
        for dy in range(-R, R + 1):
            for dx in range(-R, R + 1):
                tx, ty = px + dx, py + dy
                if 0 <= tx < L.w and 0 <= ty < L.h and st[ty, tx] == 1:
                    d += ((L.rgb[ty, tx][None, :] - L.rgb[qy + dy, qx + dx]) ** 2).sum(1)
        return d

    def onion(self):
        L = self.L
        st = np.where(L.hole, 0, 1)
        while True:
            ring = []
            for y in range(L.h):
                for x in range(L.w):
                    if st[y, x] != 0:
                        continue
                    nb = st[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
                    if (nb == 1).any():
                        ring.append((x, y))
            if not ring:
                break
            for x, y in ring:
                d = self.masked_ssd_all(st, x, y)
                best = int(d.min())
                thr = best + best // 4 + P * P * 3
                within = [q for q, dq in zip(self.sources, d) if dq <= thr]
                u = draw4(self.seed, self.pos(x, y), self.tag(INIT_ROUND, 1))
                q = within[below(u[0], len(within))]
                self.nnf[(x, y)] = q
                L.rgb[y, x] = L.rgb[q[1], q[0]]
            for x, y in ring:
                st[y, x] = 1

    def dist_all(self):
        self.dist = {}
        for (x, y), q in self.nnf.items():
            self.dist[(x, y)] = self.ssd(x, y, q[0], q[1])

    def vote(self, centre):
        L = self.L
        new = L.rgb.copy()
        for y in range(L.h):
            for x in range(L.w):
                if not L.hole[y, x]:
                    continue
                if centre:
                    qx, qy = self.nnf[(x, y)]
                    new[y, x] = L.rgb[qy, qx]
                    continue
                s, n = np.zeros(3, np.int64), 0
                for ty in range(max(y - R, 0), min(y + R, L.h - 1) + 1):
                    for tx in range(max(x - R, 0), min(x + R, L.w - 1) + 1):
                        qx, qy = self.nnf[(tx, ty)]
                        s += L.rgb[qy + y - ty, qx + x - tx]
                        n += 1
                new[y, x] = (s + n // 2) // n
        L.rgb = new

    def try_match(self, x, y, qx, qy, best, bd):
        L = self.L
        if qx < 0 or qy < 0 or qx >= L.w or qy >= L.h:
            return best, bd
        if (qx, qy) == best or not L.ok[qy, qx]:
            return best, bd
        d = self.ssd(x, y, qx, qy)
        return ((qx, qy), d) if d < bd else (best, bd)

    def search_pixel(self, x, y, y0, y1, backward, rnd):
        L = self.L
        best, bd = self.nnf[(x, y)], self.dist[(x, y)]
        s = 1 if backward else -1
        if 0 <= x + s < L.w and self.target[y, x + s]:
            q = self.nnf[(x + s, y)]
            best, bd = self.try_match(x, y, q[0] - s, q[1], best, bd)
        if y0 <= y + s < y1 and self.target[y + s, x]:
            q = self.nnf[(x, y + s)]
            best, bd = self.try_match(x, y, q[0], q[1] - s, best, bd)
        pos, k, rad = self.pos(x, y), 0, max(L.w, L.h)
        while rad >= 1:
            u = draw4(self.seed, pos, self.tag(rnd, k))
            bx, by = best
            cx = min(max(bx + below(u[0], 2 * rad + 1) - rad, 0), L.w - 1)
            cy = min(max(by + below(u[1], 2 * rad + 1) - rad, 0), L.h - 1)
            best, bd = self.try_match(x, y, cx, cy, best, bd)
            rad //= 2
            k += 1
        self.nnf[(x, y)], self.dist[(x, y)] = best, bd

    def search(self, backward, rnd):
        L = self.L
        for b in range(N_BANDS):
            y0, y1 = b * L.h // N_BANDS, (b + 1) * L.h // N_BANDS
            ys = range(y1 - 1, y0 - 1, -1) if backward else range(y0, y1)
            xs = list(range(L.w - 1, -1, -1)) if backward else list(range(L.w))
            for y in ys:
                for x in xs:
                    if self.target[y, x]:
                        self.search_pixel(x, y, y0, y1, backward, rnd)

    def run(self, rgb, hole):
        h, w = hole.shape
        ys, xs = np.nonzero(hole)
        if len(ys) == 0:
            return rgb.copy()
        extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        L0 = Level(w, h)
        L0.rgb = rgb.astype(np.int64).copy()
        L0.hole = hole.astype(bool).copy()
        L0.rgb[L0.hole] = 0
        levels = [L0]
        while len(levels) < MAX_LEVELS:
            n = len(levels)
            nw, nh = (levels[-1].w + 1) // 2, (levels[-1].h + 1) // 2
            if min(nw, nh) < self.coarse_min_side or (extent + (1 << (n - 1)) - 1) >> (n - 1) <= 2 * P:
                break
            levels.append(downsample(levels[-1]))
        while True:
            self.level, self.L = len(levels) - 1, levels[-1]
            self.mark()
            if self.sources or len(levels) == 1:
                break
            levels.pop()
        if not self.sources:
            return None
        prev = None
        for l in range(len(levels) - 1, -1, -1):
            self.level, self.L = l, levels[l]
            L = self.L
            self.mark()
            self.nnf = {}
            if l == len(levels) - 1:
                for y in range(L.h):
                    for x in range(L.w):
                        if self.target[y, x] and not L.hole[y, x]:
                            self.nnf[(x, y)] = self.random_source(x, y)
                self.onion()
            else:
                C = levels[l + 1]
                for y in range(L.h):
                    for x in range(L.w):
                        if not self.target[y, x]:
                            continue
                        c = prev.get((min(x // 2, C.w - 1), min(y // 2, C.h - 1)))
                        q = None
                        if c is not None:
                            qx, qy = 2 * c[0] + (x & 1), 2 * c[1] + (y & 1)
                            if qx < L.w and qy < L.h and L.ok[qy, qx]:
                                q = (qx, qy)
                        self.nnf[(x, y)] = q if q is not None else self.random_source(x, y)
                self.vote(False)
            self.dist_all()
            iters = self.coarse_em_iters if l == len(levels) - 1 else self.em_iters
            for it in range(iters):
                for p in range(self.passes):
                    rnd = it * self.passes + p
                    self.search(rnd & 1, rnd)
                self.vote(l == 0 and it == iters - 1 and self.centre_pick)
                if it < iters - 1:
                    self.dist_all()
            prev = self.nnf
        out = rgb.copy()
        out[hole] = levels[0].rgb[hole].astype(np.uint8)
        return out


def patchmatch_fill(rgb, hole, seed, frame_x0=0, frame_y0=0, em_iters=4, coarse_em_iters=6, passes=2,
                    centre_pick=True, coarse_min_side=8 * P):
    """rgb uint8 [h, w, 3], hole bool [h, w] -> the filled uint8 image, or None when no source
    fits (the engine then leaves the image to the sampler)."""
    f = Fill(int(seed), frame_x0, frame_y0, em_iters, coarse_em_iters, passes, centre_pick, coarse_min_side)
    return f.run(rgb, hole)
