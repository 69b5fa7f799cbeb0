#!/usr/bin/python3
"""gst-generative-batch: speed-up of --engine local --jobs N over one process,
and what each segment costs beside its frames.

    /usr/bin/python3 bench/batch_speed.py [--build build] [--jobs 2] [--seconds 60]

Makes a clip (videotestsrc, 160x96, 10 fps, VP8 in WebM) in bench/out/, then
times, with the installed diffusionsr x2 model and the tool's default
encoder (VP8 in WebM):

  one process   gst-launch-1.0 filesrc ! decodebin ! videoconvert ! diffusionsr
                ! vp8enc ! webmmux ! filesink
  the tool      --engine local --jobs N, default segment length
  overhead      --jobs 1 with 5 s segments against --jobs 1 with one segment:
                the difference over the extra segments is the cost of a
                segment (process start-up, model load, seek, encoder
                start); the tasks' logs split it further.

Runs are sequential; the machine may be shared, so the numbers of one run
are compared with each other only.
"""
import argparse
import glob
import os
import re
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENC = "videoconvert ! vp8enc deadline=1 target-bitrate=2000000 ! webmmux"


CPU = {}


def run(cmd, env):
    """Wall seconds; the CPU seconds (user + system of every process the
    command started) go to CPU[wall]: on a shared machine they are the
    steadier measure."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[wall] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args()
    out = os.path.join(ROOT, "bench", "out", "batch")
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ)
    env.update(GST_PLUGIN_PATH=os.path.join(args.build, "plugins"),
               GST_REGISTRY_1_0=os.path.join(args.build, "gst-registry.bin"),
               GST_GENERATIVE_MODEL_DIR=os.path.join(ROOT, "models", "sr"),
               OPENBLAS_NUM_THREADS="1")
    tool = os.path.join(args.build, "tools", "gst-generative-batch")
    clip = os.path.join(out, "clip-%ds.webm" % args.seconds)
    if not os.path.exists(clip):
        subprocess.run(
            ["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=%d" % (10 * args.seconds),
             "pattern=ball", "!", "video/x-raw,width=160,height=96,framerate=10/1", "!",
             "videoconvert", "!", "vp8enc", "deadline=1", "target-bitrate=500000", "!",
             "webmmux", "!", "filesink", "location=" + clip], check=True)
    frames = 10 * args.seconds

    t1 = run(["gst-launch-1.0", "-q", "filesrc", "location=" + clip, "!", "decodebin", "!",
              "videoconvert", "!", "diffusionsr", "!"] + ENC.split() +
             ["!", "filesink", "location=" + os.path.join(out, "one.webm")], env)
    print("one process: %.1f s (%.2f fps), CPU %.1f s" % (t1, frames / t1, CPU[t1]))

    def tool_run(name, *extra):
        wd = os.path.join(out, name + ".parts")
        subprocess.run(["rm", "-rf", wd], check=True)
        t = run([tool, clip, os.path.join(out, name + ".webm"), "--pipeline", "diffusionsr",
                 "--workdir", wd, "--keep-workdir", "-q"] + list(extra), env)
        costs = []
        for log in sorted(glob.glob(os.path.join(wd, "logs", "*.log"))):
            m = re.search(r"start-up ([\d.]+) s, chain setup and model load ([\d.]+) s, "
                          r"preroll and seek ([\d.]+) s", open(log).read())
            if m:
                costs.append([float(x) for x in m.groups()])
        n = len(costs)
        mean = [sum(c[i] for c in costs) / n for i in range(3)] if n else [0, 0, 0]
        return t, n, mean

    tn, nn, mean = tool_run("jobs%d" % args.jobs, "--jobs", str(args.jobs))
    print("--jobs %d: %.1f s (%.2f fps), %d segments: %.2fx one process; CPU %.1f s"
          % (args.jobs, tn, frames / tn, nn, t1 / tn, CPU[tn]))
    print("  per segment (task logs, mean): start-up %.2f s, chain setup and model load "
          "%.2f s, preroll and seek %.2f s" % tuple(mean))
    ta, na, _ = tool_run("one-segment", "--jobs", "1", "--segment-seconds", str(args.seconds * 2))
    tb, nb, mb = tool_run("5s-segments", "--jobs", "1", "--segment-seconds", "5")
    print("--jobs 1, %d segment: %.1f s, CPU %.1f s; --jobs 1, %d segments of 5 s: %.1f s, "
          "CPU %.1f s" % (na, ta, CPU[ta], nb, tb, CPU[tb]))
    print("  cost of a segment: %.2f s wall, %.2f s CPU (differences over the %d extra "
          "segments); the tool around one process (plan, join): %.1f s wall, %.1f s CPU"
          % ((tb - ta) / (nb - na), (CPU[tb] - CPU[ta]) / (nb - na), nb - na, ta - t1,
             CPU[ta] - CPU[t1]))
    print("  task logs of the 5 s segments, mean: start-up %.2f s, chain setup and model load "
          "%.2f s, preroll and seek %.2f s" % tuple(mb))


if __name__ == "__main__":
    sys.exit(main())
