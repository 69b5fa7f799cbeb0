#!/usr/bin/python3
"""Inpainting quality on the validation photos, per mask kind, all methods in one run.

For every validation photo (_work/data/photos/MANIFEST.json, "split": "val"; never a training
photo) a centre crop of --size pixels (default 256) gets one mask of each kind of
models/inpaint/masks.py (box, stroke, logo; fixed seed, so every method and every run sees the
same masks).  Each method fills the mask:

  telea, ns        OpenCV's cv2.inpaint (INPAINT_TELEA, INPAINT_NS), radius --radius (3)
  base fill        the model's classical stage alone (models/inpaint/train.py's base_fill with the
                   model file's parameters, hole = the mask, whole crop, no network): what the
                   U-Net's residual is added to, so the difference is what the network brings
  diffusioninpaint the element of build/plugins through gst-launch-1.0 (mask-file=<the mask as
                   PGM>, model-file=M) at the model's default steps and at each of --steps

Scores, per kind and over all: PSNR inside the mask (RGB, 8-bit, peak 255), SSIM inside the
mask (BT.601 luma, 11x11 Gaussian window, sigma 1.5; the SSIM map averaged over the mask
pixels whose window lies inside the image), and for the element the number of pixels changed
further than mask-feather + 1 pixels (chessboard distance) from the mask, which must be 0.

Run from the repository root after `meson compile -C build` (python3-opencv installed):

    /usr/bin/python3 bench/inpaint_quality.py --model models/inpaint/diffusioninpaint.safetensors

--element-seeds N adds the element's seeds 1 .. N-1 at the default steps: the element draws its
noise by position, so one seed is one draw for every photo, and the spread over seeds is the
bench's own noise.

Writes bench/out/inpaint_quality/results.md and results.json; with --pictures DIR, one PNG per
photo of --picture-photos and mask kind: the input with the mask in magenta | Telea |
Navier-Stokes | diffusioninpaint (default steps) | the original, and DIR/README.md listing them
with each method's PSNR inside the mask; and for --steps-photos, strips of every step count.
"""

import argparse
import json
import os
import shlex
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "inpaint"))
import masks as M  # noqa: E402
import sr_quality as Q  # noqa: E402

FEATHER = 4          # the element's default mask-feather


def save_pgm(path, mask):
    h, w = mask.shape
    with open(path, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (w, h) + ((mask > 0) * 255).astype(np.uint8).tobytes())


def element_key(steps, default=False, seed=0, guidance=None):
    """The element's row name: steps, whether they are the model's default, the seed if not 0
    and the exemplar guidance if not the model's."""
    return (f"diffusioninpaint {steps} step{'s' if steps > 1 else ''}" + (" (default)" if default else "")
            + (f", seed {seed}" if seed else "") + (f", guidance {guidance:g}" if guidance is not None else ""))


def gst_inpaint(img, mask, model, steps, tmp, seed=0, guidance=None):
    src, mpath, dst = (os.path.join(tmp, n) for n in ("img.png", "mask.pgm", "out.png"))
    Q.save_png(src, img)
    save_pgm(mpath, mask)
    Q.gst_launch(["filesrc", f"location={src}", "!", "pngdec", "!", "videoconvert", "!",
                  "diffusioninpaint", f"model-file={os.path.abspath(model)}", f"mask-file={mpath}",
                  f"num-steps={steps}", f"seed={seed}"]
                 + ([f"exemplar-guidance={guidance}"] if guidance is not None else []) + ["!", "videoconvert", "!", "video/x-raw,format=RGB", "!",
                  "pngenc", "!", "filesink", f"location={dst}"])
    return Q.load_rgb(dst)


def inpaint_train():
    return Q.load_module("models/inpaint/train.py", "inpaint_train")


def base_fill(T, img, mask, task):
    """train.py's (T) base_fill with the model file's parameters -> uint8 RGB."""
    import torch
    x = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
    m = torch.from_numpy((mask > 0).astype(np.float32))[None, None]
    with torch.no_grad():
        out = T.base_fill(x, m, **T.base_params(task))[0].permute(1, 2, 0).numpy()
    return np.clip(np.floor((out + 1) * 127.5 + 0.5), 0, 255).astype(np.uint8)


def picture(path, img, mask, outs):
    """input (mask magenta) | Telea | Navier-Stokes | diffusioninpaint | original, 4 px apart."""
    shown = img.copy()
    shown[mask > 0] = (shown[mask > 0] // 2 + np.array([127, 0, 127])).astype(np.uint8)
    tiles = [shown] + outs + [img]
    H, W = img.shape[:2]
    strip = np.full((H, len(tiles) * (W + 4) - 4, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        strip[:, i * (W + 4):i * (W + 4) + W] = t
    Q.save_png(path, strip)


def opencv(img, mask, flag, radius):
    import cv2
    bgr = np.ascontiguousarray(img[..., ::-1])
    return cv2.inpaint(bgr, (mask > 0).astype(np.uint8) * 255, radius, flag)[..., ::-1].copy()


def masked_psnr(a, b, mask):
    m = mask > 0
    d = (a.astype(np.float64) - b.astype(np.float64))[m]
    return float(10 * np.log10(255.0 ** 2 / max(float((d ** 2).mean()), 1e-10)))


def masked_ssim(a, b, mask, size=11, sigma=1.5):
    ya, yb = Q.luma(a), Q.luma(b)
    g = np.exp(-0.5 * ((np.arange(size) - (size - 1) / 2.0) / sigma) ** 2)
    g /= g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = Q._gauss_valid(ya, g), Q._gauss_valid(yb, g)
    saa = Q._gauss_valid(ya * ya, g) - mu_a ** 2
    sbb = Q._gauss_valid(yb * yb, g) - mu_b ** 2
    sab = Q._gauss_valid(ya * yb, g) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    r = size // 2
    m = (mask > 0)[r:-r, r:-r]
    return float(s[m].mean()) if m.any() else float("nan")


def luma601(img):
    """Full-range BT.601 luma on the 0-255 scale."""
    x = img.astype(np.float64)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def laplacian(y):
    """3x3 Laplacian (4-neighbour: [[0, 1, 0], [1, -4, 1], [0, 1, 0]]); edge rows replicated."""
    p = np.pad(y, 1, mode="edge")
    return p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * y


def erode(mask, r):
    """mask eroded by a (2r+1)x(2r+1) square; outside the image counts as not masked."""
    m = np.pad(mask > 0, r, constant_values=False)
    h, w = mask.shape
    out = np.ones((h, w), dtype=bool)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out &= m[dy:dy + h, dx:dx + w]
    return out


def dilate(mask, r):
    """mask dilated by a (2r+1)x(2r+1) square."""
    m = np.pad(mask > 0, r, constant_values=False)
    h, w = mask.shape
    out = np.zeros((h, w), dtype=bool)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= m[dy:dy + h, dx:dx + w]
    return out


DETAIL_MIN_PIXELS = 400   # eroded interior at least this many pixels
DETAIL_MIN_ENERGY = 20.0  # and the original's mean squared Laplacian there at least this


def detail_ratio(out, orig, mask):
    """Mean squared Laplacian of the output's luma over the mask eroded by 2 pixels (a 5x5
    square), over the original's; None when the eroded interior has fewer than 400 pixels or
    the original is flat there (mean squared Laplacian under 20 on the 0-255 scale).  A blur
    scores near 0, a fill with the original's texture about 1."""
    inner = erode(mask, 2)
    if int(inner.sum()) < DETAIL_MIN_PIXELS:
        return None
    e_orig = float((laplacian(luma601(orig)) ** 2)[inner].mean())
    if e_orig < DETAIL_MIN_ENERGY:
        return None
    return float((laplacian(luma601(out)) ** 2)[inner].mean()) / e_orig


def seam_band(mask, r=2):
    """The pixels within r of the mask's border on either side: outside the mask but in its
    (2r+1)-square dilation, or inside it but not in its (2r+1)-square erosion."""
    m = mask > 0
    return (dilate(m, r) & ~m) | (m & ~erode(m, r))


def gradient_magnitude(y):
    """|grad| of a plane by central differences (one-sided at the image's edge)."""
    gy, gx = np.gradient(y)
    return np.sqrt(gx * gx + gy * gy)


def border_gradient(img, mask):
    """Mean luma gradient magnitude over the 2-pixel band each side of the mask's border."""
    return float(gradient_magnitude(luma601(img))[seam_band(mask)].mean())


def far_from_mask(mask, r):
    """Pixels further than r (chessboard distance) from every mask pixel."""
    near = mask > 0
    h, w = near.shape
    grown = near.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            sh = np.zeros_like(near)
            sh[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                near[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
            grown |= sh
    return ~grown


def label(key):
    """A row's short name in the pictures' captions."""
    if key.endswith("(default)"):
        return "diffusioninpaint (defaults)"
    if ", guidance " in key:
        return "diffusioninpaint exemplar-guidance=" + key.split(", guidance ")[1]
    return key.split(" (")[0]


def rows_psnr(out, img, mask):
    return masked_psnr(out, img, mask)


def texture_summary(rs):
    """Per-kind texture and seam numbers of a method's rows: the median detail ratio over the
    photos that qualify (and how many), the mean border gradient of the output and of the
    original, and the mean per-photo |output - original| border gradient (the seam gap)."""
    ds = [r["detail"] for r in rs if r.get("detail") is not None]
    return {"detail": float(np.median(ds)) if ds else float("nan"), "detail_n": len(ds),
            "grad": float(np.mean([r["grad"] for r in rs])),
            "grad_orig": float(np.mean([r["grad_orig"] for r in rs])),
            "seam_gap": float(np.mean([abs(r["grad"] - r["grad_orig"]) for r in rs]))}


def train_photos(manifest, every, max_photos=0):
    """-> every `every`-th photo of the training split (no thumbnails), in manifest order: for
    choosing settings without looking at the validation photos."""
    with open(manifest) as f:
        m = json.load(f)
    base = os.path.dirname(manifest)
    out = [(e["file"], os.path.join(base, e["file"])) for e in m["photos"]
           if e["split"] == "train" and not e.get("small")][::every]
    return out[:max_photos] if max_photos else out


def main():
    ap = argparse.ArgumentParser(description="inpainting quality (masked PSNR, SSIM) on the validation photos")
    ap.add_argument("--model", required=True, help="diffusioninpaint model (.safetensors)")
    ap.add_argument("--steps", default="1,2,4,8", help="step counts besides the model's default")
    ap.add_argument("--size", type=int, default=256, help="side of the centre crop of each photo")
    ap.add_argument("--radius", type=int, default=3, help="cv2.inpaint radius")
    ap.add_argument("--manifest", default=Q.MANIFEST)
    ap.add_argument("--split", choices=["val", "train"], default="val",
                    help="photos: the validation split, or (for choosing settings) every --every-th "
                         "training photo")
    ap.add_argument("--every", type=int, default=4, help="with --split train: every N-th training photo")
    ap.add_argument("--guidance", default="",
                    help="exemplar-guidance values to run besides the model's default, at the default steps")
    ap.add_argument("--guidance-steps", default="",
                    help="with --guidance: run each of those values at these step counts (default: the default)")
    ap.add_argument("--max-photos", type=int, default=0)
    ap.add_argument("--seed", type=int, default=2024, help="the masks' seed")
    ap.add_argument("--element-seeds", type=int, default=1,
                    help="the element's seeds 0 .. N-1 at the default steps (seed 0 at the others)")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "inpaint_quality"))
    ap.add_argument("--pictures", default="", help="write before/after strips to this folder")
    ap.add_argument("--picture-photos", default="opencv-doc/building.png,opencv-doc/butterfly.png,"
                    "lxqt-themes/flowers.png")
    ap.add_argument("--steps-photos", default="lxqt-themes/fog.png",
                    help="with --pictures, also a strip per mask kind of these photos filled at every "
                         "step count (the photo where more steps lose the most)")
    args = ap.parse_args()
    import cv2
    if args.pictures:
        os.makedirs(args.pictures, exist_ok=True)

    command = "/usr/bin/python3 " + shlex.join([Q.rel(sys.argv[0])] + sys.argv[1:])
    sys.path.insert(0, os.path.join(ROOT, "models", "common"))
    import st
    task = json.loads(st.read_header(args.model)[1]["task"])
    default_steps = task["num_inference_steps"]
    T = inpaint_train() if task.get("residual") == "base_fill" else None
    pictured = args.picture_photos.split(",") if args.pictures else []
    stepped = args.steps_photos.split(",") if args.pictures else []
    shown, shown_steps, shown_seeds = [], [], []
    steps_list = [int(k) for k in args.steps.split(",") if k.strip()]
    photos = (Q.val_photos(args.manifest, args.max_photos) if args.split == "val"
              else train_photos(args.manifest, args.every, args.max_photos))
    guidances = [float(g) for g in args.guidance.split(",") if g.strip()]
    guidance_steps = [int(k) for k in args.guidance_steps.split(",") if k.strip()]
    rng = np.random.default_rng(args.seed)
    rows = {}
    far = {}
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, path) in enumerate(photos):
            full = Q.load_rgb(path)
            H, W = full.shape[:2]
            S = min(args.size, H, W) // 8 * 8
            y0, x0 = (H - S) // 2, (W - S) // 2
            img = np.ascontiguousarray(full[y0:y0 + S, x0:x0 + S])
            for kind in M.KINDS:
                mask = (M.make(kind, S, rng) > 0).astype(np.uint8)
                outs = {"telea (OpenCV)": opencv(img, mask, cv2.INPAINT_TELEA, args.radius),
                        "navier-stokes (OpenCV)": opencv(img, mask, cv2.INPAINT_NS, args.radius)}
                if T is not None:
                    outs["base fill alone (no network)"] = base_fill(T, img, mask, task)
                for k in [0] + [k for k in steps_list if k != default_steps]:
                    outs[element_key(k or default_steps, k == 0)] = gst_inpaint(img, mask, args.model, k, tmp)
                for j in range(1, args.element_seeds):
                    outs[element_key(default_steps, True, j)] = gst_inpaint(img, mask, args.model, 0, tmp, seed=j)
                for g in guidances:
                    for k in guidance_steps or [default_steps]:
                        outs[element_key(k, k == default_steps, guidance=g)] = gst_inpaint(
                            img, mask, args.model, 0 if k == default_steps else k, tmp, guidance=g)
                far_mask = far_from_mask(mask, FEATHER + 1)
                for key, out in outs.items():
                    r = rows.setdefault(key, {}).setdefault(kind, [])
                    r.append({"photo": name, "psnr": masked_psnr(out, img, mask),
                              "ssim": masked_ssim(out, img, mask), "detail": detail_ratio(out, img, mask),
                              "grad": border_gradient(out, mask), "grad_orig": border_gradient(img, mask)})
                    if key.startswith("diffusioninpaint"):
                        far[key] = far.get(key, 0) + int((out != img).any(-1)[far_mask].sum())
                if name in pictured:
                    keys = ["telea (OpenCV)", "navier-stokes (OpenCV)", next(k for k in outs if k.endswith("(default)"))]
                    if guidances:
                        keys.append(element_key(default_steps, True, guidance=guidances[0]))
                    if args.element_seeds > 1:
                        skeys = [element_key(default_steps, True)] + [element_key(default_steps, True, j)
                                                                     for j in range(1, args.element_seeds)]
                        sname = f"{name.replace('/', '-').rsplit('.', 1)[0]}-{kind}-seeds.png"
                        picture(os.path.join(args.pictures, sname), img, mask, [outs[k] for k in skeys])
                        shown_seeds.append((sname, name, kind, [rows_psnr(outs[k], img, mask) for k in skeys]))
                    fname = f"{name.replace('/', '-').rsplit('.', 1)[0]}-{kind}.png"
                    picture(os.path.join(args.pictures, fname), img, mask, [outs[k] for k in keys])
                    shown.append((fname, name, kind, [(label(k), rows[k][kind][-1]["psnr"]) for k in keys]))
                if name in stepped:
                    keys = sorted((k for k in outs if k.startswith("diffusioninpaint") and ", " not in k),
                                  key=lambda k: int(k.split()[1]))
                    fname = f"{name.replace('/', '-').rsplit('.', 1)[0]}-{kind}-steps.png"
                    picture(os.path.join(args.pictures, fname), img, mask, [outs[k] for k in keys])
                    shown_steps.append((fname, name, kind, [(k.split(" (")[0], rows[k][kind][-1]["psnr"]) for k in keys]))
            print(f"[{i + 1}/{len(photos)}] {name}: " + ", ".join(
                f"{k.split(' (')[0]} {np.mean([r['psnr'] for kind in M.KINDS for r in rows[k][kind][-1:]]):.2f}"
                for k in rows) + f" [{time.time() - t_start:.0f}s]", flush=True)

    summary = {k: {kind: texture_summary(v[kind]) | {
        "psnr": float(np.mean([r["psnr"] for r in v[kind]])),
        "ssim": float(np.nanmean([r["ssim"] for r in v[kind]])), "n": len(v[kind])}
        for kind in M.KINDS} for k, v in rows.items()}
    for k, v in summary.items():
        v["all"] = {"psnr": float(np.mean([v[kind]["psnr"] for kind in M.KINDS])),
                    "ssim": float(np.mean([v[kind]["ssim"] for kind in M.KINDS])), "n": sum(v[kind]["n"] for kind in M.KINDS)}
    cols = list(M.KINDS) + ["all"]
    md = ["# diffusioninpaint quality on the validation photos", "", "Command line (from the repository root):", "",
          "```sh", command, "```", "",
          f"Model `{Q.rel(args.model)}` (default {default_steps} steps).  Photos: the validation split of "
          f"`{Q.rel(args.manifest)}` ({len(photos)}), centre crops of {args.size} px; one mask of each kind per "
          f"photo (models/inpaint/masks.py, seed {args.seed}).  PSNR (RGB) and SSIM (luma) inside the mask; "
          f"means over the photos.", "",
          "| method | " + " | ".join(f"{c} PSNR | {c} SSIM" for c in cols) + " |",
          "|---|" + "---:|" * (2 * len(cols))]
    for k, v in summary.items():
        md.append(f"| {k} | " + " | ".join(f"{v[c]['psnr']:.2f} | {v[c]['ssim']:.4f}" for c in cols) + " |")
    md += ["", "Texture and seam: the median detail ratio (mean squared 3x3 Laplacian of BT.601 luma over the "
           "mask eroded by 2 pixels, output over original; masks whose eroded interior has at least 400 "
           "pixels and an original that is not flat there, mean squared Laplacian at least 20; n: how many "
           "photos qualify), and the mean luma gradient magnitude over the 2-pixel band each side of the "
           "mask's border (the original's in the last row), with |output - original| per photo averaged "
           "(seam gap).", "",
           "| method | " + " | ".join(f"{c} detail (n) | {c} border grad | {c} seam gap" for c in M.KINDS) + " |",
           "|---|" + "---:|" * (3 * len(M.KINDS))]
    for k, v in summary.items():
        md.append(f"| {k} | " + " | ".join(
            f"{v[c]['detail']:.2f} ({v[c]['detail_n']}) | {v[c]['grad']:.2f} | {v[c]['seam_gap']:.2f}"
            for c in M.KINDS) + " |")
    first = next(iter(summary.values()))
    md.append("| original | " + " | ".join(f"1.00 ({first[c]['detail_n']}) | {first[c]['grad_orig']:.2f} | 0.00"
                                           for c in M.KINDS) + " |")
    md += ["", "Pixels changed further than mask-feather + 1 = %d pixels from the mask (must be 0): " % (FEATHER + 1)
           + ", ".join(f"{k}: {n}" for k, n in far.items()) + ".", ""]
    if shown:
        pm = ["# diffusioninpaint: before and after", "",
              "Made by `" + command + "` (validation photos, never trained on; "
              f"centre crops of {args.size} px).  Each strip: the input with the mask in magenta | OpenCV Telea | "
              "OpenCV Navier-Stokes | diffusioninpaint (default settings)"
              + (f" | diffusioninpaint with exemplar-guidance={guidances[0]:g}" if guidances else "")
              + " | the original.  PSNR inside the mask.", ""]
        for fname, name, kind, ps in shown:
            pm += [f"**{name}, {kind} mask**: " + ", ".join(f"{k} {v:.2f} dB" for k, v in ps), "",
                   f"![{name} {kind}]({fname})", ""]
        if shown_seeds:
            pm += ["## Seeds", "",
                   "Each strip: the input with the mask in magenta | diffusioninpaint at its default settings with "
                   f"seed 0, 1, ..., {args.element_seeds - 1} | the original.", ""]
        for fname, name, kind, ps in shown_seeds:
            pm += [f"**{name}, {kind} mask**: " + ", ".join(f"seed {j} {v:.2f} dB" for j, v in enumerate(ps)), "",
                   f"![{name} {kind} seeds]({fname})", ""]
        if shown_steps:
            pm += ["## More steps", "",
                   "Each strip: the input with the mask in magenta | diffusioninpaint at each step count, "
                   "fewest first | the original.", ""]
        for fname, name, kind, ps in shown_steps:
            pm += [f"**{name}, {kind} mask**: " + ", ".join(f"{k.split(' ', 1)[1]} {v:.2f} dB" for k, v in ps), "",
                   f"![{name} {kind} steps]({fname})", ""]
        with open(os.path.join(args.pictures, "README.md"), "w") as f:
            f.write("\n".join(pm))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"command": command, "summary": summary, "changed_far": far, "rows": rows}, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
