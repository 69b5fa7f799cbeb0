#!/usr/bin/python3
"""Fetches the real photos that Debian packages ship (see the data notes of the project) and
collects them as PNG files for the image models (super-resolution, VAE, inpainting, ...).

Run from the repository root:
    /usr/bin/python3 models/data/fetch_photos.py [--work _work/data]

Steps (each is skipped when its output already exists, so the script is idempotent and
resumable; --force redoes the photo conversion):
  1. `apt-get download PKG` into _work/data/debs/
  2. `dpkg-deb -x` into _work/data/x/<package>/
  3. picks the photos (renders, drawings, logos and text images are skipped), unpacks the Qt
     resource bundles of gcompris-qt-data (models/data/rcc.py), decodes with PIL, converts to
     8-bit RGB and writes _work/data/photos/<package>/<name>.png.  The smooth wallpapers are
     area-downscaled (PIL box filter) by 2, 3 or 4: the smallest factor after which a bicubic
     x2 round trip scores <= 38 dB PSNR (at native size they score 41-45 dB).
  4. writes _work/data/photos/MANIFEST.json: every photo with its package, source, size and
     split; the thumbnails of GC_SMALL_RCC (about 320 px) are marked "small" and are training
     photos only for trainers that ask for them.  The validation split is made of WHOLE
     packages (VAL_PACKAGES), never a random per-image split.

Needs python3-pil (and python3-zstandard for zstd-compressed .rcc entries); both are
installed with apt-get when missing.
"""

import argparse
import fnmatch
import glob
import hashlib
import io
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rcc  # noqa: E402

GC_RCC = ["explore_monuments", "erase", "explore_world_animals", "explore_farm_animals", "explore_world_music"]
# Wikimedia thumbnails (about 320 px: tools, windmills, dams, solar panels, monuments, fish,
# household objects) marked "small" in the manifest: trainers take them only when asked
# (trainkit.load_photos(small=True)), so the models trained before they were added keep their data.
GC_SMALL_RCC = ["categorization"]
SMALL_MIN_SIDE = 192
PLASMA = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey", "Kite",
          "OneStandsOut", "Path", "summer_1am"]
LXQT = ["Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg", "appleflower.png", "beam.png",
        "butterfly.png", "cloud.png", "drop.png", "flowers.png", "fog.jpg", "this-is-not-windows.jpg"]
OPENCV = ["aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "board.jpg", "building.jpg", "butterfly.jpg",
          "chicky_512.png", "ela_original.jpg", "graf1.png", "home.jpg", "leuvenA.jpg", "messi5.jpg", "orange.jpg",
          "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg", "stuff.jpg", "left.jpg", "pca_test1.jpg"]
LOMIRI_RENDERS = ["umang_by_*", "analogpattern_by_*", "Fossa_by_*", "Infinite-Sea_by_*", "Painting-Colors_by_*"]

# package -> wallpaper (area-downscaled) or not
PACKAGES = {
    "gcompris-qt-data": False,
    "plasma-workspace-wallpapers": True,
    "mate-backgrounds": True,
    "lomiri-wallpapers-16.04": True,
    "lomiri-wallpapers-20.04": True,
    "lxqt-themes": True,
    "tuxpaint-data": False,
    "opencv-doc": False,
}
VAL_PACKAGES = ["opencv-doc", "lxqt-themes"]
MIN_VAL_PHOTOS = 20
MAX_ROUNDTRIP_DB = 38.0


def ensure_python_deps():
    missing = []
    try:
        import PIL  # noqa: F401
    except ImportError:
        missing.append("python3-pil")
    try:
        import zstandard  # noqa: F401
    except ImportError:
        missing.append("python3-zstandard")
    if missing:
        print("installing", " ".join(missing), flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q"] + missing, check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        import importlib
        importlib.invalidate_caches()


def download(debs, packages=PACKAGES):
    """`apt-get download` of the @packages not in @debs yet (fetch_speech.py uses it too)."""
    os.makedirs(debs, exist_ok=True)
    have = {os.path.basename(p).split("_")[0] for p in glob.glob(os.path.join(debs, "*.deb"))}
    want = [p for p in packages if p not in have]
    if want:
        print("apt-get download", " ".join(want), flush=True)
        subprocess.run(["apt-get", "download"] + want, cwd=debs, check=True)


def extract(debs, xdir):
    for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        pkg = os.path.basename(deb).split("_")[0]
        if pkg not in PACKAGES:
            continue
        dst = os.path.join(xdir, pkg)
        stamp = os.path.join(dst, ".extracted")
        if os.path.exists(stamp):
            continue
        print("dpkg-deb -x", os.path.basename(deb), flush=True)
        os.makedirs(dst, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", deb, dst], check=True)
        open(stamp, "w").close()


def sources(xdir):
    """Yields (package, name, source description, loader, small) for every photo."""
    def from_file(path):
        return lambda: open(path, "rb").read()

    root = os.path.join(xdir, "gcompris-qt-data", "usr/share/gcompris-qt/rcc")
    for bundle in GC_RCC + GC_SMALL_RCC:
        small = bundle in GC_SMALL_RCC
        r = rcc.Rcc.open(os.path.join(root, bundle + ".rcc"))
        for path, blob in r.items(lambda p: p.lower().endswith((".webp", ".jpg", ".jpeg", ".png"))
                                   and "/lang/" not in p):
            stem = os.path.splitext(os.path.basename(path))[0]
            if small:   # images/<category>/<name>: names repeat across categories
                stem = os.path.basename(os.path.dirname(path)) + "-" + stem
            yield ("gcompris-qt-data", f"{bundle}-{stem}", f"{bundle}.rcc:{path}", (lambda b=blob: b), small)

    for wp in PLASMA:
        imgs = glob.glob(os.path.join(xdir, "plasma-workspace-wallpapers/usr/share/wallpapers", wp,
                                      "contents/images/*"))
        # the largest size
        best = max(imgs, key=lambda p: _area_from_name(p))
        yield ("plasma-workspace-wallpapers", wp, f"usr/share/wallpapers/{wp}/contents/images/"
               + os.path.basename(best), from_file(best), False)

    for p in sorted(glob.glob(os.path.join(xdir, "mate-backgrounds/usr/share/backgrounds/mate/nature/*.jpg"))):
        yield ("mate-backgrounds", _stem(p), "usr/share/backgrounds/mate/nature/" + os.path.basename(p),
               from_file(p), False)

    for pkg in ("lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04"):
        for p in sorted(glob.glob(os.path.join(xdir, pkg, "usr/share/backgrounds/*_by_*.jpg"))):
            if any(fnmatch.fnmatch(os.path.basename(p), pat) for pat in LOMIRI_RENDERS):
                continue
            yield (pkg, _stem(p), "usr/share/backgrounds/" + os.path.basename(p), from_file(p), False)

    for n in LXQT:
        p = os.path.join(xdir, "lxqt-themes/usr/share/lxqt/wallpapers", n)
        yield ("lxqt-themes", _stem(p), "usr/share/lxqt/wallpapers/" + n, from_file(p), False)

    for p in sorted(glob.glob(os.path.join(xdir, "tuxpaint-data/usr/share/tuxpaint/templates/*.jpg"))):
        yield ("tuxpaint-data", _stem(p), "usr/share/tuxpaint/templates/" + os.path.basename(p), from_file(p),
               False)

    for n in OPENCV:
        p = os.path.join(xdir, "opencv-doc/usr/share/doc/opencv-doc/examples/data", n)
        yield ("opencv-doc", _stem(p), "usr/share/doc/opencv-doc/examples/data/" + n, from_file(p), False)


def _stem(p):
    return os.path.splitext(os.path.basename(p))[0]


def _area_from_name(p):
    try:
        w, h = _stem(p).split("x")
        return int(w) * int(h)
    except ValueError:
        return 0


def _roundtrip_psnr(img):
    """PSNR (RGB, 8 bit) of a bicubic x2 down/up round trip: a smoothness measure."""
    import numpy as np
    from PIL import Image
    w, h = img.size
    w2, h2 = w // 2 * 2, h // 2 * 2
    a = img.crop((0, 0, w2, h2))
    b = a.resize((w2 // 2, h2 // 2), Image.BICUBIC).resize((w2, h2), Image.BICUBIC)
    x = np.asarray(a, dtype=np.float64)[8:-8, 8:-8]
    y = np.asarray(b, dtype=np.float64)[8:-8, 8:-8]
    mse = max(((x - y) ** 2).mean(), 1e-10)
    return 10 * np.log10(255.0 ** 2 / mse)


def convert(blob, wallpaper):
    """Bytes -> (RGB PIL image, info dict)."""
    from PIL import Image
    img = Image.open(io.BytesIO(blob))
    img.load()
    info = {"orig_size": list(img.size), "orig_format": img.format}
    if img.mode in ("RGBA", "LA", "P") and ("transparency" in img.info or img.mode != "P"):
        bg = Image.new("RGB", img.size, (255, 255, 255))
        bg.paste(img.convert("RGBA"), mask=img.convert("RGBA").split()[-1])
        img = bg
    img = img.convert("RGB")
    info["roundtrip_db_native"] = round(_roundtrip_psnr(img), 2)
    factor = 1
    if wallpaper:
        for f in (2, 3, 4):
            w, h = img.size
            cand = img.resize((w // f, h // f), Image.BOX, box=(0, 0, w // f * f, h // f * f))
            factor, out = f, cand
            if _roundtrip_psnr(cand) <= MAX_ROUNDTRIP_DB:
                break
        img = out
    info["downscale"] = factor
    info["roundtrip_db"] = round(_roundtrip_psnr(img), 2)
    return img, info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="_work/data", help="work folder (git-ignored), relative to the repo root")
    ap.add_argument("--force", action="store_true", help="re-convert photos that already exist")
    args = ap.parse_args()

    ensure_python_deps()
    debs = os.path.join(args.work, "debs")
    xdir = os.path.join(args.work, "x")
    out = os.path.join(args.work, "photos")
    download(debs)
    extract(debs, xdir)

    manifest_path = os.path.join(out, "MANIFEST.json")
    old = {}
    if os.path.exists(manifest_path) and not args.force:
        with open(manifest_path) as f:
            old = {e["file"]: e for e in json.load(f)["photos"]}

    entries = []
    for pkg, name, src, load, small in sources(xdir):
        rel = f"{pkg}/{name}.png"
        dst = os.path.join(out, rel)
        if rel in old and os.path.exists(dst):
            entries.append(old[rel])
            continue
        img, info = convert(load(), PACKAGES[pkg])
        if small:
            if min(img.size) < SMALL_MIN_SIDE:   # icons and cut-outs
                continue
            info["small"] = True
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        tmp = dst + ".tmp"
        img.save(tmp, format="PNG")
        os.replace(tmp, dst)
        with open(dst, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        e = {"file": rel, "package": pkg, "source": src, "size": list(img.size), "sha256": sha,
             "split": "val" if pkg in VAL_PACKAGES else "train"}
        e.update(info)
        entries.append(e)
        print(f"{rel:60s} {img.size[0]:5d}x{img.size[1]:<5d} /{info['downscale']} "
              f"roundtrip {info['roundtrip_db_native']:.1f} -> {info['roundtrip_db']:.1f} dB", flush=True)

    entries.sort(key=lambda e: e["file"])
    n_val = sum(e["split"] == "val" for e in entries)
    n_small = sum(bool(e.get("small")) for e in entries)
    if n_val < MIN_VAL_PHOTOS:
        raise SystemExit(f"validation split has only {n_val} photos")
    counts = {}
    for e in entries:
        counts.setdefault(e["package"], {"split": e["split"], "photos": 0})["photos"] += 1
    manifest = {
        "description": "real photos from Debian packages; split by whole package",
        "val_packages": VAL_PACKAGES,
        "counts": counts,
        "n_train": len(entries) - n_val - n_small,
        "n_train_small": n_small,
        "n_val": n_val,
        "photos": entries,
    }
    tmp = manifest_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    os.replace(tmp, manifest_path)
    for pkg, c in counts.items():
        print(f"{pkg:30s} {c['split']:5s} {c['photos']:4d}")
    print(f"train {manifest['n_train']} (and {n_small} small)  val {n_val}  -> {manifest_path}")


if __name__ == "__main__":
    main()
