#!/usr/bin/python3
"""Stable Diffusion U-Net forward speed and peak memory: the engine against PyTorch on the same weights.

    /usr/bin/python3 bench/sd_unet_speed.py [--config sd15|tiny] [--dtype f32|f16] [--runs 3] [--warmup 1]
        [--threads 1,2] [--build build] [--no-engine] [--no-pause] [--precision f32|bf16|auto]

1. Writes a random-weight UNet2DConditionModel as a diffusers folder (config.json +
   diffusion_pytorch_model.safetensors in --dtype, written with models/common/st.py) and its inputs
   into bench/out/sd_unet/CONFIG-DTYPE/ (kept and reused while the settings are the same).  sd15 is
   the full SD 1.5 U-Net (block_out_channels 320/640/1280/1280, 2 layers per block, 8 heads,
   cross_attention_dim 768, conv projections; about 860M parameters) at 64x64 latents, batch 2,
   77x768 text states; tiny is the same layout, small, for checking this script.  torch_out.bin is
   PyTorch's output (1 thread) with the weights as stored (F16 weights rounded alike).
2. PyTorch: models/common/diffusers_torch.py (which reproduces diffusers 0.35.2), float32, under
   torch.inference_mode(), one child process per thread count (torch.set_num_threads(n),
   OPENBLAS_NUM_THREADS=n): the median of --runs forwards after --warmup forwards.
3. Engine: build/bench/unet_cond_bench (bench/unet_cond_bench.c, ge_unet2d_forward_cond) on the
   same folder, the same way; it checks its output against torch_out.bin (max|err| / max|ref|).
Peak RSS of each (getrusage / VmHWM): "forward" is the peak while the loaded model runs (the
counter is restarted after loading), "process" includes loading.  Background training is paused
during the timings (bench/speedkit.py) unless --no-pause.  Prints one JSON object, then a markdown
table (header and one line per thread count) for bench/RESULTS.md.
"""

import argparse
import gc
import json
import os
import platform
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "common"))

import speedkit as S  # noqa: E402

SD15 = dict(
    sample_size=64, in_channels=4, out_channels=4,
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    block_out_channels=[320, 640, 1280, 1280], layers_per_block=2, attention_head_dim=8,
    cross_attention_dim=768, norm_num_groups=32, use_linear_projection=False,
)
CONFIGS = {
    # the U-Net config, the latent size, the batch and the text states (tokens x cross_attention_dim)
    "sd15": dict(unet=SD15, n=2, h=64, w=64, seq=77),
    "tiny": dict(unet=dict(SD15, sample_size=16, block_out_channels=[32, 64, 64, 64], cross_attention_dim=64,
                           norm_num_groups=8), n=2, h=16, w=16, seq=77),
}
SEED = 0
TIMESTEP = 500.0  # both batch entries (a classifier-free guidance batch shares it)
ENGINE_BIN = os.path.join("bench", "unet_cond_bench")


def spec_of(config, dtype):
    c = CONFIGS[config]
    return {"config": config, "dtype": dtype, "unet": c["unet"], "n": c["n"], "h": c["h"], "w": c["w"],
            "seq": c["seq"], "ctx": c["unet"]["cross_attention_dim"], "timestep": TIMESTEP, "seed": SEED}


def read_f32(folder, name, shape):
    return np.fromfile(os.path.join(folder, name), dtype="<f4").reshape(shape)


def ensure_model(folder, spec):
    """Writes the model folder for @spec unless it is already there (bench.json equal to @spec)."""
    spec_path = os.path.join(folder, "bench.json")
    if os.path.exists(spec_path) and os.path.exists(os.path.join(folder, "torch_out.bin")):
        with open(spec_path) as f:
            if json.load(f) == spec:
                return False
    import torch
    import diffusers_torch as dt
    torch.set_num_threads(1)
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(spec_path):
        os.remove(spec_path)  # written last: a folder without it is incomplete
    torch.manual_seed(spec["seed"])
    model = dt.UNet2DConditionModel(**spec["unet"]).eval()
    dtype = {"f32": torch.float32, "f16": torch.float16}[spec["dtype"]]
    with torch.no_grad():
        for p in model.parameters():  # the reference uses the weights exactly as stored
            p.copy_(p.to(dtype).float())
    dt.save_pretrained(model, folder, dtype=dtype)
    g = torch.Generator().manual_seed(spec["seed"] + 1)
    n, c = spec["n"], spec["unet"]["in_channels"]
    x = torch.randn((n, c, spec["h"], spec["w"]), generator=g)
    ctx = torch.randn((n, spec["seq"], spec["ctx"]), generator=g)
    t = torch.full((n,), spec["timestep"], dtype=torch.float32)
    with torch.inference_mode():
        out = model(x, t, ctx).sample
    for name, v in (("input_sample.bin", x), ("input_context.bin", ctx), ("input_timestep.bin", t),
                    ("torch_out.bin", out)):
        v.numpy().astype("<f4").tofile(os.path.join(folder, name))
    with open(spec_path, "w") as f:
        json.dump(spec, f, indent=1)
    return True


def torch_worker(folder, threads, runs, warmup):
    """Child process: times the forward on @threads threads; prints one JSON line."""
    import torch
    import diffusers_torch as dt
    torch.set_num_threads(threads)
    with open(os.path.join(folder, "bench.json")) as f:
        spec = json.load(f)
    n, h, w = spec["n"], spec["h"], spec["w"]
    model = dt.load_pretrained(folder)
    x = torch.from_numpy(read_f32(folder, "input_sample.bin", (n, spec["unet"]["in_channels"], h, w)))
    ctx = torch.from_numpy(read_f32(folder, "input_context.bin", (n, spec["seq"], spec["ctx"])))
    t = torch.from_numpy(read_f32(folder, "input_timestep.bin", (n,)))
    ref = torch.from_numpy(read_f32(folder, "torch_out.bin", (n, spec["unet"]["out_channels"], h, w)))
    gc.collect()
    rss_load = S.peak_rss_bytes()
    reset = S.reset_peak_rss()
    out = []
    with torch.inference_mode():
        res = S.time_calls(lambda: out.append(model(x, t, ctx).sample), warmup, runs)
    res.update({
        "torch": torch.__version__, "params": sum(p.numel() for p in model.parameters()),
        "max_rel_err_vs_ref": ((out[-1] - ref).abs().max() / ref.abs().max()).item(),
        "peak_rss_load_bytes": rss_load, "peak_rss_bytes": max(rss_load, S.peak_rss_bytes()),
        "peak_rss_forward_bytes": S.peak_rss_bytes() if reset else 0,
    })
    print(json.dumps(res))


def mib(b):
    return f"{b / 2 ** 20:.0f}" if b else "-"


def markdown(result):
    """A header and one table line per thread count."""
    spec, tr, en = result["spec"], result["torch"], result["engine"]
    model = f"{spec['config']} ({result['params'] / 1e6:.0f}M)"
    inp = f"{spec['n']}x{spec['unet']['in_channels']}x{spec['h']}x{spec['w']}, text {spec['seq']}x{spec['ctx']}"
    rows = ["| model | weights | input | threads | PyTorch ms | engine ms | engine / PyTorch | engine max rel err "
            "| PyTorch peak RSS MiB (forward / process) | engine peak RSS MiB (forward / process) |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for n, t in tr.items():
        e = en.get("threads", {}).get(n)
        eng = ([f"{e['median_ms']:.0f}", f"{e['median_ms'] / t['median_ms']:.2f}", f"{e['max_rel_err_vs_torch']:.1e}",
                f"{mib(en['peak_rss_forward_bytes'])} / {mib(en['peak_rss_bytes'])}"] if e else ["-"] * 4)
        cells = [model, f"{spec['dtype']} (engine {en.get('precision', 'f32')})", inp, n, f"{t['median_ms']:.0f}"] + eng[:3] + [
            f"{mib(t['peak_rss_forward_bytes'])} / {mib(t['peak_rss_bytes'])}", eng[3]]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="sd15")
    ap.add_argument("--dtype", choices=["f32", "f16"], default="f32", help="the weights file's dtype")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--precision", choices=["f32", "bf16", "auto"], default="f32",
                    help="the engine's precision (PyTorch runs f32)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--engine", help=f"the engine bench program (default BUILD/{ENGINE_BIN})")
    ap.add_argument("--no-engine", action="store_true", help="time PyTorch only")
    ap.add_argument("--no-pause", action="store_true", help="leave background training running")
    ap.add_argument("--torch-worker", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    threads = [int(v) for v in args.threads.split(",")]
    if args.torch_worker:
        return torch_worker(args.torch_worker, threads[0], args.runs, args.warmup)

    spec = spec_of(args.config, args.dtype)
    folder = os.path.join(HERE, "out", "sd_unet", f"{args.config}-{args.dtype}")
    t0 = time.time()
    if ensure_model(folder, spec):
        print(f"wrote {os.path.relpath(folder, ROOT)} in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    engine_bin = args.engine or os.path.join(args.build, ENGINE_BIN)
    result = {"spec": spec, "model_dir": os.path.relpath(folder, ROOT), "runs": args.runs, "warmup": args.warmup,
              "machine": {"cpu": next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                       if line.startswith("model name")), platform.processor()),
                          "cores": os.cpu_count(), "loadavg_before": open("/proc/loadavg").read().split()[:3]},
              "date": time.strftime("%Y-%m-%d"), "torch": {}, "engine": {}}
    worker = [sys.executable, os.path.abspath(__file__), "--runs", str(args.runs), "--warmup", str(args.warmup),
              "--torch-worker", folder]
    with S.TrainingPaused(not args.no_pause, max_s=3600):
        for n in threads:
            r = S.run_json(worker + ["--threads", str(n)], env={"OPENBLAS_NUM_THREADS": str(n)})
            result["params"] = r.pop("params")
            result["torch_version"] = r.pop("torch")
            result["torch"][str(n)] = r
            print(f"PyTorch {n} thread(s): {r['median_ms']:.0f} ms", file=sys.stderr, flush=True)
        if args.no_engine:
            result["engine"] = {"skipped": "--no-engine"}
        elif not os.path.exists(engine_bin):
            result["engine"] = {"skipped": f"{os.path.relpath(engine_bin, ROOT)} not built (enable unet_cond_bench in bench/meson.build)"}
        else:
            result["engine"] = S.run_json(
                [engine_bin, folder, "--n", str(spec["n"]), "--h", str(spec["h"]), "--w", str(spec["w"]),
                 "--seq", str(spec["seq"]), "--ctx", str(spec["ctx"]), "--runs", str(args.runs),
                 "--warmup", str(args.warmup), "--threads", args.threads, "--precision", args.precision],
                env={"OPENBLAS_NUM_THREADS": "1"})
            result["engine_over_torch"] = {n: e["median_ms"] / result["torch"][n]["median_ms"]
                                           for n, e in result["engine"]["threads"].items() if n in result["torch"]}
    result["machine"]["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    print(json.dumps(result, indent=1))
    print()
    print(markdown(result))


if __name__ == "__main__":
    main()
