"""The engine's noise (engine/diffusion/ge-rng.c) in numpy: Philox4x32-10
keyed by the seed, counter = (index lo, index hi, stream, 0), four words per
block, Box-Muller in double on (w + 0.5) / 2^32.  Lets PyTorch reference
runs use exactly the noise the C engine draws.
"""
import numpy as np

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
MASK = np.uint64(0xFFFFFFFF)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Vectorised over counters (uint32 arrays); key scalars (uint32)."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint32).copy() for c in (c0, c1, c2, c3))
    k0, k1 = np.uint32(k0), np.uint32(k1)
    with np.errstate(over="ignore"):
        for r in range(10):
            if r > 0:
                k0 = np.uint32(k0 + W0)
                k1 = np.uint32(k1 + W1)
            p0 = M0 * c0.astype(np.uint64)
            p1 = M1 * c2.astype(np.uint64)
            hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), (p0 & MASK).astype(np.uint32)
            hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), (p1 & MASK).astype(np.uint32)
            c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def normal(seed, offset, n):
    """float32[n]: elements offset .. offset + n - 1 of the seed's normal stream."""
    idx = np.arange(offset, offset + n, dtype=np.uint64)
    blocks = idx >> np.uint64(2)
    lo = (blocks & MASK).astype(np.uint32)
    hi = (blocks >> np.uint64(32)).astype(np.uint32)
    zero = np.zeros_like(lo)
    seed = int(seed)
    w = philox4x32_10(lo, hi, zero, zero, seed & 0xFFFFFFFF, seed >> 32)

    def u(x):
        return (x.astype(np.float64) + 0.5) * (1.0 / 4294967296.0)

    r0, t0 = np.sqrt(-2.0 * np.log(u(w[0]))), 2.0 * np.pi * u(w[1])
    r1, t1 = np.sqrt(-2.0 * np.log(u(w[2]))), 2.0 * np.pi * u(w[3])
    z = np.stack([r0 * np.cos(t0), r0 * np.sin(t0), r1 * np.cos(t1), r1 * np.sin(t1)], axis=1)
    pick = (idx & np.uint64(3)).astype(np.int64)
    return z[np.arange(n), pick].astype(np.float32)


def sr_noise(seed, s, y0, x0, h, w, channels=3):
    """x_T of the super-resolution task for an HR window [channels, h, w] at (y0, x0):
    the noise of pixel (c, Y, X) is element ((c << 16 | Y) << 16 | X).  The VAE codec draws
    its latent noise the same way."""
    out = np.empty((channels, h, w), dtype=np.float32)
    for c in range(channels):
        for y in range(h):
            out[c, y] = normal(seed, ((c << 16 | (y0 + y)) << 16) | x0, w)
    return out
