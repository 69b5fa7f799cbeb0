#!/usr/bin/python3
"""Makes the small bundled samples in samples/ from photos of opencv-doc
(Debian package, fetched by models/data/fetch_photos.py into _work/data).
opencv-doc is one of the validation packages: no model was trained on it.

    /usr/bin/python3 tools/make_samples.py

samples/butterfly.png   a 192x136 area-downscaled crop of butterfly.png
samples/building.webm   2 s of a slow pan over building.png, 240x136 at
                        12 fps, VP8 in WebM (encoded with gst-launch-1.0)
"""
import os
import subprocess
import tempfile

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, "_work", "data", "photos", "opencv-doc")
OUT = os.path.join(ROOT, "samples")


def main():
    os.makedirs(OUT, exist_ok=True)
    im = Image.open(os.path.join(PHOTOS, "butterfly.png")).convert("RGB")
    im.resize((192, 136), Image.BOX, box=(0, 3, 493, 352)) \
        .save(os.path.join(OUT, "butterfly.png"), optimize=True)

    src = Image.open(os.path.join(PHOTOS, "building.png")).convert("RGB")
    src = src.resize((src.width // 2, src.height // 2), Image.BOX)   # 434x300
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(24):
            x = round(i * (src.width - 240) / 23)
            src.crop((x, 80, x + 240, 216)).save(os.path.join(tmp, "f%03d.png" % i))
        subprocess.run(
            ["gst-launch-1.0", "-q", "multifilesrc", "location=" + os.path.join(tmp, "f%03d.png"),
             "index=0", "stop-index=23", "caps=image/png,framerate=12/1", "!", "pngdec", "!",
             "videoconvert", "!", "vp8enc", "target-bitrate=400000", "deadline=1", "!", "webmmux",
             "!", "filesink", "location=" + os.path.join(OUT, "building.webm")], check=True)


if __name__ == "__main__":
    main()
