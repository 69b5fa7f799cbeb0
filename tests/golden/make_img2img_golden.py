#!/usr/bin/python3
"""Golden outputs of the image-to-image task (engine/ge-img2img.h), computed in PyTorch from
the header's description with the engine's noise (models/common/ge_rng.py), for
tests/engine/test-img2img.c.

    /usr/bin/python3 tests/golden/make_img2img_golden.py

For each test model in tests/elements/models/ (diffusionimg2img: chroma at scale 2,
img2img-rgb: rgb at scale 1) writes tests/golden/img2img/<name>: image (U8 [H, W, 3], a 37x29
crop of samples/butterfly.png, odd on purpose), out (strength 1) and out_sdedit (strength 0.7)
for seed 7 at the model's default steps.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "models", "common"))
import diffusers_torch as dt  # noqa: E402
import ge_rng  # noqa: E402
import st  # noqa: E402
import trainkit  # noqa: E402

SEED = 7
KR, KG, KB = 0.299, 0.587, 0.114


def run(model_path, img, strength):
    tensors, meta = st.load(model_path)
    cfg, task, sched = (json.loads(meta[k]) for k in ("config", "task", "scheduler"))
    unet = dt.UNet2DModel(**{k: v for k, v in cfg.items() if not k.startswith("_")})
    unet.load_state_dict(tensors)
    unet.eval()
    s, steps, chroma = task["scale"], task["num_inference_steps"], task["target"] == "chroma"
    m = 2 ** (len(cfg["block_out_channels"]) - 1)
    H, W = img.shape[:2]
    h0, w0 = -(-H // s), -(-W // s)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    x = F.pad(x, (0, w0 * s - W, 0, h0 * s - H), mode="replicate")
    if chroma:
        r, g, b = x[:, 0:1] / 255, x[:, 1:2] / 255, x[:, 2:3] / 255
        Y = KR * r + KG * g + KB * b
        cond = F.pixel_unshuffle(2 * Y - 1, s)
        init = F.avg_pool2d(torch.cat([(b - Y) / (1 - KB), (r - Y) / (1 - KR)], 1), s)
    else:
        cond = F.pixel_unshuffle(x / 127.5 - 1, s)
        init = cond
    ph, pw = -(-h0 // m) * m, -(-w0 // m) * m
    cond = F.pad(cond, (0, pw - w0, 0, ph - h0), mode="replicate")
    xt = F.pad(init, (0, pw - w0, 0, ph - h0), mode="replicate")
    cx = xt.shape[1]
    ts = trainkit.ddim_timesteps(sched, steps)
    ac = trainkit.alphas_cumprod(sched)
    first = steps - min(int(steps * strength), steps)
    if first < steps:
        noise = torch.from_numpy(ge_rng.sr_noise(SEED, 1, 0, 0, ph, pw, channels=cx))[None]
        noise = noise - noise[:, :, :h0, :w0].double().mean((2, 3), keepdim=True).float()   # the frame's mean
        a = ac[ts[first]]
        xt = a.sqrt() * xt + (1 - a).sqrt() * noise
    with torch.no_grad():
        for t in ts[first:]:
            x0 = unet(torch.cat([xt, cond], 1), torch.tensor([t])).sample
            xt = trainkit.ddim_step(sched, ac, x0, t, steps, xt)
    res = xt[:, :, :h0, :w0]
    src = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    if chroma:
        up = F.interpolate(res, size=(h0 * s, w0 * s), mode="bilinear", align_corners=False)[:, :, :H, :W]
        Y = (KR * src[:, 0:1] + KG * src[:, 1:2] + KB * src[:, 2:3]) / 255
        cb, cr = 0.5 * up[:, 0:1], 0.5 * up[:, 1:2]
        rgb = torch.cat([Y + 2 * (1 - KR) * cr, Y - (2 * KB * (1 - KB) / KG) * cb - (2 * KR * (1 - KR) / KG) * cr,
                         Y + 2 * (1 - KB) * cb], 1) * 2 - 1
    else:
        rgb = F.pixel_shuffle(res, s)[:, :, :H, :W]
    out = torch.floor((rgb + 1.0) * 127.5 + 0.5).clamp(0, 255)
    return out[0].permute(1, 2, 0).numpy().astype(np.uint8)


def main():
    img = np.asarray(Image.open(os.path.join(ROOT, "samples", "butterfly.png")).convert("RGB"))
    img = np.ascontiguousarray(img[40:69, 60:97])       # 37 x 29
    for name in ("diffusionimg2img", "img2img-rgb"):
        model = os.path.join(ROOT, "tests", "elements", "models", name + ".safetensors")
        st.save(os.path.join(HERE, "img2img", name + ".safetensors"),
                {"image": img, "out": run(model, img, 1.0), "out_sdedit": run(model, img, 0.7)},
                metadata={"model": "tests/elements/models/%s.safetensors" % name, "seed": str(SEED),
                          "torch": torch.__version__})


if __name__ == "__main__":
    main()
