#!/usr/bin/python3
"""Makes the small bundled samples in samples/ from photos of opencv-doc
(Debian package, fetched by models/data/fetch_photos.py into _work/data).
opencv-doc is one of the validation packages: no model was trained on it.

    /usr/bin/python3 tools/make_samples.py

samples/butterfly.png   a 192x136 area-downscaled crop of butterfly.png
samples/building.webm   2 s of a slow pan over building.png, 240x136 at
                        12 fps, VP8 in WebM (encoded with gst-launch-1.0)
samples/building-logo.webm  the same pan with a station logo burnt into its
                        top right corner (a half-transparent badge with a glyph)
samples/building-logo-mask.png  the logo's mask (255 = remove), 240x136
samples/butterfly-mask.png  a mask over the butterfly's antennae, 192x136
"""
import os
import subprocess
import tempfile

from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, "_work", "data", "photos", "opencv-doc")
OUT = os.path.join(ROOT, "samples")


LOGO = (190, 8, 232, 28)       # the badge's box in the 240x136 frames


def burn_logo(frame):
    """A station logo as broadcasters key it: a half-transparent white badge with a dark
    glyph (drawn shapes, no font), fixed in the top right corner."""
    x0, y0, x1, y1 = LOGO
    over = Image.new("RGBA", frame.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(over)
    d.rounded_rectangle(LOGO, radius=5, fill=(255, 255, 255, 150))
    d.rectangle((x0 + 6, y0 + 5, x0 + 10, y1 - 5), fill=(20, 40, 120, 230))
    d.ellipse((x0 + 14, y0 + 4, x0 + 26, y1 - 4), outline=(20, 40, 120, 230), width=3)
    d.polygon([(x0 + 30, y1 - 5), (x0 + 34, y0 + 5), (x0 + 38, y1 - 5)], fill=(200, 30, 30, 230))
    return Image.alpha_composite(frame.convert("RGBA"), over).convert("RGB")


def logo_mask(size):
    """255 on the badge grown by 2 pixels (its anti-aliased rim), 0 elsewhere."""
    m = Image.new("L", size, 0)
    x0, y0, x1, y1 = LOGO
    ImageDraw.Draw(m).rectangle((x0 - 2, y0 - 2, x1 + 2, y1 + 2), fill=255)
    return m


def antennae_mask(size):
    """255 along the butterfly's two antennae (6-pixel brush), 0 elsewhere."""
    m = Image.new("L", size, 0)
    d = ImageDraw.Draw(m)
    d.line([(62, 9), (75, 19), (86, 30)], fill=255, width=6, joint="curve")
    d.line([(117, 5), (105, 15), (93, 25), (90, 30)], fill=255, width=6, joint="curve")
    return m


def encode(frames_dir, n, out):
    subprocess.run(
        ["gst-launch-1.0", "-q", "multifilesrc", "location=" + os.path.join(frames_dir, "f%03d.png"),
         "index=0", "stop-index=%d" % (n - 1), "caps=image/png,framerate=12/1", "!", "pngdec", "!",
         "videoconvert", "!", "vp8enc", "target-bitrate=400000", "deadline=1", "!", "webmmux",
         "!", "filesink", "location=" + out], check=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    im = Image.open(os.path.join(PHOTOS, "butterfly.png")).convert("RGB")
    im.resize((192, 136), Image.BOX, box=(0, 3, 493, 352)) \
        .save(os.path.join(OUT, "butterfly.png"), optimize=True)

    src = Image.open(os.path.join(PHOTOS, "building.png")).convert("RGB")
    src = src.resize((src.width // 2, src.height // 2), Image.BOX)   # 434x300
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as tmp_logo:
        for i in range(24):
            x = round(i * (src.width - 240) / 23)
            frame = src.crop((x, 80, x + 240, 216))
            frame.save(os.path.join(tmp, "f%03d.png" % i))
            burn_logo(frame).save(os.path.join(tmp_logo, "f%03d.png" % i))
        encode(tmp, 24, os.path.join(OUT, "building.webm"))
        encode(tmp_logo, 24, os.path.join(OUT, "building-logo.webm"))
    logo_mask((240, 136)).save(os.path.join(OUT, "building-logo-mask.png"), optimize=True)
    antennae_mask((192, 136)).save(os.path.join(OUT, "butterfly-mask.png"), optimize=True)


if __name__ == "__main__":
    main()
