#!/usr/bin/python3
"""Exports a diffusion super-resolution checkpoint of models/sr/train.py as one .safetensors
file that the C engine loads (engine/ge-model-file.h, engine/ge-sr.h).

    /usr/bin/python3 models/sr/export.py --scale 2            # EMA weights, F32
    /usr/bin/python3 models/sr/export.py --scale 2 --dtype f16 --raw

Reads _work/sr/x<s>/ckpt.pt and writes models/sr/diffusionsr-x<s>.safetensors with the
diffusers weight names of UNet2DModel and __metadata__:
  format       "pt"
  architecture "UNet2DModel"
  config       the UNet2DModel config (JSON string)
  scheduler    the DDIMScheduler config (JSON string)
  task         the fixed pre/post-processing (JSON string, see MODEL.md)
It then reloads the file, rebuilds the model from the metadata alone and checks that it gives
the checkpoint's outputs.
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


def task_json(s, args_ckpt, steps):
    levels = len(str(args_ckpt["channels"]).split(","))
    return {
        "task": "super-resolution",
        "scale": s,
        "pixel_unshuffle": s,
        "input": "concat(pixel_unshuffle(r_t, scale), lr)",
        "input_range": [-1.0, 1.0],
        "residual": "bicubic",
        "upsample": {"mode": "bicubic", "a": -0.75, "align_corners": False, "border": "clamp"},
        "residual_scale": float(args_ckpt["residual_scale"]),
        "output": "clamp(bicubic(lr) + pixel_shuffle(x0, scale) / residual_scale, -1, 1)",
        "prediction_type": "sample",
        "num_inference_steps": steps,
        "eta": 0.0,
        "noise": "standard normal, at the high resolution, 3 channels",
        "size_multiple": 2 ** (levels - 1),
        "degradation": f"{s}x{s} box average of 8-bit sRGB, rounded to 8 bits",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--ckpt", default=None, help="default _work/sr/x<scale>/ckpt.pt")
    ap.add_argument("--out", default=None, help="default models/sr/diffusionsr-x<scale>.safetensors")
    ap.add_argument("--dtype", choices=("f32", "f16"), default="f32")
    ap.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    ap.add_argument("--steps", type=int, default=1,
                    help="default num_inference_steps (1: the best PSNR of the shipped models, MODEL.md)")
    add_prior_steps_argument(ap)
    args = ap.parse_args()

    torch.set_num_threads(2)
    s = args.scale
    ckpt = torch.load(args.ckpt or f"_work/sr/x{s}/ckpt.pt")
    cfg, sched = ckpt["config"], ckpt["scheduler"]
    sd = ckpt["model" if args.raw else "ema"]
    total_steps = exported_steps(ckpt, args.prior_steps)
    unet = dt.UNet2DModel(**cfg)
    unet.load_state_dict(sd, strict=True)
    unet.eval()
    config = dict(cfg, _class_name="UNet2DModel", _diffusers_version=dt.DIFFUSERS_VERSION)
    task = task_json(s, ckpt["args"], args.steps)
    dtype = torch.float16 if args.dtype == "f16" else torch.float32
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in unet.state_dict().items()}
    meta = {
        "format": "pt",
        "architecture": "UNet2DModel",
        "config": json.dumps(config, sort_keys=True),
        "scheduler": json.dumps(sched, sort_keys=True),
        "task": json.dumps(task, sort_keys=True),
        "training_step": str(total_steps),
        "weights": "raw" if args.raw else "ema",
    }
    out = args.out or os.path.join(HERE, f"diffusionsr-x{s}.safetensors")
    st.save(out, tensors, metadata=meta)

    # check: rebuild from the file alone and compare with the checkpoint model
    net2, m = dt.load_file(out)
    task2, sched2 = json.loads(m["task"]), json.loads(m["scheduler"])
    sr1 = T.SR(unet, s, task["residual_scale"], sched)
    sr2 = T.SR(net2, s, task2["residual_scale"], sched2)
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(1, 3, 32, 48, generator=g)
    a = sr1.sample(lr, task["num_inference_steps"], generator=torch.Generator().manual_seed(1))
    b = sr2.sample(lr, task2["num_inference_steps"], generator=torch.Generator().manual_seed(1))
    err = float((a - b).abs().max())
    limit = 1e-6 if dtype == torch.float32 else 2e-2
    nparams = sum(v.numel() for v in tensors.values())
    print(f"wrote {out}: {os.path.getsize(out)} bytes, {len(tensors)} tensors, {nparams} parameters, "
          f"step {total_steps}, reload max abs diff {err:.2e}")
    if err > limit:
        raise SystemExit(f"reloaded model differs by {err}")


if __name__ == "__main__":
    main()
