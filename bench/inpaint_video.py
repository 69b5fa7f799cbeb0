#!/usr/bin/python3
"""diffusioninpaint on video: is the fill steady, and does it move no more than the scene?

On the bundled clip samples/building.webm (2 s, 240x136, a slow pan over opencv-doc's
building.png, a validation photo) with the static mask samples/building-logo-mask.png (the
station logo of samples/building-logo.webm), through the element of build/plugins:

  moving scene   the clip as it is: per pair of consecutive frames, the mean absolute change
                 (RGB, 0-255) inside the mask of the element's output, beside the same of the
                 clip itself (the scene's own motion there, which a fill that follows the scene
                 would show too); the fill should not change more than the scene does;
  static scene   the clip's first frame repeated (imagefreeze, 12 frames): every output frame
                 must be the first one, byte for byte, and the element's stats must report the
                 box reused from the frame before (the box-reuse cache: one run for the clip).

The element runs with its defaults plus each --props set (e.g. "exemplar-guidance=0"), so
the smooth fill can be compared with the textured one.  Run from the repository root after
`meson compile -C build`:

    /usr/bin/python3 bench/inpaint_video.py --props exemplar-guidance=0

Writes bench/out/inpaint_video/results.md and results.json.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import sr_quality as Q  # noqa: E402

W, H = 240, 136


def frames(path, n=0):
    data = open(path, "rb").read()
    f = np.frombuffer(data, np.uint8).reshape(-1, H, W, 3)
    return f[:n] if n else f


MODEL = os.path.join(ROOT, "models", "inpaint", "diffusioninpaint.safetensors")


def run(src_args, out, props):
    """src_args: the source part of the pipeline up to raw RGB; then the element with props; raw
    RGB frames into out."""
    cmd = ["gst-launch-1.0", "-q"] + src_args + [
        "!", "diffusioninpaint", f"model-file={MODEL}", f"mask-file={os.path.join(ROOT, 'samples', 'building-logo-mask.png')}"
    ] + props + ["!", "videoconvert", "!", "video/x-raw,format=RGB", "!", "filesink", f"location={out}"]
    r = subprocess.run(cmd, env=Q.gst_env(), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("failed: %s\n%s" % (shlex.join(cmd), r.stderr))


def main():
    ap = argparse.ArgumentParser(description="diffusioninpaint on video: fill change vs scene change")
    ap.add_argument("--clip", default=os.path.join(ROOT, "samples", "building.webm"))
    ap.add_argument("--props", action="append", default=[],
                    help="an element setting to compare with the defaults (space-separated props); repeatable")
    ap.add_argument("--out", default=os.path.join(HERE, "out", "inpaint_video"))
    args = ap.parse_args()
    command = "/usr/bin/python3 " + shlex.join([Q.rel(sys.argv[0])] + sys.argv[1:])
    from PIL import Image
    mask = np.asarray(Image.open(os.path.join(ROOT, "samples", "building-logo-mask.png")).convert("L")) > 127
    settings = [("defaults", [])] + [(p, p.split()) for p in args.props]
    moving = ["filesrc", f"location={args.clip}", "!", "decodebin", "!", "videoconvert", "!",
              "video/x-raw,format=RGB"]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        clip = os.path.join(tmp, "clip.rgb")
        subprocess.run(["gst-launch-1.0", "-q"] + moving + ["!", "filesink", f"location={clip}"],
                       env=Q.gst_env(), check=True)
        scene = frames(clip).astype(np.float64)
        first = os.path.join(tmp, "first.png")
        Q.save_png(first, scene[0].astype(np.uint8))
        still = ["filesrc", f"location={first}", "!", "pngdec", "!", "imagefreeze", "num-buffers=12", "!",
                 "videoconvert", "!", "video/x-raw,format=RGB,framerate=12/1"]
        scene_change = [float(np.abs(scene[t] - scene[t - 1])[mask].mean()) for t in range(1, len(scene))]
        for name, props in settings:
            out = os.path.join(tmp, "out.rgb")
            run(moving, out, props)
            o = frames(out).astype(np.float64)
            assert len(o) == len(scene), (len(o), len(scene))
            fill_change = [float(np.abs(o[t] - o[t - 1])[mask].mean()) for t in range(1, len(o))]
            ratio = [f / s if s > 0 else float("nan") for f, s in zip(fill_change, scene_change)]
            run(still, out, props)
            so = frames(out)
            static_same = bool(all((so[t] == so[0]).all() for t in range(1, len(so))))
            results[name] = {"fill_change": fill_change, "scene_change": scene_change, "ratio": ratio,
                             "static_frames": int(len(so)), "static_identical": static_same,
                             "mean_fill_change": float(np.mean(fill_change)),
                             "mean_scene_change": float(np.mean(scene_change)),
                             "median_ratio": float(np.median(ratio)), "max_ratio": float(np.max(ratio))}
            print(name, {k: v for k, v in results[name].items() if not isinstance(v, list)}, flush=True)
    md = ["# diffusioninpaint on video", "", "Command line (from the repository root):", "", "```sh", command, "```", "",
          f"Clip `{Q.rel(args.clip)}` ({len(scene)} frames, {W}x{H}, a slow pan), static mask "
          f"`samples/building-logo-mask.png` ({int(mask.sum())} pixels).  Per pair of consecutive frames: the mean "
          "absolute change (RGB, 0-255) inside the mask of the output (fill) and of the clip itself (scene).  "
          "Static: the first frame repeated 12 times.", "",
          "| element settings | mean fill change | mean scene change | fill / scene, median (max) | static scene: all frames identical |",
          "|---|---:|---:|---|---|"]
    for name, r in results.items():
        md.append(f"| {name} | {r['mean_fill_change']:.2f} | {r['mean_scene_change']:.2f} | "
                  f"{r['median_ratio']:.2f} ({r['max_ratio']:.2f}) | {'yes' if r['static_identical'] else 'NO'} "
                  f"({r['static_frames']} frames) |")
    first = next(iter(results.values()))
    md += ["", "Per frame pair (defaults): fill " + ", ".join(f"{v:.1f}" for v in first["fill_change"]),
           "", "scene " + ", ".join(f"{v:.1f}" for v in first["scene_change"]), ""]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"command": command, "results": results}, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
