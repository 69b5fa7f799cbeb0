#!/usr/bin/python3
"""Exports an inpainting checkpoint of models/inpaint/train.py as one .safetensors file that
the C engine loads (engine/ge-model-file.h, engine/ge-inpaint.h).

    /usr/bin/python3 models/inpaint/export.py                 # EMA weights, F32
    /usr/bin/python3 models/inpaint/export.py --dtype f16 --steps 4
    /usr/bin/python3 models/inpaint/export.py --ckpt RUN/ckpt.pt   # a train.py --init run

Reads _work/inpaint/ckpt.pt and writes models/inpaint/diffusioninpaint.safetensors with the
diffusers weight names of UNet2DModel and __metadata__: format "pt", architecture
"UNet2DModel", config, scheduler (DDIMScheduler) and task (JSON strings; task =
{"task": "inpaint", "num_inference_steps": N, "residual": "base_fill", "residual_scale",
"base_sigmas", "base_support", "base_harmonic_sweeps",
"base_harmonic_omega", "exemplar_guidance", "exemplar_sigma", "exemplar_low", ...}: engine/ge-inpaint.h).  It then reloads the file, rebuilds the model from
the metadata alone and checks that it gives the checkpoint's outputs.

    /usr/bin/python3 models/inpaint/export.py --retask models/inpaint/diffusioninpaint.safetensors

rewrites only the sampling settings of the task (--steps, --eta, --exemplar-*) of an exported
file, weights untouched (no checkpoint needed).
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

dt = T.dt
st = dt.st

# The exemplar guidance of the shipped model (MODEL.md, "Texture"): chosen on training photos.
EXEMPLAR = {"exemplar_guidance": 1.0, "exemplar_sigma": 1.5, "exemplar_low": 0.25}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", default="_work/inpaint/ckpt.pt")
    ap.add_argument("--out", default=os.path.join(HERE, "diffusioninpaint.safetensors"))
    ap.add_argument("--dtype", choices=("f32", "f16"), default="f32")
    ap.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA")
    ap.add_argument("--steps", type=int, default=4, help="default num_inference_steps")
    ap.add_argument("--eta", type=float, default=T.ETA,
                    help="DDIM eta of the element's sampler: 1 draws fresh noise at every step "
                         "(with 0, more steps painted spots into flat regions: MODEL.md)")
    ap.add_argument("--exemplar-guidance", type=float, default=EXEMPLAR["exemplar_guidance"],
                    help="pull of every step towards the PatchMatch fill of the frame (0: the U-Net alone)")
    ap.add_argument("--exemplar-sigma", type=float, default=EXEMPLAR["exemplar_sigma"],
                    help="scale (px) above which the exemplar's structure is damped")
    ap.add_argument("--exemplar-low", type=float, default=EXEMPLAR["exemplar_low"],
                    help="share of the exemplar's structure above exemplar-sigma that is kept")
    ap.add_argument("--retask", default="", help="rewrite the sampling settings of this exported file only")
    add_prior_steps_argument(ap)
    args = ap.parse_args()
    exemplar = {"exemplar_guidance": args.exemplar_guidance, "exemplar_sigma": args.exemplar_sigma,
                "exemplar_low": args.exemplar_low}
    if args.retask:
        tensors, meta = st.load(args.retask)
        task = json.loads(meta["task"])
        task.update({"num_inference_steps": args.steps, "eta": args.eta}, **exemplar)
        meta["task"] = json.dumps(task, sort_keys=True)
        st.save(args.retask, tensors, metadata=meta)
        print(f"rewrote the task of {args.retask}: {meta['task']}")
        return

    torch.set_num_threads(2)
    ckpt = torch.load(args.ckpt)
    total_steps = exported_steps(ckpt, args.prior_steps)
    cfg, sched = ckpt["config"], ckpt["scheduler"]
    unet = dt.UNet2DModel(**cfg)
    unet.load_state_dict(ckpt["model" if args.raw else "ema"], strict=True)
    unet.eval()
    rs = float(ckpt["args"]["residual_scale"])
    task = {
        "task": "inpaint",
        "num_inference_steps": args.steps,
        "residual": "base_fill",
        "residual_scale": rs,
        "base_sigmas": list(T.BASE_SIGMAS),
        "base_support": T.BASE_SUPPORT,
        "base_harmonic_sweeps": T.HARMONIC_SWEEPS,
        "base_harmonic_omega": T.HARMONIC_OMEGA,
        "input": "concat(r_t, mask, base_fill(image, mask))",
        "output": "base + mask * r0 / residual_scale",
        "input_range": [-1.0, 1.0],
        "mask": "1 = regenerate",
        "prediction_type": "sample",
        "eta": args.eta,
        **exemplar,
        "size_multiple": 2 ** (len(cfg["block_out_channels"]) - 1),
    }
    dtype = torch.float16 if args.dtype == "f16" else torch.float32
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in unet.state_dict().items()}
    st.save(args.out, tensors, metadata={
        "format": "pt",
        "architecture": "UNet2DModel",
        "config": json.dumps(dict(cfg, _class_name="UNet2DModel", _diffusers_version=dt.DIFFUSERS_VERSION),
                             sort_keys=True),
        "scheduler": json.dumps(sched, sort_keys=True),
        "task": json.dumps(task, sort_keys=True),
        "training_step": str(total_steps),
        "weights": "raw" if args.raw else "ema",
    })

    net2, m = dt.load_file(args.out)
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 16:40, 20:44] = 1
    rs2 = json.loads(m["task"])["residual_scale"]
    a = T.Inpaint(unet, sched, rs).sample(img, mask, args.steps, generator=torch.Generator().manual_seed(1))
    b = T.Inpaint(net2, json.loads(m["scheduler"]), rs2).sample(img, mask, args.steps,
                                                                generator=torch.Generator().manual_seed(1))
    err = float((a - b).abs().max())
    limit = 1e-5 if dtype == torch.float32 else 5e-2
    print(f"wrote {args.out}: {os.path.getsize(args.out)} bytes, {len(tensors)} tensors, "
          f"{sum(v.numel() for v in tensors.values())} parameters, step {total_steps}, reload max abs diff {err:.2e}")
    if err > limit:
        raise SystemExit(f"reloaded model differs by {err}")


if __name__ == "__main__":
    main()
