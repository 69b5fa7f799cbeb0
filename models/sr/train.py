#!/usr/bin/python3
"""Trains the conditional diffusion super-resolution UNet of the `diffusionsr` element.

The model (see models/sr/MODEL.md) is a diffusers UNet2DModel working at LOW resolution:
  * up  = bicubic(lr, x s)  (torch F.interpolate, align_corners=False)
  * r0  = (hr - up) * residual_scale          the scaled HR residual, diffusion runs on it
  * input  = concat(pixel_unshuffle(r_t, s), lr)            3*s*s + 3 channels at LR size
  * output = pixel_shuffle(unet(input, t), s) = r0 estimate ("sample" prediction)
  * hr_out = up + r0_estimate / residual_scale
with a DDIM sampler (eta 0, trailing timesteps; the exported default is 1 step) over a
DDIMScheduler config.

Data: the photos of models/data/fetch_photos.py (_work/data/photos/MANIFEST.json), train split
only for training, the val split (whole packages) for validation.  LR = s x s box average of
the 8-bit HR patch, rounded back to 8 bits.

Run from the repository root, e.g.
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 models/sr/train.py --scale 2
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 models/sr/train.py --scale 2 --resume
Checkpoints, train.log and train.pid go to _work/sr/x<s>/.  SIGSTOP/SIGCONT safe: the schedule,
checkpoints and validation are counted in steps; wall time is only logged.
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
from trainkit import (Meter, PatchSampler, alphas_cumprod, checkpoint, count_flops, ddim_step,  # noqa: E402,F401
                      ddim_timesteps, load_photos, log, lr_at, optimize, sampler_input, scheduler_config,
                      val_crops)

# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def degrade(hr, s):
    """HR in [0,1] (N,3,H,W, H and W multiples of s) -> LR in [0,1]: s x s box average, 8-bit rounded."""
    lr = F.avg_pool2d(hr, s)
    return torch.round(lr * 255.0) / 255.0


def upsample(lr, s):
    """The fixed classical upsampling: torch bicubic (a=-0.75), align_corners=False, edge clamped."""
    n, c, h, w = lr.shape
    return F.interpolate(lr, size=(h * s, w * s), mode="bicubic", align_corners=False)


def luma_psnr(a, b, border):
    """PSNR on BT.601 luma (Y in [16,235] of 8-bit), images [0,1] quantised to 8 bits, border cropped."""
    def y(x):
        x = torch.round(x.clamp(0, 1) * 255.0) / 255.0
        return 16.0 + 65.481 * x[:, 0] + 128.553 * x[:, 1] + 24.966 * x[:, 2]
    ya, yb = y(a), y(b)
    if border:
        ya, yb = ya[:, border:-border, border:-border], yb[:, border:-border, border:-border]
    mse = ((ya - yb) ** 2).mean(dim=(1, 2)).clamp_min(1e-10)
    return float((10 * torch.log10(255.0 ** 2 / mse)).mean())


def lanczos_up(lr, s):
    """PIL Lanczos upscaling of 8-bit LR images (the usual 'lanczos' baseline)."""
    from PIL import Image
    out = []
    for im in lr:
        a = (torch.round(im.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy())
        p = Image.fromarray(a).resize((a.shape[1] * s, a.shape[0] * s), Image.LANCZOS)
        out.append(torch.from_numpy(np.asarray(p).copy()).permute(2, 0, 1).float() / 255.0)
    return torch.stack(out)


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------


def unet_config(s, channels, layers, groups):
    n = len(channels)
    return dict(
        sample_size=None, in_channels=3 * s * s + 3, out_channels=3 * s * s,
        down_block_types=["DownBlock2D"] * n, up_block_types=["UpBlock2D"] * n,
        block_out_channels=list(channels), layers_per_block=layers, norm_num_groups=groups,
        add_attention=False, attention_head_dim=None, flip_sin_to_cos=True, freq_shift=0,
        downsample_padding=1, act_fn="silu", norm_eps=1e-5,
    )


class SR:
    """The fixed pre/post-processing around the UNet."""

    def __init__(self, unet, s, residual_scale, sched):
        self.unet, self.s, self.rs, self.sched = unet, s, residual_scale, sched
        self.ac = alphas_cumprod(sched)

    def predict_x0(self, r_t, lr, t, unet=None):
        """r_t: HR-size noisy scaled residual, lr in [-1,1]; -> HR-size x0 (scaled residual)."""
        net = unet if unet is not None else self.unet
        inp = torch.cat([F.pixel_unshuffle(r_t, self.s), lr], dim=1)
        tt = torch.full((r_t.shape[0],), t, dtype=torch.long) if isinstance(t, int) else t
        return F.pixel_shuffle(net(inp, tt).sample, self.s)

    @torch.no_grad()
    def sample(self, lr01, steps, generator=None, unet=None):
        """LR in [0,1] -> HR in [0,1] (not clamped)."""
        lr = lr01 * 2 - 1
        up = upsample(lr, self.s)
        r = torch.randn(up.shape, generator=generator)
        for t in ddim_timesteps(self.sched, steps):
            x0 = self.predict_x0(r, lr, t, unet)
            r = ddim_step(self.sched, self.ac, x0, t, steps, r)
        return ((up + r / self.rs) + 1) / 2


def transfer_scale(src, dst, s_src, s_dst):
    """Starts an x<s_dst> UNet from x<s_src> weights of the same widths (MODEL.md: x4 from x2).

    Only conv_in and conv_out depend on the scale: their residual channels are pixel-unshuffled
    blocks (channel c*s*s + dy*s + dx).  A channel of the x<s_dst> block takes the weights of the
    x<s_src> channel that covers the same fraction of the LR pixel, so the start is the x<s_src>
    model applied to a box-averaged residual; every other tensor is copied unchanged.
    """
    def sub(c, dy, dx):
        return c * s_src * s_src + (dy * s_src // s_dst) * s_src + dx * s_src // s_dst

    out = {}
    for k, v in dst.items():
        w = src[k]
        if w.shape == v.shape:
            out[k] = w.clone()
            continue
        idx = torch.tensor([sub(c, dy, dx) for c in range(3) for dy in range(s_dst) for dx in range(s_dst)])
        if k == "conv_in.weight":       # [C, 3*s*s + 3, 3, 3]: residual channels in, then LR
            ratio = (s_src * s_src) / (s_dst * s_dst)   # more channels now share the same signal
            out[k] = torch.cat([w[:, idx] * ratio, w[:, 3 * s_src * s_src:]], dim=1)
        elif k in ("conv_out.weight", "conv_out.bias"):
            out[k] = w[idx].clone()
        else:
            raise ValueError(f"{k}: {tuple(w.shape)} does not map to {tuple(v.shape)}")
    return out


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------


def pick_timesteps(n, sched, g, dist="first"):
    """Training timesteps.  "mixed": half uniform over [0, T), half on the trailing grids of
    1-4 sampling steps.  "first" (default): 40 % at T - 1, the first sampling step, which is
    the plain regression that every step count starts from; 30 % on the grids, 30 % uniform.
    "max": T - 1 only (the regression alone, a diagnostic)."""
    T = sched["num_train_timesteps"]
    if dist == "max":
        return torch.full((n,), T - 1, dtype=torch.long)
    grid = sorted({t for k in (1, 2, 3, 4) for t in ddim_timesteps(sched, k)})
    t = torch.randint(T, (n,), generator=g)
    u = torch.rand(n, generator=g)
    on_grid = u < 0.5 if dist == "mixed" else u < 0.7
    t[on_grid] = torch.tensor(grid)[torch.randint(len(grid), (int(on_grid.sum()),), generator=g)]
    if dist == "first":
        t[u < 0.4] = T - 1
    return t


def validate(sr, ema, crops, s, steps_list, seed=1234):
    lr01 = degrade(crops, s)
    res = {}
    with torch.no_grad():
        for k in steps_list:
            g = torch.Generator().manual_seed(seed)
            outs = [sr.sample(lr01[i:i + 8], k, generator=g, unet=ema) for i in range(0, len(crops), 8)]
            res[f"diff{k}"] = luma_psnr(torch.cat(outs), crops, s)
    return res


def baselines(crops, s):
    lr01 = degrade(crops, s)
    bic = (upsample(lr01 * 2 - 1, s) + 1) / 2
    return {"bicubic": luma_psnr(bic, crops, s), "lanczos": luma_psnr(lanczos_up(lr01, s), crops, s)}


def main():
    ap = argparse.ArgumentParser(description="diffusion super-resolution training")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--out", default=None, help="default _work/sr/x<scale>")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", default=None,
                    help="start from the weights of an exported model (e.g. the committed "
                         "models/sr/diffusionsr-x2.safetensors) at --init-step, when no "
                         "checkpoint is there to resume (a fresh checkout has no _work/)")
    ap.add_argument("--init-step", type=int, default=0,
                    help="the training step those weights were exported at (sets the schedule)")
    ap.add_argument("--channels", default="32")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--beta-schedule", default="squaredcos_cap_v2")
    ap.add_argument("--residual-scale", type=float, default=0.0,
                    help="0: 5.0 for x2, 3.5 for x4 (scaled residual std about 0.36-0.38)")
    ap.add_argument("--patch", type=int, default=0, help="HR patch size (0: 64 LR pixels, i.e. 64 * scale)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--loss", choices=("l2", "l1"), default="l2",
                    help="on the scaled residual x0; l1 stalls at the bicubic solution (MODEL.md)")
    ap.add_argument("--t-dist", choices=("first", "mixed", "max"), default="first",
                    help="training timesteps (see pick_timesteps)")
    ap.add_argument("--trajectory", type=float, default=0.0,
                    help="fraction of batches trained on the input the DDIM sampler itself gives at "
                         "one of its steps (models/inpaint/train.py --trajectory)")
    ap.add_argument("--trajectory-steps", default="2,4,8", help="samplers for --trajectory")
    ap.add_argument("--regression-steps", type=int, default=250,
                    help="first steps at t = T - 1 only (the 1-step regression), then --t-dist")
    ap.add_argument("--zero-out", type=int, default=1, help="1: conv_out starts at zero (new runs)")
    ap.add_argument("--lr-min", type=float, default=1e-5)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--total-steps", type=int, default=3300, help="cosine horizon; training stops there")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--val-every", type=int, default=1000)
    ap.add_argument("--keep-every", type=int, default=5000, help="keep a copy of the checkpoint every N steps")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--val-size", type=int, default=192, help="HR size of the validation crops")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps in this run (tests)")
    ap.add_argument("--info", action="store_true", help="print parameter count / GFLOP and exit")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    s = args.scale
    if not args.residual_scale:
        args.residual_scale = 5.0 if s == 2 else 3.5
    if not args.patch:
        args.patch = 64 * s
    out = args.out or f"_work/sr/x{s}"
    os.makedirs(out, exist_ok=True)
    logf = os.path.join(out, "train.log")
    ckpt_path = os.path.join(out, "ckpt.pt")

    state = None
    if args.resume and os.path.exists(ckpt_path):
        state = torch.load(ckpt_path)
        saved = state["args"]
        given = {a.split("=")[0] for a in sys.argv[1:] if a.startswith("--")}
        for k in ("scale", "channels", "layers", "groups", "beta_schedule", "residual_scale", "patch", "batch",
                  "loss", "lr", "lr_min", "warmup", "total_steps", "ema"):
            # the model and data keys always come from the checkpoint; the schedule ones
            # (lr, total steps, ...) too unless given again on the command line
            fixed = k in ("scale", "channels", "layers", "groups", "beta_schedule", "residual_scale", "loss")
            if k in saved and (fixed or "--" + k.replace("_", "-") not in given):
                setattr(args, k, saved[k])

    cfg = unet_config(s, [int(c) for c in args.channels.split(",")], args.layers, args.groups)
    sched = scheduler_config(args.beta_schedule)
    torch.manual_seed(args.seed)
    unet = dt.UNet2DModel(**cfg)
    ema = dt.UNet2DModel(**cfg)
    nparams = sum(p.numel() for p in unet.parameters())
    gflop = count_flops(unet, torch.zeros(1, cfg["in_channels"], 360, 640), torch.tensor([999])) / 1e9
    if args.info:
        print(json.dumps({"params": nparams, "gflop_640x360": round(gflop, 2), "config": cfg}))
        return

    with open(os.path.join(out, "train.pid"), "w") as f:
        f.write(f"{os.getpid()}\n")
    opt = torch.optim.Adam(unet.parameters(), lr=args.lr)
    step = 0
    prior_steps = 0     # exported steps an --init run adds to its own count (export.py)
    if state is not None:
        unet.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
        prior_steps = state.get("prior_steps", 0)
        log(logf, f"resumed at step {step}")
    elif args.init:
        sys.path.insert(0, os.path.join(ROOT, "models", "common"))
        import st
        weights, meta = st.load(args.init)
        init_scale = int(json.loads(meta.get("task", "{}")).get("scale", s))
        if init_scale != s:
            weights = transfer_scale(weights, unet.state_dict(), init_scale, s)
        unet.load_state_dict(weights)     # the exported EMA weights: both copies start there
        ema.load_state_dict(weights)
        step = args.init_step
        # the step counter goes on from --init-step: count only what the file had beyond it
        prior_steps = int(meta["training_step"]) - step if "training_step" in meta else 0
        log(logf, f"initialised from {args.init} (x{init_scale}, {meta.get('training_step', '?')} steps) "
                  f"at step {step} (optimizer state restarts)")
    else:
        if args.zero_out:
            # start at the bicubic answer (x0 = 0 residual), as the regression baseline's
            # near-zero tail does, instead of at a random residual of std ~1
            torch.nn.init.zeros_(unet.conv_out.weight)
            torch.nn.init.zeros_(unet.conv_out.bias)
        ema.load_state_dict(unet.state_dict())
        log(logf, f"start: params {nparams} gflop/step@640x360 {gflop:.2f} config {json.dumps(cfg)} "
                  f"sched {sched['beta_schedule']} args {json.dumps(vars(args))}")
    ema.eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(dict(cfg, _class_name="UNet2DModel", _diffusers_version=dt.DIFFUSERS_VERSION), f, indent=2)
    with open(os.path.join(out, "scheduler_config.json"), "w") as f:
        json.dump(sched, f, indent=2)

    train = load_photos("train")
    val = load_photos("val")
    crops = val_crops(val, args.val_size)
    base = baselines(crops, s)
    log(logf, f"data: {len(train)} train photos, {len(val)} val photos, {len(crops)} val crops "
              f"{args.val_size}px; baselines bicubic {base['bicubic']:.3f} lanczos {base['lanczos']:.3f} dB")

    sampler = PatchSampler(train, args.patch, args.seed * 1000 + step)
    g = torch.Generator().manual_seed(args.seed * 7919 + step)
    sr = SR(unet, s, args.residual_scale, sched)
    ac = sr.ac
    traj_steps = [int(k) for k in args.trajectory_steps.split(",") if k.strip()]
    meter = Meter()
    unet.train()
    end = args.total_steps if not args.max_steps else min(args.total_steps, step + args.max_steps)
    while step < end:
        t0 = time.time()
        for pg in opt.param_groups:
            pg["lr"] = lr_at(step, args)
        hr = sampler.batch(args.batch)
        lr01 = degrade(hr, s)
        hr_ = hr * 2 - 1
        lr_ = lr01 * 2 - 1
        r0 = (hr_ - upsample(lr_, s)) * args.residual_scale
        t = pick_timesteps(args.batch, sched, g, "max" if step < args.regression_steps else args.t_dist)
        if (args.trajectory > 0 and step >= args.regression_steps
                and float(torch.rand(1, generator=g)) < args.trajectory):
            k = traj_steps[int(torch.randint(len(traj_steps), (1,), generator=g))]
            r_t, ti = sampler_input(lambda x, tt: sr.predict_x0(x, lr_, tt), sched, ac, r0.shape, k,
                                    int(torch.randint(1, k, (1,), generator=g)), g)
            t = torch.full((args.batch,), ti, dtype=torch.long)
        else:
            a = ac[t].view(-1, 1, 1, 1)
            r_t = a.sqrt() * r0 + (1 - a).sqrt() * torch.randn(r0.shape, generator=g)
        pred = sr.predict_x0(r_t, lr_, t)
        d = pred - r0
        loss = (d * d).mean() if args.loss == "l2" else d.abs().mean()
        optimize(unet, ema, opt, loss, step, args.ema)
        step += 1
        meter.step(loss, t0)
        if step % args.log_every == 0:
            log(logf, meter.line(step, lr_at(step, args)))
        if step % args.ckpt_every == 0 or step == end:
            checkpoint(ckpt_path, step, args.keep_every, model=unet.state_dict(), ema=ema.state_dict(),
                       opt=opt.state_dict(), args=vars(args), config=cfg, scheduler=sched,
                       prior_steps=prior_steps)
        if step % args.val_every == 0 or step == end:
            tv = time.time()
            res = validate(sr, ema, crops, s, (1, 4, 8))
            log(logf, f"val step {step} ema: 1-step {res['diff1']:.3f} 4-step {res['diff4']:.3f} "
                      f"8-step {res['diff8']:.3f} dB "
                      f"(bicubic {base['bicubic']:.3f} lanczos {base['lanczos']:.3f}) [{time.time() - tv:.0f}s]")
            meter.restart_clock()
    log(logf, f"done at step {step}")


if __name__ == "__main__":
    main()
