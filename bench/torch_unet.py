#!/usr/bin/python3
"""Times the benchmark UNet forward pass in PyTorch (CPU) on 1 and 2 threads.

Usage:  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_unet.py [--runs N] [--warmup N] [--threads 1,2]

Needs bench/out/unet_bench/ (run bench/unet_bench_model.py first).  Loads the same weights as
the C engine and ORT (config.json + diffusion_pytorch_model.safetensors) with
models/common/diffusers_torch.py, runs model(sample [1,3,256,256], timestep [1]) under
torch.no_grad(), and prints JSON: per thread count the median / min / all run times in ms, plus
the max abs difference to the stored reference output (a sanity check that the run is the same model).
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models", "common"))

import diffusers_torch as dt  # noqa: E402

MODEL_DIR = os.path.join(HERE, "out", "unet_bench")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()

    model = dt.load_pretrained(MODEL_DIR)
    x = torch.from_numpy(np.fromfile(os.path.join(MODEL_DIR, "input_sample.bin"), dtype="<f4")).reshape(1, 3, 256, 256)
    t = torch.from_numpy(np.fromfile(os.path.join(MODEL_DIR, "input_timestep.bin"), dtype="<i8"))
    ref = torch.from_numpy(np.fromfile(os.path.join(MODEL_DIR, "torch_out.bin"), dtype="<f4")).reshape(1, 3, 256, 256)

    result = {"torch": torch.__version__, "params": sum(p.numel() for p in model.parameters()),
              "input": list(x.shape), "runs": args.runs, "warmup": args.warmup,
              "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "threads": {}}
    for n in [int(s) for s in args.threads.split(",")]:
        torch.set_num_threads(n)
        with torch.no_grad():
            for _ in range(args.warmup):
                out = model(x, t).sample
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                out = model(x, t).sample
                times.append((time.perf_counter() - t0) * 1e3)
        result["threads"][str(n)] = {
            "median_ms": statistics.median(times), "min_ms": min(times),
            "times_ms": [round(v, 2) for v in times],
            "max_abs_diff_vs_ref": (out - ref).abs().max().item(),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
