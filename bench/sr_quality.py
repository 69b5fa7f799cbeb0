#!/usr/bin/python3
"""Super-resolution quality on the validation photos: PSNR and SSIM on luma, all methods in one run.

For each scale given a model (--x2-model, --x4-model), every validation photo
(_work/data/photos/MANIFEST.json, "split": "val"; never a training photo) is cropped to a
multiple of the scale (HR) and area-downscaled by the scale with models/sr/train.py's degrade()
(s x s box average, rounded to 8 bits: LR).  Each method upscales LR back and is scored against
HR:

  lanczos       GStreamer `videoscale method=lanczos` (gst-launch-1.0, PNG in and out)
  bicubic       torch F.interpolate(mode="bicubic", align_corners=False), for reference
  diffusionsr   the `diffusionsr` element of build/plugins (gst-launch-1.0, model-file=M) at the
                model's default steps and at each of --steps (default 1,2,4,8)
  regression    models/sr/train_regression.py's CNN from --regression-x2 / --regression-x4
  rdn-slim, rdn-medium
                the UpscalerJS RDN models (npm @upscalerjs/esrgan-slim, -medium in
                bench/node_modules), run by the numpy forward pass below after it has
                reproduced each package's own fixture output

Metrics (on the image as 8-bit RGB): BT.601 luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255
(float, the Y of train.py's luma_psnr), a border of `scale` pixels excluded; PSNR per photo
(peak 255), SSIM per photo (Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, L 255, valid
region), both averaged over the photos.

Run from the repository root after `meson compile -C build` and
`(cd bench && npm install --ignore-scripts)`:

    /usr/bin/python3 bench/sr_quality.py \\
        --x2-model models/sr/diffusionsr-x2.safetensors \\
        --x4-model models/sr/diffusionsr-x4.safetensors \\
        --regression-x2 bench/baselines/regression-x2.safetensors

Writes bench/out/sr_quality/results.md (the table, the command line) and results.json
(per photo and mean values).  --seeds N adds the element's seeds 1 .. N-1 at the default
steps: the element draws its noise by position, so one seed is one draw for every photo, and
the spread over seeds is the bench's own noise.  --max-photos N and --max-side PX (centre crop
of the HR photo) shorten the run.  --rdn-check only runs the fixture reproduction check of the RDN models.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "sr"))
sys.path.insert(0, os.path.join(ROOT, "models", "common"))

MANIFEST = os.path.join("_work", "data", "photos", "MANIFEST.json")
PLUGIN_DIR = os.path.join("build", "plugins")
UPSCALERJS = os.path.join(HERE, "node_modules", "@upscalerjs")
RDN_PACKAGES = ("esrgan-slim", "esrgan-medium")


def load_module(relpath, name):
    """A training script loaded by path as module @name: models/*/train.py share one file name,
    and this module puts models/sr on sys.path."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relpath))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rel(path):
    """A path as shown in reports: relative to the repository root when inside it."""
    p = os.path.relpath(os.path.abspath(path), ROOT)
    return path if p.startswith("..") else p


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


def val_photos(manifest=MANIFEST, max_photos=0):
    """-> [(name, path)] of the validation split, in manifest order."""
    with open(manifest) as f:
        m = json.load(f)
    base = os.path.dirname(manifest)
    out = [(e["file"], os.path.join(base, e["file"])) for e in m["photos"] if e["split"] == "val"]
    return out[:max_photos] if max_photos else out


def load_rgb(path):
    from PIL import Image
    return np.asarray(Image.open(path).convert("RGB")).copy()


def save_png(path, img):
    from PIL import Image
    Image.fromarray(img).save(path, compress_level=1)


def prepare_hr(img, s, max_side=0):
    """Centre crop to at most max_side (0: no limit), then crop to a multiple of s (right/bottom)."""
    h, w = img.shape[:2]
    if max_side:
        ch, cw = min(h, max_side), min(w, max_side)
        y, x = (h - ch) // 2, (w - cw) // 2
        img = img[y:y + ch, x:x + cw]
        h, w = ch, cw
    return np.ascontiguousarray(img[:h - h % s, :w - w % s])


def to_t(img):
    import torch
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0


def from_t(t):
    """[1,3,H,W] in [0,1] -> uint8 HWC (clamped, rounded)."""
    import torch
    return torch.round(t.clamp(0, 1) * 255.0)[0].permute(1, 2, 0).byte().numpy()


def degrade(hr, s):
    """uint8 HR -> uint8 LR exactly as models/sr/train.py's degrade()."""
    import train as T
    return from_t(T.degrade(to_t(hr), s))


# ----------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------


def luma(img):
    x = img.astype(np.float64) / 255.0
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def _crop(y, border):
    return y[border:-border, border:-border] if border else y


def psnr_y(a, b, border):
    ya, yb = _crop(luma(a), border), _crop(luma(b), border)
    mse = max(float(((ya - yb) ** 2).mean()), 1e-10)
    return 10.0 * np.log10(255.0 ** 2 / mse)


def detail_ratio(a, ref, border, sigma=1.5):
    """High-frequency energy of a's luma (minus its Gaussian blur) over that of ref: 1 = as much
    fine detail as the ground truth, below 1 = smoother, above = more (or noisier)."""
    g = np.exp(-0.5 * ((np.arange(11) - 5.0) / sigma) ** 2)
    g /= g.sum()

    def hf(img):
        y = _crop(luma(img), border)
        return float(((y[5:-5, 5:-5] - _gauss_valid(y, g)) ** 2).mean())
    return hf(a) / max(hf(ref), 1e-10)


def _gauss_valid(x, win):
    """Separable 'valid' filtering of a 2-D array with a 1-D window."""
    k = len(win)
    h, w = x.shape
    t = sum(win[i] * x[i:h - k + 1 + i, :] for i in range(k))
    return sum(win[i] * t[:, i:w - k + 1 + i] for i in range(k))


def ssim_y(a, b, border, size=11, sigma=1.5):
    ya, yb = _crop(luma(a), border), _crop(luma(b), border)
    g = np.exp(-0.5 * ((np.arange(size) - (size - 1) / 2.0) / sigma) ** 2)
    g /= g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _gauss_valid(ya, g), _gauss_valid(yb, g)
    saa = _gauss_valid(ya * ya, g) - mu_a ** 2
    sbb = _gauss_valid(yb * yb, g) - mu_b ** 2
    sab = _gauss_valid(ya * yb, g) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return float(m.mean())


# ----------------------------------------------------------------------------------------------
# GStreamer methods
# ----------------------------------------------------------------------------------------------


def gst_env():
    env = dict(os.environ)
    env["GST_PLUGIN_PATH"] = os.path.abspath(PLUGIN_DIR) + (
        os.pathsep + env["GST_PLUGIN_PATH"] if env.get("GST_PLUGIN_PATH") else "")
    return env


def gst_launch(args, env=None):
    cmd = ["gst-launch-1.0", "-q"] + args
    r = subprocess.run(cmd, env=env or gst_env(), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("gst-launch-1.0 failed (%d): %s\n%s" % (r.returncode, shlex.join(cmd), r.stderr))


def gst_lanczos(lr, s, tmp):
    src, dst = os.path.join(tmp, "lr.png"), os.path.join(tmp, "lanczos.png")
    save_png(src, lr)
    h, w = lr.shape[:2]
    gst_launch(["filesrc", f"location={src}", "!", "pngdec", "!", "videoconvert", "!",
                "videoscale", "method=lanczos", "!",
                f"video/x-raw,format=RGB,width={w * s},height={h * s}", "!",
                "videoconvert", "!", "pngenc", "!", "filesink", f"location={dst}"])
    return load_rgb(dst)


def gst_diffusionsr(lr, s, model, steps, tmp, extra=()):
    """Runs the element on one LR image; steps 0 = the model's default."""
    src, dst = os.path.join(tmp, "lr.png"), os.path.join(tmp, "sr.png")
    save_png(src, lr)
    gst_launch(["filesrc", f"location={src}", "!", "pngdec", "!", "videoconvert", "!",
                "diffusionsr", f"model-file={os.path.abspath(model)}", f"scale={s}", f"num-steps={steps}", *extra, "!",
                "videoconvert", "!", "video/x-raw,format=RGB", "!", "pngenc", "!",
                "filesink", f"location={dst}"])
    return load_rgb(dst)


def model_info(path):
    """(scale, default steps, metadata) of a diffusionsr .safetensors file."""
    import st
    meta = st.read_header(path)[1]
    task = json.loads(meta["task"])
    return int(task["scale"]), int(task["num_inference_steps"]), meta


# ----------------------------------------------------------------------------------------------
# torch methods
# ----------------------------------------------------------------------------------------------


def bicubic(lr, s):
    import torch.nn.functional as F
    x = to_t(lr)
    return from_t(F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False))


def load_regression(path, s):
    """models/sr/train_regression.py's model from its saved file (its .safetensors export, a .pt
    file, or a folder with model.pt or ckpt.pt); None when absent."""
    import torch
    import train_regression as R
    if os.path.isdir(path):
        for n in ("model.pt", "ckpt.pt"):
            if os.path.exists(os.path.join(path, n)):
                path = os.path.join(path, n)
                break
    if not os.path.isfile(path):
        return None, path
    if path.endswith(".safetensors"):
        import st
        sd = st.load(path)[0]
    else:
        ck = torch.load(path, map_location="cpu")
        sd = ck.get("model", ck) if isinstance(ck, dict) else ck
    net = R.ResidualCNN(s)
    net.load_state_dict(sd, strict=True)
    net.eval()
    return net, path


def regression(net, lr, s):
    import torch
    with torch.no_grad():
        return from_t((net(to_t(lr) * 2 - 1) + 1) / 2)


# ----------------------------------------------------------------------------------------------
# UpscalerJS RDN (TF.js LayersModel) in numpy
# ----------------------------------------------------------------------------------------------


class TfjsLayersModel:
    """A Keras functional model of Conv2D / Activation / Concatenate / Add / UpSampling2D layers
    (TF.js LayersModel JSON + float32 weight shards), run in numpy on one HWC image."""

    def __init__(self, folder):
        with open(os.path.join(folder, "model.json")) as f:
            m = json.load(f)
        self.config = m["modelTopology"]["model_config"]["config"]
        self.weights = {}
        for grp in m["weightsManifest"]:
            buf = b"".join(open(os.path.join(folder, p), "rb").read() for p in grp["paths"])
            off = 0
            for w in grp["weights"]:
                if w["dtype"] != "float32" or "quantization" in w:
                    raise ValueError(f"{folder}: weight {w['name']} is not plain float32")
                n = int(np.prod(w["shape"]))
                self.weights[w["name"]] = np.frombuffer(buf, "<f4", n, off).reshape(w["shape"])
                off += 4 * n
            if off != len(buf):
                raise ValueError(f"{folder}: shards hold {len(buf)} bytes, the manifest {off}")

    @staticmethod
    def conv_same(x, k, b, band=64):
        """Keras Conv2D, stride 1, padding "same" (TF pads (k-1)//2 before), HWIO kernel."""
        kh, kw, ci, co = k.shape
        h, w, _ = x.shape
        pt, pl = (kh - 1) // 2, (kw - 1) // 2
        xp = np.pad(x, ((pt, kh - 1 - pt), (pl, kw - 1 - pl), (0, 0)))
        out = np.empty((h, w, co), np.float32)
        for y0 in range(0, h, band):
            y1 = min(h, y0 + band)
            acc = np.zeros(((y1 - y0) * w, co), np.float32)
            for dy in range(kh):
                for dx in range(kw):
                    acc += xp[y0 + dy:y1 + dy, dx:dx + w, :].reshape(-1, ci) @ k[dy, dx]
            out[y0:y1] = (acc + b).reshape(y1 - y0, w, co)
        return out

    def __call__(self, x):
        v = {}
        for layer in self.config["layers"]:
            c, n, lc = layer["class_name"], layer["name"], layer["config"]
            ins = [v[i[0]] for i in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
            if c == "InputLayer":
                y = x
            elif c == "Conv2D":
                ok = (lc["strides"] == [1, 1] and lc["dilation_rate"] == [1, 1] and lc.get("groups", 1) == 1
                      and lc["data_format"] == "channels_last"
                      and (lc["padding"] == "same" or lc["kernel_size"] == [1, 1]))
                if not ok:
                    raise ValueError(f"unsupported Conv2D {n}: {lc}")
                y = self.conv_same(ins[0], self.weights[n + "/kernel"],
                                   self.weights[n + "/bias"] if lc["use_bias"] else 0.0)
                if lc["activation"] == "relu":
                    y = np.maximum(y, 0.0)
                elif lc["activation"] != "linear":
                    raise ValueError(f"unsupported activation {lc['activation']}")
            elif c == "Activation":
                if lc["activation"] == "relu":
                    y = np.maximum(ins[0], 0.0)
                elif lc["activation"] == "linear":
                    y = ins[0]
                else:
                    raise ValueError(f"unsupported activation {lc['activation']}")
            elif c == "Concatenate":
                if lc["axis"] not in (-1, 3):
                    raise ValueError("Concatenate off the channel axis")
                y = np.concatenate(ins, axis=-1)
            elif c == "Add":
                y = ins[0].copy()
                for t in ins[1:]:
                    y += t
            elif c == "UpSampling2D":
                if lc.get("interpolation", "nearest") != "nearest":
                    raise ValueError("UpSampling2D other than nearest")
                sy, sx = lc["size"]
                y = ins[0].repeat(sy, axis=0).repeat(sx, axis=1)
            else:
                raise ValueError(f"unsupported layer {c}")
            v[n] = y
        return v[self.config["output_layers"][0][0]]

    def upscale(self, lr):
        """uint8 RGB -> uint8 RGB: the RDN models take and give [0, 255]; clipped and rounded."""
        y = self(lr.astype(np.float32))
        return np.round(np.clip(y, 0.0, 255.0)).astype(np.uint8)


def rdn_model(pkg, s):
    folder = os.path.join(UPSCALERJS, pkg, "models", f"x{s}")
    return TfjsLayersModel(folder) if os.path.exists(os.path.join(folder, "model.json")) else None


def rdn_fixture_check(pkg, scales=(2, 3, 4)):
    """Runs the package's own fixture (assets/fixture.png) through our forward pass and compares
    with its shipped result (assets/samples/<s>x/result.png).  -> {scale: stats}"""
    fx = load_rgb(os.path.join(UPSCALERJS, pkg, "assets", "fixture.png"))
    out = {}
    for s in scales:
        ref_path = os.path.join(UPSCALERJS, pkg, "assets", "samples", f"{s}x", "result.png")
        m = rdn_model(pkg, s)
        if m is None or not os.path.exists(ref_path):
            continue
        got = m.upscale(fx).astype(np.int32)
        ref = load_rgb(ref_path).astype(np.int32)
        if got.shape != ref.shape:
            out[s] = {"ok": False, "why": f"shape {got.shape} vs {ref.shape}"}
            continue
        d = np.abs(got - ref)
        out[s] = {"ok": bool(d.max() <= 1 and (d != 0).mean() < 1e-3), "max_abs_diff": int(d.max()),
                  "values_differing": int((d != 0).sum()), "values": int(d.size),
                  "psnr_rgb": float(10 * np.log10(255.0 ** 2 / max(float((d ** 2).mean()), 1e-10)))}
    return out


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------


def steps_name(k):
    return f"diffusionsr {k} step" + ("" if k == 1 else "s")


def seed_name(default_steps, seed):
    return steps_name(default_steps) + (" (default)" if seed == 0 else f" (default), seed {seed}")


def fmt_seeds(summary, scales, models, n_seeds):
    """The table of the default steps over the element's seeds."""
    md = ["## Seeds", "",
          f"The default steps with the element's seeds 0 .. {n_seeds - 1} (one seed is one draw of the "
          "noise for every photo: the element draws it by position); PSNR-Y means over the photos:", "",
          "| scale | seed 0 | mean over seeds | lowest - highest seed | minus regression CNN, mean | lowest |",
          "|---|---:|---:|---:|---:|---:|"]
    for s in scales:
        r = summary[str(s)]
        v = [r[seed_name(models[s][1], j)]["psnr_y"] for j in range(n_seeds)]
        reg = r.get("regression CNN", {}).get("psnr_y")
        d = [x - reg for x in v] if reg is not None else None
        md.append(f"| x{s} | {v[0]:.3f} | {np.mean(v):.3f} | {min(v):.3f} - {max(v):.3f} | "
                  + (f"{np.mean(d):+.3f} | {min(d):+.3f} |" if d else "- | - |"))
    return md + [""]


def fmt_table(summary, scales):
    lines = ["| method | " + " | ".join(f"x{s} PSNR-Y (dB) | x{s} SSIM-Y | x{s} photos" for s in scales) + " |",
             "|---|" + "---:|" * (3 * len(scales))]
    methods = []
    for s in scales:
        for k in summary.get(str(s), {}):
            if k not in methods:
                methods.append(k)
    for k in methods:
        cells = []
        for s in scales:
            r = summary.get(str(s), {}).get(k)
            cells += [f"{r['psnr_y']:.3f}", f"{r['ssim_y']:.4f}", str(r["n"])] if r else ["-", "-", "-"]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description="super-resolution quality (PSNR-Y, SSIM-Y) on the validation photos")
    ap.add_argument("--x2-model", help="diffusionsr x2 model (.safetensors)")
    ap.add_argument("--x4-model", help="diffusionsr x4 model (.safetensors)")
    ap.add_argument("--steps", default="1,2,4,8", help="step counts besides the model's default")
    ap.add_argument("--regression-x2", default=os.path.join("bench", "baselines", "regression-x2.safetensors"),
                    help="train_regression.py's model (its .safetensors export, a .pt, or its folder)")
    ap.add_argument("--regression-x4", default=os.path.join("bench", "baselines", "regression-x4.safetensors"))
    ap.add_argument("--no-rdn", action="store_true", help="leave out the UpscalerJS RDN models")
    ap.add_argument("--rdn-check", action="store_true", help="only the RDN fixture reproduction check")
    ap.add_argument("--manifest", default=MANIFEST)
    ap.add_argument("--max-photos", type=int, default=0, help="0: all validation photos")
    ap.add_argument("--max-side", type=int, default=0, help="centre-crop HR photos to at most this side (0: whole)")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "sr_quality"))
    ap.add_argument("--torch-threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=1,
                    help="the element's seeds 0 .. N-1 at the default steps (seed 0 at the others)")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.torch_threads)
    command = "/usr/bin/python3 " + shlex.join([rel(sys.argv[0])] + sys.argv[1:])

    # RDN: reproduce the packages' own fixtures before any number is trusted
    rdn_check, rdn_ok = {}, {}
    if not args.no_rdn:
        for pkg in RDN_PACKAGES:
            if not os.path.isdir(os.path.join(UPSCALERJS, pkg)):
                rdn_check[pkg] = {"missing": "not in bench/node_modules: (cd bench && npm install --ignore-scripts)"}
                rdn_ok[pkg] = False
                continue
            rdn_check[pkg] = rdn_fixture_check(pkg)
            rdn_ok[pkg] = bool(rdn_check[pkg]) and all(r["ok"] for r in rdn_check[pkg].values())
            for s, r in rdn_check[pkg].items():
                print(f"rdn fixture {pkg} x{s}: " + ("reproduced" if r["ok"] else "NOT reproduced")
                      + f" ({json.dumps(r)})", flush=True)
    if args.rdn_check:
        print(json.dumps(rdn_check, indent=2))
        return 0 if all(rdn_ok.values()) else 1

    models = {}
    for path in (args.x2_model, args.x4_model):
        if path:
            s, default_steps, _ = model_info(path)
            models[s] = (path, default_steps)
    if not models:
        ap.error("give --x2-model and/or --x4-model")
    steps_list = [int(k) for k in args.steps.split(",") if k.strip()]
    photos = val_photos(args.manifest, args.max_photos)
    os.makedirs(args.out, exist_ok=True)

    notes = []
    per_photo = {}
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for s in sorted(models):
            model, default_steps = models[s]
            reg, reg_path = load_regression(getattr(args, f"regression_x{s}"), s)
            if reg is None:
                notes.append(f"x{s}: regression CNN skipped: no checkpoint at {rel(reg_path)} "
                             f"(models/sr/train_regression.py --scale {s} writes it)")
            rdns = {}
            for pkg in RDN_PACKAGES:
                if args.no_rdn:
                    break
                if not rdn_ok.get(pkg):
                    notes.append(f"x{s}: {pkg} skipped: its fixture output was not reproduced or it is missing")
                    continue
                m = rdn_model(pkg, s)
                if m is None:
                    notes.append(f"x{s}: {pkg} has no x{s} model")
                else:
                    rdns["rdn-" + pkg.split("-", 1)[1]] = m
            rows = per_photo.setdefault(str(s), {})
            for i, (name, path) in enumerate(photos):
                hr = prepare_hr(load_rgb(path), s, args.max_side)
                lr = degrade(hr, s)
                outs = {"lanczos (videoscale)": lambda: gst_lanczos(lr, s, tmp),
                        "bicubic (torch)": lambda: bicubic(lr, s)}
                if reg is not None:
                    outs["regression CNN"] = lambda: regression(reg, lr, s)
                for k, m in rdns.items():
                    outs[k] = (lambda m=m: m.upscale(lr))
                cache = {}
                for k in [0] + [k for k in steps_list if k != default_steps]:
                    def run(k=k):
                        if k not in cache:
                            cache[k] = gst_diffusionsr(lr, s, model, k, tmp)
                        return cache[k]
                    outs[seed_name(default_steps, 0) if k == 0 else steps_name(k)] = run
                for k in steps_list:
                    if k == default_steps:  # the same run: deterministic, same seed
                        outs[steps_name(k)] = lambda: cache[0]
                for j in range(1, args.seeds):
                    outs[seed_name(default_steps, j)] = (
                        lambda j=j: gst_diffusionsr(lr, s, model, 0, tmp, extra=(f"seed={j}",)))
                t0 = time.time()
                for k, fn in outs.items():
                    sr = fn()
                    if sr.shape != hr.shape:
                        raise RuntimeError(f"{k} on {name}: output {sr.shape}, expected {hr.shape}")
                    rows.setdefault(k, {})[name] = {"psnr_y": psnr_y(sr, hr, s), "ssim_y": ssim_y(sr, hr, s),
                                                    "detail": detail_ratio(sr, hr, s),
                                                    "lr_psnr_y": psnr_y(degrade(sr, s), lr, 1)}
                print(f"x{s} [{i + 1}/{len(photos)}] {name} {hr.shape[1]}x{hr.shape[0]}: "
                      + ", ".join(f"{k} {rows[k][name]['psnr_y']:.2f}" for k in outs)
                      + f" [{time.time() - t0:.1f}s]", flush=True)

    summary = {}
    for s, rows in per_photo.items():
        fixed = ["lanczos (videoscale)", "bicubic (torch)", "regression CNN", "rdn-slim", "rdn-medium"]
        order = sorted(rows, key=lambda k: (fixed.index(k) if k in fixed else len(fixed),
                                            "default" not in k,
                                            int(k.split()[1]) if k.startswith("diffusionsr") else 0, k))
        summary[s] = {k: {"psnr_y": float(np.mean([v["psnr_y"] for v in rows[k].values()])),
                          "ssim_y": float(np.mean([v["ssim_y"] for v in rows[k].values()])),
                          "detail": float(np.mean([v["detail"] for v in rows[k].values()])),
                          "lr_psnr_y": float(np.mean([v["lr_psnr_y"] for v in rows[k].values()])),
                          "n": len(rows[k])} for k in order}
    scales = sorted(models)

    md = ["# diffusionsr quality on the validation photos", "",
          "Command line (from the repository root):", "", "```sh", command, "```", "",
          "Models: " + ", ".join(f"x{s} `{rel(models[s][0])}` (default {models[s][1]} steps)" for s in scales)
          + ".", "",
          f"Photos: the validation split of `{rel(args.manifest)}`"
          + (f", first {args.max_photos}" if args.max_photos else "")
          + (f", HR centre-cropped to at most {args.max_side} px" if args.max_side else "")
          + "; HR cropped to a multiple of the scale, LR = s x s box average rounded to 8 bits "
            "(train.py's degrade()).", "",
          "PSNR-Y / SSIM-Y: BT.601 luma of the 8-bit images, a border of `scale` pixels excluded; "
          "SSIM with an 11x11 Gaussian window (sigma 1.5); means over the photos.", "",
          fmt_table(summary, scales), ""]
    if args.seeds > 1:
        md += fmt_seeds(summary, scales, models, args.seeds)
    md += ["## Steps: detail and fidelity", "",
           "Detail = high-frequency energy of the output's luma (luma minus its 11x11 Gaussian blur, "
           "sigma 1.5) over that of the ground truth, averaged over the photos: 1 = as much fine "
           "detail as the ground truth, below 1 smoother, above 1 more high-frequency energy than the "
           "ground truth (noise or overshoot, not detail).  Input consistency = PSNR-Y of the output "
           "degraded again (the same s x s box average, 8-bit) against the LR input (the LR-PSNR "
           "of NTIRE 2021's 'Learning the super-resolution space' challenge, which counts 45 dB as "
           "consistent): how faithful the output stays to what the camera saw, whatever detail "
           "it adds; PSNR-Y against the ground truth also charges every plausible detail that is "
           "not the true one.", ""]
    for s in scales:
        st_rows = [(k, r) for k, r in summary[str(s)].items() if k.startswith("diffusionsr") and "default" not in k]
        st_rows.sort(key=lambda kr: int(kr[0].split()[1]))
        if not st_rows:
            continue
        md += [f"| x{s} steps | PSNR-Y (dB) | SSIM-Y | detail | input consistency (dB) |",
               "|---:|---:|---:|---:|---:|"]
        md += [f"| {k.split()[1]} | {r['psnr_y']:.3f} | {r['ssim_y']:.4f} | {r['detail']:.3f} | "
               f"{r['lr_psnr_y']:.2f} |" for k, r in st_rows]
        (k0, a), (k1, b) = st_rows[0], st_rows[-1]
        n0, n1 = k0.split()[1], k1.split()[1]
        dp, dd = b["psnr_y"] - a["psnr_y"], b["detail"] - a["detail"]
        verdict = ("more steps add detail without losing fidelity" if dd > 0 and dp >= -0.1 else
                   "more steps add detail at a cost in fidelity" if dd > 0 else
                   "more steps add no detail")
        md += ["", f"x{s}, {n0} -> {n1} steps: PSNR-Y {dp:+.3f} dB, SSIM-Y {b['ssim_y'] - a['ssim_y']:+.4f}, "
                   f"detail {a['detail']:.3f} -> {b['detail']:.3f}: {verdict} (fidelity kept = PSNR-Y "
                   f"within 0.1 dB or better).", ""]
    if rdn_check:
        md += ["## RDN fixture reproduction", "",
               "Each UpscalerJS package's `assets/fixture.png` (RGB of it) through the numpy forward pass, "
               "compared with the package's `assets/samples/<s>x/result.png`:", ""]
        for pkg, r in rdn_check.items():
            if "missing" in r:
                md.append(f"- {pkg}: {r['missing']}")
                continue
            for s, v in r.items():
                md.append(f"- {pkg} x{s}: " + ("reproduced" if v["ok"] else "NOT reproduced")
                          + (f", max abs diff {v['max_abs_diff']}, {v['values_differing']} of {v['values']} "
                             f"values differ" if "max_abs_diff" in v else f" ({v.get('why')})"))
        md.append("")
    if notes:
        md += ["## Notes", ""] + [f"- {n}" for n in dict.fromkeys(notes)] + [""]
    md.append(f"Run time {time.time() - t_start:.0f} s.")
    result = {"command": command, "models": {str(s): {"path": rel(models[s][0]), "default_steps": models[s][1]}
                                             for s in scales},
              "max_photos": args.max_photos, "max_side": args.max_side, "summary": summary,
              "per_photo": per_photo, "rdn_fixture_check": rdn_check, "notes": list(dict.fromkeys(notes))}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"\nwrote {rel(os.path.join(args.out, 'results.md'))} and results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
