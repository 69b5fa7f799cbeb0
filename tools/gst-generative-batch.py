#!/usr/bin/python3
# gst-generative-batch: runs a GStreamer chain over a long media file as
# segments, on this machine or on a Slurm cluster, and joins the segments
# into the file one process would have made.
#
# Copyright (C) 2025 gst-generative contributors
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Run a gst-launch-1.0 chain over a media file as segments, in parallel.

    gst-generative-batch IN OUT --pipeline 'diffusionsr scale=2' [options]
    gst-generative-batch plan IN OUT --pipeline ... --workdir DIR [options]
    gst-generative-batch task --workdir DIR [--index I]
    gst-generative-batch join --workdir DIR

The first form plans, runs every segment (--engine local or slurm), waits
and joins.  plan, task and join are its three steps on their own, for other
schedulers (a Kubernetes Indexed Job runs "task" with JOB_COMPLETION_INDEX).

Why segments join exactly: our elements draw their noise from the position
in the frame and the seed, never from a frame counter, so frame N comes out
the same whatever frame the process started at.  A task decodes the shared
input from its own range (a flushing accurate seek; nothing is re-encoded),
feeds the frames with their own timestamps to

    appsrc ! videoconvert ! CHAIN ! ENCODER        (video)
    appsrc ! audioconvert ! audioresample ! CHAIN  (audio)

which is what "filesrc ! decodebin ! videoconvert ! CHAIN ! ENCODER" does
in one process, and writes its result under a temporary name renamed into
place when it is complete.  Recurrent chains (gansynth) start early by a
warm-up (--warmup-seconds; audio default AUDIO_WARMUP) whose output is
dropped, and run on past the segment's end by AUDIO_TAIL_S so that the
lookahead sees the same samples as in one process.
"""

import argparse
import bisect
import ctypes
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstAudio", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstApp, GstAudio, GstVideo  # noqa: E402

PROG = "gst-generative-batch"
PLAN_VERSION = 1
SECOND = Gst.SECOND

DEFAULT_VIDEO_ENCODER = ("videoconvert ! vp8enc deadline=1 target-bitrate=2000000 "
                         "! webmmux")
DEFAULT_AUDIO_ENCODER = "audioconvert ! flacenc"
# Audio chains are recurrent (gansynth's GRU): each segment starts early by
# a warm-up whose output is dropped.  "all" starts every audio segment at
# the stream's start, which is exact; the installed gansynth model needs it,
# since its state does not forget: started mid-stream, its output stays
# 10-39 dB SNR from one process's even after minutes of warm-up
# (bench/batch_warmup.py, bench/RESULTS.md), so no finite warm-up reaches
# the 50 dB a segment boundary must keep.  A recurrent element whose state
# decays takes --warmup-seconds N instead.
AUDIO_WARMUP = "all"
# ... and runs on this far past its end: gansynth holds back 40 ms and
# drains its tail with zeros at EOS, which one process never does mid-file.
AUDIO_TAIL_S = 0.25
# Audio elements frame their input on a grid from the first sample they get
# (gansynth: 10 ms hops).  Each audio task starts its input on a multiple of
# this from the stream's start, so the frames fall where they fall in one
# process; segment boundaries and warm-ups are multiples of it too.
AUDIO_GRID_S = 0.1
# A segment costs about 0.1-0.3 s of start-up, model load and seek
# (bench/RESULTS.md): automatic segments are at least this long.
MIN_AUTO_SEGMENT_S = 10.0
TERMINAL_SLURM_STATES = {
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
    "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED",
}


class BatchError(Exception):
    pass


def process_age():
    """Seconds since this process started (from /proc; 0 where unknown)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def log(msg):
    print("%s: %s" % (PROG, msg), file=sys.stderr, flush=True)


def fmt_time(ns):
    if ns is None:
        return "end"
    return "%.3f s" % (ns / SECOND)


def fmt_hms(seconds):
    seconds = int(round(seconds))
    return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def scale(value, num, den):
    return Gst.util_uint64_scale_int_round(value, num, den)


def write_atomic(path, data):
    """Writes @data (str or bytes) to @path through a temporary name in the
    same folder: readers see the old file or the whole new one."""
    tmp = "%s.tmp-%s-%d" % (path, socket.gethostname(), os.getpid())
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(tmp, mode) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ---- gst-launch descriptions ---------------------------------------------

def split_links(desc):
    """The elements of a linear gst-launch description, split at the
    top-level "!" (not inside quotes)."""
    parts, cur, quote = [], [], None
    for ch in desc:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == "!":
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def factory_of(part):
    name = part.split()[0] if part.split() else ""
    if "/" in name or "," in name:
        return None  # a caps filter
    return Gst.ElementFactory.find(name)


def parse_bin(desc, what):
    try:
        return Gst.parse_bin_from_description(desc, True)
    except GLib.Error as e:
        raise BatchError("cannot parse the %s '%s': %s" % (what, desc, e.message))


def chain_media(chain):
    """'video' or 'audio': what the chain's first element takes."""
    b = parse_bin(chain, "pipeline")
    pad = b.get_static_pad("sink")
    if pad is None:
        raise BatchError("the pipeline '%s' has no free sink pad to feed" % chain)
    caps = pad.query_caps(None)
    v = caps.can_intersect(Gst.Caps.from_string("video/x-raw"))
    a = caps.can_intersect(Gst.Caps.from_string("audio/x-raw"))
    if v and not a:
        return "video"
    if a and not v:
        return "audio"
    return None


def encoder_muxer(encoder):
    """The encoder's last element when it is a muxer (its description), else
    None: a copy join re-muxes the segments' streams with it."""
    parts = split_links(encoder)
    if not parts:
        return None
    f = factory_of(parts[-1])
    if f is None or "Muxer" not in (f.get_metadata("klass") or ""):
        return None
    return parts[-1]


# ---- pipelines -----------------------------------------------------------

class Pipe:
    """A pipeline with its bus read from the calling thread."""

    def __init__(self, pipeline, what):
        self.pipe = pipeline
        self.what = what
        self.bus = pipeline.get_bus()
        self.eos = False

    def check(self, timeout_ns=0, want=None):
        """Pops bus messages; raises on an error; returns True when a @want
        message (a Gst.MessageType) or EOS arrived."""
        types = Gst.MessageType.ERROR | Gst.MessageType.EOS
        if want:
            types |= want
        while True:
            msg = self.bus.timed_pop_filtered(timeout_ns, types)
            if msg is None:
                return False
            if msg.type == Gst.MessageType.ERROR:
                err, dbg = msg.parse_error()
                src = msg.src.get_name() if msg.src else "?"
                raise BatchError("%s: %s: %s (%s)" % (self.what, src, err.message, dbg))
            if msg.type == Gst.MessageType.EOS:
                self.eos = True
                return True
            if want and msg.type & want:
                if msg.type != Gst.MessageType.ASYNC_DONE or msg.src == self.pipe:
                    return True
            timeout_ns = 0

    def wait(self, want, seconds, alive=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.check(100 * Gst.MSECOND, want):
                return
            if alive is not None:
                alive()
        raise BatchError("%s: no answer in %d s" % (self.what, seconds))

    def stop(self):
        self.pipe.set_state(Gst.State.NULL)


class Decoder(Pipe):
    """filesrc ! decodebin, the first @media stream into an appsink (the
    other streams into fakesinks)."""

    def __init__(self, path, media):
        super().__init__(Gst.Pipeline.new("decode"), "decoding %s" % path)
        self.media = media
        src = Gst.ElementFactory.make("filesrc")
        src.set_property("location", path)
        dec = Gst.ElementFactory.make("decodebin")
        self.sink = Gst.ElementFactory.make("appsink")
        for k, v in (("sync", False), ("max-buffers", 4), ("enable-last-sample", False)):
            self.sink.set_property(k, v)
        for e in (src, dec, self.sink):
            self.pipe.add(e)
        src.link(dec)
        self.linked = False
        self.no_more_pads = False
        dec.connect("pad-added", self._pad_added)
        dec.connect("no-more-pads", self._no_more_pads)

    def _pad_added(self, dec, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        name = caps.get_structure(0).get_name() if caps.get_size() else ""
        if not self.linked and name == self.media + "/x-raw":
            self.linked = pad.link(self.sink.get_static_pad("sink")) == Gst.PadLinkReturn.OK
            return
        fs = Gst.ElementFactory.make("fakesink")
        fs.set_property("sync", False)
        fs.set_property("async", False)
        self.pipe.add(fs)
        fs.sync_state_with_parent()
        pad.link(fs.get_static_pad("sink"))

    def _no_more_pads(self, dec):
        self.no_more_pads = True

    def _alive(self):
        if self.no_more_pads and not self.linked:
            raise BatchError("%s: no %s stream" % (self.what, self.media))

    def start(self, start_ns=None, stop_ns=None):
        """Prerolls, seeks to [start_ns, stop_ns) when either is set, plays."""
        self.pipe.set_state(Gst.State.PAUSED)
        self.wait(Gst.MessageType.ASYNC_DONE, 120, self._alive)
        if start_ns is not None or stop_ns is not None:
            ok = self.pipe.seek(1.0, Gst.Format.TIME,
                                Gst.SeekFlags.FLUSH | Gst.SeekFlags.ACCURATE,
                                Gst.SeekType.SET, start_ns or 0,
                                Gst.SeekType.SET if stop_ns is not None else Gst.SeekType.NONE,
                                stop_ns if stop_ns is not None else -1)
            if not ok:
                raise BatchError("%s: the input cannot seek to %s" % (self.what, fmt_time(start_ns)))
            self.wait(Gst.MessageType.ASYNC_DONE, 120)
        self.pipe.set_state(Gst.State.PLAYING)

    def pull(self):
        """The next sample, or None at the end."""
        while True:
            s = self.sink.try_pull_sample(100 * Gst.MSECOND)
            if s is not None:
                return s
            if self.sink.is_eos():
                return None
            self.check()


def audio_info(caps):
    info = GstAudio.AudioInfo.new_from_caps(caps)
    if info is None:
        raise BatchError("unusable audio caps %s" % caps.to_string())
    return info


def video_info(caps):
    info = GstVideo.VideoInfo.new_from_caps(caps)
    if info is None:
        raise BatchError("unusable video caps %s" % caps.to_string())
    return info


def buffer_bytes(buf):
    ok, m = buf.map(Gst.MapFlags.READ)
    if not ok:
        raise BatchError("cannot read a buffer")
    try:
        return bytes(m.data)
    finally:
        buf.unmap(m)


# ---- the plan --------------------------------------------------------------

def probe_input(path, media):
    """Decodes the whole input once: the frames' timestamps (video) or the
    sample count (audio), as the tasks will see them."""
    d = Decoder(path, media)
    try:
        d.start()
        pts, caps, rate, samples, t0 = [], None, 0, 0, None
        while True:
            s = d.pull()
            if s is None:
                break
            buf = s.get_buffer()
            if media == "video":
                if buf.pts == Gst.CLOCK_TIME_NONE:
                    raise BatchError("%s: a frame without a timestamp" % path)
                if pts and buf.pts <= pts[-1]:
                    raise BatchError("%s: frame timestamps go back (%s after %s)"
                                     % (path, fmt_time(buf.pts), fmt_time(pts[-1])))
                pts.append(buf.pts)
            else:
                if caps is None:
                    caps = s.get_caps()
                    info = audio_info(caps)
                    rate, bpf = info.rate, info.bpf
                    t0 = buf.pts if buf.pts != Gst.CLOCK_TIME_NONE else 0
                samples += buf.get_size() // bpf
    finally:
        d.stop()
    if media == "video":
        if not pts:
            raise BatchError("%s: no video frames" % path)
        return {"pts": pts}
    if not samples:
        raise BatchError("%s: no audio samples" % path)
    return {"rate": rate, "samples": samples, "t0": t0}


def make_segments(media, probe, seg_s, warmup_s):
    seg_ns = int(seg_s * SECOND)
    # warm-up "all": every segment runs its chain from the stream's start
    every = warmup_s == "all"
    warm_ns = 0 if every else int(warmup_s * SECOND)
    segs = []
    if media == "video":
        pts = probe["pts"]
        starts = [0]
        k = 1
        while True:
            i = bisect.bisect_left(pts, pts[0] + k * seg_ns)
            if i >= len(pts):
                break
            if i > starts[-1]:
                starts.append(i)
            k += 1
        if len(starts) > 1 and pts[-1] - pts[starts[-1]] < seg_ns // 4:
            starts.pop()  # a sliver at the end joins the segment before
        for n, a in enumerate(starts):
            b = starts[n + 1] if n + 1 < len(starts) else len(pts)
            w = 0 if every else (bisect.bisect_left(pts, pts[a] - warm_ns) if warm_ns else a)
            # Decoders clip frames to the seek's range: one that overlaps the
            # start comes out re-timed to it, the one before the stop comes
            # out shortened.  So the range reaches 1 ns before the first frame
            # (the frame before, if it comes, is re-timed off every frame's
            # time and dropped) and up to the frame after the segment's next
            # (which is dropped).
            segs.append({
                "index": n, "first": a, "count": b - a, "warmup_first": w,
                "start": pts[a], "stop": pts[b] if b < len(pts) else None,
                "decode_start": pts[w] - 1 if w > 0 else None,
                "decode_stop": pts[b + 1] if b + 1 < len(pts) else None,
            })
        return segs
    rate, total, t0 = probe["rate"], probe["samples"], probe["t0"]
    grid = audio_grid(rate)
    per = max(1, int(round(seg_s * rate / grid))) * grid
    warm = total if every else int(math.ceil(warmup_s * rate / grid)) * grid
    tail_ns = int(AUDIO_TAIL_S * SECOND)
    starts = list(range(0, total, per))
    if len(starts) > 1 and total - starts[-1] < per // 4:
        starts.pop()  # a sliver at the end joins the segment before
    for n, a in enumerate(starts):
        b = starts[n + 1] if n + 1 < len(starts) else total
        w = max(0, a - warm)
        start = t0 + scale(a, SECOND, rate)
        stop = t0 + scale(b, SECOND, rate) if b < total else None
        segs.append({
            "index": n, "first": a, "count": b - a, "warmup_first": w,
            "start": start, "stop": stop,
            "decode_start": t0 + scale(w, SECOND, rate) if w > 0 else None,
            "decode_stop": stop + tail_ns if stop is not None else None,
        })
    return segs


def audio_grid(rate):
    """AUDIO_GRID_S in samples (1 s where that is not a whole number)."""
    g = rate * AUDIO_GRID_S
    return int(round(g)) if abs(g - round(g)) < 1e-9 else rate


class Workdir:
    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.plan_path = os.path.join(self.path, "plan.json")

    def p(self, *names):
        return os.path.join(self.path, *names)

    def seg_name(self, i, ext):
        return self.p("seg-%05d%s" % (i, ext))

    def log_path(self, i):
        return self.p("logs", "seg-%05d.log" % i)

    def progress_path(self, i):
        return self.p("progress", "seg-%05d.json" % i)

    def load(self):
        plan = read_json(self.plan_path)
        if plan is None:
            raise BatchError("%s holds no plan (run 'plan' first)" % self.path)
        if plan.get("version") != PLAN_VERSION:
            raise BatchError("%s: a plan of another version" % self.plan_path)
        return plan

    def data_path(self, plan, i):
        return self.seg_name(i, ".seg" if plan["join"] == "copy" else ".raw")

    def meta_path(self, i):
        return self.seg_name(i, ".json")

    def done(self, plan, i):
        """A segment is finished when its data is there (renamed last, after
        its meta) and its meta belongs to this plan."""
        if not os.path.exists(self.data_path(plan, i)):
            return False
        meta = read_json(self.meta_path(i))
        return meta is not None and meta.get("plan") == plan["id"]

    def finished(self, plan):
        return [s["index"] for s in plan["segments"] if self.done(plan, s["index"])]


def request_key(args, media):
    st = os.stat(args.input)
    return {
        "input": os.path.abspath(args.input), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
        "output": os.path.abspath(args.output), "pipeline": args.pipeline,
        "encoder": args.encoder, "join": args.join, "media": media,
        "segment_seconds": args.segment_seconds, "warmup_seconds": args.warmup_seconds,
    }


def plan_job(args, workers):
    """Reuses the plan of @args.workdir when it was made for the same input
    and options (a resumed job), else probes the input and writes one."""
    if not os.path.isfile(args.input):
        raise BatchError("no input file %s" % args.input)
    media = args.media or chain_media(args.pipeline)
    if media is None:
        raise BatchError("cannot tell whether '%s' takes video or audio: give --media"
                         % args.pipeline)
    if args.encoder is None:
        args.encoder = DEFAULT_VIDEO_ENCODER if media == "video" else DEFAULT_AUDIO_ENCODER
    parse_bin(args.encoder, "encoder")
    muxer = encoder_muxer(args.encoder)
    join = args.join
    if join == "auto":
        # Video encoders start every segment on a keyframe: their streams
        # concatenate.  Audio codecs prime and pad each stream (Vorbis,
        # Opus, AAC), so audio segments are kept raw and encoded once.
        join = "copy" if media == "video" and muxer else "reencode"
    if join == "copy" and not muxer:
        raise BatchError("--join copy needs an encoder that ends in a muxer")
    key = request_key(args, media)
    wd = Workdir(args.workdir)
    old = read_json(wd.plan_path)
    if old is not None:
        if old.get("version") == PLAN_VERSION and old.get("request") == key:
            return wd, old, True
        if not args.fresh:
            raise BatchError("%s holds the segments of another job (other input or options); "
                             "remove it or give --fresh" % wd.path)
        clear_workdir(wd)
    elif os.path.isdir(wd.path) and os.listdir(wd.path):
        raise BatchError("the work folder %s is not empty and holds no plan" % wd.path)

    probe = probe_input(args.input, media)
    if media == "video":
        pts = probe["pts"]
        duration = (pts[-1] - pts[0]) / SECOND + (
            (pts[-1] - pts[-2]) / SECOND if len(pts) > 1 else 0)
        units = len(pts)
    else:
        duration = probe["samples"] / probe["rate"]
        units = probe["samples"]
    seg_s = args.segment_seconds
    if seg_s is None:
        # Two segments per worker balance uneven speeds; each at least
        # MIN_AUTO_SEGMENT_S so the per-segment cost stays small.
        seg_s = max(MIN_AUTO_SEGMENT_S, duration / (2 * max(1, workers)))
    if seg_s <= 0:
        raise BatchError("--segment-seconds must be positive")
    warm = args.warmup_seconds
    if warm is None:
        warm = AUDIO_WARMUP if media == "audio" else 0.0
    elif warm != "all":
        try:
            warm = float(warm)
        except ValueError:
            raise BatchError("--warmup-seconds takes seconds or 'all', not '%s'" % warm)
        if warm < 0:
            raise BatchError("--warmup-seconds must not be negative")
    plan = {
        "version": PLAN_VERSION, "id": uuid.uuid4().hex, "request": key,
        "input": key["input"], "output": key["output"], "pipeline": args.pipeline,
        "encoder": args.encoder, "muxer": muxer, "media": media, "join": join,
        "segment_seconds": seg_s, "warmup_seconds": warm, "duration": duration,
        "units": units, "probe": probe,
        "segments": make_segments(media, probe, seg_s, warm),
    }
    os.makedirs(wd.p("logs"), exist_ok=True)
    os.makedirs(wd.p("progress"), exist_ok=True)
    write_atomic(wd.plan_path, json.dumps(plan))
    return wd, plan, False


def clear_workdir(wd):
    for name in os.listdir(wd.path):
        full = wd.p(name)
        if name in ("logs", "progress"):
            for f in os.listdir(full):
                os.unlink(os.path.join(full, f))
        elif name.startswith("seg-") or name.startswith("plan.json") or name in (
                "jobs", "slurm-task.sh"):
            os.unlink(full)


# ---- a task: one segment -------------------------------------------------

def task_threads():
    """Threads for elements left at n-threads=0 (all cores): the task's
    share of the machine, so that N tasks do not each start all cores."""
    for var in ("GST_GENERATIVE_BATCH_THREADS", "SLURM_CPUS_PER_TASK"):
        v = os.environ.get(var)
        if v and v.isdigit() and int(v) > 0:
            return int(v)
    return 0


def share_threads(pipeline, n):
    if n <= 0:
        return
    it = pipeline.iterate_recurse()
    while True:
        ok, e = it.next()
        if ok != Gst.IteratorResult.OK:
            break
        if e.find_property("n-threads") is not None and e.get_property("n-threads") == 0:
            e.set_property("n-threads", n)


def run_task(wd, plan, index):
    segs = plan["segments"]
    if not 0 <= index < len(segs):
        raise BatchError("no segment %d (the plan has %d)" % (index, len(segs)))
    if wd.done(plan, index):
        log("segment %d is already done" % index)
        return
    seg = segs[index]
    media, join = plan["media"], plan["join"]
    host = socket.gethostname()
    print("=== segment %d of %d: [%s, %s) on %s, pid %d, %s" % (
        index, len(segs), fmt_time(seg["start"]), fmt_time(seg["stop"]), host,
        os.getpid(), time.strftime("%Y-%m-%d %H:%M:%S")), flush=True)
    t_start = time.monotonic()
    # The costs of a segment beside its frames, for the log (bench/RESULTS.md
    # sums them): interpreter and GStreamer start-up, the chain's setup (the
    # models load at READY->PAUSED), the input's preroll and seek.
    costs = {"startup": process_age()}

    convert = "videoconvert" if media == "video" else "audioconvert ! audioresample"
    tail = ("%s ! filesink name=__sink" % plan["encoder"] if join == "copy"
            else "appsink name=__out sync=false max-buffers=8 enable-last-sample=false")
    desc = "appsrc name=__src format=time ! %s ! %s ! identity name=__keep ! %s" % (
        convert, plan["pipeline"], tail)
    try:
        pipeline = Gst.parse_launch(desc)
    except GLib.Error as e:
        raise BatchError("cannot build the segment's pipeline: %s" % e.message)
    share_threads(pipeline, task_threads())
    proc = Pipe(pipeline, "segment %d" % index)
    appsrc = pipeline.get_by_name("__src")
    appsrc.set_property("block", True)
    appsrc.set_property("max-bytes", 64 << 20)
    tmp = "%s.tmp-%s-%d" % (wd.data_path(plan, index), host, os.getpid())
    if join == "copy":
        pipeline.get_by_name("__sink").set_property("location", tmp)

    # Video: frames outside the segment (a warm-up) are dropped after the
    # chain, before the encoder.
    kept = {"n": 0, "first": None, "units": 0}
    keep_lo, keep_hi = seg["start"], seg["stop"]

    def keep_probe(pad, info):
        buf = info.get_buffer()
        if buf.pts == Gst.CLOCK_TIME_NONE or buf.pts < keep_lo or (
                keep_hi is not None and buf.pts >= keep_hi):
            return Gst.PadProbeReturn.DROP
        if kept["first"] is None:
            kept["first"] = buf.pts
        kept["n"] += 1
        kept["units"] = kept["n"]
        return Gst.PadProbeReturn.OK

    if media == "video":
        pipeline.get_by_name("__keep").get_static_pad("src").add_probe(
            Gst.PadProbeType.BUFFER, keep_probe)

    dec = Decoder(plan["input"], media)
    feed_error = []
    # Video: the input frames the chain sees, by their exact timestamps.
    wanted = set(plan["probe"]["pts"][seg["warmup_first"]:seg["first"] + seg["count"]]) \
        if media == "video" else None

    def feeder():
        try:
            t = time.monotonic()
            dec.start(seg["decode_start"], seg["decode_stop"])
            costs["seek"] = time.monotonic() - t
            caps = None
            while True:
                s = dec.pull()
                if s is None:
                    break
                buf = s.get_buffer()
                c = s.get_caps()
                if media == "video":
                    if buf.pts not in wanted:
                        continue
                else:
                    buf = align_audio(buf, c)
                    if buf is None:
                        continue
                if caps is None or not c.is_equal(caps):
                    appsrc.set_caps(c)
                    caps = c
                if appsrc.push_buffer(buf) != Gst.FlowReturn.OK:
                    return
            appsrc.end_of_stream()
        except BatchError as e:
            feed_error.append(e)
        except Exception as e:  # a bug: report it, do not hang the task
            feed_error.append(BatchError("decoding: %r" % e))

    # Audio: the first sample fed is the first one on the grid at or after
    # the first decoded one (a decoder may start a little late after a seek).
    align = {"pos": None, "started": False}

    def align_audio(buf, caps):
        info = audio_info(caps)
        rate, t0 = info.rate, plan["probe"]["t0"]
        n = buf.get_size() // info.bpf
        if align["pos"] is None:
            if buf.pts == Gst.CLOCK_TIME_NONE:
                raise BatchError("a decoded audio buffer without a timestamp")
            align["pos"] = scale(max(0, buf.pts - t0), rate, SECOND)
        pos = align["pos"]
        align["pos"] = pos + n
        if align["started"]:
            return buf
        g = audio_grid(rate)
        first = -(-pos // g) * g
        if first >= pos + n:
            return None
        align["started"] = True
        if first == pos:
            return buf
        data = buffer_bytes(buf)[(first - pos) * info.bpf:]
        out = Gst.Buffer.new_wrapped(data)
        out.pts = t0 + scale(first, SECOND, rate)
        out.duration = t0 + scale(pos + n, SECOND, rate) - out.pts
        return out

    out_f = None
    meta = {"plan": plan["id"], "index": index, "media": media}
    frames = []
    audio = {"anchor": None, "pos": 0, "lo": None, "hi": None, "bpf": 0, "rate": 0}
    last_progress = 0.0
    progress_path = wd.progress_path(index)

    def progress(force=False):
        nonlocal last_progress
        now = time.monotonic()
        if force or now - last_progress >= 0.5:
            last_progress = now
            write_atomic(progress_path, json.dumps({
                "pid": os.getpid(), "host": host, "units": kept["units"], "time": time.time()}))

    def take_output(sample):
        nonlocal out_f
        buf = sample.get_buffer()
        caps = sample.get_caps()
        if "caps" not in meta:
            meta["caps"] = caps.to_string()
        elif caps.to_string() != meta["caps"]:
            raise BatchError("the chain's output caps changed within the segment")
        if out_f is None:
            out_f = open(tmp, "wb")
        if media == "video":
            info = video_info(caps)
            if buf.get_size() != info.size:
                raise BatchError("a %d-byte frame where %s takes %d" % (
                    buf.get_size(), meta["caps"], info.size))
            if buf.pts < keep_lo or (keep_hi is not None and buf.pts >= keep_hi):
                return
            # (counted by the keep probe, which dropped the warm-up)
            out_f.write(buffer_bytes(buf))
            frames.append([buf.pts, buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else -1])
            return
        # Audio: sample positions on the output's rate, anchored at the first
        # buffer's timestamp and counted on from there.
        if audio["anchor"] is None:
            info = audio_info(caps)
            rate, t0 = info.rate, plan["probe"]["t0"]
            audio.update(rate=rate, bpf=info.bpf)
            pts = buf.pts if buf.pts != Gst.CLOCK_TIME_NONE else (seg["decode_start"] or t0)
            audio["anchor"] = scale(max(0, pts - t0), rate, SECOND)
            audio["pos"] = audio["anchor"]
            audio["lo"] = scale(seg["start"] - t0, rate, SECOND)
            audio["hi"] = scale(seg["stop"] - t0, rate, SECOND) if seg["stop"] is not None else None
            if audio["anchor"] > audio["lo"]:
                raise BatchError("the chain's output starts at sample %d, after the segment's "
                                 "first (%d)" % (audio["anchor"], audio["lo"]))
        bpf = audio["bpf"]
        n = buf.get_size() // bpf
        a, b = audio["pos"], audio["pos"] + n
        audio["pos"] = b
        lo = max(a, audio["lo"])
        hi = b if audio["hi"] is None else min(b, audio["hi"])
        if hi > lo:
            data = buffer_bytes(buf)
            out_f.write(data[(lo - a) * bpf:(hi - a) * bpf])
            kept["n"] += hi - lo
        kept["units"] = max(0, min(b, audio["hi"] or b) - audio["lo"])

    th = threading.Thread(target=feeder, daemon=True)
    t = time.monotonic()
    if pipeline.set_state(Gst.State.PAUSED) == Gst.StateChangeReturn.FAILURE:
        proc.check()
        raise BatchError("segment %d: the chain did not start" % index)
    costs["setup"] = time.monotonic() - t
    pipeline.set_state(Gst.State.PLAYING)
    th.start()
    out = pipeline.get_by_name("__out")
    try:
        while True:
            if feed_error:
                raise feed_error[0]
            if out is not None:
                s = out.try_pull_sample(100 * Gst.MSECOND)
                if s is not None:
                    take_output(s)
                    progress()
                    continue
                if out.is_eos():
                    break
                proc.check()
            elif proc.check(100 * Gst.MSECOND):
                break
            progress()
        th.join(timeout=10)
        if feed_error:
            raise feed_error[0]
    finally:
        pipeline.set_state(Gst.State.NULL)
        dec.stop()
        if out_f is not None:
            out_f.close()

    # Exactly the segment: every frame or sample, from its first.
    if media == "video":
        if kept["n"] != seg["count"] or kept["first"] != seg["start"]:
            raise BatchError("segment %d: the chain gave %d frames from %s, the input has %d "
                             "from %s (a chain that drops, adds or re-times frames cannot be "
                             "segmented)" % (index, kept["n"], fmt_time(kept["first"]),
                                             seg["count"], fmt_time(seg["start"])))
        meta["frames"] = frames if join == "reencode" else None
        meta["count"] = kept["n"]
    else:
        if audio["anchor"] is None:
            raise BatchError("segment %d: the chain gave no audio" % index)
        if audio["hi"] is not None and kept["n"] != audio["hi"] - audio["lo"]:
            raise BatchError("segment %d: the chain gave %d samples of the %d asked for"
                             % (index, kept["n"], audio["hi"] - audio["lo"]))
        meta.update(first=audio["lo"], count=kept["n"], rate=audio["rate"], bpf=audio["bpf"])
    if not os.path.exists(tmp):
        raise BatchError("segment %d: the chain wrote nothing" % index)
    # Meta first, data last: the data's name is the mark of a finished segment.
    write_atomic(wd.meta_path(index), json.dumps(meta))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, wd.data_path(plan, index))
    progress(force=True)
    print("=== segment %d done: %d %s in %.2f s; start-up %.2f s, chain setup and model "
          "load %.2f s, preroll and seek %.2f s" % (
              index, kept["n"], "frames" if media == "video" else "samples",
              time.monotonic() - t_start, costs["startup"], costs["setup"],
              costs.get("seek", 0.0)), flush=True)


# ---- the join ------------------------------------------------------------

class Parser(Pipe):
    """filesrc ! parsebin: a segment file's stream, still encoded."""

    def __init__(self, path):
        super().__init__(Gst.Pipeline.new("parse"), "reading %s" % path)
        src = Gst.ElementFactory.make("filesrc")
        src.set_property("location", path)
        pb = Gst.ElementFactory.make("parsebin")
        self.sink = Gst.ElementFactory.make("appsink")
        for k, v in (("sync", False), ("max-buffers", 16), ("enable-last-sample", False)):
            self.sink.set_property(k, v)
        for e in (src, pb, self.sink):
            self.pipe.add(e)
        src.link(pb)
        self.linked = False
        pb.connect("pad-added", self._pad_added)

    def _pad_added(self, pb, pad):
        if not self.linked:
            self.linked = pad.link(self.sink.get_static_pad("sink")) == Gst.PadLinkReturn.OK
            return
        fs = Gst.ElementFactory.make("fakesink")
        fs.set_property("async", False)
        self.pipe.add(fs)
        fs.sync_state_with_parent()
        pad.link(fs.get_static_pad("sink"))

    def samples(self):
        self.pipe.set_state(Gst.State.PLAYING)
        while True:
            s = self.sink.try_pull_sample(100 * Gst.MSECOND)
            if s is not None:
                yield s
                continue
            if self.sink.is_eos():
                return
            self.check()


def join_segments(wd, plan, output=None):
    output = os.path.abspath(output or plan["output"])
    missing = [s["index"] for s in plan["segments"] if not wd.done(plan, s["index"])]
    if missing:
        raise BatchError("cannot join: segment(s) %s not finished" % ", ".join(map(str, missing)))
    join = plan["join"]
    tail = plan["muxer"] if join == "copy" else plan["encoder"]
    desc = "appsrc name=__src format=time ! %s ! filesink name=__sink" % tail
    try:
        pipeline = Gst.parse_launch(desc)
    except GLib.Error as e:
        raise BatchError("cannot build the join pipeline: %s" % e.message)
    tmp = os.path.join(os.path.dirname(output), ".%s.partial-%d" % (
        os.path.basename(output), os.getpid()))
    pipeline.get_by_name("__sink").set_property("location", tmp)
    appsrc = pipeline.get_by_name("__src")
    appsrc.set_property("block", True)
    appsrc.set_property("max-bytes", 32 << 20)
    proc = Pipe(pipeline, "joining into %s" % output)
    caps_now = [None]

    def push(buf, caps):
        if caps_now[0] is None or not caps.is_equal(caps_now[0]):
            appsrc.set_caps(caps)
            caps_now[0] = caps
        if appsrc.push_buffer(buf) != Gst.FlowReturn.OK:
            proc.check(Gst.SECOND)
            raise BatchError("joining into %s: the encoder refused a buffer" % output)
        proc.check()

    pipeline.set_state(Gst.State.PLAYING)
    try:
        if join == "copy":
            join_copy(wd, plan, push)
        elif plan["media"] == "video":
            join_raw_video(wd, plan, push)
        else:
            join_raw_audio(wd, plan, push)
        appsrc.end_of_stream()
        while not proc.eos:
            proc.check(Gst.SECOND)
    except BaseException:
        pipeline.set_state(Gst.State.NULL)
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    pipeline.set_state(Gst.State.NULL)
    os.replace(tmp, output)
    return output


def join_copy(wd, plan, push):
    """Re-muxes each segment's encoded stream.  A segment file's timestamps
    start where its muxer put them (running time, or rounded to the
    container's timescale): they are shifted to the segment's first frame
    and each set back on the input frame it is nearest to."""
    pts_all = plan["probe"]["pts"]
    for seg in plan["segments"]:
        a, b = seg["first"], seg["first"] + seg["count"]
        plan_pts = pts_all[a:b]
        half = min((y - x for x, y in zip(plan_pts, plan_pts[1:])), default=SECOND) // 2
        reader = Parser(wd.data_path(plan, seg["index"]))
        offset = None
        try:
            for s in reader.samples():
                buf = s.get_buffer().copy()
                if offset is None:
                    if buf.pts == Gst.CLOCK_TIME_NONE:
                        raise BatchError("segment %d: an encoded frame without a timestamp"
                                         % seg["index"])
                    offset = seg["start"] - buf.pts
                if buf.pts != Gst.CLOCK_TIME_NONE:
                    t = buf.pts + offset
                    i = bisect.bisect_left(plan_pts, t)
                    near = min((j for j in (i - 1, i) if 0 <= j < len(plan_pts)),
                               key=lambda j: abs(plan_pts[j] - t))
                    buf.pts = plan_pts[near] if abs(plan_pts[near] - t) <= half else t
                if buf.dts != Gst.CLOCK_TIME_NONE:
                    buf.dts = max(0, buf.dts + offset)
                push(buf, s.get_caps())
        finally:
            reader.stop()


def join_raw_video(wd, plan, push):
    for seg in plan["segments"]:
        meta = read_json(wd.meta_path(seg["index"]))
        caps = Gst.Caps.from_string(meta["caps"])
        size = video_info(caps).size
        with open(wd.data_path(plan, seg["index"]), "rb") as f:
            for pts, dur in meta["frames"]:
                data = f.read(size)
                if len(data) != size:
                    raise BatchError("segment %d: its data file is short" % seg["index"])
                buf = Gst.Buffer.new_wrapped(data)
                buf.pts = pts
                if dur >= 0:
                    buf.duration = dur
                push(buf, caps)


def join_raw_audio(wd, plan, push):
    t0 = plan["probe"]["t0"]
    chunk = 4096
    for seg in plan["segments"]:
        meta = read_json(wd.meta_path(seg["index"]))
        caps = Gst.Caps.from_string(meta["caps"])
        rate, bpf, k = meta["rate"], meta["bpf"], meta["first"]
        with open(wd.data_path(plan, seg["index"]), "rb") as f:
            left = meta["count"]
            while left > 0:
                n = min(chunk, left)
                data = f.read(n * bpf)
                if len(data) != n * bpf:
                    raise BatchError("segment %d: its data file is short" % seg["index"])
                buf = Gst.Buffer.new_wrapped(data)
                buf.pts = t0 + scale(k, SECOND, rate)
                buf.duration = t0 + scale(k + n, SECOND, rate) - buf.pts
                buf.offset, buf.offset_end = k, k + n
                push(buf, caps)
                k += n
                left -= n


# ---- engines -------------------------------------------------------------

def set_pdeathsig():
    # The tasks end with the coordinator, however it ends.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


class Progress:
    def __init__(self, wd, plan, quiet):
        self.wd, self.plan, self.quiet = wd, plan, quiet
        self.t0 = time.monotonic()
        self.base = None
        self.last_line = 0.0
        self.last_done = -1
        self.tty = sys.stderr.isatty()
        self.media = plan["media"]

    def units(self, done, running):
        total = 0
        for s in self.plan["segments"]:
            i = s["index"]
            if i in done:
                total += s["count"]
            elif i in running:
                p = read_json(self.wd.progress_path(i))
                if p:
                    total += min(s["count"], int(p.get("units", 0)))
        return total

    def show(self, done, running, force=False):
        if self.quiet:
            return
        now = time.monotonic()
        if not force and now - self.last_line < (0.5 if self.tty else 10.0) and len(done) == self.last_done:
            return
        self.last_line, self.last_done = now, len(done)
        units = self.units(done, running)
        if self.base is None:
            self.base = units
        el = now - self.t0
        rate = (units - self.base) / el if el > 0 else 0.0
        left = self.plan["units"] - units
        eta = fmt_hms(left / rate) if rate > 0 else "?"
        if self.media == "video":
            speed = "%.2f fps" % rate
        else:
            speed = "%.2fx real time" % (rate / self.plan["probe"]["rate"])
        line = "segments %d/%d done, %d running, %s, ETA %s" % (
            len(done), len(self.plan["segments"]), len(running), speed, eta)
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
            if force:
                sys.stderr.write("\n")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def task_command(wd):
    return [sys.executable, os.path.realpath(__file__), "task", "--workdir", wd.path]


def tail_of(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def fail_report(wd, plan, failed):
    lines = []
    for i, why in sorted(failed.items()):
        s = plan["segments"][i]
        lines.append("segment %d [%s, %s) failed for good (%s); log: %s\n%s" % (
            i, fmt_time(s["start"]), fmt_time(s["stop"]), why, wd.log_path(i),
            tail_of(wd.log_path(i))))
    return "\n".join(lines).rstrip()


class Stop(Exception):
    pass


def on_signal(signum, frame):
    raise Stop(signum)


def run_local(wd, plan, args, todo):
    jobs = max(1, args.jobs)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    env = dict(os.environ)
    env.setdefault("GST_GENERATIVE_BATCH_THREADS", str(threads))
    pending = list(todo)
    tries = {i: 0 for i in todo}
    running, failed = {}, {}
    prog = Progress(wd, plan, args.quiet)
    try:
        while pending or running:
            if failed:
                pending.clear()
            while pending and len(running) < jobs:
                i = pending.pop(0)
                tries[i] += 1
                logf = open(wd.log_path(i), "a")
                logf.write("--- try %d\n" % tries[i])
                logf.flush()
                p = subprocess.Popen(task_command(wd) + ["--index", str(i)], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=set_pdeathsig)
                logf.close()
                running[i] = p
            time.sleep(0.2)
            for i, p in list(running.items()):
                rc = p.poll()
                if rc is None:
                    continue
                del running[i]
                if wd.done(plan, i):
                    continue
                # (a task killed by a signal reads as a negative status)
                why = "exit status %d" % rc if rc >= 0 else "killed by signal %d" % -rc
                if tries[i] <= args.retries:
                    log("segment %d failed (%s, log %s); running it again" % (i, why, wd.log_path(i)))
                    pending.insert(0, i)
                else:
                    failed[i] = why
            prog.show(set(wd.finished(plan)), set(running))
    except Stop:
        for p in running.values():
            p.terminate()
        for p in running.values():
            p.wait()
        raise
    prog.show(set(wd.finished(plan)), set(), force=True)
    return failed


def slurm(cmd, what):
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BatchError("%s: %s" % (what, e))
    if r.returncode != 0:
        raise BatchError("%s: %s failed: %s" % (what, cmd[0], r.stderr.strip()))
    return r.stdout


def array_spec(indices):
    """[0, 1, 2, 5] -> '0-2,5'."""
    out, run = [], []
    for i in sorted(indices):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else "%d-%d" % (run[0], run[-1]))
        run = [i]
    if run:
        out.append(str(run[0]) if len(run) == 1 else "%d-%d" % (run[0], run[-1]))
    return ",".join(out)


def slurm_workers(args):
    if args.max_parallel:
        return args.max_parallel
    try:
        out = slurm(["sinfo", "-h", "-o", "%C"] + (["-p", args.partition] if args.partition else []),
                    "counting the cluster's CPUs")
        total = sum(int(line.split("/")[3]) for line in out.split() if line.count("/") == 3)
    except (BatchError, ValueError):
        return 1
    return max(1, total // max(1, args.cpus_per_task or 1))


def slurm_submit(wd, plan, args, indices):
    script = wd.p("slurm-task.sh")
    write_atomic(script, "#!/bin/sh\n# One segment per array task: SLURM_ARRAY_TASK_ID is its index.\n"
                 "exec %s\n" % " ".join(shlex.quote(c) for c in task_command(wd)))
    os.chmod(script, 0o755)
    spec = array_spec(indices)
    if args.max_parallel:
        spec += "%%%d" % args.max_parallel
    cmd = ["sbatch", "--parsable", "--array=" + spec, "--job-name=" + args.job_name,
           "--output=" + wd.p("logs", "seg-%5a.log"), "--open-mode=append",
           "--chdir=" + wd.path, "--requeue"]
    if args.partition:
        cmd.append("--partition=" + args.partition)
    if args.time:
        cmd.append("--time=" + args.time)
    if args.cpus_per_task:
        cmd.append("--cpus-per-task=%d" % args.cpus_per_task)
    for extra in args.sbatch_arg or []:
        cmd += shlex.split(extra)
    cmd.append(script)
    out = slurm(cmd, "submitting the segments")
    job = out.strip().split(";")[0]
    if not job.isdigit():
        raise BatchError("sbatch answered '%s', not a job id" % out.strip())
    with open(wd.p("jobs"), "a") as f:
        f.write(job + "\n")
    return job


def slurm_states(jobs):
    """{(job, array index): (state, exit code)} of every task of @jobs
    still known to the controller (squeue -t all shows finished ones until
    MinJobAge; no accounting daemon is needed)."""
    if not jobs:
        return {}
    out = slurm(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(jobs), "-o", "%F|%K|%T"],
                "asking Slurm about the segments")
    st = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[1].isdigit():
            st[(parts[0], int(parts[1]))] = parts[2]
    return st


def slurm_exit(job, i):
    try:
        out = slurm(["scontrol", "-o", "show", "job", "%s_%d" % (job, i)], "")
    except BatchError:
        return "?"
    for tok in out.split():
        if tok.startswith("ExitCode="):
            return tok[len("ExitCode="):]
    return "?"


def slurm_cancel(jobs):
    if jobs:
        subprocess.run(["scancel"] + list(jobs), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)


def run_slurm(wd, plan, args, todo):
    # Jobs of an earlier run of this plan that still run would redo the
    # segments this run submits: cancel them (their finished segments stay).
    old = []
    try:
        with open(wd.p("jobs")) as f:
            old = [j.strip() for j in f if j.strip()]
    except OSError:
        pass
    if old:
        live = {j for (j, _), s in slurm_states(old).items() if s not in TERMINAL_SLURM_STATES}
        if live:
            log("cancelling job(s) %s of an earlier run" % ", ".join(sorted(live)))
            slurm_cancel(live)
    tries = {i: 1 for i in todo}
    owner = {}
    job = slurm_submit(wd, plan, args, todo)
    log("submitted job %s: %d segment(s) as an array" % (job, len(todo)))
    for i in todo:
        owner[i] = job
    jobs = [job]
    failed = {}
    waiting = set(todo)
    gone_since = {}
    prog = Progress(wd, plan, args.quiet)
    try:
        while waiting:
            time.sleep(args.poll_seconds)
            st = slurm_states(sorted(set(owner[i] for i in waiting)))
            retry = []
            running = set()
            for i in sorted(waiting):
                if wd.done(plan, i):
                    waiting.discard(i)
                    continue
                state = st.get((owner[i], i))
                if state is None:
                    # Not listed: not yet (just submitted) or no more
                    # (purged); a few polls decide.
                    gone_since.setdefault(i, time.monotonic())
                    if time.monotonic() - gone_since[i] < 10:
                        continue
                    why = "no longer known to Slurm"
                elif state in TERMINAL_SLURM_STATES:
                    # The result may reach this node's view of the shared
                    # folder a moment after the task ended.
                    time.sleep(0.2)
                    if wd.done(plan, i):
                        waiting.discard(i)
                        continue
                    why = "%s, exit code %s" % (state, slurm_exit(owner[i], i))
                else:
                    gone_since.pop(i, None)
                    if state == "RUNNING":
                        running.add(i)
                    continue
                gone_since.pop(i, None)
                if tries[i] <= args.retries:
                    log("segment %d failed (%s, log %s); running it again" % (
                        i, why, wd.log_path(i)))
                    retry.append(i)
                else:
                    failed[i] = why
                    waiting.discard(i)
            if failed:
                # A segment that failed for good fails the job: the others are
                # cancelled (what finished stays for a rerun).
                slurm_cancel(jobs)
                break
            if retry:
                for i in retry:
                    tries[i] += 1
                job = slurm_submit(wd, plan, args, retry)
                log("submitted job %s for segment(s) %s" % (job, array_spec(retry)))
                jobs.append(job)
                for i in retry:
                    owner[i] = job
            prog.show(set(wd.finished(plan)), running)
    except Stop:
        slurm_cancel(jobs)
        raise
    prog.show(set(wd.finished(plan)), set(), force=True)
    return failed


# ---- command line --------------------------------------------------------

def add_plan_options(p):
    p.add_argument("input", help="the input media file (on storage every task sees)")
    p.add_argument("output", help="the output file")
    p.add_argument("--pipeline", required=True,
                   help="the chain of elements, gst-launch-1.0 syntax: 'diffusionsr scale=2'")
    p.add_argument("--encoder", default=None,
                   help="encoder and muxer for the output, gst-launch-1.0 syntax (default: "
                   "'%s' for video, '%s' for audio)" % (DEFAULT_VIDEO_ENCODER, DEFAULT_AUDIO_ENCODER))
    p.add_argument("--segment-seconds", type=float, default=None,
                   help="segment length (default: the duration over twice the workers, "
                   "at least %g s)" % MIN_AUTO_SEGMENT_S)
    p.add_argument("--warmup-seconds", default=None,
                   help="start each segment this early and drop the result, for recurrent "
                   "elements; 'all': from the stream's start (default: '%s' for audio, "
                   "0 for video)" % AUDIO_WARMUP)
    p.add_argument("--join", choices=("auto", "copy", "reencode"), default="auto",
                   help="copy: re-mux the segments' encoded streams (video with a muxer); "
                   "reencode: keep segments raw and encode once (audio); auto picks")
    p.add_argument("--media", choices=("video", "audio"), default=None,
                   help="which stream of the input the chain takes (default: from the chain)")
    p.add_argument("--workdir", default=None,
                   help="folder of the segments, logs and plan (default: OUTPUT.parts); "
                   "it must be on storage every task sees")
    p.add_argument("--fresh", action="store_true",
                   help="drop the segments of another job found in the work folder")


def main(argv):
    Gst.init(None)
    cmds = ("run", "plan", "task", "join")
    if not argv or argv[0] not in cmds + ("-h", "--help"):
        argv = ["run"] + argv
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="plan, run every segment, wait, join (the default)")
    add_plan_options(r)
    r.add_argument("--engine", choices=("local", "slurm"), default="local")
    r.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="local: processes at once (default: the cores)")
    r.add_argument("--retries", type=int, default=2,
                   help="runs of a failed segment again before giving up (default 2)")
    r.add_argument("--partition", help="slurm: sbatch --partition")
    r.add_argument("--time", help="slurm: sbatch --time, per task")
    r.add_argument("--cpus-per-task", type=int, help="slurm: sbatch --cpus-per-task")
    r.add_argument("--max-parallel", type=int, help="slurm: tasks at once (--array=...%%N)")
    r.add_argument("--job-name", default=PROG, help="slurm: the job's name")
    r.add_argument("--sbatch-arg", action="append",
                   help="slurm: more sbatch options, e.g. --sbatch-arg='--mem=4G' (repeatable)")
    r.add_argument("--poll-seconds", type=float, default=1.0, help="slurm: squeue poll period")
    r.add_argument("--keep-workdir", action="store_true", help="keep the segments after the join")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p = sub.add_parser("plan", help="only write the plan into --workdir (then 'task', 'join')")
    add_plan_options(p)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="workers the default segment length is chosen for")
    t = sub.add_parser("task", help="run one segment of a plan")
    t.add_argument("--workdir", required=True)
    t.add_argument("--index", type=int, default=None,
                   help="segment index (default: $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX)")
    j = sub.add_parser("join", help="join the finished segments of a plan")
    j.add_argument("--workdir", required=True)
    j.add_argument("--output", default=None, help="another output than the plan's")
    args = ap.parse_args(argv)

    try:
        if args.cmd == "task":
            idx = args.index
            if idx is None:
                for var in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"):
                    if os.environ.get(var, "").isdigit():
                        idx = int(os.environ[var])
                        break
            if idx is None:
                raise BatchError("no --index, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX")
            wd = Workdir(args.workdir)
            run_task(wd, wd.load(), idx)
            return 0
        if args.cmd == "join":
            wd = Workdir(args.workdir)
            out = join_segments(wd, wd.load(), args.output)
            log("wrote %s" % out)
            return 0
        if args.workdir is None:
            args.workdir = os.path.abspath(args.output) + ".parts"
        if args.cmd == "plan":
            wd, plan, reused = plan_job(args, args.workers)
            n = len(plan["segments"])
            print("%d segments of %.3f s in %s%s" % (n, plan["segment_seconds"], wd.path,
                                                     " (the plan there already)" if reused else ""))
            return 0

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        workers = args.jobs if args.engine == "local" else slurm_workers(args)
        t_start = time.monotonic()
        wd, plan, reused = plan_job(args, workers)
        n = len(plan["segments"])
        done = wd.finished(plan)
        todo = [s["index"] for s in plan["segments"] if s["index"] not in done]
        log("%s: %d segments of %.3g s (%s, join: %s)%s" % (
            plan["input"], n, plan["segment_seconds"], plan["media"], plan["join"],
            "; %d already done, resuming" % len(done) if reused else ""))
        failed = {}
        if todo:
            if args.engine == "local":
                failed = run_local(wd, plan, args, todo)
            else:
                failed = run_slurm(wd, plan, args, todo)
        if failed:
            raise BatchError(fail_report(wd, plan, failed))
        out = join_segments(wd, plan)
        log("wrote %s (%d segments, %.1f s)" % (out, n, time.monotonic() - t_start))
        if not args.keep_workdir:
            clear_workdir(wd)
            for d in ("logs", "progress"):
                try:
                    os.rmdir(wd.p(d))
                except OSError:
                    pass
            try:
                os.rmdir(wd.path)
            except OSError:
                pass
        return 0
    except Stop as e:
        log("stopped by signal %d; the same command resumes where this run stopped"
            % e.args[0])
        return 128 + e.args[0]
    except BatchError as e:
        log(str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
