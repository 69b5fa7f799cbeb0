#!/usr/bin/python3
"""Golden outputs of the super-resolution task, computed in PyTorch from the
training code's definitions (models/sr/train.py: bicubic upsampling, DDIM
with x0 prediction, pixel (un)shuffle, residual_scale) with the engine's
noise (models/common/ge_rng.py), for tests/engine/test-sr.c.

    /usr/bin/python3 tests/golden/make_sr_golden.py

For each test model in tests/elements/models/ writes tests/golden/sr/<name>:
lr (U8 [H, W, 3]) and out (U8 [H*s, W*s, 3]) for seed 7 at the model's
default steps.  The LR frame (odd size on purpose) is a crop of
samples/butterfly.png.
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
sys.path.insert(0, os.path.join(ROOT, "models", "sr"))
import diffusers_torch as dt  # noqa: E402
import ge_rng  # noqa: E402
import st  # noqa: E402
import train  # noqa: E402

SEED = 7


def run(model_path, lr_u8):
    tensors, meta = st.load(model_path)
    cfg = json.loads(meta["config"])
    task = json.loads(meta["task"])
    sched = json.loads(meta["scheduler"])
    unet = dt.UNet2DModel(**{k: v for k, v in cfg.items() if not k.startswith("_")})
    unet.load_state_dict(tensors)
    unet.eval()
    s, rs, steps = task["scale"], task.get("residual_scale", 1.0), task["num_inference_steps"]
    m = 2 ** (len(cfg["block_out_channels"]) - 1)

    h, w = lr_u8.shape[:2]
    lr = torch.from_numpy(lr_u8).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    up = F.interpolate(lr, size=(h * s, w * s), mode="bicubic", align_corners=False)
    ph, pw = -(-h // m) * m, -(-w // m) * m
    lr_pad = F.pad(lr, (0, pw - w, 0, ph - h), mode="replicate")
    x = F.pixel_unshuffle(torch.from_numpy(ge_rng.sr_noise(SEED, s, 0, 0, ph * s, pw * s))[None], s)
    ac = train.alphas_cumprod(sched)
    with torch.no_grad():
        for t in train.ddim_timesteps(sched, steps):
            x0 = unet(torch.cat([x, lr_pad], 1), torch.tensor([t])).sample
            x = train.ddim_step(sched, ac, x0, t, steps, x)
    r = F.pixel_shuffle(x, s)[:, :, :h * s, :w * s]
    out = torch.floor(((up + r / rs) + 1.0) * 127.5 + 0.5).clamp(0, 255)
    return out[0].permute(1, 2, 0).numpy().astype(np.uint8)


def main():
    img = np.asarray(Image.open(os.path.join(ROOT, "samples", "butterfly.png")).convert("RGB"))
    lr = np.ascontiguousarray(img[40:69, 60:97])       # 37 x 29
    for name in ("diffusionsr-x2", "diffusionsr-x4"):
        model = os.path.join(ROOT, "tests", "elements", "models", name + ".safetensors")
        out = run(model, lr)
        st.save(os.path.join(HERE, "sr", name + ".safetensors"), {"lr": lr, "out": out},
                metadata={"model": "tests/elements/models/%s.safetensors" % name,
                          "seed": str(SEED), "torch": torch.__version__})


if __name__ == "__main__":
    main()
