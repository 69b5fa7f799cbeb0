#!/usr/bin/python3
"""Regression baseline for super-resolution: a plain residual CNN (about 256k parameters).

    hr_out = bicubic(lr, x s) + pixel_shuffle(convs(lr), s)
    convs  = conv3x3(3->64) ReLU, 7 x [conv3x3(64->64) ReLU], conv3x3(64->3*s*s)   (all at LR size)

Same data, degradation (s x s box average, 8-bit rounded), patches, augmentation and
validation crops as models/sr/train.py; L2 loss on the HR image (L1 measured: it stays at
the bicubic solution for hundreds of steps, see MODEL.md); Adam 1e-3 with a cosine decay
over the budget.  The budget is --steps (default 1920: what 20 minutes buys on this 2-core
machine with the run alone, 1.6 steps/s measured at x2, so that the baseline does not depend on
what else runs), or --minutes of busy time if given (a pause of the process by SIGSTOP does not
count: a step longer than 60 s counts 60 s).  Then it validates and saves
_work/sr/regression_x<s>/model.pt and bench/baselines/regression-x<s>.safetensors.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 models/sr/train_regression.py --scale 2
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train as T  # noqa: E402


class ResidualCNN(nn.Module):
    def __init__(self, s, channels=64, hidden=7):
        super().__init__()
        self.s = s
        layers = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(hidden):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.tail = nn.Conv2d(channels, 3 * s * s, 3, padding=1)
        # He init keeps the signal through the plain ReLU stack (torch's default init shrinks it
        # about 3x per layer, and the net then barely moves in a 20-minute budget)
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.tail.weight, std=1e-3)
        nn.init.zeros_(self.tail.bias)

    def forward(self, lr):
        """lr in [-1,1] -> hr in [-1,1] (not clamped)."""
        return T.upsample(lr, self.s) + F.pixel_shuffle(self.tail(self.body(lr)), self.s)


@torch.no_grad()
def evaluate(model, crops, s):
    lr01 = T.degrade(crops, s)
    outs = [(model(lr01[i:i + 8] * 2 - 1) + 1) / 2 for i in range(0, len(crops), 8)]
    return T.luma_psnr(torch.cat(outs), crops, s)


def main():
    ap = argparse.ArgumentParser(description="regression super-resolution baseline")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--out", default=None, help="default _work/sr/regression_x<scale>")
    ap.add_argument("--steps", type=int, default=1920, help="budget in steps (20 minutes alone at x2)")
    ap.add_argument("--minutes", type=float, default=0.0, help="budget in busy minutes instead of steps")
    ap.add_argument("--patch", type=int, default=0, help="HR patch size (0: 64 LR pixels, as train.py)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3, help="higher than the diffusion run: short budget")
    ap.add_argument("--loss", choices=("l2", "l1"), default="l2",
                    help="l1 stays at the bicubic solution for hundreds of steps here (see MODEL.md)")
    ap.add_argument("--val-size", type=int, default=192)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export", default=None, help="default bench/baselines/regression-x<scale>.safetensors")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    s = args.scale
    args.patch = args.patch or 64 * s
    out = args.out or f"_work/sr/regression_x{s}"
    os.makedirs(out, exist_ok=True)
    logf = os.path.join(out, "train.log")
    torch.manual_seed(args.seed)
    model = ResidualCNN(s)
    nparams = sum(p.numel() for p in model.parameters())
    gflop = 2 * sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight")) * 640 * 360 / 1e9
    T.log(logf, f"start: params {nparams} gflop@640x360 {gflop:.1f} args {json.dumps(vars(args))}")

    train = T.load_photos("train")
    val = T.load_photos("val")
    crops = T.val_crops(val, args.val_size)
    base = T.baselines(crops, s)
    T.log(logf, f"data: {len(train)} train photos, {len(crops)} val crops; bicubic {base['bicubic']:.3f} "
                f"lanczos {base['lanczos']:.3f} dB")
    sampler = T.PatchSampler(train, args.patch, args.seed)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    busy, step, acc, n, t_log = 0.0, 0, 0.0, 0, time.time()

    def progress():
        return busy / (args.minutes * 60.0) if args.minutes else step / args.steps

    while progress() < 1.0:
        t0 = time.time()
        for pg in opt.param_groups:
            pg["lr"] = 1e-6 + (args.lr - 1e-6) * 0.5 * (1 + math.cos(math.pi * progress()))
        hr = sampler.batch(args.batch)
        lr01 = T.degrade(hr, s)
        d = model(lr01 * 2 - 1) - (hr * 2 - 1)
        loss = (d * d).mean() if args.loss == "l2" else d.abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        acc += float(loss)
        n += 1
        busy += min(time.time() - t0, 60.0)
        if step % 50 == 0:
            now = time.time()
            T.log(logf, f"step {step} loss {acc / n:.5f} steps/s {n / (now - t_log):.3f} busy_min {busy / 60:.2f}")
            acc, n, t_log = 0.0, 0, now
        if step % args.val_every == 0:
            model.eval()
            T.log(logf, f"val step {step}: {evaluate(model, crops, s):.3f} dB (bicubic {base['bicubic']:.3f} "
                        f"lanczos {base['lanczos']:.3f})")
            model.train()
            t_log = time.time()
    model.eval()
    psnr = evaluate(model, crops, s)
    T.save_atomic({"model": model.state_dict(), "step": step, "args": vars(args), "params": nparams,
                   "val_psnr": psnr, "bicubic": base["bicubic"], "lanczos": base["lanczos"]},
                  os.path.join(out, "model.pt"))
    T.log(logf, f"final step {step} busy_min {busy / 60:.2f}: val luma PSNR {psnr:.3f} dB "
                f"(bicubic {base['bicubic']:.3f} lanczos {base['lanczos']:.3f})")
    export(model, args.export or f"bench/baselines/regression-x{s}.safetensors", step, psnr)


def export(model, path, step, psnr):
    """The trained baseline for bench/sr_quality.py, committed so that the benchmark runs from a
    clean clone without retraining it (1 MB)."""
    import st                           # models/common, on the path since train.py
    os.makedirs(os.path.dirname(path), exist_ok=True)
    st.save(path, {k: v.contiguous() for k, v in model.state_dict().items()},
            metadata={"model": "models/sr/train_regression.py ResidualCNN", "scale": str(model.s),
                      "steps": str(step), "val_psnr_y": f"{psnr:.3f}"})


if __name__ == "__main__":
    main()
