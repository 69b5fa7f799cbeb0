#!/usr/bin/python3
"""soak.py: every element of the plugin in a realistic pipeline for a long
time, watching for leaks, slow-downs and lost frames or samples.

    bench/soak.py --duration 3600                    # the record (one hour)
    bench/soak.py --duration 120 --check             # the test suite's version

One child process per element (all at once, bench/soak-child.c: C, so that
no interpreter's own memory moves the numbers), each looping a bundled
sample through its recipe's pipeline (README.md, pipelines/) for --duration
seconds:

    diffusionsr       building.webm        appsrc ! queue ! diffusionsr ! videoconvert ! I420 ! fakesink
    diffusioninpaint  building-logo.webm   ... ! diffusioninpaint mask-file=building-logo-mask.png ! ...
    diffusionimg2img  building.webm, grey  ... ! diffusionimg2img ! ...
    vaeencode         building.webm        ... ! vaeencode ! gdppay ! fakesink
    vaedecode         its latents          ... ! vaedecode ! videoconvert ! ...
    gansynth          noisy-speech.ogg     appsrc ! queue ! gansynth ! audioconvert ! S16 ! fakesink
    gansynth-dry      the same at strength=0, whose output must be its input, bit for bit

The clip is decoded once (the latents encoded once) and its frames (the
audio in 1024-sample buffers) pushed again and again with running
timestamps.  Pad probes on the element count what goes in and out and time
each frame; a thread samples the RSS, RssAnon and malloc's bytes in use
(mallinfo2) five times a second and writes one record a window (--window
seconds: the window's least RSS, its largest heap, frames, process CPU time,
the median frame time, the load average).  At the end the source sends EOS
and every frame and sample must have come out.

Per element, over the windows after --warmup:
  RSS growth, MB/h   the last window's RSS floor less the first's; the
                     least-squares slope of the floors against time
  heap growth, B/frame  malloc's bytes in use: growth, and its trend
                     against the frames (Theil-Sen: a median of slopes)
  drift              median per-frame time of the last quarter over the
                     first: CPU time per frame (the quarter's process CPU
                     time over its frames: what the element costs whatever
                     else runs) and wall time per frame (the median frame's
                     time; reported, it moves with the load)

--check fails on:
  * frames in != frames out, samples in != samples out, a dry sample that
    is not its input, an element error, no EOS;
  * the RSS, or the heap, growing at --max-rate (1 MB/h) or more by more
    than --leak-bound (512) bytes per post-warm-up frame (at most
    --growth-cap, 1 MiB); the heap rising by --leak-bound bytes per frame
    or more.  The RSS alone cannot see a small leak in two minutes: malloc
    first hands out the free memory it already holds (over a megabyte in
    the video elements), so the RSS stays flat for the first thousand
    frames of a 1 KiB leak; malloc's count of bytes in use grows by each
    leaked block at once.  Two minutes catch leaks per frame; a leak of
    1 MB/h (34 kB in two minutes) is what the one-hour record shows;
  * CPU time per frame drifting up by more than --max-drift (1.25; the
    test suite's two minutes 1.5: a quarter of them is about one loop of
    the clip for the slow elements, whose frames differ in cost).
--canary ELEMENT adds a child of ELEMENT that leaks 1 KiB per buffer (the
test suite's run: the slowest element, so the fewest frames), which must
fail the memory check and nothing else, or the run fails;
--leak-per-frame N makes every child leak N bytes per buffer.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SAMPLES = os.path.join(ROOT, "samples")
MODEL_DIRS = ["sr", "inpaint", "vae", "img2img", "gansynth"]

VIDEO_OUT = "videoconvert ! video/x-raw,format=I420"
AUDIO_RATE = 48000
AUDIO_CHUNK = 1024          # samples per buffer, as Vorbis decoders give

# name: (kind, sample, preparation after decodebin, element, after the element)
ELEMENTS = {
    "diffusionsr": ("video", "building.webm",
                    "videoconvert ! video/x-raw,format=RGB",
                    "diffusionsr scale=2", VIDEO_OUT),
    "diffusioninpaint": ("video", "building-logo.webm",
                         "videoconvert ! video/x-raw,format=RGB",
                         "diffusioninpaint mask-file=%s" % os.path.join(
                             SAMPLES, "building-logo-mask.png"), VIDEO_OUT),
    "diffusionimg2img": ("video", "building.webm",
                         "videoconvert ! video/x-raw,format=GRAY8 ! videoconvert "
                         "! video/x-raw,format=RGB",
                         "diffusionimg2img", VIDEO_OUT),
    "vaeencode": ("video", "building.webm",
                  "videoconvert ! video/x-raw,format=RGB",
                  "vaeencode", "gdppay"),
    "vaedecode": ("video", "building.webm",
                  "videoconvert ! video/x-raw,format=RGB ! vaeencode",
                  "vaedecode", VIDEO_OUT),
    "gansynth": ("audio", "noisy-speech.ogg",
                 "audioconvert ! audioresample ! audio/x-raw,format=F32LE,"
                 "layout=interleaved,rate=%d,channels=1" % AUDIO_RATE,
                 "gansynth", "audioconvert ! audio/x-raw,format=S16LE"),
    "gansynth-dry": ("audio", "noisy-speech.ogg",
                     "audioconvert ! audioresample ! audio/x-raw,format=F32LE,"
                     "layout=interleaved,rate=%d,channels=1" % AUDIO_RATE,
                     "gansynth strength=0", "audioconvert ! audio/x-raw,format=S16LE"),
}
# The harness alone (identity for the element), left out of the default run:
# what the loop, probes and sampler cost in memory and time.
HARNESS = {
    "identity-video": ("video", "building.webm", "videoconvert ! video/x-raw,format=RGB",
                       "identity", VIDEO_OUT),
    "identity-slow": ("video", "building.webm", "videoconvert ! video/x-raw,format=RGB",
                      "identity sleep-time=300000", VIDEO_OUT),
    "identity-audio": ("audio", "noisy-speech.ogg", ELEMENTS["gansynth"][2],
                       "identity", ELEMENTS["gansynth"][4]),
}
DEFAULT = list(ELEMENTS)
ELEMENTS.update(HARNESS)


# --canary ELEMENT: one more child of ELEMENT leaking CANARY_LEAK bytes a
# buffer, which must fail the memory check (and nothing else), or the run
# fails: the check shows on every run that it sees such a leak.
CANARY = "+leak"
CANARY_LEAK = 1024
MEMORY_FAIL = "memory grew"


def base(name):
    return name[:-len(CANARY)] if name.endswith(CANARY) else name


def environment(build):
    """The build's plugin and the default models, for the children."""
    env = dict(os.environ)
    env["GST_PLUGIN_PATH"] = os.path.join(build, "plugins")
    env.setdefault("GST_REGISTRY_1_0", os.path.join(build, "bench", "soak-registry.bin"))
    env.setdefault("GST_GENERATIVE_MODEL_PATH", os.pathsep.join(
        os.path.join(ROOT, "models", d) for d in MODEL_DIRS))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


# ---------------------------------------------------------------- parent

def lsq_slope(xs, ys):
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0


def theil_sen(xs, ys):
    """The median of the pairwise slopes: a trend that a few odd windows
    (a frame's buffers in flight, a one-off allocation) do not move."""
    slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i])
              for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]]
    return statistics.median(slopes) if slopes else 0.0


def cpu_per_frame(windows):
    frames = sum(w["frames"] for w in windows)
    return sum(w["cpu"] for w in windows) / frames if frames else None


def median_or_none(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def analyse(name, path, args):
    """The numbers of one element's report, and what fails."""
    windows, end, prep, grew = [], None, None, []
    try:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r.get("event") == "end":
                    end = r
                elif r.get("event") == "prepared":
                    prep = r
                elif r.get("event") == "smaps":
                    grew = r["grew_kb"]
                elif "t" in r:
                    windows.append(r)
    except (OSError, ValueError) as e:
        return {"element": name, "fail": ["no report (%s)" % e]}
    res = {"element": name, "fail": [], "smaps_grew_kb": grew}
    if prep is None or end is None:
        res["fail"].append("the child did not finish (no end record)")
        return res
    res.update({k: end[k] for k in ("frames_in", "frames_out", "samples_in",
                                    "samples_out", "seconds", "eos", "errors")})
    post = [w for w in windows if w["t"] > args.warmup]
    res["windows"] = len(post)
    if len(post) < 4:
        res["fail"].append("only %d windows after the warm-up" % len(post))
        return res
    first_out = post[0]["frames_out"] - post[0]["frames"]
    frames_post = post[-1]["frames_out"] - first_out
    res["frames_post"] = frames_post
    # RSS: the window floors
    res["rss_warm_mb"] = post[0]["rss_min"] / 1e6
    res["rss_end_mb"] = post[-1]["rss_min"] / 1e6
    growth = post[-1]["rss_min"] - post[0]["rss_min"]
    res["growth_kb"] = growth / 1e3
    res["slope_mb_h"] = lsq_slope([w["t"] for w in post],
                                  [w["rss_min"] for w in post]) * 3600 / 1e6
    res["bytes_per_frame"] = growth / frames_post if frames_post else None
    # malloc's bytes in use, the window peaks: exact where the RSS lags (a
    # small leak first fills the free memory malloc already holds)
    heap = [w["heap_max"] for w in post]
    res["heap_growth_kb"] = (heap[-1] - heap[0]) / 1e3
    res["heap_mb_h"] = theil_sen([w["t"] for w in post], heap) * 3600 / 1e6
    res["heap_per_frame"] = theil_sen([w["frames_out"] for w in post], heap)
    q = max(1, len(post) // 4)
    # a quarter's CPU time over its frames: slow elements finish a frame
    # in only some windows
    c1, c2 = cpu_per_frame(post[:q]), cpu_per_frame(post[-q:])
    w1 = median_or_none([w["frame_ms"] for w in post[:q]])
    w2 = median_or_none([w["frame_ms"] for w in post[-q:]])
    res.update({"cpu_ms_first": c1 and c1 * 1e3, "cpu_ms_last": c2 and c2 * 1e3,
                "cpu_drift": c2 / c1 if c1 and c2 else None,
                "wall_ms_first": w1, "wall_ms_last": w2,
                "wall_drift": w2 / w1 if w1 and w2 else None,
                "load": statistics.mean(w["load"] for w in post)})
    for k in ("compared", "mismatched", "first_mismatch", "unmatched_input"):
        if k in end:
            res[k] = end[k]

    f = res["fail"]
    if end["errors"]:
        f.append("errors: %s" % "; ".join(end["errors"]))
    if not end["eos"]:
        f.append("no EOS")
    if end["frames_in"] == 0:
        f.append("no frames")
    kind = ELEMENTS[base(name)][0]
    if kind == "video" and end["frames_in"] != end["frames_out"]:
        f.append("frames in %d, out %d" % (end["frames_in"], end["frames_out"]))
    if kind == "audio" and end["samples_in"] != end["samples_out"]:
        f.append("samples in %d, out %d" % (end["samples_in"], end["samples_out"]))
    if "mismatched" in end:
        if end["mismatched"] or end["compared"] != end["samples_in"]:
            f.append("dry output: %d of %d samples compared differ (first at %s), "
                     "%d of the input never came out" % (
                         end["mismatched"], end["compared"], end["first_mismatch"],
                         end["unmatched_input"]))
    bound = min(args.growth_cap, args.leak_bound * frames_post)
    res["growth_bound_kb"] = bound / 1e3
    if growth > bound and res["slope_mb_h"] >= args.max_rate:
        f.append(MEMORY_FAIL + ": RSS %.0f kB after the warm-up (%.0f B/frame over %d frames, "
                 "%.2f MB/h; bound %.0f kB)" % (growth / 1e3, res["bytes_per_frame"] or 0,
                                                frames_post, res["slope_mb_h"], bound / 1e3))
    if res["heap_per_frame"] >= args.leak_bound:
        f.append(MEMORY_FAIL + ": malloc'd bytes in use rise %.0f B/frame (%.0f kB over %d "
                 "frames)" % (res["heap_per_frame"], res["heap_growth_kb"], frames_post))
    elif heap[-1] - heap[0] > bound and res["heap_mb_h"] >= args.max_rate:
        f.append(MEMORY_FAIL + ": malloc'd bytes in use rise %.2f MB/h (%.0f kB)" % (
            res["heap_mb_h"], res["heap_growth_kb"]))
    if res["cpu_drift"] is not None and res["cpu_drift"] > args.max_drift:
        f.append("CPU time per frame drifted x%.2f (%.2f -> %.2f ms)" % (
            res["cpu_drift"], res["cpu_ms_first"], res["cpu_ms_last"]))
    return res


def fmt(v, spec):
    return "-" if v is None else spec % v


def table(results):
    head = ("| element | frames in / out | samples in / out | RSS warm / end MB "
            "| RSS growth kB | RSS MB/h | heap growth kB | heap B/frame "
            "| CPU ms/frame first, last (drift) "
            "| wall ms/frame first, last (drift) | load | result |")
    lines = [head, "|" + "---|" * 12]
    for r in results:
        audio = ELEMENTS[base(r["element"])][0] == "audio"
        lines.append("| %s | %s | %s | %s / %s | %s | %s | %s | %s | %s, %s (x%s) "
                     "| %s, %s (x%s) | %s | %s |" % (
            r["element"],
            "%s / %s" % (r.get("frames_in", "-"), r.get("frames_out", "-")),
            "%s / %s" % (r.get("samples_in"), r.get("samples_out")) if audio else "-",
            fmt(r.get("rss_warm_mb"), "%.1f"), fmt(r.get("rss_end_mb"), "%.1f"),
            fmt(r.get("growth_kb"), "%.0f"), fmt(r.get("slope_mb_h"), "%.2f"),
            fmt(r.get("heap_growth_kb"), "%.0f"), fmt(r.get("heap_per_frame"), "%.1f"),
            fmt(r.get("cpu_ms_first"), "%.1f"), fmt(r.get("cpu_ms_last"), "%.1f"),
            fmt(r.get("cpu_drift"), "%.2f"),
            fmt(r.get("wall_ms_first"), "%.1f"), fmt(r.get("wall_ms_last"), "%.1f"),
            fmt(r.get("wall_drift"), "%.2f"), fmt(r.get("load"), "%.1f"),
            "FAIL" if r["fail"] else "ok"))
    return "\n".join(lines)


def parent(args):
    build = os.path.abspath(args.build)
    if not os.path.isdir(os.path.join(build, "plugins")):
        raise SystemExit("soak: no %s/plugins: build first (meson setup build && ninja -C build)"
                         % build)
    env = environment(build)
    child = os.path.join(build, "bench", "soak-child")
    if not os.access(child, os.X_OK):
        raise SystemExit("soak: no %s: build first (ninja -C %s)" % (child, build))
    os.makedirs(os.path.dirname(env["GST_REGISTRY_1_0"]), exist_ok=True)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    names = args.elements.split(",") if args.elements else DEFAULT
    for n in names:
        if n not in ELEMENTS:
            raise SystemExit("soak: no element %s (%s)" % (n, ", ".join(ELEMENTS)))
    if args.canary:
        if args.canary not in ELEMENTS:
            raise SystemExit("soak: no element %s for the canary" % args.canary)
        names.append(args.canary + CANARY)
    # the registry once, before the children race to write it
    subprocess.run([sys.executable, "-c", "import gi; gi.require_version('Gst', '1.0'); "
                    "from gi.repository import Gst; Gst.init(None); "
                    "assert Gst.ElementFactory.find('diffusionsr'), 'no plugin'"],
                   env=env, check=True)
    print("soak: %s for %d s (warm-up %d s, windows %d s), reports in %s" % (
        ", ".join(names), args.duration, args.warmup, args.window, out), flush=True)
    t0 = time.monotonic()
    children = {}
    for n in names:
        kind, sample, prep, element, post = ELEMENTS[base(n)]
        if args.threads is not None and not element.startswith(("gansynth", "identity")):
            element += " n-threads=%d" % args.threads
        cmd = [child, "--sample", os.path.join(SAMPLES, sample), "--prep", prep,
               "--element", element, "--post", post,
               "--report", os.path.join(out, n + ".jsonl"),
               "--duration", str(args.duration), "--window", str(args.window),
               "--warmup", str(args.warmup), "--eos-timeout", str(args.eos_timeout),
               "--leak-per-frame", str(CANARY_LEAK if n.endswith(CANARY)
                                       else args.leak_per_frame)]
        if kind == "audio":
            cmd.append("--audio")
        if n == "gansynth-dry":
            cmd.append("--dry")
        log = open(os.path.join(out, n + ".log"), "w")
        children[n] = (subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    for n, (p, log) in children.items():
        p.wait()
        log.close()
    results = []
    for n in names:
        r = analyse(n, os.path.join(out, n + ".jsonl"), args)
        if children[n][0].returncode != 0:
            r["fail"].insert(0, "child exited with %d (see %s)" % (
                children[n][0].returncode, os.path.join(out, n + ".log")))
        if n.endswith(CANARY):
            # its leak must be seen, and nothing else go wrong
            leak = [f for f in r["fail"] if f.startswith(MEMORY_FAIL)]
            r["fail"] = [f for f in r["fail"] if not f.startswith(MEMORY_FAIL)]
            if not leak:
                r["fail"].append("the check missed a leak of %d B/frame" % CANARY_LEAK)
        results.append(r)
    summary = {"duration": args.duration, "warmup": args.warmup, "window": args.window,
               "leak_per_frame": args.leak_per_frame, "wall": time.monotonic() - t0,
               "results": results}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    text = table(results)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    failed = [r for r in results if r["fail"]]
    for r in failed:
        for why in r["fail"]:
            print("soak: %s: %s" % (r["element"], why))
    print("soak: %d of %d elements passed in %.0f s" % (
        len(results) - len(failed), len(results), time.monotonic() - t0))
    return 1 if (args.check and failed) else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=3600, help="seconds of streaming per element")
    ap.add_argument("--warmup", type=int, help="seconds left out of the fits "
                    "(default: a quarter of the duration, at most 300)")
    ap.add_argument("--window", type=int, help="seconds per record (default: 2, 10 from 10 min)")
    ap.add_argument("--elements", help="comma-separated subset of: " + ", ".join(ELEMENTS)
                    + " (default: all but the identity ones)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="the meson build dir")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "soak"), help="reports go here")
    ap.add_argument("--threads", type=int, help="n-threads of the video elements "
                    "(default: the elements' own, all cores)")
    ap.add_argument("--check", action="store_true", help="exit 1 when an element fails")
    ap.add_argument("--leak-bound", type=float, default=512.0,
                    help="bytes per post-warm-up frame the RSS may grow (default 512)")
    ap.add_argument("--growth-cap", type=float, default=1 << 20,
                    help="the growth allowed whatever the frame count, when the rate "
                    "is over --max-rate (default 1 MiB)")
    ap.add_argument("--max-rate", type=float, default=1.0,
                    help="MB/h the memory may grow after the warm-up (default 1)")
    ap.add_argument("--max-drift", type=float, default=1.25,
                    help="largest ratio of CPU time per frame, last quarter over first")
    ap.add_argument("--leak-per-frame", type=int,
                    default=int(os.environ.get("GE_SOAK_LEAK_PER_FRAME", "0")),
                    help="bytes each child leaks per buffer, to test the check "
                    "(also GE_SOAK_LEAK_PER_FRAME)")
    ap.add_argument("--canary", metavar="ELEMENT",
                    help="also run ELEMENT leaking %d B a buffer, which the check must catch"
                    % CANARY_LEAK)
    ap.add_argument("--eos-timeout", type=int, default=120,
                    help="seconds to wait for the EOS after the end")
    args = ap.parse_args()
    if args.warmup is None:
        args.warmup = min(300, args.duration // 4)
    if args.window is None:
        args.window = 10 if args.duration >= 600 else 2
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
