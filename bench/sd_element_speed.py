#!/usr/bin/python3
"""Full-size diffusers pipelines through the elements: seconds per frame and peak memory.

    /usr/bin/python3 bench/sd_element_speed.py --config inpaint|ldm-sr [--dtype f16] [--steps 20]
        [--guidance 7.5] [--scheduler dpmpp-2m] [--threads 2] [--frames 2] [--build build]

Configurations (random weights, written once into bench/out/sd_element_speed/ and kept while the
settings are the same):

- inpaint: a StableDiffusionInpaintPipeline folder of SD 1.5's size: the U-Net of bench/sd_pipeline.py
  (SD15) with in_channels 9 (latents, mask, masked-image latents), and the VAE, CLIP ViT-L/14 text
  encoder, tokenizer and scheduler of bench/sd_pipeline.py's sd15 folder (symlinked from it; that
  folder is written by sd_pipeline.write_folder if missing).  A 512x512 frame (videotestsrc smpte, repeated by imagefreeze)
  with a 128x128 box mask in the middle (mask-file, a PGM) through `diffusioninpaint`.
- ldm-sr: an LDMSuperResolutionPipeline folder with the configs of
  CompVis/ldm-super-resolution-4x-openimages (unet/config.json: UNet2DModel 6 -> 3 channels,
  block_out_channels [160, 320, 320, 640], layers_per_block 2, attention only in the lowest level
  (AttnDownBlock2D / AttnUpBlock2D) and the mid block, attention_head_dim 32; vqvae/config.json:
  VQModel [128, 256, 512], 3 latent channels, 8192 codes; DDIMScheduler scaled_linear
  0.0015 .. 0.0155).  A 128x128 frame through `diffusionsr scale=4` (512x512 out).  The pipeline
  has no text encoder: guidance-scale does not apply (diffusers' LDM pipeline has none).

Each runs --frames identical frames (a static scene, a static mask) through the element in a
child process (PyGObject: videotestsrc num-buffers=1 ! imagefreeze ! element ! fakesink sync=false), num-steps, guidance-scale,
scheduler and n-threads as given.  The first frame runs the pipeline; for diffusioninpaint every
later frame equals the one before, so its box-reuse cache puts the last fill back (reused-boxes 1)
and the frame costs ~0.  Reported: each frame's time between leaving the element's src pad (the
first from the PLAYING request, which includes nothing but the frame: the model is loaded on the
way to PAUSED and timed apart), the element's stats (mean-ms, max-ms, load-ms, reused-boxes),
and the child's peak RSS and CPU seconds (its rusage from wait4: load, the frames, the python bindings).
Prints JSON and a markdown line for bench/RESULTS.md; writes bench/out/sd_element_speed/CONFIG.json.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "common"))
sys.path.insert(0, HERE)

OUT = os.path.join(ROOT, "bench", "out", "sd_element_speed")

UNET_LDM_SR = dict(sample_size=64, in_channels=6, out_channels=3, act_fn="silu", attention_head_dim=32,
                   block_out_channels=[160, 320, 320, 640], center_input_sample=False,
                   down_block_types=["DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
                   up_block_types=["AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
                   downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, layers_per_block=2,
                   mid_block_scale_factor=1, norm_eps=1e-5, norm_num_groups=32,
                   time_embedding_type="positional")
VQ_LDM_SR = dict(in_channels=3, out_channels=3, act_fn="silu", block_out_channels=[128, 256, 512],
                 down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
                 latent_channels=3, layers_per_block=2, norm_num_groups=32, num_vq_embeddings=8192,
                 sample_size=256, vq_embed_dim=None)
SCHEDULER_LDM_SR = {"_class_name": "DDIMScheduler", "beta_start": 0.0015, "beta_end": 0.0155,
                    "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "clip_sample": False,
                    "set_alpha_to_one": False, "steps_offset": 0, "trained_betas": None}

CONFIGS = {
    "inpaint": dict(element="diffusioninpaint", size=512, box=(192, 192, 128, 128)),
    "ldm-sr": dict(element="diffusionsr", size=128, box=None),
}


def _cached(folder, spec, write):
    """Runs write(folder) unless folder/bench.json holds @spec."""
    stamp = os.path.join(folder, "bench.json")
    spec = json.loads(json.dumps(spec))
    if os.path.exists(stamp) and json.load(open(stamp)) == spec:
        return folder
    if os.path.lexists(folder):
        import shutil
        shutil.rmtree(folder)
    os.makedirs(folder)
    write(folder)
    with open(stamp, "w") as f:
        json.dump(spec, f)
    return folder


def sd15_folder(dtype):
    """bench/sd_pipeline.py's sd15 folder (its VAE, text encoder, tokenizer, scheduler)."""
    import sd_pipeline as P
    folder = os.path.join(ROOT, "bench", "out", "sd_pipeline", f"sd15-{dtype}")
    return _cached(folder, dict(config=P.CONFIGS["sd15"], dtype=dtype),
                   lambda f: P.write_folder(f, P.CONFIGS["sd15"], dtype))


def inpaint_folder(dtype):
    import sd_pipeline as P
    base = sd15_folder(dtype)
    unet = dict(P.CONFIGS["sd15"]["unet"], in_channels=9)

    def write(folder):
        import torch
        import diffusers_torch as dt
        torch.set_num_threads(1)
        torch.manual_seed(0)
        index = json.load(open(os.path.join(base, "model_index.json")))
        index["_class_name"] = "StableDiffusionInpaintPipeline"
        for part in ("vae", "text_encoder", "tokenizer", "scheduler"):
            os.symlink(os.path.relpath(os.path.join(base, part), folder), os.path.join(folder, part))
        with torch.no_grad():
            dt.save_pretrained(dt.UNet2DConditionModel(**unet).eval(), os.path.join(folder, "unet"),
                               dtype={"f32": torch.float32, "f16": torch.float16}[dtype])
        with open(os.path.join(folder, "model_index.json"), "w") as f:
            json.dump(index, f, indent=1)

    return _cached(os.path.join(OUT, f"sd15-inpaint-{dtype}"), dict(unet=unet, dtype=dtype, base=base), write)


def ldm_sr_folder(dtype):
    def write(folder):
        import torch
        import diffusers_torch as dt
        torch.set_num_threads(1)
        torch.manual_seed(0)
        dty = {"f32": torch.float32, "f16": torch.float16}[dtype]
        with torch.no_grad():
            dt.save_pretrained(dt.UNet2DModel(**UNET_LDM_SR).eval(), os.path.join(folder, "unet"), dtype=dty)
            vq = dt.VQModel(**VQ_LDM_SR).eval()
            # codebook spread like latents (diffusers' uniform(-1/n, 1/n) puts every code near 0)
            vq.quantize.embedding.weight.data.normal_(0.0, 0.5)
            dt.save_pretrained(vq, os.path.join(folder, "vqvae"), dtype=dty)
        os.makedirs(os.path.join(folder, "scheduler"))
        with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as f:
            json.dump(SCHEDULER_LDM_SR, f, indent=1)
        with open(os.path.join(folder, "model_index.json"), "w") as f:
            json.dump({"_class_name": "LDMSuperResolutionPipeline", "_diffusers_version": dt.DIFFUSERS_VERSION,
                       "scheduler": ["diffusers", "DDIMScheduler"], "unet": ["diffusers", "UNet2DModel"],
                       "vqvae": ["diffusers", "VQModel"]}, f, indent=1)

    return _cached(os.path.join(OUT, f"ldm-sr-{dtype}"),
                   dict(unet=UNET_LDM_SR, vqvae=VQ_LDM_SR, scheduler=SCHEDULER_LDM_SR, dtype=dtype), write)


def write_mask(path, size, box):
    x0, y0, w, h = box
    rows = bytearray(size * size)
    for y in range(y0, y0 + h):
        rows[y * size + x0:y * size + x0 + w] = b"\xff" * w
    with open(path, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (size, size) + bytes(rows))


# ----------------------------------------------------------------------------------------------
# the worker (child process): one pipeline, the times between outputs, the stats
# ----------------------------------------------------------------------------------------------


def worker(desc, name):
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    Gst.init(None)
    pipe = Gst.parse_launch(desc)
    el = pipe.get_by_name(name)
    t_out = []
    el.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER,
                                       lambda p, i: (t_out.append(time.perf_counter()), Gst.PadProbeReturn.OK)[1])
    t0 = time.perf_counter()
    pipe.set_state(Gst.State.PLAYING)
    msg = pipe.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    if msg.type == Gst.MessageType.ERROR:
        err, dbg = msg.parse_error()
        pipe.set_state(Gst.State.NULL)
        raise SystemExit(f"pipeline error: {err.message} ({dbg})")
    stats = el.get_property("stats")
    pipe.set_state(Gst.State.NULL)
    print(json.dumps({"to_first_out_ms": (t_out[0] - t0) * 1e3 if t_out else None,
                      "between_outs_ms": [(b - a) * 1e3 for a, b in zip(t_out, t_out[1:])],
                      "stats": stats}))


def run_worker(desc, name, env, log):
    """-> (worker JSON, peak RSS in bytes of the child from wait4, its CPU seconds)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", desc, "--name", name]
    with open(log, "w") as errf:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=errf, text=True)
        out = p.stdout.read()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"worker failed ({p.returncode}); see {log}\n{out[-2000:]}\n"
                           + open(log).read()[-4000:])
    return json.loads(out.strip().splitlines()[-1]), ru.ru_maxrss * 1024, ru.ru_utime + ru.ru_stime


def parse_stats(s):
    """The numbers of a stats string: {field: value}."""
    import re
    return {k: float(v) for k, v in re.findall(r"([a-z-]+)=\([a-z0-9]+\)([-0-9.e+]+)", s)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=sorted(CONFIGS))
    ap.add_argument("--dtype", choices=["f16", "f32"], default="f16")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--scheduler", default="dpmpp-2m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--build", default="build")
    ap.add_argument("--worker")
    ap.add_argument("--name")
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.name)
    if not args.config:
        ap.error("--config is required")

    command = "/usr/bin/python3 " + shlex.join([os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)] + sys.argv[1:])
    cfg = CONFIGS[args.config]
    os.makedirs(OUT, exist_ok=True)
    folder = inpaint_folder(args.dtype) if args.config == "inpaint" else ldm_sr_folder(args.dtype)
    n = cfg["size"]
    props = (f"model-file={shlex.quote(folder)} num-steps={args.steps} guidance-scale={args.guidance:g} "
             f"scheduler={args.scheduler} n-threads={args.threads}")
    if cfg["box"]:
        mask = os.path.join(OUT, f"box-mask-{n}.pgm")
        write_mask(mask, n, cfg["box"])
        element = f"diffusioninpaint name=el {props} mask-file={shlex.quote(mask)}"
    else:
        element = f"diffusionsr name=el {props} scale=4"
    # one picture, repeated: videotestsrc's smpte pattern has a noise patch that differs per frame
    desc = (f"videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,format=RGB,width={n},height={n},"
            f"framerate=1/1 ! imagefreeze num-buffers={args.frames} ! {element} ! fakesink sync=false")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1",
               GST_PLUGIN_PATH=os.path.abspath(os.path.join(ROOT, args.build, "plugins")))
    env.setdefault("GST_DEBUG", "generativesd:4")
    load0 = os.getloadavg()
    t0 = time.time()
    r, peak, cpu = run_worker(desc, "el", env, os.path.join(OUT, f"{args.config}-worker.log"))
    st = parse_stats(r["stats"])
    res = dict(config=args.config, dtype=args.dtype, folder=os.path.relpath(folder, ROOT), pipeline=desc,
               command=command, loadavg_before=load0, loadavg_after=os.getloadavg(), wall_s=time.time() - t0,
               peak_rss_mib=peak / 2 ** 20, cpu_s=cpu, **r)
    # the first frame is the slowest (the others are reused or the same work): its time is max-ms,
    # the others' mean follows from mean-ms
    nf = int(st.get("frames", 0))
    first = st.get("max-ms", 0.0)
    rest = (st.get("mean-ms", 0.0) * nf - first) / (nf - 1) if nf > 1 else float("nan")
    res.update(first_frame_ms=first, later_frames_mean_ms=rest)
    with open(os.path.join(OUT, f"{args.config}.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))
    print(f"| {cfg['element']} | {args.config} {args.dtype} | {n}x{n} | {args.steps} x {args.scheduler}"
          f"{', guidance %g' % args.guidance if args.config == 'inpaint' else ''} | {args.threads} | "
          f"{st.get('load-ms', 0) / 1000:.1f} | {first / 1000:.1f} | {rest / 1000:.3f} | "
          + ", ".join(f"{v / 1000:.3f}" for v in r["between_outs_ms"])
          + f" | {int(st.get('reused-boxes', 0)) if cfg['box'] else '-'} | {peak / 2 ** 20:.0f} | "
          f"{cpu:.0f} | {load0[0]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
