#!/usr/bin/python3
"""One whole Stable Diffusion image through the engine: stage times and peak memory.

    /usr/bin/python3 bench/sd_pipeline.py [--config sd15|tiny] [--dtype f16|f32] [--size 512]
        [--steps 20] [--threads 2] [--build build]

Writes a random-weight StableDiffusionPipeline folder of SD 1.5's size (U-Net 860M, VAE 84M and
CLIP ViT-L/14 text encoder 123M parameters, in --dtype, as diffusers lays it out: model_index.json,
unet/, vae/, text_encoder/, tokenizer/, scheduler/) into bench/out/sd_pipeline/CONFIG-DTYPE/ (kept
while the settings are the same), then runs build/bench/sd_pipeline_bench on it: text encode,
--steps steps of DPM-Solver++ 2M with classifier-free guidance (the U-Net on a batch of 2), VAE
decode, at --size x --size pixels.  The tokenizer is the small one of the diffusers fixtures (its
ids are valid in CLIP's 49408-token table; tokenizing is not what is measured).  Prints the
program's JSON and a markdown line for bench/RESULTS.md.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "common"))
sys.path.insert(0, HERE)

from sd_unet_speed import SD15  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "diffusers")

VAE15 = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512],
             down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
             layers_per_block=2, norm_num_groups=32, act_fn="silu", sample_size=512,
             scaling_factor=0.18215)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu",
              layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1, projection_dim=768)
SCHEDULER15 = {"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012,
               "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "set_alpha_to_one": False,
               "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None, "clip_sample": False}
CONFIGS = {
    "sd15": dict(unet=SD15, vae=VAE15, clip=CLIP_L),
    "tiny": dict(unet=dict(SD15, sample_size=16, block_out_channels=[32, 64, 64, 64], cross_attention_dim=64,
                           norm_num_groups=8),
                 vae=dict(VAE15, block_out_channels=[16, 32, 32, 32], norm_num_groups=8),
                 clip=dict(CLIP_L, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, vocab_size=1000, projection_dim=64)),
}


def write_folder(folder, config, dtype_name):
    import torch
    import diffusers_torch as dt
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dtype = {"f32": torch.float32, "f16": torch.float16}[dtype_name]
    parts = {
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "PNDMScheduler"],
    }
    index = dict(_class_name="StableDiffusionPipeline", _diffusers_version=dt.DIFFUSERS_VERSION,
                 safety_checker=[None, None], feature_extractor=[None, None],
                 requires_safety_checker=False, **parts)
    with torch.no_grad():
        for name, model in (("unet", lambda: dt.UNet2DConditionModel(**config["unet"])),
                            ("vae", lambda: dt.AutoencoderKL(**config["vae"])),
                            ("text_encoder", lambda: dt.CLIPTextModel(**config["clip"]))):
            m = model().eval()
            dt.save_pretrained(m, os.path.join(folder, name), dtype=dtype)
            del m
    tok = os.path.join(folder, "tokenizer")
    os.makedirs(tok, exist_ok=True)
    for f in os.listdir(os.path.join(FIXTURES, "clip_tokenizer_small")):
        if f.endswith((".json", ".txt")) and f not in ("meta.json",):
            shutil.copy(os.path.join(FIXTURES, "clip_tokenizer_small", f), tok)
    os.makedirs(os.path.join(folder, "scheduler"), exist_ok=True)
    with open(os.path.join(folder, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SCHEDULER15, f, indent=1)
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(index, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="sd15")
    ap.add_argument("--dtype", choices=["f16", "f32"], default="f16")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default="build")
    args = ap.parse_args()

    folder = os.path.join(ROOT, "bench", "out", "sd_pipeline", f"{args.config}-{args.dtype}")
    stamp = os.path.join(folder, "bench.json")
    spec = dict(config=CONFIGS[args.config], dtype=args.dtype)
    if not (os.path.exists(stamp) and json.load(open(stamp)) == json.loads(json.dumps(spec))):
        if os.path.exists(folder):
            shutil.rmtree(folder)
        write_folder(folder, CONFIGS[args.config], args.dtype)
        with open(stamp, "w") as f:
            json.dump(spec, f)
    exe = os.path.join(ROOT, args.build, "bench", "sd_pipeline_bench")
    out = subprocess.run([exe, folder, "--size", str(args.size), "--steps", str(args.steps),
                          "--threads", str(args.threads), "--scheduler", "dpmpp-2m"],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    r["config"], r["dtype"] = args.config, args.dtype
    print(json.dumps(r, indent=1))
    print(f"| {args.config} {args.dtype} | {args.size}x{args.size} | {args.steps} x DPM++ 2M, guidance "
          f"{r['guidance']:g} | {r['threads']} | {r['load_ms'] / 1000:.1f} | {r['text_encode_ms']:.0f} | "
          f"{r['step_ms_median'] / 1000:.2f} | {r['vae_decode_ms'] / 1000:.2f} | "
          f"{r['total_ms'] / 1000:.1f} | {r['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
