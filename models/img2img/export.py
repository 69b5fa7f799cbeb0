#!/usr/bin/python3
"""Exports a checkpoint of models/img2img/train.py as the .safetensors file diffusionimg2img
loads (engine/ge-img2img.h).

    /usr/bin/python3 models/img2img/export.py [--ckpt _work/img2img/colorize/ckpt.pt] [--dtype f16]
        [--steps N] [--out models/img2img/diffusionimg2img.safetensors]

Writes the EMA weights with diffusers' UNet2DModel names and __metadata__: format "pt",
architecture "UNet2DModel", config, scheduler (DDIMScheduler) and task ({"task": "img2img",
"target", "scale", "num_inference_steps"}), plus the training step.  It then rebuilds the model
from the file alone and checks that it samples what the checkpoint samples.
"""

import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train as T  # noqa: E402
from train import dt  # noqa: E402

st = dt.st


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", default="_work/img2img/colorize/ckpt.pt")
    ap.add_argument("--out", default=os.path.join(HERE, "diffusionimg2img.safetensors"))
    ap.add_argument("--dtype", choices=("f32", "f16"), default="f16")
    ap.add_argument("--steps", type=int, default=0, help="default sampling steps (0: the training run's)")
    args = ap.parse_args()
    torch.set_num_threads(2)

    ck = torch.load(args.ckpt)
    meta = ck["meta"]
    cfg = {k: v for k, v in meta["config"].items() if not k.startswith("_")}
    task = dict(meta["task"])
    if args.steps:
        task["num_inference_steps"] = args.steps
    unet = dt.UNet2DModel(**cfg)
    unet.load_state_dict(ck["ema"])
    unet.eval()
    dtype = torch.float16 if args.dtype == "f16" else torch.float32
    st.save(args.out, {k: v.detach().to(dtype).contiguous() for k, v in unet.state_dict().items()}, {
        "format": "pt", "architecture": "UNet2DModel", "config": json.dumps(meta["config"], sort_keys=True),
        "scheduler": json.dumps(meta["scheduler"], sort_keys=True), "task": json.dumps(task, sort_keys=True),
        "training_step": str(ck["step"]), "weights": "ema"})

    net2, m = dt.load_file(args.out)
    t1 = T.Task(task["target"], task["scale"], meta["scheduler"])
    t2 = T.Task(json.loads(m["task"])["target"], json.loads(m["task"])["scale"], json.loads(m["scheduler"]))
    src = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    a = t1.sample(unet, src, task["num_inference_steps"], generator=torch.Generator().manual_seed(1))
    b = t2.sample(net2, src, task["num_inference_steps"], generator=torch.Generator().manual_seed(1))
    err = float((a - b).abs().max())
    print(f"wrote {args.out}: {os.path.getsize(args.out) / 1e6:.1f} MB ({args.dtype}), step {ck['step']}, "
          f"task {json.dumps(task)}, reload max abs diff {err:.2e}")
    if err > (1e-5 if dtype == torch.float32 else 3e-2):
        raise SystemExit(f"reloaded model differs by {err}")


if __name__ == "__main__":
    main()
