#!/usr/bin/python3
"""VAE round trip through vaeencode / vaedecode against JPEG at the same size.

For each validation photo (the val split of models/data/fetch_photos.py: whole packages never
trained on), area-resized to a short side of --size and centre-cropped square (the protocol
of the published Stable Diffusion VAE numbers, COCO at 256 px):

1. vaeencode (build/plugins, --model) writes the latent stream to a file; the latents are
   rounded to float16 (how they would be stored: bits per pixel = 16 C / f^2), written back
   and decoded by vaedecode (filesrc blocksize = one latent).  PSNR (RGB, 8 bit) and SSIM (BT.601
   luma) against the photo.  The float32 latents' round trip is reported too.
2. jpegenc (gst-plugins-good): per photo, the highest quality whose file is no larger than the
   f16 latent (binary search over quality 1..100); PSNR, SSIM and its real bits per pixel.

Run from the repository root after `meson compile -C build`:

    /usr/bin/python3 bench/vae_quality.py --model models/vae/vae.safetensors [--pictures docs/vae]

Writes bench/out/vae_quality/results.md and results.json; --pictures writes side-by-side
strips (original | VAE | JPEG at the same size) of the first photos.
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


def square(img, size):
    """Area-resize to a short side of @size, centre-crop size x size (as models/vae/train.py's
    val_images)."""
    import torch
    import torch.nn.functional as F
    h, w = img.shape[:2]
    k = size / min(h, w)
    nh, nw = max(size, round(h * k)), max(size, round(w * k))
    x = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].float(), size=(nh, nw), mode="area")
    y0, x0 = (nh - size) // 2, (nw - size) // 2
    x = torch.round(x[0, :, y0:y0 + size, x0:x0 + size]).clamp(0, 255)
    return x.permute(1, 2, 0).byte().numpy().copy()


def psnr_rgb(a, b):
    mse = max(float(((a.astype(np.float64) - b) ** 2).mean()), 1e-10)
    return 10.0 * np.log10(255.0 ** 2 / mse)


def thumbnail(img, f):
    """The image's f x f block means (3 values per block, the VAE's latent grid) upsampled
    bicubically: what a VAE must beat to be worth its network."""
    import torch
    import torch.nn.functional as F
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    up = F.interpolate(F.avg_pool2d(x, f), scale_factor=f, mode="bicubic", align_corners=False)
    return torch.round(up.clamp(0, 255))[0].permute(1, 2, 0).byte().numpy()


def vae_tiled(src, model, tile, overlap, tmp):
    """The round trip of the PNG @src with both elements tiled (f32 latents)."""
    dst = os.path.join(tmp, "tiled.png")
    m = f"model-file={os.path.abspath(model)}"
    t = [f"tile-size={tile}", f"tile-overlap={overlap}"]
    Q.gst_launch(["filesrc", f"location={src}", "!", "pngdec", "!", "videoconvert", "!", "vaeencode", m, *t, "!",
                  "vaedecode", m, *t, "!", "videoconvert", "!", "video/x-raw,format=RGB", "!", "pngenc", "!",
                  "filesink", f"location={dst}"])
    return Q.load_rgb(dst)


def vae_round_trip(src, w, h, model, dims, tmp):
    """The PNG @src (w x h) -> (decoded from f16 latents, decoded from f32 latents, bytes of
    the f16 latent)."""
    lat = os.path.join(tmp, "lat.f32")
    m = f"model-file={os.path.abspath(model)}"
    Q.gst_launch(["filesrc", f"location={src}", "!", "pngdec", "!", "videoconvert", "!", "vaeencode", m, "!",
                  "filesink", f"location={lat}"])
    z = np.fromfile(lat, dtype="<f4")
    outs = []
    for name, zz in (("f16", z.astype("<f2").astype("<f4")), ("f32", z)):
        p, dst = os.path.join(tmp, f"lat-{name}.bin"), os.path.join(tmp, f"out-{name}.png")
        zz.astype("<f4").tofile(p)
        caps = (f"other/tensors,format=static,num_tensors=1,types=float32,framerate=0/1,"
                f"dimensions={-(-w // dims[0])}:{-(-h // dims[0])}:{dims[1]}:1,video-width={w},video-height={h}")
        Q.gst_launch(["filesrc", f"location={p}", f"blocksize={z.size * 4}", "!", caps, "!", "vaedecode", m,
                      "!", "videoconvert", "!", "video/x-raw,format=RGB", "!", "pngenc", "!",
                      "filesink", f"location={dst}"])
        outs.append(Q.load_rgb(dst))
    return outs[0], outs[1], z.size * 2


def model_dims(path):
    """(downsampling factor, latent channels) from the model's config (a .safetensors file of
    models/vae/export.py or a diffusers folder)."""
    if os.path.isdir(path):
        with open(os.path.join(path, "config.json")) as f:
            cfg = json.load(f)
    else:
        import st
        cfg = json.loads(st.read_header(path)[1]["config"])
    return 2 ** (len(cfg.get("block_out_channels", [64])) - 1), cfg.get("latent_channels", 4)


def jpeg_at_size(src, max_bytes, tmp):
    """The PNG @src through jpegenc at the highest quality whose file has at most max_bytes
    (quality 1 if none fits; binary search) -> (quality, decoded image, bytes)."""
    dst = os.path.join(tmp, "q.jpg")

    def size(q):
        Q.gst_launch(["filesrc", f"location={src}", "!", "pngdec", "!", "videoconvert", "!", "jpegenc",
                      f"quality={q}", "!", "filesink", f"location={dst}"])
        return os.path.getsize(dst)

    lo, hi, best = 1, 100, 1
    while lo <= hi:
        q = (lo + hi) // 2
        if size(q) <= max_bytes:
            best, lo = q, q + 1
        else:
            hi = q - 1
    n = size(best)
    dec = os.path.join(tmp, "q.png")
    Q.gst_launch(["filesrc", f"location={dst}", "!", "jpegdec", "!", "videoconvert", "!",
                  "video/x-raw,format=RGB", "!", "pngenc", "!", "filesink", f"location={dec}"])
    return best, Q.load_rgb(dec), n


def main():
    ap = argparse.ArgumentParser(description="VAE round trip vs JPEG at the same size")
    ap.add_argument("--model", required=True)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--max-photos", type=int, default=0)
    ap.add_argument("--pictures", default=None, help="folder for before/after strips")
    ap.add_argument("--tile", default="128,32", help="tile size and overlap of the tiling check")
    ap.add_argument("--n-pictures", type=int, default=4)
    ap.add_argument("--out", default=os.path.join(HERE, "out", "vae_quality"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.pictures:
        os.makedirs(args.pictures, exist_ok=True)

    dims = model_dims(args.model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, path) in enumerate(Q.val_photos(max_photos=args.max_photos)):
            img = square(Q.load_rgb(path), args.size)
            src = os.path.join(tmp, "in.png")
            Q.save_png(src, img)
            v16, v32, lat_bytes = vae_round_trip(src, img.shape[1], img.shape[0], args.model, dims, tmp)
            q, jp, jbytes = jpeg_at_size(src, lat_bytes, tmp)
            tiled = vae_tiled(src, args.model, *[int(v) for v in args.tile.split(",")], tmp)
            px = img.shape[0] * img.shape[1]
            r = {"photo": name, "vae_psnr": psnr_rgb(v16, img), "vae_ssim": Q.ssim_y(v16, img, 0),
                 "vae_f32_psnr": psnr_rgb(v32, img), "vae_bpp": lat_bytes * 8 / px,
                 "tiled_psnr": psnr_rgb(tiled, img), "tiled_vs_whole_psnr": psnr_rgb(tiled, v32),
                 "thumb_psnr": psnr_rgb(thumbnail(img, dims[0]), img),
                 "jpeg_quality": q, "jpeg_psnr": psnr_rgb(jp, img), "jpeg_ssim": Q.ssim_y(jp, img, 0),
                 "jpeg_bpp": jbytes * 8 / px}
            rows.append(r)
            print(f"{name:60s} VAE {r['vae_psnr']:6.2f} dB {r['vae_ssim']:.4f} ({r['vae_bpp']:.2f} bpp)  "
                  f"JPEG q{q:3d} {r['jpeg_psnr']:6.2f} dB {r['jpeg_ssim']:.4f} ({r['jpeg_bpp']:.2f} bpp)",
                  flush=True)
            if args.pictures and i < args.n_pictures:
                Q.save_png(os.path.join(args.pictures, f"{i:02d}-{os.path.basename(name)}"),
                           np.concatenate([img, v16, jp], axis=1))

    def mean(k):
        return statistics.mean(r[k] for r in rows)

    summary = {k: mean(k) for k in ("vae_psnr", "vae_ssim", "vae_f32_psnr", "vae_bpp", "jpeg_psnr",
                                    "jpeg_ssim", "jpeg_bpp", "jpeg_quality", "tiled_psnr", "tiled_vs_whole_psnr",
                                    "thumb_psnr")}
    cmd = "/usr/bin/python3 bench/vae_quality.py " + shlex.join(
        [a if not os.path.isabs(a) else Q.rel(a) for a in sys.argv[1:]])
    md = [f"`{cmd}`", "",
          f"{len(rows)} validation photos (packages never trained on), {args.size}x{args.size} "
          f"(area-resized, centre crop), model {Q.rel(args.model)}:", "",
          "| method | PSNR (RGB) | SSIM (Y) | bits per pixel |", "|---|---:|---:|---:|",
          f"| VAE, f16 latents | {summary['vae_psnr']:.2f} | {summary['vae_ssim']:.4f} | {summary['vae_bpp']:.2f} |",
          f"| VAE, f32 latents | {summary['vae_f32_psnr']:.2f} | | {summary['vae_bpp'] * 2:.2f} |",
          f"| JPEG (jpegenc, quality searched per photo, mean q {summary['jpeg_quality']:.0f}) | "
          f"{summary['jpeg_psnr']:.2f} | {summary['jpeg_ssim']:.4f} | {summary['jpeg_bpp']:.2f} |",
          f"| {dims[0]}x{dims[0]} block means, bicubic up (3 values per latent position) | "
          f"{summary['thumb_psnr']:.2f} | | {3 * 16 / dims[0] ** 2:.2f} (f16) |", "",
          f"Tiled ({args.tile.replace(',', ' px tiles, ')} px overlap, both elements, f32 latents): "
          f"{summary['tiled_psnr']:.2f} dB against the photo, {summary['tiled_vs_whole_psnr']:.2f} dB against "
          f"the whole-frame round trip."]
    text = "\n".join(md) + "\n"
    print("\n" + text)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"summary": summary, "rows": rows, "command": cmd}, f, indent=1)


if __name__ == "__main__":
    main()
