#!/usr/bin/python3
"""Exports an AutoencoderKL checkpoint of models/vae/train.py as the .safetensors file that
vaeencode / vaedecode load (engine/ge-vae-codec.h).

    /usr/bin/python3 models/vae/export.py [--ckpt _work/vae/best.pt] [--dtype f16] [--prior-steps N]

Writes models/vae/vae.safetensors with diffusers' AutoencoderKL weight names and __metadata__:
  format       "pt"
  architecture "AutoencoderKL"
  config       the AutoencoderKL config (JSON string), scaling_factor set as Stable Diffusion
               did: 1 / std of the latent means over training patches, so that scaled latents
               have unit variance for a diffusion model trained on them
  training     step, validation PSNR and the data of the checkpoint (JSON string)
It then reloads the file, rebuilds the model from the metadata alone and checks that it
reproduces the checkpoint on validation images (within the F16 rounding when --dtype f16).
"""

import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train as T  # noqa: E402
from trainkit import add_prior_steps_argument, exported_steps  # noqa: E402
from train import dt  # noqa: E402

st = dt.st


def build(cfg):
    return dt.AutoencoderKL(**{k: v for k, v in cfg.items() if not k.startswith("_")})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", default="_work/vae/best.pt")
    ap.add_argument("--out", default=os.path.join(HERE, "vae.safetensors"))
    ap.add_argument("--dtype", choices=("f32", "f16"), default="f16")
    ap.add_argument("--scaling-patches", type=int, default=256)
    add_prior_steps_argument(ap)
    args = ap.parse_args()
    torch.set_num_threads(2)

    ck = torch.load(args.ckpt)
    cfg = dict(ck["config"])
    vae = build(cfg)
    vae.load_state_dict(ck["vae"])
    vae.eval()

    # scaling_factor: 1 / std of the latent means on training patches (as for SD's VAE).
    sampler = T.ZoomPatchSampler(T.load_photos("train"), 256, 3.0, seed=123)
    with torch.no_grad():
        z = torch.cat([vae.encode(sampler.batch(8) * 2 - 1).latent_dist.mean
                       for _ in range(args.scaling_patches // 8)])
    cfg["scaling_factor"] = float(1.0 / z.std())

    tensors = {k: (v.half() if args.dtype == "f16" else v) for k, v in vae.state_dict().items()}
    training = {"step": exported_steps(ck, args.prior_steps), "val_psnr_256": ck.get("val_psnr"), "script": "models/vae/train.py",
                "latent_std": float(z.std()), "latent_mean": float(z.mean())}
    st.save(args.out, tensors, {"format": "pt", "architecture": "AutoencoderKL",
                                "config": json.dumps(cfg), "training": json.dumps(training)})

    # Reload from the file alone and compare on the validation images.
    vae2, _ = dt.load_file(args.out)
    val = T.val_squares(T.load_photos("val"), 256)[:4]
    with torch.no_grad():
        a = vae.decode(vae.encode(val * 2 - 1).latent_dist.mean).sample
        b = vae2.decode(vae2.encode(val * 2 - 1).latent_dist.mean).sample
    d = float((a - b).abs().max())
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB, {args.dtype}) step "
          f"{training['step']} "
          f"scaling_factor {cfg['scaling_factor']:.4f}; reload max abs diff {d:.2e}; "
          f"val PSNR {T.psnr((b + 1) / 2, val):.2f} dB on 4 images")
    assert d < (0.05 if args.dtype == "f16" else 1e-5), d


if __name__ == "__main__":
    main()
