#!/usr/bin/python3
"""test-generative-app.py: pipelines/generative-app.py on the bundled samples.

Runs inside "meson devenv" (meson.build starts it so), where the app finds
the plugin, the default models and the GstGenerative typelib:

  clean    strength 0, changed to 1 at 4 s while it plays: up to 4 s the
           output is the input (gansynth at strength 0 gives its input back,
           re-aligned, up to float rounding), after it the speech is cleaned
           (the output moves away from the input); the stats are printed
  latents  every frame of the clip carries a 4 x 17 x 30 latent, read from
           Python through GstGenerative
  upscale  a WebM of twice the size; progress lines and diffusionsr's stats
"""
import os
import struct
import subprocess
import sys
import tempfile

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

SRC = sys.argv[1]
APP = os.path.join(SRC, "pipelines", "generative-app.py")
SAMPLES = os.path.join(SRC, "samples")
failures = []


def check(cond, what):
    print("%s: %s" % ("ok" if cond else "FAILED", what))
    if not cond:
        failures.append(what)


def app(*args):
    r = subprocess.run(["/usr/bin/python3", APP] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    print("$ generative-app.py " + " ".join(args))
    print(r.stdout + r.stderr)
    return r


def decode(path, caps):
    """The samples or frames of a file through an appsink, as bytes."""
    p = Gst.parse_launch("filesrc location=\"%s\" ! decodebin ! %s ! appsink name=s sync=false"
                         % (path, caps))
    sink = p.get_by_name("s")
    p.set_state(Gst.State.PLAYING)
    data, frames, out_caps = [], 0, None
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        out_caps = sample.get_caps().to_string()
        buf = sample.get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        data.append(bytes(info.data))
        buf.unmap(info)
        frames += 1
    p.set_state(Gst.State.NULL)
    return b"".join(data), frames, out_caps


def floats(b):
    return struct.unpack("<%df" % (len(b) // 4), b)


def main():
    Gst.init(None)
    tmp = tempfile.mkdtemp(prefix="ge-app-")
    audio_caps = "audioconvert ! audioresample ! audio/x-raw,format=F32LE,rate=48000,channels=1"

    # clean: strength 0 -> 1 at 4 s
    out = os.path.join(tmp, "clean.wav")
    r = app("clean", os.path.join(SAMPLES, "noisy-speech.ogg"), out,
            "--strength", "0", "--change-at", "4", "--to", "1")
    check(r.returncode == 0, "clean exits 0")
    check("strength 0 -> 1 at 4.0" in r.stderr, "the strength change is reported at 4 s")
    check("stats gs: gansynth-stats" in r.stdout and "real-time-factor" in r.stdout,
          "gansynth's stats are printed")
    check("progress:" in r.stderr, "progress is shown")
    if r.returncode == 0:
        x = floats(decode(os.path.join(SAMPLES, "noisy-speech.ogg"), audio_caps)[0])
        y = floats(decode(out, audio_caps)[0])
        check(len(x) == len(y), "as many samples out as in (%d, %d)" % (len(x), len(y)))
        rate = 48000
        n = min(len(x), len(y))
        before = max(abs(x[i] - y[i]) for i in range(int(0.1 * rate), int(3.9 * rate)))
        peak = max(abs(v) for v in x[:n])
        diff_after = sum((x[i] - y[i]) ** 2 for i in range(int(4.1 * rate), n))
        energy_after = sum(x[i] ** 2 for i in range(int(4.1 * rate), n))
        ratio = (diff_after / energy_after) ** 0.5 if energy_after else 0.0
        check(before <= 1e-4 * peak,
              "strength 0 until 4 s: the input back (max difference %.2g, peak %.2g)"
              % (before, peak))
        check(ratio > 0.1, "strength 1 from 4 s: cleaned (relative change %.3f)" % ratio)

    # latents
    r = app("latents", os.path.join(SAMPLES, "building.webm"), "--frames", "2")
    check(r.returncode == 0, "latents exits 0")
    check("24 frames, each with its latent" in r.stdout, "every frame carries a latent")
    check("latent 4 x 17 x 30 (factor 8" in r.stdout, "the latent's shape and factor")
    check("stats enc: vaeencode-stats" in r.stdout, "vaeencode's stats are printed")

    # upscale
    out = os.path.join(tmp, "x2.webm")
    r = app("upscale", os.path.join(SAMPLES, "building.webm"), out)
    check(r.returncode == 0, "upscale exits 0")
    check("progress: 100.0 %" in r.stderr, "progress reaches 100 %")
    check("stats sr: diffusionsr-stats" in r.stdout and "frames=(guint64)24" in r.stdout,
          "diffusionsr's stats: 24 frames")
    if r.returncode == 0:
        _, frames, caps = decode(out, "videoconvert ! video/x-raw,format=RGB")
        check(frames == 24 and "width=(int)480" in caps and "height=(int)272" in caps,
              "24 frames of 480x272 (%d, %s)" % (frames, caps))

    # errors name the element and fail
    r = app("clean", os.path.join(tmp, "missing.ogg"), os.path.join(tmp, "x.flac"))
    check(r.returncode != 0 and "error:" in r.stderr, "a missing input is an error")

    subprocess.run(["rm", "-rf", tmp])
    print("%d failed" % len(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
