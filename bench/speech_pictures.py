#!/usr/bin/python3
"""Spectrograms before and after for docs/gansynth/: the bundled samples/noisy-speech.ogg (rain
and Czech dialogue, both from the validation split) through gansynth and, in the same picture,
through webrtcdsp, sox noisered and RNNoise with the settings of bench/speech_quality.py.

    /usr/bin/python3 bench/speech_pictures.py

Writes docs/gansynth/spectrograms.png (0-24 kHz, 80 dB range, one row per method) and the
cleaned clips as docs/gansynth/<method>.ogg for listening (the other methods' only where missing).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import speech_quality as sq  # noqa: E402

RATE = 48000
DOCS = os.path.join(ROOT, "docs", "gansynth")


def spectrogram(x, n=1024, hop=256, height=200, width=800):
    fr = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * np.hanning(n)
    p = 10 * np.log10(np.abs(np.fft.rfft(fr, axis=-1)) ** 2 + 1e-12)
    p = np.clip((p - (p.max() - 80)) / 80, 0, 1)[:, ::-1].T          # low frequencies at the bottom
    img = Image.fromarray((255 * p).astype(np.uint8)).resize((width, height), Image.BILINEAR)
    a = np.asarray(img) / 255.0
    # a dark-blue -> yellow ramp
    rgb = np.stack([a ** 0.8, a ** 1.6 * 0.9, 0.35 * (1 - a) + 0.1 * a], -1)
    return Image.fromarray((255 * rgb).astype(np.uint8))


def main():
    os.makedirs(DOCS, exist_ok=True)
    noisy, rate = sf.read(os.path.join(ROOT, "samples", "noisy-speech.ogg"), dtype="float32")
    assert rate == RATE
    model = os.path.join(ROOT, "models", "gansynth", "gansynth.safetensors")
    with tempfile.TemporaryDirectory() as d:
        item = {"name": "sample", "noisy": noisy}
        sf.write(os.path.join(d, "sample.wav"), noisy, RATE, subtype="FLOAT")
        rows = [("noisy input", noisy)]
        for m in ("gansynth", "webrtcdsp", "sox", "rnnoise"):
            sq.enhance(m, [item], d, model)
            y, _ = sf.read(os.path.join(d, f"sample.{m}.wav"), dtype="float32")
            y, _ = sq.align(y, noisy, RATE // 20)
            rows.append((m, y))
            clip = os.path.join(DOCS, m + ".ogg")
            if m != "gansynth" and os.path.exists(clip):
                continue    # the others do not change, and oggmux's random serial would rewrite them
            subprocess.run(["gst-launch-1.0", "-q", "filesrc", f"location={os.path.join(d, f'sample.{m}.wav')}",
                            "!", "wavparse", "!", "audioconvert", "!", "vorbisenc", "quality=0.5", "!", "oggmux",
                            "!", "filesink", f"location={clip}"], check=True)
    label_h = 18
    out = Image.new("RGB", (800, len(rows) * (200 + label_h)), "white")
    draw = ImageDraw.Draw(out)
    for i, (name, x) in enumerate(rows):
        y0 = i * (200 + label_h)
        draw.text((4, y0 + 3), f"{name}  (0-24 kHz, 8 s; the first second is rain alone)", fill="black")
        out.paste(spectrogram(x), (0, y0 + label_h))
    out.save(os.path.join(DOCS, "spectrograms.png"))
    print(os.path.join(DOCS, "spectrograms.png"))


if __name__ == "__main__":
    main()
