#!/usr/bin/python3
"""Writes the benchmark UNet2DModel (random weights, fixed seed) for the C engine, PyTorch and ORT.

Usage:  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/unet_bench_model.py

Outputs, in bench/out/unet_bench/ (git-ignored):
  config.json, diffusion_pytorch_model.safetensors   the model in diffusers format (C engine, PyTorch)
  unet.onnx                                          the same model for ONNX Runtime (opset 14)
  input_sample.bin   float32 [1,3,256,256]  a fixed input (little endian, NCHW)
  input_timestep.bin int64 [1]              its timestep
  torch_out.bin      float32 [1,3,256,256]  PyTorch's output for that input (bench/ort_unet.js compares)
  io.safetensors     the same three tensors as input.sample / call0.timestep / call0.out
"""

import json
import math
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models", "common"))

import diffusers_torch as dt  # noqa: E402
import st  # noqa: E402

OUT_DIR = os.path.join(HERE, "out", "unet_bench")
SEED = 4242
TIMESTEP = 500
SHAPE = (1, 3, 256, 256)

# About 4.3M parameters: 4 levels for 256x256 RGB (256 -> 128 -> 64 -> 32), one resnet per level
# (two per up level), multi-head attention (4 heads of 32) only at the 32x32 level and in the mid block.
CONFIG = dict(
    sample_size=256, in_channels=3, out_channels=3, layers_per_block=1,
    block_out_channels=[32, 64, 128, 128],
    down_block_types=["DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
    up_block_types=["AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
    norm_num_groups=16, attention_head_dim=32,
)


def randomize_(model, seed):
    """Seeded random weights, scaled so activations stay O(1) through the network."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                gain = 2.0 if name.endswith(("to_q", "to_k")) else 1.4
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * (gain / math.sqrt(mod.weight[0].numel())))
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen) * 0.1)
            elif isinstance(mod, nn.GroupNorm):
                mod.weight.copy_(1.0 + torch.randn(mod.weight.shape, generator=gen) * 0.3)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen) * 0.2)


class OnnxWrapper(nn.Module):
    """forward(sample, timestep) -> tensor (ONNX export needs a plain tensor output)."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep):
        return self.unet(sample, timestep).sample


def main():
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    os.makedirs(OUT_DIR, exist_ok=True)
    model = dt.UNet2DModel(**CONFIG)
    randomize_(model, SEED)
    n_params = sum(p.numel() for p in model.parameters())
    dt.save_pretrained(model, OUT_DIR)
    model = dt.load_pretrained(OUT_DIR)  # run exactly the weights on disk

    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(SEED + 1))
    t = torch.tensor([TIMESTEP], dtype=torch.int64)
    with torch.no_grad():
        out = model(x, t).sample
    x.numpy().astype("<f4").tofile(os.path.join(OUT_DIR, "input_sample.bin"))
    t.numpy().astype("<i8").tofile(os.path.join(OUT_DIR, "input_timestep.bin"))
    out.numpy().astype("<f4").tofile(os.path.join(OUT_DIR, "torch_out.bin"))
    st.save(os.path.join(OUT_DIR, "io.safetensors"),
            {"input.sample": x, "call0.timestep": t, "call0.out": out}, metadata={"format": "pt"})

    onnx_path = os.path.join(OUT_DIR, "unet.onnx")
    torch.onnx.export(OnnxWrapper(model).eval(), (x, t), onnx_path, opset_version=14,
                      input_names=["sample", "timestep"], output_names=["out"], do_constant_folding=True)

    info = {"params": n_params, "config": CONFIG, "seed": SEED, "timestep": TIMESTEP, "input_shape": list(SHAPE),
            "out_absmax": out.abs().max().item(), "out_std": out.std().item(),
            "onnx_bytes": os.path.getsize(onnx_path), "out_dir": os.path.relpath(OUT_DIR, os.path.join(HERE, ".."))}
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
