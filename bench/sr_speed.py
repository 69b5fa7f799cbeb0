#!/usr/bin/python3
"""diffusionsr speed and memory at default settings, with ONNX Runtime on the same network.

1. Engine: a 640x360 RGB frame (videotestsrc) upscaled by the `diffusionsr` element of
   build/plugins (model-file=M, the model's default steps, no tiling at this size) into
   fakesink, n-threads 1 and 2.  Each frame's time is taken between pad probes on the element's
   sink and src pads (the whole transform: bicubic, noise, every U-Net step, DDIM updates,
   conversion); the median over --frames frames after --warmup frames is reported, with the
   element's own `stats` (mean-ms, steps in use) as a cross-check.
2. ONNX Runtime: the same UNet2DModel (weights and config read from M) exported with
   torch.onnx.export (opset 14, inputs sample [1, 3*s*s+3, 360, 640] and timestep int64 [1]),
   timed in node (npm onnxruntime-node in bench/node_modules) as `steps` session.run calls at the
   model's trailing DDIM timesteps per frame and nothing else, intraOpNumThreads 1 and 2;
   its output is checked against PyTorch's first.  Reported: engine / ORT per thread count.
   Engine and ORT take turns for --rounds rounds (default 5); the ratio reported is the median
   of the rounds' ratios.
3. Memory: max RSS (/usr/bin/time -v) of gst-launch-1.0 upscaling one 1920x1080 PNG (made from
   the largest validation photo) to 3840x2160 with the element's automatic tiling (tiles of 256
   input pixels above 512x512) into fakesink; target at most 1.5 GB.

The timing runs (1, 2) pause the background training processes for their duration only
(bench/speedkit.py); --no-pause leaves them alone.

Run from the repository root after `meson compile -C build` and
`(cd bench && npm install --ignore-scripts)`:

    /usr/bin/python3 bench/sr_speed.py --model models/sr/diffusionsr-x2.safetensors

Writes bench/out/sr_speed/results.md and results.json.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "sr"))
sys.path.insert(0, os.path.join(ROOT, "models", "common"))

import speedkit as S  # noqa: E402
import sr_quality as Q  # noqa: E402

W, H = 640, 360
MEM_LIMIT_BYTES = 1.5e9


# ----------------------------------------------------------------------------------------------
# the two sides
# ----------------------------------------------------------------------------------------------


def run_engine(model, scale, threads, warmup, frames):
    desc = (f"videotestsrc num-buffers={warmup + frames} pattern=smpte ! video/x-raw,format=RGB,width={W},"
            f"height={H},framerate=30/1 ! diffusionsr name=sr model-file={shlex.quote(os.path.abspath(model))} "
            f"scale={scale} n-threads={threads} ! fakesink sync=false")
    return S.time_element(desc, "sr", warmup, frames)


def export_onnx(model, out_dir):
    """-> (onnx path, the node script's config) for the SR U-Net of @model at 640x360."""
    import torch
    import diffusers_torch as dt
    import train as T
    net, meta = dt.load_file(model)
    cfg = json.loads(meta["config"])
    sched = json.loads(meta["scheduler"])
    task = json.loads(meta["task"])
    s, steps = int(task["scale"]), int(task["num_inference_steps"])
    g = torch.Generator().manual_seed(0)
    x = torch.randn([1, cfg["in_channels"], H, W], generator=g)
    x[:, -3:] = torch.rand(1, 3, H, W, generator=g) * 2 - 1  # the LR image channels, in [-1, 1]
    c = S.export_unet_onnx(net, x, T.ddim_timesteps(sched, steps), out_dir, "sr_unet")
    return c["model"], dict(c, scale=s, steps=steps)


# ----------------------------------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------------------------------


def make_1080p(path, manifest):
    """A 1920x1080 PNG from the largest validation photo (scaled to cover, centre-cropped)."""
    from PIL import Image
    best = max(Q.val_photos(manifest), key=lambda e: (lambda im: im.size[0] * im.size[1])(Image.open(e[1])))
    im = Image.open(best[1]).convert("RGB")
    k = max(1920 / im.size[0], 1080 / im.size[1])
    im = im.resize((max(1920, round(im.size[0] * k)), max(1080, round(im.size[1] * k))), Image.LANCZOS)
    x, y = (im.size[0] - 1920) // 2, (im.size[1] - 1080) // 2
    im.crop((x, y, x + 1920, y + 1080)).save(path)
    return best[0]


def max_rss(args):
    """Runs gst-launch-1.0 under /usr/bin/time -v: -> (max RSS bytes, wall s)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        cmd = ["/usr/bin/time", "-v", "-o", tf.name, "gst-launch-1.0", "-q"] + args
        t0 = time.time()
        r = subprocess.run(cmd, env=Q.gst_env(), capture_output=True, text=True)
        wall = time.time() - t0
        if r.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed:\n{r.stderr}")
        kb = [int(line.split(":")[1]) for line in open(tf.name) if "Maximum resident set size" in line][0]
    return kb * 1024, wall


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description="diffusionsr speed (engine vs ONNX Runtime) and peak memory")
    ap.add_argument("--model", help="diffusionsr model (.safetensors), x2 for the 1080p -> 2160p memory run")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--frames", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5, help="engine/ORT turns; the ratio is their median")
    ap.add_argument("--no-pause", action="store_true", help="do not pause the background training")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--manifest", default=Q.MANIFEST)
    ap.add_argument("--out", default=os.path.join(HERE, "out", "sr_speed"))
    args = ap.parse_args()
    if not args.model:
        ap.error("--model is required")

    import torch
    torch.set_num_threads(2)
    command = "/usr/bin/python3 " + shlex.join([Q.rel(sys.argv[0])] + sys.argv[1:])
    threads = [int(t) for t in args.threads.split(",")]
    scale, steps, _ = Q.model_info(args.model)
    os.makedirs(args.out, exist_ok=True)
    res = {"command": command, "model": Q.rel(args.model), "scale": scale, "steps": steps,
           "frame": f"{W}x{H} -> {W * scale}x{H * scale}", "warmup": args.warmup, "frames": args.frames,
           "cpu": next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?"),
           "cores": os.cpu_count(), "engine": {}, "ort": None}

    print("exporting the U-Net to ONNX ...", flush=True)
    _, ort_cfg = export_onnx(args.model, args.out)
    res["onnx"] = {k: (Q.rel(v) if isinstance(v, str) else v) for k, v in ort_cfg.items()}

    # Engine and ORT take turns, round after round: the machine's speed drifts by 10 % and more
    # over minutes (other jobs, memory state), so each round's ratio compares neighbours in
    # time and the reported ratio is the median over rounds.
    rounds = []
    for rnd in range(args.rounds):
        one = {"engine": {}, "ort": None}
        for n in threads:
            # per frame (warm-up + timed) at most a few minutes for any model this engine runs in real time
            with S.TrainingPaused(not args.no_pause, 600):
                one["engine"][n] = run_engine(args.model, scale, n, args.warmup, args.frames)
        with S.TrainingPaused(not args.no_pause, 600):
            one["ort"] = S.run_ort(ort_cfg, args.out, threads, args.warmup, args.frames)
        rounds.append(one)
        for n in threads:
            e, o = one["engine"][n], one["ort"]["threads"][str(n)]
            print(f"round {rnd + 1}: {n} thr: engine {e['median_ms']:.1f} ms/frame, ORT {o['median_ms']:.1f} "
                  f"({steps} forwards, max |ORT - torch| {o['max_abs_diff_vs_torch']:.2e}): "
                  f"{e['median_ms'] / o['median_ms']:.2f}", flush=True)
    res["rounds"] = rounds
    res["engine"], res["ort"] = rounds[-1]["engine"], rounds[-1]["ort"]

    if not args.no_memory:
        png = os.path.join(args.out, "frame-1080p.png")
        src = make_1080p(png, args.manifest)
        pipe = ["filesrc", f"location={png}", "!", "pngdec", "!", "videoconvert", "!",
                "video/x-raw,format=RGB"]
        base_rss, _ = max_rss(pipe + ["!", "fakesink"])
        rss, wall = max_rss(pipe + ["!", "diffusionsr", f"model-file={os.path.abspath(args.model)}",
                                    f"scale={scale}", "!", "fakesink"])
        res["memory"] = {"input": f"1920x1080 from {src}", "output": f"{1920 * scale}x{1080 * scale}",
                         "tiling": "automatic (tile-size 0: tiles of 256 input pixels above 512x512)",
                         "max_rss_bytes": rss, "max_rss_without_diffusionsr_bytes": base_rss,
                         "wall_s": wall, "limit_bytes": MEM_LIMIT_BYTES, "within_limit": rss <= MEM_LIMIT_BYTES}
        print(f"memory: max RSS {rss / 1e6:.0f} MB (pipeline without the element {base_rss / 1e6:.0f} MB), "
              f"{wall:.1f} s", flush=True)

    md = ["# diffusionsr speed and memory", "", "Command line (from the repository root):", "", "```sh",
          command, "```", "",
          f"Model `{res['model']}` (x{scale}, default {steps} steps, {ort_cfg['params']} parameters); "
          f"frame {res['frame']}; CPU {res['cpu']}, {res['cores']} cores; {args.rounds} rounds, each the "
          f"engine then ORT, each the median of {args.frames} frames after {args.warmup} warm-up frames.", "",
          "Engine: the `diffusionsr` element, whole frame time (bicubic, noise, U-Net steps, DDIM "
          f"updates, conversion) between its pads.  ORT: onnxruntime-node {res['ort']['onnxruntime_node']}, "
          f"{steps} x session.run of the same U-Net (opset 14) per frame and nothing else.", "",
          "| threads | engine ms/frame (median of rounds) | ORT ms/frame | engine / ORT per round | "
          "engine / ORT (median) |", "|---:|---:|---:|---|---:|"]
    for n in threads:
        es = [r["engine"][n]["median_ms"] for r in rounds]
        os_ = [r["ort"]["threads"][str(n)]["median_ms"] for r in rounds]
        ratios = [e / o for e, o in zip(es, os_)]
        res.setdefault("ratio_engine_over_ort", {})[n] = statistics.median(ratios)
        md.append(f"| {n} | {statistics.median(es):.1f} | {statistics.median(os_):.1f} | "
                  + ", ".join(f"{r:.2f}" for r in ratios) + f" | {statistics.median(ratios):.2f} |")
    md += ["", "ORT vs PyTorch on the same input: max abs diff "
           + ", ".join(f"{res['ort']['threads'][str(n)]['max_abs_diff_vs_torch']:.2e} ({n} thr)" for n in threads)
           + f" (output abs max {res['ort']['threads'][str(threads[0])]['ref_absmax']:.2f}).", "",
           "Element stats: " + "; ".join(f"{n} thr: `{res['engine'][n]['stats']}`" for n in threads), ""]
    if "memory" in res:
        m = res["memory"]
        md += ["## Peak memory", "",
               f"{m['input']} -> {m['output']}, {m['tiling']}, through gst-launch-1.0 into fakesink: "
               f"max RSS **{m['max_rss_bytes'] / 2 ** 20:.0f} MiB** ({m['max_rss_bytes'] / 1e9:.2f} GB; the same "
               f"pipeline without the element {m['max_rss_without_diffusionsr_bytes'] / 2 ** 20:.0f} MiB), "
               f"{m['wall_s']:.1f} s; target at most 1.5 GB: {'met' if m['within_limit'] else 'NOT met'}.", ""]
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"wrote {Q.rel(os.path.join(args.out, 'results.md'))} and results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
