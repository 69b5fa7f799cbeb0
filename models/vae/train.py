#!/usr/bin/python3
"""Trains the AutoencoderKL of the `vaeencode` / `vaedecode` elements.

The model is a diffusers AutoencoderKL (models/common/diffusers_torch.py builds it with the
same module names, so the export loads in diffusers and in the engine alike): 4 latent
channels, downsampling factor 2^(levels-1) (8 with the default four levels), no attention in
the mid blocks by default (a 1280x720 frame is 14400 latent tokens: a global attention costs
0.8 GB for one score matrix and makes tiled and untiled results differ more).

Pixels are in [-1, 1] as for Stable Diffusion's VAE (the engine's convention), so both kinds
of checkpoint run in the same elements.

Loss (as the Stable Diffusion VAE, minus LPIPS, which cannot be downloaded here):
    L1(x, decode(z)) + kl_weight * KL(q(z|x) || N(0, I)),   z ~ q(z|x) (reparameterised)
An optional patch discriminator (hinge loss, as taming-transformers' NLayerDiscriminator)
joins after --gan-start steps with --gan-weight; it trades PSNR for texture, so it is off by
default and its effect is measured in the card.

Data: the photos of models/data/fetch_photos.py, train split only.  Each patch is cut from a
region s times larger (s uniform in [1, --max-zoom-out]) and area-downscaled, so the model sees
the detail density of whole photos shown at a few hundred pixels, where the validation runs:
every val photo area-resized to a short side of --val-size and centre-cropped square (the
protocol of the published VAE numbers on COCO at 256 px).

Run from the repository root:
    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 models/vae/train.py --threads 2 [--resume]
Checkpoints, train.log and train.pid go to --work (_work/vae).  SIGSTOP/SIGCONT safe.
"""

import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models", "common"))
import diffusers_torch as dt  # noqa: E402
from trainkit import Meter, ZoomPatchSampler, checkpoint, load_photos, log, lr_at, optimize, val_squares  # noqa: E402


def vae_config(args):
    boc = [int(c) for c in args.channels.split(",")]
    return dict(
        _class_name="AutoencoderKL", _diffusers_version=dt.DIFFUSERS_VERSION,
        in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * len(boc), up_block_types=["UpDecoderBlock2D"] * len(boc),
        block_out_channels=boc, layers_per_block=args.layers, act_fn="silu", norm_num_groups=args.groups,
        sample_size=args.patch, scaling_factor=1.0, mid_block_add_attention=bool(args.attention),
    )


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def psnr(a, b):
    """Mean over images of the RGB PSNR of 8-bit-rounded images in [0,1]."""
    a = torch.round(a.clamp(0, 1) * 255.0)
    b = torch.round(b.clamp(0, 1) * 255.0)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return float((10 * torch.log10(255.0 ** 2 / mse)).mean())


# ----------------------------------------------------------------------------------------------
# discriminator (optional GAN part)
# ----------------------------------------------------------------------------------------------


class PatchDiscriminator(nn.Module):
    """pix2pix / taming NLayerDiscriminator with GroupNorm: 70x70 receptive field at 3 layers."""

    def __init__(self, ch=32, layers=3):
        super().__init__()
        seq = [nn.Conv2d(3, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = ch
        for i in range(1, layers + 1):
            c2 = min(ch * 2 ** i, ch * 8)
            seq += [nn.Conv2d(c, c2, 4, 2 if i < layers else 1, 1), nn.GroupNorm(8, c2), nn.LeakyReLU(0.2)]
            c = c2
        seq += [nn.Conv2d(c, 1, 4, 1, 1)]
        self.net = nn.Sequential(*seq)

    def forward(self, x):
        return self.net(x)


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------


def kl_loss(dist):
    """KL(N(mean, var) || N(0, 1)) summed over latent elements, averaged over the batch."""
    kl = 0.5 * (dist.mean ** 2 + dist.var - 1.0 - dist.logvar)
    return kl.sum(dim=(1, 2, 3)).mean()


def evaluate(vae, val):
    vae.eval()
    with torch.no_grad():
        rec = torch.cat([vae.decode(vae.encode(val[i:i + 4] * 2 - 1).latent_dist.mode()).sample
                         for i in range(0, len(val), 4)])
    vae.train()
    return psnr((rec + 1) / 2, val)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="_work/vae")
    ap.add_argument("--channels", default="32,64,128,128", help="block_out_channels (levels = factor log2 + 1)")
    ap.add_argument("--layers", type=int, default=1, help="layers_per_block")
    ap.add_argument("--groups", type=int, default=8,
                    help="GroupNorm groups; 32 on 32 channels is a per-channel (instance) norm, which "
                         "erases each channel's mean and scale over the image: the colours (MODEL.md)")
    ap.add_argument("--attention", type=int, default=0, help="attention in the mid blocks")
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-zoom-out", type=float, default=3.0)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--lr-min", type=float, default=2e-5)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--total-steps", type=int, default=6000)
    ap.add_argument("--kl-weight", type=float, default=1e-6)
    ap.add_argument("--ema", type=float, default=0.999,
                    help="decay of the weights' moving average, which is validated and exported; 0: none")
    ap.add_argument("--gan-start", type=int, default=0, help="0: no discriminator")
    ap.add_argument("--gan-weight", type=float, default=0.05)
    ap.add_argument("--val-size", type=int, default=256)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--keep-every", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", default=None, help="start from the weights of an exported model "
                    "(models/vae/export.py; a fresh optimizer and schedule)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    logf = os.path.join(args.work, "train.log")
    with open(os.path.join(args.work, "train.pid"), "w") as f:
        f.write(str(os.getpid()))
    torch.manual_seed(args.seed)

    cfg = vae_config(args)
    model_args = {k: v for k, v in cfg.items() if not k.startswith("_")}
    vae = dt.AutoencoderKL(**model_args)
    ema = dt.AutoencoderKL(**model_args) if args.ema else None
    disc = PatchDiscriminator() if args.gan_start else None
    opt = torch.optim.Adam(vae.parameters(), lr=args.lr, betas=(0.9, 0.99))
    dopt = torch.optim.Adam(disc.parameters(), lr=args.lr, betas=(0.5, 0.9)) if disc else None
    sampler = ZoomPatchSampler(load_photos("train"), args.patch, args.max_zoom_out, args.seed)
    val = val_squares(load_photos("val"), args.val_size)
    ckpt = os.path.join(args.work, "last.pt")
    step, best = 0, -1.0
    prior_steps = 0     # training steps of the --init file, which export.py adds to this run's
    if args.resume and os.path.exists(ckpt):
        st = torch.load(ckpt)
        vae.load_state_dict(st["vae"])
        opt.load_state_dict(st["opt"])
        if ema is not None:     # a checkpoint of a run without one starts it from the weights
            ema.load_state_dict(st.get("ema", st["vae"]))
        if disc is not None and "disc" in st:
            disc.load_state_dict(st["disc"])
            dopt.load_state_dict(st["dopt"])
        sampler.g.set_state(st["rng"])
        step, best = st["step"], st.get("best", -1.0)
        prior_steps = st.get("prior_steps", 0)
        log(logf, f"resumed at step {step}")
    else:
        if args.init:
            w, meta = dt.st.load(args.init)
            if json.loads(meta["config"])["block_out_channels"] != cfg["block_out_channels"]:
                raise SystemExit(f"{args.init}: other block_out_channels than --channels")
            vae.load_state_dict({k: v.float() for k, v in w.items()})
            prior_steps = int(json.loads(meta.get("training", "{}")).get("step", 0))
        nparams = sum(p.numel() for p in vae.parameters())
        log(logf, f"start: {json.dumps(vars(args))} params {nparams} val images {len(val)}")
        with open(os.path.join(args.work, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        if ema is not None:
            ema.load_state_dict(vae.state_dict())
    # validated and exported: the moving average where there is one (a small batch's gradient
    # noise costs the raw weights PSNR until the learning rate has decayed)
    kept = ema if ema is not None else vae
    if ema is not None:
        for p in ema.parameters():
            p.requires_grad_(False)

    meter = Meter()
    while step < args.total_steps:
        t0 = time.time()
        lr = lr_at(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        x = sampler.batch(args.batch) * 2.0 - 1.0
        dist = vae.encode(x).latent_dist
        rec = vae.decode(dist.sample()).sample
        loss = F.l1_loss(rec, x) + args.kl_weight * kl_loss(dist)
        gan_on = disc is not None and step >= args.gan_start
        if gan_on:
            loss = loss + args.gan_weight * (-disc(rec).mean())
        optimize(vae, ema, opt, loss, step, args.ema)
        if gan_on:
            d_loss = F.relu(1 - disc(x)).mean() + F.relu(1 + disc(rec.detach())).mean()
            dopt.zero_grad(set_to_none=True)
            d_loss.backward()
            dopt.step()
        step += 1
        meter.step(loss.item(), t0)
        if step % 25 == 0:
            log(logf, meter.line(step, lr) + f" logvar {float(dist.logvar.mean()):.2f}")
        if step % args.val_every == 0 or step == args.total_steps:
            p = evaluate(kept, val)
            if p > best:
                best = p
                torch.save({"step": step, "vae": kept.state_dict(), "config": cfg, "val_psnr": p,
                            "prior_steps": prior_steps},
                           os.path.join(args.work, "best.pt"))
            raw = f" (raw weights {evaluate(vae, val):.3f})" if ema is not None else ""
            log(logf, f"val step {step} psnr {p:.3f} best {best:.3f}{raw}")
            meter.restart_clock()
        if step % args.ckpt_every == 0 or step == args.total_steps:
            state = dict(vae=vae.state_dict(), opt=opt.state_dict(), rng=sampler.g.get_state(), best=best,
                         config=cfg, prior_steps=prior_steps)
            if ema is not None:
                state.update(ema=ema.state_dict())
            if disc is not None:
                state.update(disc=disc.state_dict(), dopt=dopt.state_dict())
            checkpoint(ckpt, step, args.keep_every, **state)
    log(logf, "done")


if __name__ == "__main__":
    main()
