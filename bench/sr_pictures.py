#!/usr/bin/python3
"""Before/after pictures of diffusionsr (x2 and x4) on validation photos, for docs/sr/.

For each model and photo (validation split only): HR cropped to a multiple of the scale s,
LR = s x s box average rounded to 8 bits (models/sr/train.py's degrade()), then the whole LR
photo is upscaled by
GStreamer `videoscale method=lanczos` and by the `diffusionsr` element (build/plugins,
model-file=M, the model's default steps).  From the most detailed --crop x --crop window of the
HR photo (largest high-frequency luma energy, on a 16-pixel grid) one PNG shows side by side:
LR nearest-upscaled | lanczos | diffusionsr | ground truth.  docs/sr/README.md shows them with
the PSNR-Y of each crop.

Run from the repository root after `meson compile -C build`:

    /usr/bin/python3 bench/sr_pictures.py --model models/sr/diffusionsr-x2.safetensors \
        --model models/sr/diffusionsr-x4.safetensors
"""

import argparse
import os
import shlex
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import sr_quality as Q  # noqa: E402

DEFAULT_PHOTOS = "opencv-doc/butterfly.png,lxqt-themes/flowers.png,opencv-doc/building.png"
LABELS = ("LR (nearest)", "lanczos", "diffusionsr", "ground truth")


def detailed_window(hr, size, step=16):
    """(y, x) of the size x size window of hr with the most high-frequency luma energy."""
    y = Q.luma(hr)
    hf = np.zeros_like(y)
    hf[1:-1, 1:-1] = (4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]) ** 2
    ii = np.pad(hf.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, pos = -1.0, (0, 0)
    for y0 in range(0, hr.shape[0] - size + 1, step):
        for x0 in range(0, hr.shape[1] - size + 1, step):
            e = ii[y0 + size, x0 + size] - ii[y0, x0 + size] - ii[y0 + size, x0] + ii[y0, x0]
            if e > best:
                best, pos = e, (y0, x0)
    return pos


def compose(panels, labels, gap=4, label_h=16):
    from PIL import Image, ImageDraw
    h, w = panels[0].shape[:2]
    canvas = Image.new("RGB", (len(panels) * w + (len(panels) - 1) * gap, h + label_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (p, t) in enumerate(zip(panels, labels)):
        x = i * (w + gap)
        canvas.paste(Image.fromarray(p), (x, label_h))
        draw.text((x + 3, 2), t, fill=(0, 0, 0))
    return canvas


def main():
    ap = argparse.ArgumentParser(description="diffusionsr before/after pictures for docs/sr/")
    ap.add_argument("--model", required=True, action="append", help="diffusionsr model (.safetensors), repeatable")
    ap.add_argument("--photos", default=DEFAULT_PHOTOS, help="validation photos (MANIFEST file names)")
    ap.add_argument("--crop", type=int, default=192, help="HR crop side")
    ap.add_argument("--manifest", default=Q.MANIFEST)
    ap.add_argument("--out", default=os.path.join(Q.ROOT, "docs", "sr"))
    args = ap.parse_args()

    val = dict(Q.val_photos(args.manifest))
    names = [n.strip() for n in args.photos.split(",") if n.strip()]
    for n in names:
        if n not in val:
            ap.error(f"{n} is not a validation photo of {args.manifest}")
    os.makedirs(args.out, exist_ok=True)
    command = "/usr/bin/python3 " + shlex.join([Q.rel(sys.argv[0])] + sys.argv[1:])
    md = ["# diffusionsr: before and after", "",
          "Crops of validation photos (never trained on): the HR photo is area-downscaled by the "
          "scale (box average, 8-bit), then upscaled back.  Left to right: the low-resolution input "
          "(nearest-neighbour, for reference), GStreamer `videoscale method=lanczos`, `diffusionsr` "
          f"at the model's default steps, and the original photo.  Each crop is the "
          f"{args.crop}x{args.crop} window of the photo with the most fine detail.", "",
          "Made with (from the repository root):", "", "```sh", command, "```", ""]
    rows = []
    for model in args.model:
        s, steps, meta = Q.model_info(model)
        md += [f"## x{s}", "", f"Model: `{Q.rel(model)}`, {steps} steps"
               + (f" (training step {meta['training_step']})" if "training_step" in meta else "") + ".", ""]
        if "training_step" not in meta:
            md += ["**This model carries no training step: it is a test model, and the diffusionsr panels "
                   "show what an untrained network does, not the method.  Regenerate with a trained model.**", ""]
        with tempfile.TemporaryDirectory() as tmp:
            for n in names:
                hr = Q.prepare_hr(Q.load_rgb(val[n]), s)
                lr = Q.degrade(hr, s)
                lz = Q.gst_lanczos(lr, s, tmp)
                sr = Q.gst_diffusionsr(lr, s, model, 0, tmp)
                c = min(args.crop, hr.shape[0], hr.shape[1]) // s * s
                y, x = detailed_window(hr, c)
                y, x = y // s * s, x // s * s
                cut = lambda a: np.ascontiguousarray(a[y:y + c, x:x + c])  # noqa: E731
                near = lr[y // s:(y + c) // s, x // s:(x + c) // s].repeat(s, 0).repeat(s, 1)
                panels = [near, cut(lz), cut(sr), cut(hr)]
                fname = os.path.splitext(n.replace("/", "-"))[0] + f"-x{s}.png"
                compose(panels, LABELS).save(os.path.join(args.out, fname), optimize=True)
                psnr = [Q.psnr_y(p, panels[3], s) for p in panels[:3]]
                rows.append(fname)
                print(f"x{s} {n}: crop {c}px at ({x}, {y}); PSNR-Y nearest {psnr[0]:.2f} lanczos {psnr[1]:.2f} "
                      f"diffusionsr {psnr[2]:.2f} dB -> {Q.rel(os.path.join(args.out, fname))}", flush=True)
                md += [f"### {n}, x{s}", "", f"![{n} x{s}: LR, lanczos, diffusionsr, ground truth]({fname})", "",
                       f"Crop {c}x{c} at ({x}, {y}).  PSNR-Y of the crop: nearest {psnr[0]:.2f} dB, "
                       f"lanczos {psnr[1]:.2f} dB, diffusionsr {psnr[2]:.2f} dB.", ""]
    md += ["Whole-set numbers: `bench/sr_quality.py`; speed and memory: `bench/sr_speed.py`.", ""]
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write("\n".join(md))
    total = sum(os.path.getsize(os.path.join(args.out, r)) for r in rows)
    print(f"wrote {Q.rel(os.path.join(args.out, 'README.md'))} and {len(rows)} PNGs, {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
