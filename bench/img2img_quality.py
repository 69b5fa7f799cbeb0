#!/usr/bin/python3
"""Colorization by diffusionimg2img on validation photos turned gray.

Each validation photo (the val split of models/data/fetch_photos.py: whole packages never
trained on) is area-resized to a short side of --size and centre-cropped square (as a frame
shows a whole scene), turned gray (8-bit BT.601 luma in all three channels) and colorized by
the `diffusionimg2img` element of build/plugins (--model, default strength) at the model's
default steps and at --steps, with the element's seeds 0 .. --seeds - 1.  Against the original:
  - chroma PSNR: PSNR of the Cb and Cr planes (8-bit units); the baseline is the gray image
    itself (chroma 0), what leaving the footage black and white scores;
  - colorfulness (Hasler and Suesstrunk 2003): the mean over the photos, as a ratio to the
    originals' (1 = as colourful; the target is within 30 %).
Every photo of one size gets the same noise from one seed (the element draws it by position, so
that still scenes keep their colours), so one seed is one draw for the whole set, not 31: the
table gives the mean over the seeds and the lowest and highest seed's value.

Run from the repository root after `meson compile -C build`:

    /usr/bin/python3 bench/img2img_quality.py --model models/img2img/diffusionimg2img.safetensors \
        [--pictures docs/img2img]

Writes bench/out/img2img_quality/results.md and results.json.
"""

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "common"))

import sr_quality as Q  # noqa: E402
import vae_quality as V  # noqa: E402


def colorize(src, model, steps, seed, tmp):
    """The PNG @src colorized by the element at @steps from the noise of @seed."""
    dst = os.path.join(tmp, "color.png")
    Q.gst_launch(["filesrc", f"location={src}", "!", "pngdec", "!", "videoconvert", "!",
                  "video/x-raw,format=RGB", "!", "diffusionimg2img", f"model-file={os.path.abspath(model)}",
                  f"num-steps={steps}", f"seed={seed}", "!", "videoconvert", "!", "video/x-raw,format=RGB", "!",
                  "pngenc", "!", "filesink", f"location={dst}"])
    return Q.load_rgb(dst)


def main():
    ap = argparse.ArgumentParser(description="colorization quality (chroma PSNR, colorfulness)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", default="1,8", help="step counts besides the default")
    ap.add_argument("--max-photos", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=8, help="the element's seeds 0 .. N-1")
    ap.add_argument("--pictures", default=None)
    ap.add_argument("--n-pictures", type=int, default=4)
    ap.add_argument("--out", default=os.path.join(HERE, "out", "img2img_quality"))
    args = ap.parse_args()
    import torch
    import st
    T = Q.load_module("models/img2img/train.py", "img2img_train")
    os.makedirs(args.out, exist_ok=True)
    if args.pictures:
        os.makedirs(args.pictures, exist_ok=True)
    default = int(json.loads(st.read_header(args.model)[1]["task"])["num_inference_steps"])
    steps = [default] + [int(k) for k in args.steps.split(",") if int(k) != default]

    def t(img):
        return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, path) in enumerate(Q.val_photos(max_photos=args.max_photos)):
            orig = V.square(Q.load_rgb(path), args.size)
            g = T.gray(t(orig))
            gray = np.round(g[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            r = {"photo": name, "gray_chroma_psnr": T.chroma_psnr(g, t(orig)),
                 "orig_colorfulness": float(T.colorfulness(t(orig))[0])}
            src = os.path.join(tmp, "gray.png")
            Q.save_png(src, gray)
            first = None   # the default steps from seed 0, for the pictures
            for k in steps:
                r[f"chroma_psnr_{k}"], r[f"colorfulness_{k}"] = [], []   # one per seed
                for seed in range(args.seeds):
                    out = colorize(src, args.model, k, seed, tmp)
                    first = out if first is None else first
                    r[f"chroma_psnr_{k}"].append(T.chroma_psnr(t(out), t(orig)))
                    r[f"colorfulness_{k}"].append(float(T.colorfulness(t(out))[0]))
            rows.append(r)
            print(f"{name:50s} gray {r['gray_chroma_psnr']:.2f} dB  "
                  + "  ".join(f"{k} steps {statistics.mean(r[f'chroma_psnr_{k}']):.2f} dB "
                              f"C {statistics.mean(r[f'colorfulness_{k}']):.1f}" for k in steps)
                  + f"  (orig C {r['orig_colorfulness']:.1f}; means over the seeds)", flush=True)
            if args.pictures and i < args.n_pictures:
                Q.save_png(os.path.join(args.pictures, f"{i:02d}-{os.path.basename(name)}"),
                           np.concatenate([gray, first, orig], axis=1))

    def mean(k, seed=None):
        return statistics.mean(r[k] if seed is None else r[k][seed] for r in rows)

    oc = mean("orig_colorfulness")
    summary = {"gray_chroma_psnr": mean("gray_chroma_psnr"), "orig_colorfulness": oc, "seeds": args.seeds}
    for k in steps:   # per seed: the set's mean; then their mean and range over the seeds
        psnr = [mean(f"chroma_psnr_{k}", s) for s in range(args.seeds)]
        color = [mean(f"colorfulness_{k}", s) / oc for s in range(args.seeds)]
        summary[f"chroma_psnr_{k}"], summary[f"colorfulness_ratio_{k}"] = statistics.mean(psnr), statistics.mean(color)
        summary[f"per_seed_{k}"] = {"chroma_psnr": psnr, "colorfulness_ratio": color}
    cmd = "/usr/bin/python3 bench/img2img_quality.py " + shlex.join(
        [a if not os.path.isabs(a) else Q.rel(a) for a in sys.argv[1:]])
    md = [f"`{cmd}`", "",
          f"{len(rows)} validation photos (packages never trained on), {args.size}x{args.size}, turned gray; "
          f"model {Q.rel(args.model)} (default {default} steps); the mean over the element's seeds 0-{args.seeds - 1}, "
          "the lowest and highest seed, and seed 0 (the element's default):", "",
          "| output | chroma PSNR (dB) | lowest - highest | seed 0 | colorfulness / originals' | lowest - highest "
          "| seed 0 |", "|---|---:|---:|---:|---:|---:|---:|",
          f"| gray (left black and white) | {summary['gray_chroma_psnr']:.2f} | | | 0.00 | | |"]
    for k in steps:
        psnr, color = summary[f"per_seed_{k}"]["chroma_psnr"], summary[f"per_seed_{k}"]["colorfulness_ratio"]
        md.append(f"| diffusionimg2img, {k} step{'s' if k > 1 else ''}{' (default)' if k == default else ''} | "
                  f"{summary[f'chroma_psnr_{k}']:.2f} | {min(psnr):.2f} - {max(psnr):.2f} | {psnr[0]:.2f} | "
                  f"{summary[f'colorfulness_ratio_{k}']:.2f} | {min(color):.2f} - {max(color):.2f} | {color[0]:.2f} |")
    text = "\n".join(md) + "\n"
    print("\n" + text)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"summary": summary, "rows": rows, "command": cmd}, f, indent=1)


if __name__ == "__main__":
    main()
