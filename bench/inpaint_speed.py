#!/usr/bin/python3
"""diffusioninpaint speed at default settings, with ONNX Runtime on the same network.

1. Engine: 1280x720 RGB frames (videotestsrc, scrolling, so that no box's fill can be reused
   from the frame before) with a static 160x90 logo mask near the top
   right corner (mask-file, a PGM) through the `diffusioninpaint` element of build/plugins
   (model-file=M, the model's default steps) into fakesink, n-threads 1 and 2; a frame's time
   is the time between two frames leaving the element's src pad (an aggregator queues its
   input, so the time from the sink pad would count the wait in the queue; upstream is always
   ahead, so the interval is the element's whole work per frame: mask, boxes, distances,
   every U-Net step, DDIM updates, blending).  The element's stats
   confirm the box it diffused.
2. ONNX Runtime: the same UNet2DModel at that box's size ([1, 7, h, w]), `steps` session.run
   calls per frame at the model's DDIM timesteps and nothing else, intraOpNumThreads 1 and 2.
Engine and ORT take turns for --rounds rounds; the reported ratio is the median of the rounds'
ratios.  Background training is paused during the timing runs (bench/speedkit.py).

Run from the repository root after `meson compile -C build` and
`(cd bench && npm install --ignore-scripts)`:

    /usr/bin/python3 bench/inpaint_speed.py --model models/inpaint/diffusioninpaint.safetensors

Writes bench/out/inpaint_speed/results.md and results.json.

--square S,B (e.g. 512,128) times instead, without ORT, a SxS frame with a BxB box mask in its
centre at the element's defaults and with each --props setting: a scrolling picture (every
frame runs) and a still one (one frame repeated by imagefreeze: the box is reused from the frame before: a static logo on a still
scene costs one run), n-threads 1 and 2; seconds per frame, median of --rounds rounds of the
median of --frames frames.  Writes results-square.md and results-square.json.
"""

import argparse
import json
import os
import shlex
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "common"))
sys.path.insert(0, os.path.join(ROOT, "models", "inpaint"))

import speedkit as S  # noqa: E402
import sr_quality as Q  # noqa: E402

W, H = 1280, 720
LOGO = (1080, 30, 160, 90)            # x, y, w, h of the mask


def write_mask(path):
    x0, y0, w, h = LOGO
    rows = bytearray(W * H)
    for y in range(y0, y0 + h):
        rows[y * W + x0:y * W + x0 + w] = b"\xff" * w
    with open(path, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (W, H) + bytes(rows))


def box_of_logo(multiple):
    """The box engine/ge-inpaint.h diffuses for the logo (models/inpaint/regions.py)."""
    import numpy as np
    import regions
    mask = np.zeros((H, W), np.uint8)
    x0, y0, w, h = LOGO
    mask[y0:y0 + h, x0:x0 + w] = 1
    (bx0, by0, bx1, by1), = regions.boxes_of(mask, multiple, 4)
    return bx1 - bx0, by1 - by0


def square(args, command):
    """Seconds per SxS frame with a BxB box mask, scrolling and still (see the docstring)."""
    import numpy as np
    size, box = (int(v) for v in args.square.split(","))
    os.makedirs(args.out, exist_ok=True)
    mask = os.path.join(args.out, f"box-{size}-{box}.pgm")
    m = np.zeros((size, size), np.uint8)
    o = (size - box) // 2
    m[o:o + box, o:o + box] = 255
    with open(mask, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (size, size) + m.tobytes())
    threads = [int(t) for t in args.threads.split(",")]
    settings = [("defaults", "")] + [(p, p) for p in args.props]
    res = {}
    for rnd in range(args.rounds):
        for name, props in settings:
            for scene, speed in (("scrolling", 4), ("still", 0)):
                for n in threads:
                    # still: one frame repeated (imagefreeze), so that every box's bytes repeat
                    src = (f"videotestsrc num-buffers={args.warmup + args.frames} pattern=smpte "
                           f"horizontal-speed={speed}" if speed else
                           f"videotestsrc num-buffers=1 pattern=smpte ! imagefreeze "
                           f"num-buffers={args.warmup + args.frames}")
                    desc = (f"{src} ! video/x-raw,format=RGB,width={size},height={size},"
                            f"framerate=30/1 ! diffusioninpaint name=ip "
                            f"model-file={shlex.quote(os.path.abspath(args.model))} mask-file={shlex.quote(mask)} "
                            f"n-threads={n} {props} ! fakesink sync=false")
                    with S.TrainingPaused(not args.no_pause, 600):
                        t = S.time_element(desc, "ip", args.warmup, args.frames, interval=True)
                    r = res.setdefault(f"{name}|{scene}|{n}", {"ms": [], "stats": ""})
                    r["ms"].append(t["median_ms"])
                    r["stats"] = t["stats"]
                    print(f"round {rnd + 1}: {name}, {scene}, {n} thr: {t['median_ms']:.1f} ms/frame", flush=True)
    md = ["# diffusioninpaint speed, square frame", "", "Command line (from the repository root):", "", "```sh",
          command, "```", "",
          f"Model `{Q.rel(args.model)}`; frame {size}x{size} (videotestsrc smpte, scrolling 4 px a frame, or "
          f"one frame repeated by imagefreeze) with a {box}x{box} box mask in its centre; seconds per frame: the median over "
          f"{args.rounds} rounds of the median of {args.frames} frames after {args.warmup} warm-up frames "
          "(time between two output frames).", "",
          "| element settings | scene | threads | s/frame (median of rounds) | rounds | reused boxes (last frame) |",
          "|---|---|---:|---:|---|---|"]
    for key, r in res.items():
        name, scene, n = key.split("|")
        reused = r["stats"].split("reused-boxes=(guint64)")[1].split(",")[0] if "reused-boxes" in r["stats"] else "?"
        md.append(f"| {name} | {scene} | {n} | {statistics.median(r['ms']) / 1000:.3f} | "
                  + ", ".join(f"{v / 1000:.3f}" for v in r["ms"]) + f" | {reused} |")
    md += ["", "Stats of the last run: `" + next(iter(res.values()))["stats"] + "`", ""]
    with open(os.path.join(args.out, "results-square.json"), "w") as f:
        json.dump({"command": command, "results": res}, f, indent=1)
    with open(os.path.join(args.out, "results-square.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


def main():
    ap = argparse.ArgumentParser(description="diffusioninpaint speed (engine vs ONNX Runtime)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--frames", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-pause", action="store_true")
    ap.add_argument("--square", default="", help="S,B: a SxS frame with a BxB box mask, no ORT")
    ap.add_argument("--props", action="append", default=[], help="with --square: element settings to compare")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "inpaint_speed"))
    args = ap.parse_args()

    if args.square:
        return square(args, "/usr/bin/python3 " + shlex.join([Q.rel(sys.argv[0])] + sys.argv[1:]))
    import torch
    import diffusers_torch as dt
    import trainkit
    torch.set_num_threads(2)
    command = "/usr/bin/python3 " + shlex.join([Q.rel(sys.argv[0])] + sys.argv[1:])
    threads = [int(t) for t in args.threads.split(",")]
    os.makedirs(args.out, exist_ok=True)
    mask = os.path.join(args.out, "logo-mask.pgm")
    write_mask(mask)

    net, meta = dt.load_file(args.model)
    cfg = json.loads(meta["config"])
    sched = json.loads(meta["scheduler"])
    steps = int(json.loads(meta["task"])["num_inference_steps"])
    bw, bh = box_of_logo(2 ** (len(cfg["block_out_channels"]) - 1))
    g = torch.Generator().manual_seed(0)
    x = torch.randn([1, 7, bh, bw], generator=g)
    x[:, 3:4] = (torch.rand(1, 1, bh, bw, generator=g) < 0.3).float()      # a mask
    x[:, 4:] = (torch.rand(1, 3, bh, bw, generator=g) * 2 - 1) * (1 - x[:, 3:4])
    ort_cfg = S.export_unet_onnx(net, x, trainkit.ddim_timesteps(sched, steps), args.out, "inpaint_unet")

    rounds = []
    for rnd in range(args.rounds):
        one = {"engine": {}, "ort": None}
        for n in threads:
            # a scrolling picture: every frame's box differs, so no fill is reused
            desc = (f"videotestsrc num-buffers={args.warmup + args.frames} pattern=smpte horizontal-speed=4 ! "
                    f"video/x-raw,format=RGB,width={W},height={H},framerate=30/1 ! diffusioninpaint name=ip "
                    f"model-file={shlex.quote(os.path.abspath(args.model))} mask-file={shlex.quote(mask)} "
                    f"n-threads={n} ! fakesink sync=false")
            with S.TrainingPaused(not args.no_pause, 600):
                one["engine"][n] = S.time_element(desc, "ip", args.warmup, args.frames, interval=True)
        with S.TrainingPaused(not args.no_pause, 600):
            one["ort"] = S.run_ort(ort_cfg, args.out, threads, args.warmup, args.frames)
        rounds.append(one)
        for n in threads:
            e, o = one["engine"][n]["median_ms"], one["ort"]["threads"][str(n)]["median_ms"]
            print(f"round {rnd + 1}: {n} thr: engine {e:.1f} ms/frame, ORT {o:.1f}: {e / o:.2f}", flush=True)

    stats = rounds[-1]["engine"][threads[0]]["stats"]
    md = ["# diffusioninpaint speed", "", "Command line (from the repository root):", "", "```sh", command, "```", "",
          f"Model `{Q.rel(args.model)}` ({ort_cfg['params']} parameters, default {steps} steps); frame "
          f"{W}x{H} with a {LOGO[2]}x{LOGO[3]} mask at ({LOGO[0]}, {LOGO[1]}): the element diffuses a "
          f"{bw}x{bh} box (stats: `{stats}`).  {args.rounds} rounds, each the engine then ORT, each the "
          f"median of {args.frames} frames after {args.warmup} warm-up frames.  ORT: onnxruntime-node "
          f"{rounds[-1]['ort']['onnxruntime_node']}, {steps} x session.run of the same U-Net on "
          f"[1, 7, {bh}, {bw}] per frame and nothing else; max |ORT - torch| "
          f"{rounds[-1]['ort']['threads'][str(threads[0])]['max_abs_diff_vs_torch']:.2e}.", "",
          "| threads | engine ms/frame (median of rounds) | ORT ms/frame | engine / ORT per round | "
          "engine / ORT (median) |", "|---:|---:|---:|---|---:|"]
    ratios = {}
    for n in threads:
        es = [r["engine"][n]["median_ms"] for r in rounds]
        os_ = [r["ort"]["threads"][str(n)]["median_ms"] for r in rounds]
        rr = [e / o for e, o in zip(es, os_)]
        ratios[n] = statistics.median(rr)
        md.append(f"| {n} | {statistics.median(es):.1f} | {statistics.median(os_):.1f} | "
                  + ", ".join(f"{r:.2f}" for r in rr) + f" | {ratios[n]:.2f} |")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"command": command, "box": [bw, bh], "rounds": rounds, "ratio_engine_over_ort": ratios}, f,
                  indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
