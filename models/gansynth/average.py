#!/usr/bin/python3
"""Averages the generator weights of several train.py checkpoints (the validated ones: the EMA
weights of an --ema run), the discriminator and the rest coming from the last one: the
checkpoints of one run, a steadier start for a fine-tuning (train.py --init) than any single
checkpoint of a noisy validation curve, or the ends of runs from one start (a model soup).

    /usr/bin/python3 models/gansynth/average.py OUT.pt CKPT.pt [CKPT.pt ...]
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import validated_generator  # noqa: E402


def main():
    out, srcs = sys.argv[1], sys.argv[2:]
    cks = [torch.load(p, map_location="cpu") for p in srcs]
    gens = [validated_generator(c) for c in cks]
    G = {k: sum(g[k] for g in gens) / len(gens) for k in gens[0]}
    # both slots: validated_generator() and export.py read G_ema where a run kept one; the
    # last checkpoint's validation is not the average's
    torch.save(dict(cks[-1], G=G, G_ema=G, val=None, averaged=srcs), out)
    print(f"{out}: mean of {len(cks)} generators (steps {', '.join(str(c['step']) for c in cks)})")


if __name__ == "__main__":
    main()
