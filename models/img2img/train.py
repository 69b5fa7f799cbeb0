#!/usr/bin/python3
"""Trains the conditional diffusion model of the `diffusionimg2img` element.

Two tasks, one formulation (engine/ge-img2img.h has the exact pre/post-processing):
  --task colorize   self-supervised from the photos of models/data/fetch_photos.py: the source is
                    the photo's luma, the target its chroma ("chroma": the U-Net sees the noisy
                    (Cb, Cr) averaged over s x s blocks and the pixel-unshuffled luma, and the
                    output keeps the source's luma)
  --pairs DIR       any folder of paired images: DIR/source/NAME and DIR/target/NAME of the same
                    size ("rgb": the U-Net sees the pixel-unshuffled noisy target and source);
                    --val-fraction of the names (sorted, every k-th) are kept for validation
The U-Net predicts x0 ("sample"); DDIM (eta 0, trailing timesteps) samples it in a few steps.
Training timesteps: 40 % at T - 1 (the first sampling step), 30 % on the grids of 1-8 steps,
30 % uniform, as models/sr/train.py.

Run from the repository root, e.g.
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 models/img2img/train.py --task colorize --threads 2
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 models/img2img/train.py --pairs my-pairs --out _work/mine
then models/img2img/export.py.  Checkpoints, train.log and train.pid go to --out
(_work/img2img/<task>); --resume continues, --init starts from an exported model.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models", "common"))
import diffusers_torch as dt  # noqa: E402
from trainkit import (Meter, ZoomPatchSampler, alphas_cumprod, checkpoint, ddim_step, ddim_timesteps,  # noqa: E402
                      load_photos, log, lr_at, optimize, scheduler_config, val_squares)

KR, KG, KB = 0.299, 0.587, 0.114     # full-range BT.601 (JPEG), as the engine


def luma(rgb01):
    return KR * rgb01[:, 0:1] + KG * rgb01[:, 1:2] + KB * rgb01[:, 2:3]


def chroma2(rgb01):
    """(2 Cb, 2 Cr) in [-1, 1]."""
    y = luma(rgb01)
    return torch.cat([(rgb01[:, 2:3] - y) / (1 - KB), (rgb01[:, 0:1] - y) / (1 - KR)], 1)


def ycc_to_rgb(y, c2):
    cb, cr = 0.5 * c2[:, 0:1], 0.5 * c2[:, 1:2]
    return torch.cat([y + 2 * (1 - KR) * cr, y - (2 * KB * (1 - KB) / KG) * cb - (2 * KR * (1 - KR) / KG) * cr,
                      y + 2 * (1 - KB) * cb], 1)


def gray(rgb01):
    """The 8-bit gray frame a black and white source would be (luma rounded, 3 channels)."""
    return (torch.round(luma(rgb01) * 255) / 255).repeat(1, 3, 1, 1)


class Task:
    """The model's view of a (source, target) pair, and sampling, as engine/ge-img2img.h."""

    def __init__(self, target, s, sched):
        self.target, self.s, self.sched = target, s, sched
        self.ac = alphas_cumprod(sched)
        self.cx = 2 if target == "chroma" else 3 * s * s
        self.cc = s * s if target == "chroma" else 3 * s * s

    def cond(self, src01):
        if self.target == "chroma":
            return F.pixel_unshuffle(2 * luma(src01) - 1, self.s)
        return F.pixel_unshuffle(src01 * 2 - 1, self.s)

    def x0(self, tgt01):
        if self.target == "chroma":
            return F.avg_pool2d(chroma2(tgt01), self.s)
        return F.pixel_unshuffle(tgt01 * 2 - 1, self.s)

    def output(self, src01, x0):
        if self.target == "chroma":
            up = F.interpolate(x0, scale_factor=self.s, mode="bilinear", align_corners=False)
            return ycc_to_rgb(luma(src01), up)
        return (F.pixel_shuffle(x0, self.s) + 1) / 2

    def predict(self, net, x_t, cond, t):
        tt = torch.full((x_t.shape[0],), t, dtype=torch.long) if isinstance(t, int) else t
        return net(torch.cat([x_t, cond], 1), tt).sample

    @torch.no_grad()
    def sample(self, net, src01, steps, generator=None, strength=1.0):
        """src in [0,1] (sides multiples of s * the U-Net's multiple) -> output in [0,1]."""
        cond = self.cond(src01)
        x = self.x0(src01)
        ts = ddim_timesteps(self.sched, steps)
        first = steps - min(int(steps * strength), steps)
        if first < steps:
            a = self.ac[ts[first]]
            noise = torch.randn(x.shape, generator=generator)
            # zero-mean per frame and channel, as the element draws it: the mean would read as a
            # colour cast of the whole frame (engine/tasks/img2img.c)
            x = a.sqrt() * x + (1 - a).sqrt() * (noise - noise.mean((2, 3), keepdim=True))
        for t in ts[first:]:
            x = ddim_step(self.sched, self.ac, self.predict(net, x, cond, t), t, steps, x)
        return self.output(src01, x)


def unet_config(cx, cc, channels, layers, groups, mid_attention=False):
    n = len(channels)
    return dict(
        sample_size=None, in_channels=cx + cc, out_channels=cx,
        down_block_types=["DownBlock2D"] * n, up_block_types=["UpBlock2D"] * n,
        block_out_channels=list(channels), layers_per_block=layers, norm_num_groups=groups,
        add_attention=mid_attention, attention_head_dim=None, flip_sin_to_cos=True, freq_shift=0,
        downsample_padding=1, act_fn="silu", norm_eps=1e-5,
    )


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def load_pairs(folder, names):
    from PIL import Image
    out = []
    for n in names:
        a = np.asarray(Image.open(os.path.join(folder, "source", n)).convert("RGB"))
        b = np.asarray(Image.open(os.path.join(folder, "target", n)).convert("RGB"))
        if a.shape != b.shape:
            raise SystemExit(f"{n}: source {a.shape[1]}x{a.shape[0]} and target {b.shape[1]}x{b.shape[0]} differ")
        out.append((n, torch.from_numpy(np.concatenate([a, b], 2).copy()).permute(2, 0, 1).contiguous()))
    return out


def split_pairs(folder, val_fraction):
    names = sorted(os.listdir(os.path.join(folder, "source")))
    k = max(2, round(1 / val_fraction)) if val_fraction > 0 else 0
    val = [n for i, n in enumerate(names) if k and i % k == k - 1]
    return [n for n in names if n not in val], val


def batch_of(sampler, n, colorize):
    """-> (source, target) in [0,1]: gray and colour photo patches, or paired patches (the
    sampler's 6-channel images: source then target, cropped and flipped together)."""
    b = sampler.batch(n)
    return (gray(b), b) if colorize else (b[:, :3], b[:, 3:])


# ----------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------


def colorfulness(rgb01):
    """Hasler and Suesstrunk (2003) on 0-255 values, per image."""
    x = rgb01.clamp(0, 1) * 255
    rg = x[:, 0] - x[:, 1]
    yb = 0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]
    std = (rg.flatten(1).var(1, unbiased=False) + yb.flatten(1).var(1, unbiased=False)).sqrt()
    mean = (rg.flatten(1).mean(1) ** 2 + yb.flatten(1).mean(1) ** 2).sqrt()
    return std + 0.3 * mean


def chroma_psnr(a01, b01):
    """PSNR of the (Cb, Cr) planes in 8-bit units, images rounded to 8 bits first."""
    qa, qb = torch.round(a01.clamp(0, 1) * 255) / 255, torch.round(b01.clamp(0, 1) * 255) / 255
    d = (chroma2(qa) - chroma2(qb)) * 127.5
    mse = (d ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return float((10 * torch.log10(255.0 ** 2 / mse)).mean())


def rgb_psnr(a01, b01):
    qa, qb = torch.round(a01.clamp(0, 1) * 255), torch.round(b01.clamp(0, 1) * 255)
    mse = ((qa - qb) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return float((10 * torch.log10(255.0 ** 2 / mse)).mean())


def validate(task, net, src, tgt, steps_list, seed=1234):
    res = {}
    for k in steps_list:
        g = torch.Generator().manual_seed(seed)
        out = torch.cat([task.sample(net, src[i:i + 8], k, generator=g) for i in range(0, len(src), 8)])
        if task.target == "chroma":
            res[k] = {"chroma_psnr": chroma_psnr(out, tgt),
                      "colorfulness_ratio": float(colorfulness(out).mean() / colorfulness(tgt).mean())}
        else:
            res[k] = {"psnr": rgb_psnr(out, tgt)}
    return res


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=("colorize",), default=None)
    ap.add_argument("--pairs", default=None, help="folder with source/ and target/ images of the same names")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--scale", type=int, default=0, help="working resolution 1/s (0: 4 for colorize, 1 for pairs)")
    ap.add_argument("--channels", default="64,128,128")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--groups", type=int, default=16)
    ap.add_argument("--mid-attention", action="store_true",
                    help="self-attention (one head) in the lowest level's mid block: context from the whole frame")
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--small-photos", action="store_true",
                    help="colorize: train on the ~320 px photos too (the patch must be at most their short side)")
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--max-zoom-out", type=float, default=4.0,
                    help="patches cut from regions up to this many times larger, area-downscaled")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lr-min", type=float, default=1e-5)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--total-steps", type=int, default=3000)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--steps", type=int, default=4, help="default sampling steps (exported)")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--keep-every", type=int, default=1000)
    ap.add_argument("--val-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", default=None, help="start from an exported model (fresh optimizer)")
    args = ap.parse_args()
    if bool(args.task) == bool(args.pairs):
        raise SystemExit("give --task colorize or --pairs DIR")
    colorize = args.task == "colorize"
    s = args.scale or (4 if colorize else 1)
    out = args.out or ("_work/img2img/colorize" if colorize else "_work/img2img/pairs")
    torch.set_num_threads(args.threads)
    os.makedirs(out, exist_ok=True)
    logf, ckpt_path = os.path.join(out, "train.log"), os.path.join(out, "ckpt.pt")
    with open(os.path.join(out, "train.pid"), "w") as f:
        f.write(f"{os.getpid()}\n")

    sched = scheduler_config("squaredcos_cap_v2")
    task = Task("chroma" if colorize else "rgb", s, sched)
    cfg = unet_config(task.cx, task.cc, [int(c) for c in args.channels.split(",")], args.layers, args.groups,
                      args.mid_attention)
    torch.manual_seed(args.seed)
    unet, ema = dt.UNet2DModel(**cfg), dt.UNet2DModel(**cfg)
    opt = torch.optim.Adam(unet.parameters(), lr=args.lr)
    step = 0
    if args.resume and os.path.exists(ckpt_path):
        st_ = torch.load(ckpt_path)
        unet.load_state_dict(st_["model"])
        ema.load_state_dict(st_["ema"])
        opt.load_state_dict(st_["opt"])
        step = st_["step"]
        log(logf, f"resumed at step {step}")
    else:
        if args.init:
            w, _ = dt.st.load(args.init)
            unet.load_state_dict({k: v.float() for k, v in w.items()})
        else:   # start at the source's own representation (gray / the source), not at noise
            torch.nn.init.zeros_(unet.conv_out.weight)
            torch.nn.init.zeros_(unet.conv_out.bias)
        ema.load_state_dict(unet.state_dict())
        log(logf, f"start: params {sum(p.numel() for p in unet.parameters())} task {task.target} s {s} "
                  f"args {json.dumps(vars(args))}")
    ema.eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    meta = {"config": dict(cfg, _class_name="UNet2DModel", _diffusers_version=dt.DIFFUSERS_VERSION),
            "scheduler": sched, "task": {"task": "img2img", "target": task.target, "scale": s,
                                         "num_inference_steps": args.steps}}

    if colorize:
        train, val = load_photos("train", small=args.small_photos), load_photos("val")
        tgt_val = val_squares(val, args.val_size)
        src_val = gray(tgt_val)
        sampler = ZoomPatchSampler(train, args.patch, args.max_zoom_out, args.seed * 1000 + step)
    else:
        tr_names, va_names = split_pairs(args.pairs, args.val_fraction)
        pv = val_squares(load_pairs(args.pairs, va_names), args.val_size) if va_names else None
        src_val, tgt_val = (pv[:, :3], pv[:, 3:]) if pv is not None else (None, None)
        sampler = ZoomPatchSampler(load_pairs(args.pairs, tr_names), args.patch, args.max_zoom_out,
                                   args.seed * 1000 + step)
    if src_val is not None:
        base = (f"gray chroma PSNR {chroma_psnr(src_val, tgt_val):.3f} colorfulness ratio "
                f"{float(colorfulness(src_val).mean() / colorfulness(tgt_val).mean()):.3f}" if colorize
                else f"identity PSNR {rgb_psnr(src_val, tgt_val):.3f}")
        log(logf, f"data: {len(sampler.photos)} training images, {len(src_val)} val crops; baseline {base}")

    g = torch.Generator().manual_seed(args.seed * 7919 + step)
    grid = sorted({t for k in range(1, 9) for t in ddim_timesteps(sched, k)})
    T = sched["num_train_timesteps"]
    meter = Meter()
    unet.train()
    while step < args.total_steps:
        t0 = time.time()
        for pg in opt.param_groups:
            pg["lr"] = lr_at(step, args)
        src, tgt = batch_of(sampler, args.batch, colorize)
        x0, cond = task.x0(tgt), task.cond(src)
        t = torch.randint(T, (args.batch,), generator=g)
        u = torch.rand(args.batch, generator=g)
        on_grid = u < 0.7
        t[on_grid] = torch.tensor(grid)[torch.randint(len(grid), (int(on_grid.sum()),), generator=g)]
        t[u < 0.4] = T - 1
        a = task.ac[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * torch.randn(x0.shape, generator=g)
        loss = F.mse_loss(task.predict(unet, x_t, cond, t), x0)
        optimize(unet, ema, opt, loss, step, args.ema)
        step += 1
        meter.step(loss, t0)
        if step % 25 == 0:
            log(logf, meter.line(step, lr_at(step, args)))
        if step % args.ckpt_every == 0 or step == args.total_steps:
            checkpoint(ckpt_path, step, args.keep_every, model=unet.state_dict(), ema=ema.state_dict(),
                       opt=opt.state_dict(), args=vars(args), meta=meta)
        if src_val is not None and (step % args.val_every == 0 or step == args.total_steps):
            tv = time.time()
            res = validate(task, ema, src_val, tgt_val, (1, args.steps))
            log(logf, f"val step {step} ema: {json.dumps(res)} [{time.time() - tv:.0f}s]")
            meter.restart_clock()
    log(logf, f"done at step {step}")


if __name__ == "__main__":
    main()
