#!/usr/bin/python3
"""Would int8 (AVX512-VNNI) hold the bf16 accuracy budget?  Simulated quantization of the SR models.

VNNI's vpdpbusd multiplies unsigned 8-bit activations by signed 8-bit weights and adds four
products into an int32: twice the multiply-adds of vdpbf16ps per instruction.  To use it a conv
quantizes its weights once (per output channel, symmetric, scale max|w| / 127, as ONNX Runtime's
and oneDNN's int8 convolutions do) and its input per call (per tensor, asymmetric u8 from the
tensor's min and max: dynamic quantization; a per-pixel or per-channel input scale does not factor
out of the K sum).  The integer sums are exact, so the simulation below, which dequantizes the
rounded numbers and convolves them in f32, gives the kernel's result up to f32 rounding.

Every nn.Conv2d of the model (the conv's real input: after GroupNorm + SiLU) is replaced in turn
by three versions, on the same validation photos and noise as models/sr/MODEL.md's table
(31 photos, HR centre crops of at most --max-side px, LR = s x s box average, default steps,
PSNR-Y with an s-pixel border):

  f32     the model as trained
  bf16    inputs and weights rounded to bf16 (what the engine's bf16 path does): the control,
          whose difference to f32 must match the engine's measured one (bench/RESULTS.md,
          accuracy budget: -0.0001 dB at x2, -0.0004 dB at x4)
  int8    weights int8 per output channel, inputs u8 per tensor (dynamic)
  int8-w  weights int8 only (inputs f32): where the loss comes from
  int8-mid  int8 for every conv but the first and the last (conv_in, conv_out in bf16): the
          usual mixed recipe
  int8-out  int8-mid with conv_out in int8 too

Budget (issue 35): |variant - f32| < 0.05 dB of the card's metric.

    /usr/bin/python3 bench/int8_quality.py [--max-side 384] [--models x2,x4]

Prints a markdown table; torch on 2 threads.
"""

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "sr"))
sys.path.insert(0, os.path.join(ROOT, "models", "common"))

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import sr_quality as Q  # noqa: E402
import train as T  # noqa: E402


def bf16(t):
    return t.to(torch.bfloat16).float()


def int8_weights(w):
    """Per output channel, symmetric, [-127, 127]."""
    s = w.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12) / 127.0
    return (w / s).round().clamp(-127, 127) * s


def u8_input(x):
    """Per tensor, asymmetric, [0, 255], zero exactly representable (the padding)."""
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    s = max(hi - lo, 1e-12) / 255.0
    zp = round(-lo / s)
    return ((x / s).round() + zp).clamp(0, 255).sub(zp) * s


VARIANTS = {
    "f32": (None, None),
    "bf16": (bf16, bf16),
    "int8": (u8_input, int8_weights),
    "int8-w": (None, int8_weights),
    "int8-mid": (u8_input, int8_weights),
    "int8-out": (u8_input, int8_weights),
}
# Convs a variant keeps in bf16.
KEEP_BF16 = {"int8-mid": ("conv_in", "conv_out"), "int8-out": ("conv_in",)}


def set_variant(net, name):
    for mname, m in net.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            qx, qw = VARIANTS["bf16" if mname in KEEP_BF16.get(name, ()) else name]
            if not hasattr(m, "_w32"):
                m._w32 = m.weight.data.clone()
            m.weight.data = qw(m._w32) if qw else m._w32.clone()
            m._qx = qx
            if not hasattr(m, "_orig_forward"):
                m._orig_forward = m.forward
                m.forward = (lambda mod: lambda x: mod._orig_forward(mod._qx(x) if mod._qx else x))(m)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="x2,x4")
    ap.add_argument("--max-side", type=int, default=384)
    ap.add_argument("--max-photos", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    torch.set_num_threads(2)
    photos = Q.val_photos(max_photos=args.max_photos)
    print(f"{len(photos)} validation photos, HR centre crops of at most {args.max_side} px\n")
    print("| model | variant | PSNR-Y (dB) | variant - f32 (dB), mean +- s.e. | largest per-photo "
          "difference | output vs f32 output, PSNR min / mean (dB) | within 0.05 dB |")
    print("|---|---|---:|---:|---:|---:|---|")
    for tag in args.models.split(","):
        path = os.path.join(ROOT, "models", "sr", f"diffusionsr-{tag}.safetensors")
        net, meta = T.dt.load_file(path)
        net.eval()
        import json
        task = json.loads(meta["task"])
        s = task["scale"]
        sr = T.SR(net, s, task["residual_scale"], json.loads(meta["scheduler"]))
        steps = task.get("num_inference_steps", 1)
        pairs = []
        for _, p in photos:
            hr = Q.prepare_hr(Q.load_rgb(p), s, args.max_side)
            pairs.append((hr, Q.degrade(hr, s)))
        outs, scores = {}, {}
        for v in VARIANTS:
            set_variant(net, v)
            outs[v], scores[v] = [], []
            with torch.no_grad():
                for hr, lr in pairs:
                    g = torch.Generator().manual_seed(args.seed)
                    o = Q.from_t(sr.sample(Q.to_t(lr), steps, generator=g))
                    outs[v].append(o)
                    scores[v].append(Q.psnr_y(o, hr, s))
        base = np.array(scores["f32"])
        for v in VARIANTS:
            sc = np.array(scores[v])
            d = sc - base
            se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
            vs = [10 * np.log10(255.0 ** 2 / max(np.mean((a.astype(np.float64) - b) ** 2), 1e-12))
                  for a, b in zip(outs[v], outs["f32"])]
            same = v == "f32"
            print(f"| diffusionsr {tag} | {v} | {sc.mean():.3f} | "
                  f"{'' if same else f'{d.mean():+.4f} +- {se:.4f}'} | "
                  f"{'' if same else f'{np.abs(d).max():.3f}'} | "
                  f"{'' if same else f'{min(vs):.1f} / {np.mean(vs):.1f}'} | "
                  f"{'' if same else ('yes' if abs(d.mean()) < 0.05 else '**no**')} |", flush=True)


if __name__ == "__main__":
    main()
