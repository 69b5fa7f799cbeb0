#!/usr/bin/python3
"""Writes a random UNet2DModel of a few hundred MB in F16 (and BF16) for weights16_bench's
memory check: peak RSS with 16-bit weights in place against the convert-at-load path.

Usage:  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/weights16_model.py [OUT_DIR]

Writes OUT_DIR/f16 and OUT_DIR/bf16 (diffusers folders; default bench/out/weights16, git-ignored).
"""

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models", "common"))

import diffusers_torch as dt  # noqa: E402
import st  # noqa: E402

# SD 1.5's channel widths and block layout without the cross-attention (UNet2DModel has none):
# about 215 M parameters, 430 MB in F16.
CONFIG = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=[320, 640, 1280, 1280],
    down_block_types=["DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
    up_block_types=["AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
    norm_num_groups=32, attention_head_dim=64,
)


def main():
    torch.set_num_threads(1)
    torch.manual_seed(7)
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "out", "weights16")
    model = dt.UNet2DModel(**CONFIG)
    n = sum(p.numel() for p in model.parameters())
    for name, dtype in (("f16", torch.float16), ("bf16", torch.bfloat16)):
        folder = os.path.join(out, name)
        model.save_config(folder)
        sd = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
        st.save(os.path.join(folder, "diffusion_pytorch_model.safetensors"), sd, metadata={"format": "pt"})
    print(f"{n / 1e6:.1f} M parameters -> {out}/f16, {out}/bf16")


if __name__ == "__main__":
    main()
