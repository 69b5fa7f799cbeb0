#!/usr/bin/python3
"""Two builds of sr_bench against each other, in pairs, on a shared host.

A change of a few per cent to the SR frame is smaller than what the host's other tenants do to
it from one minute to the next (the frame on two threads moves by 10-20 % between rounds), so
the builds take turns: each pair runs both, the order swapped every pair, and the answer is the
median over the pairs of new / old, for one and for two threads (every sr_bench run measures
both).

    /usr/bin/python3 bench/sr_paired.py OLD/bench/sr_bench build/bench/sr_bench [--pairs 12]
        [--precision int8] [--model models/sr/diffusionsr-x2.safetensors]

OLD is a build tree of the commit to compare with (its sr_bench finds that tree's engine
library).  Prints one line per pair and the medians.
"""

import argparse
import json
import os
import statistics
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def frame_ms(binary, model, precision):
    """{threads: median frame ms} of one sr_bench run (one round of 5 frames)."""
    out = subprocess.run([binary, model, "--rounds", "1", "--frames", "5", "--precisions", precision],
                         capture_output=True, text=True, check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    return {t: v[precision]["total_ms"][0] for t, v in res["threads"].items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--model", default=os.path.join(HERE, "..", "models", "sr", "diffusionsr-x2.safetensors"))
    args = ap.parse_args()
    old, new, ratio = {}, {}, {}
    for i in range(args.pairs):
        order = [args.old, args.new] if i % 2 == 0 else [args.new, args.old]
        got = {b: frame_ms(b, args.model, args.precision) for b in order}
        for t in got[args.old]:
            a, b = got[args.old][t], got[args.new][t]
            old.setdefault(t, []).append(a)
            new.setdefault(t, []).append(b)
            ratio.setdefault(t, []).append(b / a)
        print(f"pair {i + 1}: " + ", ".join(f"{t} thread(s) {got[args.old][t]:.1f} -> {got[args.new][t]:.1f} ms"
                                           for t in sorted(got[args.old])), flush=True)
    for t in sorted(ratio):
        print(f"{t} thread(s), {args.pairs} pairs: old median {statistics.median(old[t]):.1f} ms, "
              f"new median {statistics.median(new[t]):.1f} ms, median of new / old "
              f"{statistics.median(ratio[t]):.3f}")


if __name__ == "__main__":
    main()
