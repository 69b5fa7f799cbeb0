#!/usr/bin/python3
"""Speech enhancement speed: gansynth's engine against RNNoise (npm @jitsi/rnnoise-wasm) in one
run, one thread, on the same 60 s of 48 kHz audio (speech-like tones in noise).

    /usr/bin/python3 bench/speech_speed.py [--rounds 5] [--model FILE]

Both are timed over their processing loop only (no file I/O): build/bench/speech_bench feeds
the engine a hop at a time as the element does; bench/rnnoise_run.mjs feeds RNNoise its
480-sample frames.  Real-time factor = processing time / audio time, median of the rounds, and
the ratio gansynth / RNNoise per round (below 1: gansynth is faster).  Also gansynth at 16 kHz.
gansynth runs at the element's default precision (auto: int8 for the shipped model where the CPU
has AVX512-VNNI) unless --precision says otherwise; the table names what ran.
"""
import argparse
import json
import os
import subprocess

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = 60


def signal(rate):
    rng = np.random.default_rng(5)
    t = np.arange(SECONDS * rate) / rate
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    x = env * sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 540, 720), 1)) * 0.1
    return (x + 0.03 * rng.standard_normal(t.size)).astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "gansynth", "gansynth.safetensors"))
    ap.add_argument("--precision", default="auto", choices=("auto", "f32", "int8"))
    args = ap.parse_args()
    out = os.path.join(ROOT, "bench", "out")
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    res = {}
    for rate in (48000, 16000):
        f = os.path.join(out, f"speed{rate}.f32")
        signal(rate).tofile(f)
        r = subprocess.run([os.path.join(ROOT, "build", "bench", "speech_bench"), args.model, str(rate), f,
                            str(args.rounds), args.precision], capture_output=True, text=True, check=True, env=env)
        res[f"gansynth_{rate}"] = [float(v) for v in r.stdout.split()]
        res["gansynth_precision"] = r.stderr.split()[-1]
    f = os.path.join(out, "speed48000.f32")
    pairs = []
    for i in range(args.rounds):
        pairs += [f, os.path.join(out, f"speed48000.rnnoise{i}.f32")]
    r = subprocess.run(["node", os.path.join(ROOT, "bench", "rnnoise_run.mjs")] + pairs,
                       capture_output=True, text=True, check=True, env=env)
    res["rnnoise_48000"] = json.loads(r.stdout)["process_ms"]
    g, rn = np.array(res["gansynth_48000"]), np.array(res["rnnoise_48000"])
    ratios = g / rn
    print(f"{SECONDS} s of audio, 1 thread, {args.rounds} rounds (ms per round); gansynth precision "
          f"{args.precision}: {res['gansynth_precision']} runs")
    print("| engine | rate | ms per round | median RTF |")
    print("|---|---:|---|---:|")
    for k, rate in (("gansynth_48000", 48000), ("rnnoise_48000", 48000), ("gansynth_16000", 16000)):
        v = res[k]
        print(f"| {k.split('_')[0]} | {rate} | {', '.join(f'{x:.0f}' for x in v)} | "
              f"{np.median(v) / 1000 / SECONDS:.4f} |")
    print(f"gansynth / RNNoise at 48 kHz per round: {', '.join(f'{x:.2f}' for x in ratios)}; "
          f"median {np.median(ratios):.2f}")
    json.dump(res, open(os.path.join(out, "speech_speed.json"), "w"))


if __name__ == "__main__":
    main()
