#!/usr/bin/python3
"""Golden outputs of the VAE codec task (engine/ge-vae-codec.h), computed in PyTorch with
models/common/diffusers_torch.py (checked against diffusers' own outputs by the conformance
fixtures) and the engine's noise (models/common/ge_rng.py), for tests/engine/test-vae-codec.c.

    /usr/bin/python3 tests/golden/make_vae_golden.py

For tests/elements/models/vae.safetensors writes tests/golden/vae/vae.safetensors:
  image  U8 [H, W, 3]   a 45x30 crop of samples/butterfly.png (not a multiple of the factor)
  mean   F32 [C, lh, lw] encode(replicate-padded image).latent_dist.mean
  sample F32 [C, lh, lw] mean + std * noise, seed 7
  out    U8 [H, W, 3]   decode(mean), cropped to H x W, rounded half up
and for the image mirrored into 2x2 (90x60), tiled with tile size 32 and overlap 16 pixels
(8 and 4 latent pixels; tile starts and smootherstep weights written out here from the
header's description):
  tiled_mean F32        tiles' means blended in latent space
  tiled_out  U8         tiled_mean decoded tile by tile, blended in pixels
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

SEED = 7
TILE, OVERLAP = 32, 16


def tile_starts(n, t, o):
    if t >= n:
        return [0]
    out, x = [], 0
    while True:
        if x + t >= n:
            return out + [n - t]
        out.append(x)
        x += max(t - o, 1)


def ramp(n, o, lead, trail):
    """Weights along a tile of n: smootherstep over o at the edges that are not frame edges."""
    i = np.arange(n, dtype=np.float32)

    def r(k):
        t = (k + 0.5) / o
        return np.where(k >= o, 1.0, t * t * t * (t * (t * 6 - 15) + 10)).astype(np.float32)

    w = np.ones(n, dtype=np.float32)
    if lead:
        w *= r(i)
    if trail:
        w *= r(n - 1 - i)
    return w


def blend(fn, x, t, o, f_in, f_out):
    """Runs fn on square tiles of x (t x t units of x, overlap o) and blends the results
    (f_out / f_in times the size) with the tile weights."""
    _, _, H, W = x.shape
    ys, xs = tile_starts(H, min(t, H), o), tile_starts(W, min(t, W), o)
    th, tw = min(t, H), min(t, W)
    k = f_out / f_in
    acc = wsum = None
    for y0 in ys:
        for x0 in xs:
            r = fn(x[:, :, y0:y0 + th, x0:x0 + tw])
            if acc is None:
                acc = torch.zeros(r.shape[:2] + (int(H * k), int(W * k)))
                wsum = torch.zeros(int(H * k), int(W * k))
            oo = int(o * k)
            wy = ramp(r.shape[2], oo, y0 > 0, y0 + th < H)
            wx = ramp(r.shape[3], oo, x0 > 0, x0 + tw < W)
            w = torch.from_numpy(np.outer(wy, wx))
            Y, X = int(y0 * k), int(x0 * k)
            acc[:, :, Y:Y + r.shape[2], X:X + r.shape[3]] += w * r
            wsum[Y:Y + r.shape[2], X:X + r.shape[3]] += w
    return acc / wsum


def main():
    model = os.path.join(ROOT, "tests", "elements", "models", "vae.safetensors")
    tensors, meta = st.load(model)
    cfg = json.loads(meta["config"])
    vae = dt.AutoencoderKL(**{k: v for k, v in cfg.items() if not k.startswith("_")})
    vae.load_state_dict(tensors)
    vae.eval()
    f = 2 ** (len(cfg["block_out_channels"]) - 1)

    img = np.asarray(Image.open(os.path.join(ROOT, "samples", "butterfly.png")).convert("RGB"))
    img = np.ascontiguousarray(img[50:80, 70:115])      # 45 x 30
    h, w = img.shape[:2]
    lh, lw = -(-h // f), -(-w // f)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    x = F.pad(x, (0, lw * f - w, 0, lh * f - h), mode="replicate")
    with torch.no_grad():
        dist = vae.encode(x).latent_dist
        C = dist.mean.shape[1]
        noise = torch.from_numpy(ge_rng.sr_noise(SEED, 1, 0, 0, lh, lw, channels=C))[None]
        sample = dist.mean + dist.std * noise
        y = vae.decode(dist.mean).sample[:, :, :h, :w]
    out = torch.floor((y + 1.0) * 127.5 + 0.5).clamp(0, 255)[0].permute(1, 2, 0).numpy().astype(np.uint8)

    big = np.concatenate([img, img[::-1]], 0)
    big = np.ascontiguousarray(np.concatenate([big, big[:, ::-1]], 1))
    H, W = big.shape[:2]
    lh, lw = -(-H // f), -(-W // f)
    xb = torch.from_numpy(big).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    xb = F.pad(xb, (0, lw * f - W, 0, lh * f - H), mode="replicate")
    with torch.no_grad():
        tmean = blend(lambda t: vae.encode(t).latent_dist.mean, xb, TILE, OVERLAP, 1, 1 / f)
        ty = blend(lambda t: vae.decode(t).sample, tmean, TILE // f, OVERLAP // f, 1, f)[:, :, :H, :W]
    tout = torch.floor((ty + 1.0) * 127.5 + 0.5).clamp(0, 255)[0].permute(1, 2, 0).numpy().astype(np.uint8)
    st.save(os.path.join(HERE, "vae", "vae.safetensors"),
            {"image": img, "mean": dist.mean[0].numpy(), "sample": sample[0].numpy(), "out": out,
             "tiled_mean": tmean[0].numpy(), "tiled_out": tout},
            metadata={"model": "tests/elements/models/vae.safetensors", "seed": str(SEED),
                      "torch": torch.__version__})


if __name__ == "__main__":
    main()
