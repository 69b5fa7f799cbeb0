#!/usr/bin/python3
"""Unit test of bench/inpaint_quality.py's detail ratio and border gradient on synthetic
inputs: a copy of the original scores 1, a flat fill 0, a half-contrast copy 1/4, a mask too
small or a flat original no score; the seam band and its gradient.

    /usr/bin/python3 bench/test_inpaint_measures.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import inpaint_quality as IQ  # noqa: E402


def main():
    rng = np.random.default_rng(1)
    orig = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[10:40, 12:42] = 1                       # eroded by 2: 26 x 26 = 676 pixels
    assert IQ.erode(mask, 2).sum() == 26 * 26
    assert abs(IQ.detail_ratio(orig.copy(), orig, mask) - 1.0) < 1e-12
    flat = orig.copy()
    flat[mask > 0] = 128
    assert IQ.detail_ratio(flat, orig, mask) == 0.0
    # half the contrast around grey: the Laplacian halves, its square a quarter
    grey = np.full_like(orig, 128)
    half = orig.astype(np.int32) // 2 * 2           # even values, so that /2 is exact
    orig_even = half.astype(np.uint8)
    halved = orig_even.copy()
    halved[mask > 0] = (half[mask > 0] // 2 + 64).astype(np.uint8)
    assert abs(IQ.detail_ratio(halved, orig_even, mask) - 0.25) < 1e-12
    # the luma is BT.601 on the 0-255 scale
    assert abs(IQ.luma601(np.array([[[255, 0, 0]]], np.uint8))[0, 0] - 76.245) < 1e-9
    # too small: 23 x 23 mask, eroded 19 x 19 = 361 < 400 pixels
    small = np.zeros((64, 64), np.uint8)
    small[20:43, 20:43] = 1
    assert IQ.detail_ratio(orig, orig, small) is None
    # flat original: no score
    assert IQ.detail_ratio(orig, grey, mask) is None
    # a ramp of luma slope 1: mean squared Laplacian 0 inside, so flat -> no score
    ramp = np.repeat(np.repeat(np.arange(64, dtype=np.uint8)[None, :, None], 64, 0), 3, 2)
    assert IQ.detail_ratio(ramp, ramp, mask) is None
    # the seam band: 2 pixels each side of the border of a 30 x 30 box
    band = IQ.seam_band(mask)
    assert band.sum() == 34 * 34 - 26 * 26
    assert band[10, 12] and band[8, 10] and not band[7, 10] and not band[12, 14]
    # on the ramp, the gradient is 1 everywhere in the band; on grey, 0
    assert abs(IQ.border_gradient(ramp, mask) - 1.0) < 1e-12
    assert IQ.border_gradient(grey, mask) == 0.0
    print("inpaint measures: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
