#!/usr/bin/python3
"""The bf16 accuracy budget: each shipped image model's quality metric (the one its card reports)
with the element's precision=f32 and precision=bf16, on the validation photos, through the
elements of build/plugins (gst-launch-1.0), as the quality benches run them:

  diffusionsr x2, x4   PSNR-Y against the HR photo (bench/sr_quality.py: HR centre-cropped to at
                       most --max-side, 2x2/4x4 box degradation, s-pixel border), default steps
  diffusioninpaint     PSNR (RGB) inside the mask, box/stroke/logo masks (models/inpaint/masks.py,
                       seed 2024), 256 px centre crops (bench/inpaint_quality.py), default steps;
                       at the element's default exemplar-guidance (the model's: 1 for the shipped
                       one, where the U-Net is not run) and at each --inpaint-guidance value
  vaeencode/vaedecode  round-trip PSNR (RGB) with f16 latents, 256 px squares (bench/vae_quality.py),
                       both elements at the precision
  diffusionimg2img     chroma PSNR of the colorized gray photo, 256 px squares, seeds 0..--seeds-1
                       (bench/img2img_quality.py), default steps

For each: the mean metric in f32 and in bf16, their difference (the budget: |bf16 - f32| < 0.05
dB), the largest per-photo difference, and the PSNR of the bf16 output against the f32 output.
gansynth (SI-SDRi on speech mixtures, int8 only) has its own: bench/speech_quality.py --precision int8.

--precision int8 measures the element's precision=int8 instead of bf16 (the resnets' convs in
8-bit integers, the rest in bf16: ge-precision.h).

With --write-auto, each model whose difference is within the budget gets "precision_auto": "bf16"
(or "int8") in its safetensors metadata (GE_PRECISION_AUTO then runs it so); a model outside the
bf16 budget loses the key, one outside int8's keeps what it had.  The file's tensors are left byte
for byte as they were.

Run from the repository root after `meson compile -C build` and models/data/fetch_photos.py:

    /usr/bin/python3 bench/precision_quality.py [--write-auto]

Writes bench/out/precision_quality/results.json and results.md (precision_quality_int8/ for int8).
"""

import argparse
import json
import os
import struct
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "common"))
sys.path.insert(0, os.path.join(ROOT, "models", "inpaint"))

import masks as M  # noqa: E402
import sr_quality as Q  # noqa: E402
import vae_quality as V  # noqa: E402

BUDGET_DB = 0.05
# The precision measured against f32 (--precision): bf16 or int8.
CAND = "bf16"
PRECISIONS = ("f32", CAND)
MODELS = {
    "diffusionsr-x2": "models/sr/diffusionsr-x2.safetensors",
    "diffusionsr-x4": "models/sr/diffusionsr-x4.safetensors",
    "diffusioninpaint": "models/inpaint/diffusioninpaint.safetensors",
    "vae": "models/vae/vae.safetensors",
    "diffusionimg2img": "models/img2img/diffusionimg2img.safetensors",
}


def launch_png(src, element, dst):
    Q.gst_launch(["filesrc", f"location={src}", "!", "pngdec", "!", "videoconvert", "!",
                  "video/x-raw,format=RGB", "!", *element, "!", "videoconvert", "!",
                  "video/x-raw,format=RGB", "!", "pngenc", "!", "filesink", f"location={dst}"])
    return Q.load_rgb(dst)


def psnr(a, b):
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(10 * np.log10(255.0 ** 2 / max(float((d ** 2).mean()), 1e-10)))


def run_sr(model, s, photos, max_side, tmp):
    rows = []
    for name, path in photos:
        hr = Q.prepare_hr(Q.load_rgb(path), s, max_side)
        lr = Q.degrade(hr, s)
        src = os.path.join(tmp, "lr.png")
        Q.save_png(src, lr)
        outs = {p: launch_png(src, ["diffusionsr", f"model-file={os.path.abspath(model)}", f"scale={s}",
                                    f"precision={p}"], os.path.join(tmp, "sr.png")) for p in PRECISIONS}
        rows.append({"photo": name, **{p: Q.psnr_y(outs[p], hr, s) for p in PRECISIONS},
                     "cand_vs_f32": psnr(outs[CAND], outs["f32"])})
    return rows


def run_inpaint(model, photos, size, seed, tmp, guidance=None):
    import inpaint_quality as I
    rng = np.random.default_rng(seed)
    rows = []
    for name, path in photos:
        full = Q.load_rgb(path)
        H, W = full.shape[:2]
        S = min(size, H, W) // 8 * 8
        y0, x0 = (H - S) // 2, (W - S) // 2
        img = np.ascontiguousarray(full[y0:y0 + S, x0:x0 + S])
        src, mpath = os.path.join(tmp, "img.png"), os.path.join(tmp, "mask.pgm")
        Q.save_png(src, img)
        for kind in M.KINDS:
            mask = (M.make(kind, S, rng) > 0).astype(np.uint8)
            I.save_pgm(mpath, mask)
            g = [] if guidance is None else [f"exemplar-guidance={guidance}"]
            outs = {p: launch_png(src, ["diffusioninpaint", f"model-file={os.path.abspath(model)}",
                                        f"mask-file={mpath}", f"precision={p}", *g], os.path.join(tmp, "out.png"))
                    for p in PRECISIONS}
            rows.append({"photo": f"{name} {kind}", **{p: I.masked_psnr(outs[p], img, mask) for p in PRECISIONS},
                         "cand_vs_f32": I.masked_psnr(outs[CAND], outs["f32"], mask)})
    return rows


def vae_round_trip(src, w, h, model, dims, precision, tmp):
    """V.vae_round_trip's f16-latent round trip, both elements at @precision."""
    lat = os.path.join(tmp, "lat.f32")
    m = [f"model-file={os.path.abspath(model)}", f"precision={precision}"]
    Q.gst_launch(["filesrc", f"location={src}", "!", "pngdec", "!", "videoconvert", "!", "vaeencode", *m, "!",
                  "filesink", f"location={lat}"])
    z = np.fromfile(lat, dtype="<f4").astype("<f2").astype("<f4")
    p, dst = os.path.join(tmp, "lat-f16.bin"), os.path.join(tmp, "out.png")
    z.tofile(p)
    caps = (f"other/tensors,format=static,num_tensors=1,types=float32,framerate=0/1,"
            f"dimensions={-(-w // dims[0])}:{-(-h // dims[0])}:{dims[1]}:1,video-width={w},video-height={h}")
    Q.gst_launch(["filesrc", f"location={p}", f"blocksize={z.size * 4}", "!", caps, "!", "vaedecode", *m,
                  "!", "videoconvert", "!", "video/x-raw,format=RGB", "!", "pngenc", "!",
                  "filesink", f"location={dst}"])
    return Q.load_rgb(dst)


def run_vae(model, photos, size, tmp):
    dims = V.model_dims(model)
    rows = []
    for name, path in photos:
        img = V.square(Q.load_rgb(path), size)
        src = os.path.join(tmp, "in.png")
        Q.save_png(src, img)
        outs = {p: vae_round_trip(src, img.shape[1], img.shape[0], model, dims, p, tmp) for p in PRECISIONS}
        rows.append({"photo": name, **{p: V.psnr_rgb(outs[p], img) for p in PRECISIONS},
                     "cand_vs_f32": psnr(outs[CAND], outs["f32"])})
    return rows


def run_img2img(model, photos, size, seeds, tmp):
    import torch
    T = Q.load_module("models/img2img/train.py", "img2img_train")

    def t(img):
        return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0

    rows = []
    for name, path in photos:
        orig = V.square(Q.load_rgb(path), size)
        g = T.gray(t(orig))
        gray = np.round(g[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        src = os.path.join(tmp, "gray.png")
        Q.save_png(src, gray)
        for seed in range(seeds):
            outs = {p: launch_png(src, ["diffusionimg2img", f"model-file={os.path.abspath(model)}", f"seed={seed}",
                                        f"precision={p}"], os.path.join(tmp, "color.png")) for p in PRECISIONS}
            rows.append({"photo": f"{name} seed {seed}",
                         **{p: float(T.chroma_psnr(t(outs[p]), t(orig))) for p in PRECISIONS},
                         "cand_vs_f32": psnr(outs[CAND], outs["f32"])})
    return rows


def summarise(rows):
    f, b = np.array([r["f32"] for r in rows]), np.array([r[CAND] for r in rows])
    d = b - f
    return {"n": len(rows), "precision": CAND, "f32": float(f.mean()), CAND: float(b.mean()),
            "diff": float(d.mean()),
            "diff_se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0,
            "max_abs_photo_diff": float(np.abs(d).max()),
            "cand_vs_f32_psnr_min": float(min(r["cand_vs_f32"] for r in rows)),
            "cand_vs_f32_psnr_mean": float(np.mean([min(r["cand_vs_f32"], 100.0) for r in rows])),
            "within_budget": bool(abs(float(d.mean())) < BUDGET_DB)}


def set_precision_auto(path, on, cand):
    """Sets "precision_auto" to @cand in the file's metadata (on), or removes it (not on: only for
    bf16; a model outside int8's budget keeps what it had); tensors untouched."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    meta = header.get("__metadata__", {})
    if on:
        meta["precision_auto"] = cand
    elif cand == "bf16":
        meta.pop("precision_auto", None)
    else:
        return
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        f.write(data)


def main():
    global CAND, PRECISIONS
    ap = argparse.ArgumentParser(description="bf16 or int8 against f32: each model card's quality metric")
    ap.add_argument("--precision", default="bf16", choices=("bf16", "int8"),
                    help="the precision measured against f32")
    ap.add_argument("--models", default=",".join(MODELS), help="which of " + ", ".join(MODELS))
    ap.add_argument("--max-photos", type=int, default=0, help="0: all validation photos")
    ap.add_argument("--max-side", type=int, default=384, help="SR: HR centre crop (as in RESULTS.md)")
    ap.add_argument("--size", type=int, default=256, help="inpainting, VAE, colorizer: crop side")
    ap.add_argument("--seeds", type=int, default=2, help="colorizer: the element's seeds 0..N-1")
    ap.add_argument("--inpaint-guidance", default="0",
                    help="diffusioninpaint: exemplar-guidance values measured besides the element's default "
                         "(comma-separated; empty: none)")
    ap.add_argument("--write-auto", action="store_true", help="mark the models within the budget")
    ap.add_argument("--out", default=None, help="default: bench/out/precision_quality (bf16), "
                    "bench/out/precision_quality_int8")
    args = ap.parse_args()
    CAND, PRECISIONS = args.precision, ("f32", args.precision)
    if args.out is None:
        args.out = os.path.join(HERE, "out", "precision_quality" + ("" if CAND == "bf16" else "_" + CAND))
    os.makedirs(args.out, exist_ok=True)
    photos = Q.val_photos(max_photos=args.max_photos)
    results = {}
    jobs = []
    for key in args.models.split(","):
        jobs.append((key, key, None))
        if key == "diffusioninpaint":
            jobs += [(f"{key} (exemplar-guidance {g})", key, g) for g in args.inpaint_guidance.split(",") if g]
    with tempfile.TemporaryDirectory() as tmp:
        for name, key, guidance in jobs:
            model = MODELS[key]
            t0 = time.time()
            if key.startswith("diffusionsr"):
                rows = run_sr(model, int(key[-1]), photos, args.max_side, tmp)
                metric = "PSNR-Y"
            elif key == "diffusioninpaint":
                rows = run_inpaint(model, photos, args.size, 2024, tmp, guidance)
                metric = "masked PSNR (RGB), box/stroke/logo"
            elif key == "vae":
                rows = run_vae(model, photos, args.size, tmp)
                metric = "round-trip PSNR (RGB), f16 latents"
            else:
                rows = run_img2img(model, photos, args.size, args.seeds, tmp)
                metric = f"chroma PSNR, seeds 0-{args.seeds - 1}"
            results[name] = {"model": model, "metric": metric, "rows": rows, **summarise(rows)}
            r = results[name]
            print(f"{name}: {metric} f32 {r['f32']:.3f} {CAND} {r[CAND]:.3f} diff {r['diff']:+.4f} +- "
                  f"{r['diff_se']:.4f} dB, largest per-photo {r['max_abs_photo_diff']:.3f}, {CAND} vs f32 output "
                  f">= {r['cand_vs_f32_psnr_min']:.1f} dB [{time.time() - t0:.0f} s]", flush=True)
    load = os.getloadavg()
    md = [f"{len(photos)} validation photos; load average {load[0]:.1f} at the end (time does not matter here).", "",
          f"| model | metric | n | f32 (dB) | {CAND} (dB) | {CAND} - f32 (dB) | largest per-photo |{CAND} - f32| | "
          f"{CAND} output vs f32 output, PSNR min / mean (dB) | within 0.05 dB |",
          "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for key, r in results.items():
        md.append(f"| {key} | {r['metric']} | {r['n']} | {r['f32']:.3f} | {r[CAND]:.3f} | {r['diff']:+.4f} +- "
                  f"{r['diff_se']:.4f} | {r['max_abs_photo_diff']:.3f} | {r['cand_vs_f32_psnr_min']:.1f} / "
                  f"{r['cand_vs_f32_psnr_mean']:.1f} | {'yes' if r['within_budget'] else 'NO'} |")
    md.append("| gansynth | SI-SDRi | | | | | | | bench/speech_quality.py --precision int8 |")
    text = "\n".join(md) + "\n"
    print(text)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    if args.write_auto:
        done = set()
        for key, r in results.items():
            path = r["model"]
            ok = r["within_budget"] and all(results[k]["within_budget"] for k in results
                                            if results[k]["model"] == path)
            if path not in done:
                set_precision_auto(path, ok, CAND)
                done.add(path)
                print(f"{path}: precision_auto {CAND if ok else '(unchanged)' if CAND == 'int8' else '(none)'}")


if __name__ == "__main__":
    main()
