#!/usr/bin/python3
# Compares what two media files decode to: the frames or samples of the
# first stream of a kind, with their timestamps.
#
#   batchcheck.py video A B [INPUT]   same frame bytes and timestamps in A and
#                                     B (and INPUT's timestamps, when given)
#   batchcheck.py audio A B SEG_S     same sample count; SNR of B against A
#                                     over each segment of SEG_S seconds and
#                                     over the 0.25 s after each boundary
#                                     must be at least --min-snr (50 dB)
#
# Used by the gst-generative-batch tests; exits non-zero with a reason.
import argparse
import math
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import Gst, GstApp  # noqa: E402,F401


def decode(path, media):
    """[(pts, caps string, bytes)] of the first @media stream of @path."""
    pipe = Gst.parse_launch(
        "filesrc name=src ! decodebin name=dec "
        "appsink name=sink sync=false max-buffers=16")
    pipe.get_by_name("src").set_property("location", path)
    sink = pipe.get_by_name("sink")
    state = {"linked": False}

    def pad_added(dec, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        name = caps.get_structure(0).get_name()
        if not state["linked"] and name == media + "/x-raw":
            state["linked"] = True
            pad.link(sink.get_static_pad("sink"))
            return
        fs = Gst.ElementFactory.make("fakesink")
        fs.set_property("async", False)
        pipe.add(fs)
        fs.sync_state_with_parent()
        pad.link(fs.get_static_pad("sink"))

    pipe.get_by_name("dec").connect("pad-added", pad_added)
    pipe.set_state(Gst.State.PLAYING)
    out = []
    bus = pipe.get_bus()
    try:
        while True:
            s = sink.try_pull_sample(100 * Gst.MSECOND)
            if s is not None:
                buf = s.get_buffer()
                ok, m = buf.map(Gst.MapFlags.READ)
                out.append((buf.pts, s.get_caps().to_string(), bytes(m.data)))
                buf.unmap(m)
                continue
            if sink.is_eos():
                break
            msg = bus.pop_filtered(Gst.MessageType.ERROR)
            if msg is not None:
                err, dbg = msg.parse_error()
                sys.exit("%s: %s" % (path, err.message))
    finally:
        pipe.set_state(Gst.State.NULL)
    if not out:
        sys.exit("%s: no %s" % (path, media))
    return out


def check_video(a, b, input_path=None):
    fa, fb = decode(a, "video"), decode(b, "video")
    if len(fa) != len(fb):
        sys.exit("%d frames in %s, %d in %s" % (len(fa), a, len(fb), b))
    for i, ((pa, ca, da), (pb, cb, db)) in enumerate(zip(fa, fb)):
        if pa != pb:
            sys.exit("frame %d: timestamp %d in %s, %d in %s" % (i, pa, a, pb, b))
        if ca != cb:
            sys.exit("frame %d: caps %s in %s, %s in %s" % (i, ca, a, cb, b))
        if da != db:
            diff = sum(1 for x, y in zip(da, db) if x != y)
            sys.exit("frame %d (%.3f s): %d of %d bytes differ" % (i, pa / 1e9, diff, len(da)))
    msg = "%d frames, bytes and timestamps identical" % len(fa)
    if input_path:
        fi = decode(input_path, "video")
        if [p for p, _, _ in fi] != [p for p, _, _ in fa]:
            sys.exit("the timestamps of %s are not the input's (%d frames, %d in the input)"
                     % (a, len(fa), len(fi)))
        msg += "; the input's %d frame timestamps" % len(fi)
    print(msg)


def floats(frames):
    import array
    out = array.array("f")
    caps = frames[0][1]
    if "F32LE" not in caps:
        sys.exit("compare audio as F32LE (got %s)" % caps)
    for _, _, d in frames:
        out.frombytes(d)
    return out, caps


def rate_channels(caps):
    s = Gst.Caps.from_string(caps).get_structure(0)
    return s.get_value("rate"), s.get_value("channels")


def snr(ref, got, lo, hi):
    num = den = 0.0
    for i in range(lo, hi):
        num += ref[i] * ref[i]
        d = ref[i] - got[i]
        den += d * d
    if den == 0.0:
        return math.inf
    if num == 0.0:
        return -math.inf
    return 10.0 * math.log10(num / den)


def check_audio(a, b, seg_s, min_snr):
    ra, ca = floats(decode(a, "audio"))
    rb, cb = floats(decode(b, "audio"))
    if ca != cb:
        sys.exit("caps %s in %s, %s in %s" % (ca, a, cb, b))
    if len(ra) != len(rb):
        sys.exit("%d samples in %s, %d in %s" % (len(ra), a, len(rb), b))
    rate, ch = rate_channels(ca)
    n = len(ra) // ch
    per = int(round(seg_s * rate))
    worst = math.inf
    rows = []
    for k, lo in enumerate(range(0, n, per)):
        hi = min(n, lo + per)
        s_seg = snr(ra, rb, lo * ch, hi * ch)
        s_edge = snr(ra, rb, lo * ch, min(hi, lo + rate // 4) * ch)
        rows.append("segment %d: %.1f dB, first 0.25 s %.1f dB" % (k, s_seg, s_edge))
        if k > 0:
            worst = min(worst, s_seg, s_edge)
    print("\n".join(rows))
    print("%d samples in both; lowest SNR after a boundary %.1f dB (at least %.1f asked)"
          % (n, worst, min_snr))
    if worst < min_snr:
        sys.exit("below %.1f dB" % min_snr)


def main():
    Gst.init(None)
    ap = argparse.ArgumentParser()
    ap.add_argument("media", choices=("video", "audio"))
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("extra", nargs="?")
    ap.add_argument("--min-snr", type=float, default=50.0)
    args = ap.parse_args()
    if args.media == "video":
        check_video(args.a, args.b, args.extra)
    else:
        check_audio(args.a, args.b, float(args.extra), args.min_snr)


if __name__ == "__main__":
    main()
