#!/usr/bin/python3
"""How long gansynth must run before a point to give one process's output
there: the warm-up a segment of gst-generative-batch needs.

    /usr/bin/python3 bench/batch_warmup.py [--build build] [--repeat 20]

The bundled recording (8 s at 48 kHz) is repeated --repeat times (a long
podcast of the same voices and rain).  One run of the element over all of it
is the reference; then for each warm-up W the element starts W seconds
before T (the last 8 s repetition) and its output over [T, T + 8 s) is
compared with the reference's: the SNR in dB (higher: closer; the segments
must keep 50 dB).  Starts are on the 10 ms hop grid, as the tool's are.
"""
import argparse
import os
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import Gst, GstApp  # noqa: E402,F401
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = 48000


def decode(path):
    p = Gst.parse_launch("filesrc name=src ! decodebin ! audioconvert ! audioresample ! "
                         "audio/x-raw,format=F32LE,channels=1,rate=%d ! appsink name=sink "
                         "sync=false" % RATE)
    p.get_by_name("src").set_property("location", path)
    return pull(p)


def pull(p, feed=None):
    sink = p.get_by_name("sink")
    p.set_state(Gst.State.PLAYING)
    th = threading.Thread(target=feed) if feed else None
    if th:
        th.start()
    out = []
    while True:
        s = sink.try_pull_sample(Gst.SECOND)
        if s is None:
            if sink.is_eos():
                break
            msg = p.get_bus().pop_filtered(Gst.MessageType.ERROR)
            if msg:
                sys.exit(msg.parse_error()[0].message)
            continue
        buf = s.get_buffer()
        ok, m = buf.map(Gst.MapFlags.READ)
        out.append(np.frombuffer(bytes(m.data), dtype="<f4"))
        buf.unmap(m)
    if th:
        th.join()
    p.set_state(Gst.State.NULL)
    return np.concatenate(out)


def gansynth(x, first, model):
    """The element over x, timestamped as samples first.. of the stream."""
    p = Gst.parse_launch("appsrc name=src format=time caps=audio/x-raw,format=F32LE,"
                         "layout=interleaved,channels=1,rate=%d ! gansynth model-file=%s ! "
                         "appsink name=sink sync=false" % (RATE, model))
    src = p.get_by_name("src")

    def feed():
        for k in range(0, len(x), 4800):
            b = Gst.Buffer.new_wrapped(x[k:k + 4800].astype("<f4").tobytes())
            b.pts = Gst.util_uint64_scale_int_round(first + k, Gst.SECOND, RATE)
            src.push_buffer(b)
        src.end_of_stream()
    return pull(p, feed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    os.environ["GST_PLUGIN_PATH"] = os.path.join(args.build, "plugins")
    os.environ["GST_REGISTRY_1_0"] = os.path.join(args.build, "gst-registry.bin")
    Gst.init(None)
    model = os.path.join(ROOT, "models", "gansynth", "gansynth.safetensors")
    one = decode(os.path.join(ROOT, "samples", "noisy-speech.ogg"))
    one = one[:len(one) // RATE * RATE]
    x = np.concatenate([one] * args.repeat)
    ref = gansynth(x, 0, model)
    t = len(x) - len(one)
    print("reference: %.0f s; window [%.0f, %.0f) s" % (len(x) / RATE, t / RATE, len(x) / RATE))
    print("| warm-up (s) | SNR over the window (dB) |")
    print("|---:|---:|")
    w = 0.5
    while w * RATE <= t:
        s = t - int(w * RATE)
        y = gansynth(x[s:], s, model)
        a, b = ref[t:len(x)], y[t - s:len(x) - s]
        snr = 10 * np.log10(np.sum(a * a) / max(1e-30, np.sum((a - b) ** 2)))
        print("| %g | %.1f |" % (w, snr), flush=True)
        w *= 2
    y = gansynth(x, 0, model)
    print("| %g (from the start) | %s |" % (
        t / RATE, "identical" if np.array_equal(y[t:], ref[t:]) else "differs"))


if __name__ == "__main__":
    sys.exit(main())
