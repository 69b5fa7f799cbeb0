#!/usr/bin/python3
"""Trains the conditional diffusion inpainting UNet of the `diffusioninpaint` element.

The model (see models/inpaint/MODEL.md) is a diffusers UNet2DModel conditioned by
concatenation, as Stable Diffusion's inpainting UNets are, in pixels instead of latents, and,
as the super-resolution models, on the residual over a classical answer:
  * x      the image in [-1, 1]; m the mask (1 = regenerate)
  * base   base_fill(x, m): the holes filled by coarse-to-fine normalised convolution,
           then relaxed to the harmonic fill (Laplace equation, red-black SOR)
  * r0     m * (x - base) * residual_scale         the diffusion runs on it
  * input  concat(r_t, m, base)                    3 + 1 + 3 = 7 channels
  * output unet(input, t) = r0 estimate ("sample" prediction)
  * result base + m * r0_estimate / residual_scale (the element feathers m at the seam)
with a DDIM sampler (trailing timesteps; eta 1 by default, export.py --eta) over a DDIMScheduler config.

Data: the photos of models/data/fetch_photos.py (_work/data/photos/MANIFEST.json), train split
only; validation on fixed crops of the val split (whole packages never trained on) with fixed
masks of each kind (models/inpaint/masks.py).  Loss: MSE on r0, weighted 1 inside the mask and
0.1 outside (where r0 is 0).

Run from the repository root, e.g.
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 models/inpaint/train.py
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 models/inpaint/train.py --resume
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 models/inpaint/train.py --out _work/inpaint-ft \
        --init models/inpaint/diffusioninpaint.safetensors --regression-steps 0
Checkpoints, train.log and train.pid go to _work/inpaint/ (--out).  SIGSTOP/SIGCONT safe.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "models", "common"))
sys.path.insert(0, HERE)
import diffusers_torch as dt  # noqa: E402
import masks as M  # noqa: E402
from trainkit import (Meter, PatchSampler, alphas_cumprod, checkpoint, count_flops, ddim_step,  # noqa: E402
                      ddim_timesteps, load_photos, log, lr_at, optimize, sampler_input, scheduler_config,
                      val_crops)

OUTSIDE_WEIGHT = 0.1
# DDIM eta of the element's sampler (export.py --eta's default, the validation's): fresh
# noise at every step, so that no draw persists for the network to take for structure
ETA = 1.0


def unet_config(channels, layers, groups, attention):
    n = len(channels)
    return dict(
        sample_size=None, in_channels=7, out_channels=3,
        down_block_types=["DownBlock2D"] * n, up_block_types=["UpBlock2D"] * n,
        block_out_channels=list(channels), layers_per_block=layers, norm_num_groups=groups,
        add_attention=attention, attention_head_dim=channels[-1] if attention else None,
        flip_sin_to_cos=True, freq_shift=0, downsample_padding=1, act_fn="silu", norm_eps=1e-5,
    )


# The classical fill the model's residual is added to, in two stages:
#  1. normalised Gaussian convolutions of the known pixels, coarse to fine (sigma 32, 8, 2
#     pixels); at each finer scale a pixel takes that scale's estimate in proportion to its
#     support (the blurred known-mask over SUPPORT, capped at 1).  Zero outside the image.
#  2. from there, HARMONIC_SWEEPS red-black SOR sweeps (relaxation HARMONIC_OMEGA) of the Laplace
#     equation in the hole, the known pixels as boundary and mirror (zero-flux) image edges: the
#     harmonic fill, the smoothest surface through the hole's rim.  Stage 1 is a good start, so
#     64 sweeps at 1.9 converge on holes of a few hundred pixels.
# Stage 1 alone is about Telea's PSNR on the validation masks; with stage 2 the fill beats Telea
# and Navier-Stokes on every mask kind (MODEL.md).
BASE_SIGMAS = (32.0, 8.0, 2.0)
BASE_SUPPORT = 0.3
HARMONIC_SWEEPS = 64
HARMONIC_OMEGA = 1.9


def gauss_kernel(sigma):
    """Normalised Gaussian taps over [-3 sigma, 3 sigma] (radius floor(3 sigma))."""
    r = int(3 * sigma)
    x = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).float()


def blur(x, sigma):
    """Separable Gaussian blur, rows then columns, zero outside."""
    import torch.nn.functional as F
    g = gauss_kernel(sigma)
    r, c = len(g) // 2, x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0)), g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r)), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def harmonic(u, m, sweeps, omega):
    """Red-black SOR on the 5-point Laplacian at the pixels where m = 1 (replicated edges: a
    neighbour outside the image is the pixel itself).  A red pixel's neighbours are all black,
    so updating every red pixel at once is Gauss-Seidel in any order (the engine's loop)."""
    import torch.nn.functional as F
    H, W = u.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    red = ((yy + xx) % 2 == 0).to(u.dtype)
    for _ in range(sweeps):
        for colour in (red, 1 - red):
            p = F.pad(u, (1, 1, 1, 1), mode="replicate")
            avg = (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]) / 4
            u = torch.where((m * colour) > 0, u + omega * (avg - u), u)
    return u


def base_params(task):
    """base_fill's keyword arguments from a model file's task metadata (export.py writes them)."""
    return dict(sigmas=tuple(task["base_sigmas"]), support=task["base_support"],
                sweeps=task.get("base_harmonic_sweeps", 0), omega=task.get("base_harmonic_omega", 1.0))


def base_fill(img, m, sigmas=BASE_SIGMAS, support=BASE_SUPPORT, sweeps=HARMONIC_SWEEPS,
              omega=HARMONIC_OMEGA):
    """img in [-1, 1] [N, 3, H, W], m 1 = hole -> the image with its holes filled classically
    (this script's parameters, or a model file's through base_params)."""
    k = 1 - m
    f = None
    for s in sigmas:
        den = blur(k, s)
        fs = blur(img * k, s) / den.clamp_min(1e-6)
        if f is None:
            f = fs
        else:
            a = (den / support).clamp(0, 1)
            f = a * fs + (1 - a) * f
    return harmonic(k * img + m * f, m, sweeps, omega)


class Inpaint:
    """The fixed pre/post-processing around the UNet (images in [-1, 1], masks in {0, 1}).

    The diffusion runs on the scaled residual r0 = (image - base) * residual_scale inside the
    hole (base = base_fill: the hole filled classically; r0 = 0 outside), conditioned on the
    mask and the base: input concat(r_t, m, base), output the r0 estimate; the result is
    base + m * r0 / residual_scale."""

    def __init__(self, unet, sched, residual_scale):
        self.unet, self.sched, self.rs = unet, sched, residual_scale
        self.ac = alphas_cumprod(sched)

    def predict_x0(self, r_t, base, m, t, unet=None):
        net = unet if unet is not None else self.unet
        tt = torch.full((r_t.shape[0],), t, dtype=torch.long) if isinstance(t, int) else t
        return net(torch.cat([r_t, m, base], dim=1), tt).sample

    @torch.no_grad()
    def sample(self, img, m, steps, generator=None, unet=None, eta=ETA):
        """-> the composite in [-1, 1] (not clamped); eta as the element's (export.py --eta)."""
        base = base_fill(img, m)
        r = torch.randn(img.shape, generator=generator)
        for t in ddim_timesteps(self.sched, steps):
            x0 = self.predict_x0(r, base, m, t, unet)
            noise = torch.randn(r.shape, generator=generator) if eta > 0 else None
            r = ddim_step(self.sched, self.ac, x0, t, steps, r, eta, noise)
        return base + m * r / self.rs


def pick_timesteps(n, sched, g, regression_only, focus=None):
    """40 % at T - 1 (the one-step estimate every step count starts from), the rest:
    focus None: 30 % on the trailing grids of 1-10 steps, 30 % uniform;
    focus [k, ...]: 60 % on the trailing grids of those step counts only (the samplers the
    element runs), uniform over their timesteps below T - 1.
    T - 1 only in the first --regression-steps."""
    T = sched["num_train_timesteps"]
    if regression_only:
        return torch.full((n,), T - 1, dtype=torch.long)
    u = torch.rand(n, generator=g)
    if focus:
        grid = sorted({t for k in focus for t in ddim_timesteps(sched, k) if t < T - 1})
        t = torch.tensor(grid)[torch.randint(len(grid), (n,), generator=g)]
    else:
        grid = sorted({t for k in range(1, 11) for t in ddim_timesteps(sched, k)})
        t = torch.randint(T, (n,), generator=g)
        on_grid = u < 0.7
        t[on_grid] = torch.tensor(grid)[torch.randint(len(grid), (int(on_grid.sum()),), generator=g)]
    t[u < 0.4] = T - 1
    return t


def masked_psnr(a, b, m):
    """Mean over images of the RGB PSNR inside the mask; a, b in [-1, 1] quantised to 8 bits."""
    def q(x):
        return torch.round((x.clamp(-1, 1) + 1) * 127.5)
    d2 = ((q(a) - q(b)) ** 2 * m).sum(dim=(1, 2, 3)) / (3 * m.sum(dim=(1, 2, 3))).clamp_min(1)
    return float((10 * torch.log10(255.0 ** 2 / d2.clamp_min(1e-10))).mean())


def val_set(photos, size, seed=4321):
    """Fixed crops and, for each, one mask of each kind -> (imgs, masks, kinds)."""
    crops = val_crops(photos, size) * 2 - 1
    rng = np.random.default_rng(seed)
    imgs, ms, kinds = [], [], []
    for kind in M.KINDS:
        for c in crops:
            imgs.append(c)
            ms.append(torch.from_numpy(M.make(kind, size, rng))[None])
            kinds.append(kind)
    return torch.stack(imgs), torch.stack(ms), kinds


def opencv_baselines(imgs, ms, kinds):
    """Telea and Navier-Stokes (cv2.inpaint, radius 3) masked PSNR per kind; {} without cv2."""
    try:
        import cv2
    except ImportError:
        return {}
    res = {}
    for name, flag in (("telea", cv2.INPAINT_TELEA), ("ns", cv2.INPAINT_NS)):
        outs = []
        for img, m in zip(imgs, ms):
            u8 = torch.round((img + 1) * 127.5).byte().permute(1, 2, 0).numpy()
            mk = (m[0].numpy() > 0.5).astype(np.uint8) * 255
            o = cv2.inpaint(np.ascontiguousarray(u8[..., ::-1]), mk, 3, flag)[..., ::-1]
            outs.append(torch.from_numpy(o.copy()).permute(2, 0, 1).float() / 127.5 - 1)
        outs = torch.stack(outs)
        for kind in M.KINDS:
            sel = [i for i, k in enumerate(kinds) if k == kind]
            res[f"{name}/{kind}"] = masked_psnr(outs[sel], imgs[sel], ms[sel])
    return res


def validate(ip, ema, imgs, ms, kinds, steps_list, seed=1234):
    res = {}
    for k in steps_list:
        g = torch.Generator().manual_seed(seed)
        outs = torch.cat([ip.sample(imgs[i:i + 8], ms[i:i + 8], k, generator=g, unet=ema)
                          for i in range(0, len(imgs), 8)])
        for kind in M.KINDS:
            sel = [i for i, kk in enumerate(kinds) if kk == kind]
            res[f"{k}/{kind}"] = masked_psnr(outs[sel], imgs[sel], ms[sel])
    return res


def main():
    ap = argparse.ArgumentParser(description="diffusion inpainting training")
    ap.add_argument("--out", default="_work/inpaint")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", default=None,
                    help="start from an exported model (models/inpaint/diffusioninpaint.safetensors); fresh optimizer")
    ap.add_argument("--channels", default="16,32,64,64")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--attention", type=int, default=1, help="1: self-attention in the mid block")
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lr-min", type=float, default=1e-5)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--total-steps", type=int, default=8000, help="cosine horizon; training stops there")
    ap.add_argument("--regression-steps", type=int, default=250)
    ap.add_argument("--focus-steps", default="",
                    help="e.g. 4,8: train below T - 1 only on these samplers' timesteps (pick_timesteps)")
    ap.add_argument("--trajectory", type=float, default=0.0,
                    help="fraction of batches (after --regression-steps) trained on the input the "
                         "sampler gives at one of its steps: DDIM run from noise with the model's own "
                         "predictions (no gradient) up to that step, instead of a noised true image, "
                         "so that later steps learn to correct the earlier estimates (exposure bias)")
    ap.add_argument("--trajectory-steps", default="2,4,8", help="samplers for --trajectory")
    ap.add_argument("--residual-scale", type=float, default=2.0,
                    help="r0 = (image - base) * this: about unit scale inside the holes (MODEL.md)")
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--val-every", type=int, default=1000)
    ap.add_argument("--keep-every", type=int, default=2000)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--val-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps in this run")
    ap.add_argument("--info", action="store_true", help="print parameter count / GFLOP and exit")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    logf = os.path.join(args.out, "train.log")
    ckpt_path = os.path.join(args.out, "ckpt.pt")
    state = None
    if args.resume and os.path.exists(ckpt_path):
        state = torch.load(ckpt_path)
        given = {a.split("=")[0] for a in sys.argv[1:] if a.startswith("--")}
        for k, v in state["args"].items():
            fixed = k in ("channels", "layers", "groups", "attention", "residual_scale")
            if k not in ("out", "resume", "max_steps", "threads") and (fixed or "--" + k.replace("_", "-") not in given):
                setattr(args, k, v)

    cfg = unet_config([int(c) for c in args.channels.split(",")], args.layers, args.groups, bool(args.attention))
    sched = scheduler_config()
    torch.manual_seed(args.seed)
    unet, ema = dt.UNet2DModel(**cfg), dt.UNet2DModel(**cfg)
    nparams = sum(p.numel() for p in unet.parameters())
    gflop = count_flops(unet, torch.zeros(1, 7, 256, 256), torch.tensor([999])) / 1e9
    if args.info:
        print(json.dumps({"params": nparams, "gflop_256x256": round(gflop, 2), "config": cfg}))
        return

    with open(os.path.join(args.out, "train.pid"), "w") as f:
        f.write(f"{os.getpid()}\n")
    opt = torch.optim.Adam(unet.parameters(), lr=args.lr)
    step = 0
    prior_steps = 0     # training steps of the --init file, which export.py adds to this run's
    if state is not None:
        unet.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
        prior_steps = state.get("prior_steps", 0)
        log(logf, f"resumed at step {step}")
    else:
        if args.init:   # the exported (EMA, maybe F16) weights: both copies start there
            w, meta = dt.st.load(args.init)
            unet.load_state_dict({k: v.float() for k, v in w.items()})
            prior_steps = int(meta.get("training_step", 0))
        else:           # start at a mid-grey fill rather than at a random image of std ~1
            torch.nn.init.zeros_(unet.conv_out.weight)
            torch.nn.init.zeros_(unet.conv_out.bias)
        ema.load_state_dict(unet.state_dict())
        log(logf, f"start: params {nparams} gflop/step@256x256 {gflop:.2f} config {json.dumps(cfg)} "
                  f"args {json.dumps(vars(args))}")
    ema.eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(dict(cfg, _class_name="UNet2DModel", _diffusers_version=dt.DIFFUSERS_VERSION), f, indent=2)
    with open(os.path.join(args.out, "scheduler_config.json"), "w") as f:
        json.dump(sched, f, indent=2)

    train = load_photos("train")
    vimgs, vms, vkinds = val_set(load_photos("val"), args.val_size)
    base = opencv_baselines(vimgs, vms, vkinds)
    log(logf, f"data: {len(train)} train photos, {len(vimgs)} val cases ({args.val_size} px, "
              f"{len(vimgs) // len(M.KINDS)} crops x {len(M.KINDS)} mask kinds); masked PSNR baselines "
              + (" ".join(f"{k} {v:.2f}" for k, v in base.items()) if base else "(no cv2)"))

    sampler = PatchSampler(train, args.patch, args.seed * 1000 + step)
    g = torch.Generator().manual_seed(args.seed * 7919 + step)
    rng = np.random.default_rng(args.seed * 104729 + step)
    ip = Inpaint(unet, sched, args.residual_scale)
    ac = ip.ac
    focus = [int(k) for k in args.focus_steps.split(",") if k.strip()]
    traj_steps = [int(k) for k in args.trajectory_steps.split(",") if k.strip()]
    meter = Meter()
    unet.train()
    end = args.total_steps if not args.max_steps else min(args.total_steps, step + args.max_steps)
    while step < end:
        t0 = time.time()
        for pg in opt.param_groups:
            pg["lr"] = lr_at(step, args)
        x0 = sampler.batch(args.batch) * 2 - 1
        kinds = [M.KINDS[int(k)] for k in rng.integers(0, len(M.KINDS), args.batch)]
        m = torch.from_numpy(M.batch(args.batch, args.patch, rng, kinds))
        t = pick_timesteps(args.batch, sched, g, step < args.regression_steps, focus)
        base = base_fill(x0, m)
        r0 = m * (x0 - base) * args.residual_scale
        if args.trajectory > 0 and step >= args.regression_steps and rng.random() < args.trajectory:
            k = traj_steps[int(rng.integers(len(traj_steps)))]
            x_t, ti = sampler_input(lambda x, tt: ip.predict_x0(x, base, m, tt), sched, ac, r0.shape,
                                    k, int(rng.integers(1, k)), g)
            t = torch.full((args.batch,), ti, dtype=torch.long)
        else:
            a = ac[t].view(-1, 1, 1, 1)
            x_t = a.sqrt() * r0 + (1 - a).sqrt() * torch.randn(r0.shape, generator=g)
        pred = ip.predict_x0(x_t, base, m, t)
        w = m + OUTSIDE_WEIGHT * (1 - m)
        loss = (w * (pred - r0) ** 2).sum() / (3 * w.sum())
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
            res = validate(ip, ema, vimgs, vms, vkinds, (1, 4, 8))
            log(logf, f"val step {step} ema masked PSNR: " + " ".join(f"{k} {v:.2f}" for k, v in res.items())
                + f" [{time.time() - tv:.0f}s]")
            meter.restart_clock()
    log(logf, f"done at step {step}")


if __name__ == "__main__":
    main()
