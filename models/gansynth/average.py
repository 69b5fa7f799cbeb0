#!/usr/bin/python3
"""Averages the generator weights of several train.py checkpoints of one run (the discriminator
and the rest come from the last one): a steadier start for a fine-tuning (train.py --init) than
any single checkpoint of a noisy validation curve.

    /usr/bin/python3 models/gansynth/average.py OUT.pt CKPT.pt [CKPT.pt ...]
"""
import sys

import torch


def main():
    out, srcs = sys.argv[1], sys.argv[2:]
    cks = [torch.load(p, map_location="cpu") for p in srcs]
    G = {k: sum(c["G"][k] for c in cks) / len(cks) for k in cks[0]["G"]}
    torch.save(dict(cks[-1], G=G), out)
    print(f"{out}: mean of {len(cks)} generators (steps {', '.join(str(c['step']) for c in cks)})")


if __name__ == "__main__":
    main()
