#!/usr/bin/python3
"""What the speed benchmarks share (bench/sr_speed.py, bench/inpaint_speed.py):

- TrainingPaused: SIGSTOP the background training processes (the PIDs in _work/*/train.pid
  and _work/*/*/train.pid, and their children) for a timing run only, SIGCONT them right
  after, also on error or interruption (a detached watchdog resumes them should the
  benchmark die);
- time_element: runs a gst-launch description in a child process (python GStreamer bindings)
  and times each frame between pad probes on the sink and src pads of one element: the whole
  of its work per frame;
- export_onnx: any one-input network (the VAE's encoder and decoder) exported the same way;
- export_unet_onnx / run_ort: the same U-Net exported with torch.onnx.export (opset 14,
  inputs sample and int64 timestep), its output checked against PyTorch, and timed in node
  (npm onnxruntime-node in bench/node_modules) as one session.run per timestep of a frame
  and nothing else, intraOpNumThreads 1, 2, ....
- time_calls / summarize_ms: medians of in-process calls after warm-up calls;
  run_json: a child process whose last stdout line is JSON (a timing worker);
  peak_rss_bytes / reset_peak_rss: this process's peak RSS, and restarting it from the current
  RSS (so that a worker can report its forward's peak without the load's).
"""

import argparse
import glob
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import sr_quality as Q  # noqa: E402


# ----------------------------------------------------------------------------------------------
# pausing the background training for a timing run
# ----------------------------------------------------------------------------------------------


def _children(pid):
    out = []
    for f in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            out += [int(c) for c in open(f).read().split()]
        except OSError:
            pass
    return out


def training_pids():
    """The PIDs in _work/*/train.pid and _work/*/*/train.pid that are live training processes, and their descendants."""
    pids = []
    for f in sorted(glob.glob(os.path.join(ROOT, "_work", "*", "train.pid"))
                    + glob.glob(os.path.join(ROOT, "_work", "*", "*", "train.pid"))):
        try:
            pid = int(open(f).read().split()[0])
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if "train" not in cmd or pid == os.getpid():
            continue
        todo = [pid]
        while todo:
            p = todo.pop()
            if p not in pids:
                pids.append(p)
                todo += _children(p)
    return pids


class TrainingPaused:
    """with TrainingPaused(enabled): SIGSTOP the training processes, SIGCONT them on exit (always)."""

    def __init__(self, enabled, max_s):
        self.enabled, self.max_s, self.pids, self.watchdog = enabled, max_s, [], None

    def _cont(self, *_):
        for p in self.pids:
            try:
                os.kill(p, signal.SIGCONT)
            except OSError:
                pass

    def __enter__(self):
        if not self.enabled:
            return self
        self.pids = training_pids()
        if not self.pids:
            return self
        # the watchdog resumes them even if this process is killed outright
        self.watchdog = subprocess.Popen(
            ["sh", "-c", f"sleep {int(self.max_s)}; kill -CONT {' '.join(map(str, self.pids))} 2>/dev/null"],
            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        for p in self.pids:
            try:
                os.kill(p, signal.SIGSTOP)
            except OSError:
                pass
        print(f"  (training paused: pids {self.pids})", flush=True)
        return self

    def _on_signal(self, sig, frame):
        self._cont()
        raise KeyboardInterrupt(f"signal {sig}")

    def __exit__(self, *exc):
        if not self.pids:
            return False
        self._cont()
        for s, h in self.old.items():
            signal.signal(s, h)
        if self.watchdog is not None:
            try:
                os.killpg(self.watchdog.pid, signal.SIGTERM)
            except OSError:
                pass
            self.watchdog.wait()
        print(f"  (training resumed: pids {self.pids})", flush=True)
        return False



# ----------------------------------------------------------------------------------------------
# in-process timing, workers, peak memory
# ----------------------------------------------------------------------------------------------


def summarize_ms(ms):
    """{median_ms, min_ms, ms} of a list of times in ms."""
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "ms": [round(v, 2) for v in ms]}


def time_calls(fn, warmup, runs):
    """Calls fn() warmup times, then times runs calls: -> summarize_ms of those."""
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    return summarize_ms(ms)


def peak_rss_bytes():
    """This process's peak resident set size (getrusage ru_maxrss)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss():
    """Restarts the peak RSS from the current RSS (Linux: clear_refs 5); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_json(cmd, env=None, cwd=ROOT):
    """Runs @cmd (environment = ours updated with @env): -> the JSON of its last stdout line."""
    r = subprocess.run(cmd, cwd=cwd, env=dict(os.environ, **(env or {})), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# element timing (worker process: python GStreamer bindings)
# ----------------------------------------------------------------------------------------------


def _time_element_worker(desc, name, warmup, frames, interval):
    """Runs in a child process; prints one JSON line."""
    os.environ["GST_PLUGIN_PATH"] = Q.gst_env()["GST_PLUGIN_PATH"]
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    Gst.init(None)
    n = warmup + frames
    pipe = Gst.parse_launch(desc)
    el = pipe.get_by_name(name)
    t_in, t_out = [], []
    el.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER,
                                        lambda p, i: (t_in.append(time.perf_counter()), Gst.PadProbeReturn.OK)[1])
    el.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER,
                                       lambda p, i: (t_out.append(time.perf_counter()), Gst.PadProbeReturn.OK)[1])
    pipe.set_state(Gst.State.PLAYING)
    msg = pipe.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    if msg.type == Gst.MessageType.ERROR:
        err, dbg = msg.parse_error()
        pipe.set_state(Gst.State.NULL)
        raise SystemExit(f"pipeline error: {err.message} ({dbg})")
    stats = el.get_property("stats")
    pipe.set_state(Gst.State.NULL)
    if interval:    # the time between outputs: upstream is always ahead, so the element's work
        ms = [(b - a) * 1000.0 for a, b in zip(t_out, t_out[1:])]
        n -= 1
    else:
        ms = [(b - a) * 1000.0 for a, b in zip(t_in, t_out)]
    if len(ms) != n:
        raise SystemExit(f"{len(ms)} frames timed, expected {n}")
    print(json.dumps({"ms_all": ms, "ms_timed": ms[warmup:], "median_ms": statistics.median(ms[warmup:]),
                      "min_ms": min(ms[warmup:]), "stats": stats}))


def time_element(desc, name, warmup, frames, interval=False):
    """Times element @name of the pipeline @desc (which must produce warmup + frames buffers)
    in a child process: -> {median_ms, min_ms, ms_all, ms_timed, stats}.  A frame's time is
    from its arrival on the sink pad to its push on the src pad, or with @interval (elements
    that queue their input, such as aggregators) the time between two pushes on the src pad
    (the first of them after the warm-up frames)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--time-element", desc, "--name", name,
           "--warmup", str(warmup), "--frames", str(frames)] + (["--interval"] if interval else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"element timing failed: {desc}\n{r.stdout}\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# ONNX Runtime
# ----------------------------------------------------------------------------------------------


ORT_JS = r"""'use strict';
// Written by bench/speedkit.py: times `timesteps.length` forwards of the exported U-Net per frame
// (one forward of a network without a timestep input when cfg.timesteps is absent).
const fs = require('fs');
const ort = require('onnxruntime-node');
const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
function readF32(file) {
  const b = fs.readFileSync(file);
  const a = new ArrayBuffer(b.length);
  new Uint8Array(a).set(b);
  return new Float32Array(a);
}
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
(async () => {
  const sample = new ort.Tensor('float32', readF32(cfg.input), cfg.shape);
  const ref = readF32(cfg.reference);
  const out = { onnxruntime_node: require('onnxruntime-node/package.json').version, node: process.version, threads: {} };
  for (const n of cfg.threads) {
    const session = await ort.InferenceSession.create(cfg.model, {
      executionProviders: ['cpu'], intraOpNumThreads: n, interOpNumThreads: 1, graphOptimizationLevel: 'all',
    });
    const steps = cfg.timesteps || [null];
    const feeds = (t) => (t === null ? { sample }
      : { sample, timestep: new ort.Tensor('int64', BigInt64Array.from([BigInt(t)]), [1]) });
    // check against PyTorch (first timestep)
    const r = await session.run(feeds(steps[0]));
    const got = r[session.outputNames[0]].data;
    let maxDiff = 0, maxRef = 0;
    for (let i = 0; i < ref.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(got[i] - ref[i]));
      maxRef = Math.max(maxRef, Math.abs(ref[i]));
    }
    const frame = async () => {
      const t0 = process.hrtime.bigint();
      for (const t of steps) await session.run(feeds(t));
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    for (let i = 0; i < cfg.warmup; i++) await frame();
    const ms = [];
    for (let i = 0; i < cfg.frames; i++) ms.push(await frame());
    out.threads[n] = { median_ms: median(ms), min_ms: Math.min(...ms), ms, max_abs_diff_vs_torch: maxDiff, ref_absmax: maxRef };
    await session.release();
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""



def export_unet_onnx(net, x, timesteps, out_dir, name):
    """Exports the torch U-Net @net (UNet2DModel) for input @x [1, C, H, W] and checks ORT
    against PyTorch at timesteps[0] later: -> the node script's config (minus threads, warmup,
    frames)."""
    import numpy as np
    import torch

    class Wrap(torch.nn.Module):
        def __init__(self, u):
            super().__init__()
            self.u = u

        def forward(self, sample, timestep):
            return self.u(sample, timestep).sample

    t = torch.tensor([timesteps[0]], dtype=torch.int64)
    with torch.no_grad():
        ref = Wrap(net)(x, t)
    onnx_path = os.path.join(out_dir, f"{name}.onnx")
    torch.onnx.export(Wrap(net), (x, t), onnx_path, opset_version=14, input_names=["sample", "timestep"],
                      output_names=["out"], do_constant_folding=True)
    x.numpy().astype("<f4").tofile(os.path.join(out_dir, f"{name}-input.bin"))
    ref.numpy().astype("<f4").tofile(os.path.join(out_dir, f"{name}-torch_out.bin"))
    return {"model": onnx_path, "input": os.path.join(out_dir, f"{name}-input.bin"),
            "reference": os.path.join(out_dir, f"{name}-torch_out.bin"), "shape": list(x.shape),
            "timesteps": list(timesteps),
            "params": int(sum(int(np.prod(p.shape)) for p in net.state_dict().values()))}


def export_onnx(net, x, out_dir, name):
    """Exports the torch module @net (one input, one output) for input @x as out_dir/name.onnx
    with the input named "sample", for run_ort (one session.run per frame)."""
    import numpy as np
    import torch
    with torch.no_grad():
        ref = net(x)
    onnx_path = os.path.join(out_dir, f"{name}.onnx")
    torch.onnx.export(net, (x,), onnx_path, opset_version=14, input_names=["sample"], output_names=["out"],
                      do_constant_folding=True)
    x.numpy().astype("<f4").tofile(os.path.join(out_dir, f"{name}-input.bin"))
    ref.numpy().astype("<f4").tofile(os.path.join(out_dir, f"{name}-torch_out.bin"))
    return {"model": onnx_path, "input": os.path.join(out_dir, f"{name}-input.bin"),
            "reference": os.path.join(out_dir, f"{name}-torch_out.bin"), "shape": list(x.shape),
            "params": int(sum(int(np.prod(p.shape)) for p in net.state_dict().values()))}


def run_ort(cfg, out_dir, threads, warmup, frames):
    js = os.path.join(out_dir, "ort_unet.js")
    with open(js, "w") as f:
        f.write(ORT_JS)
    c = dict(cfg, threads=threads, warmup=warmup, frames=frames)
    cj = os.path.join(out_dir, "ort_config.json")
    with open(cj, "w") as f:
        json.dump(c, f)
    # the script lies under bench/, so require() finds bench/node_modules
    env = dict(os.environ, NODE_PATH=os.path.join(HERE, "node_modules"))
    r = subprocess.run(["node", js, cj], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"node {js} failed:\n{r.stdout}\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="element timing worker (see time_element)")
    ap.add_argument("--time-element", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--warmup", type=int, required=True)
    ap.add_argument("--frames", type=int, required=True)
    ap.add_argument("--interval", action="store_true")
    a = ap.parse_args()
    _time_element_worker(a.time_element, a.name, a.warmup, a.frames, a.interval)
