#!/usr/bin/python3
"""Few-step samplers of a diffusionsr model against each other: PSNR-Y and fine detail per step
count, to see which trades less fidelity for the detail that more steps add (issue 3).

Runs in PyTorch with the training code's definitions (models/sr/train.py), on its 62
validation crops of 192 px (never trained on), the same noise for every sampler:

  ddim     what the element does: DDIM, eta 0, trailing timesteps, x0 prediction
  ddpm     the same timesteps with eta 1 (fresh noise at each step, DDPM's variance)
  restart  the first step's x0 re-noised with fresh noise to each later timestep and
           predicted again (no DDIM update in between); the output is the last x0
  fixed    as restart, but with one noise draw for every step

    /usr/bin/python3 bench/sr_samplers.py --model models/sr/diffusionsr-x2.safetensors

PSNR-Y and the detail ratio are bench/sr_quality.py's (a scale-pixel border excluded).
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sr_quality as Q  # noqa: E402  (puts models/sr and models/common on sys.path)
import train as T  # noqa: E402

SAMPLERS = ("ddim", "ddpm", "restart", "fixed")


@torch.no_grad()
def sample(sr, lr01, steps, kind, g):
    """LR in [0,1] -> HR in [0,1] with sampler @kind (see the module text)."""
    lr = lr01 * 2 - 1
    up = T.upsample(lr, sr.s)
    ac, n_train = sr.ac, sr.sched["num_train_timesteps"]
    r = torch.randn(up.shape, generator=g)
    fixed = torch.randn(up.shape, generator=g)
    x0 = None
    for i, t in enumerate(int(t) for t in T.ddim_timesteps(sr.sched, steps)):
        if i > 0 and kind in ("restart", "fixed"):
            z = torch.randn(up.shape, generator=g) if kind == "restart" else fixed
            r = ac[t].sqrt() * x0 + (1 - ac[t]).sqrt() * z
        x0 = sr.predict_x0(r, lr, t)
        if kind == "ddim":
            r = T.ddim_step(sr.sched, ac, x0, t, steps, r)
        elif kind == "ddpm":
            prev = t - n_train // steps
            a_prev = ac[prev] if prev >= 0 else torch.tensor(1.0)
            eps = (r - ac[t].sqrt() * x0) / (1 - ac[t]).sqrt()
            var = (1 - a_prev) / (1 - ac[t]) * (1 - ac[t] / a_prev)
            r = (a_prev.sqrt() * x0 + (1 - a_prev - var).clamp_min(0).sqrt() * eps
                 + var.sqrt() * torch.randn(up.shape, generator=g))
    out = r if kind in ("ddim", "ddpm") else x0
    return ((up + out / sr.rs) + 1) / 2


def to_u8(x):
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    ap.add_argument("--steps", default="1,2,4,8")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    net, meta = T.dt.load_file(args.model)
    task = json.loads(meta["task"])
    s = task["scale"]
    sr = T.SR(net, s, task["residual_scale"], json.loads(meta["scheduler"]))
    crops = T.val_crops(T.load_photos("val"), 192)
    lr01 = T.degrade(crops, s)
    hr = [to_u8(c) for c in crops]

    print(f"{os.path.basename(args.model)} (x{s}, training step {meta.get('training_step', '?')}), "
          f"{len(crops)} validation crops of 192 px\n")
    print("| sampler | steps | PSNR-Y (dB) | detail |\n|---|---:|---:|---:|")
    for kind in args.samplers.split(","):
        for k in (int(v) for v in args.steps.split(",")):
            g = torch.Generator().manual_seed(args.seed)
            out = torch.cat([sample(sr, lr01[i:i + 8], k, kind, g) for i in range(0, len(crops), 8)])
            sr_u8 = [to_u8(o) for o in out]
            psnr = np.mean([Q.psnr_y(a, b, s) for a, b in zip(sr_u8, hr)])
            det = np.mean([Q.detail_ratio(a, b, s) for a, b in zip(sr_u8, hr)])
            print(f"| {kind} | {k} | {psnr:.3f} | {det:.3f} |", flush=True)


if __name__ == "__main__":
    main()
