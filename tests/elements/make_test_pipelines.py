#!/usr/bin/python3
"""Writes the tiny random parts the pipeline-folder element tests need beyond the diffusers
fixtures (tests/elements/models/pipeline-parts/).

Run from the repository root when the parts change:
    /usr/bin/python3 tests/elements/make_test_pipelines.py

The element tests (test-pipelines.c) assemble whole diffusers pipeline folders at test time:
model_index.json plus links to these parts and to the fixture parts of
tests/fixtures/diffusers/ (the 9-channel inpainting U-Net of sd_inpaint_loop_small, the 4-channel
U-Net unet_cond_sd_small, vae_kl_small, clip_text_small, clip_tokenizer_small, taesd_small and
the sched_* configs).  What no fixture has, written here with the PyTorch re-implementation of
diffusers' models (models/common/diffusers_torch.py, same module and tensor names):

  unet_pix2pix   UNet2DConditionModel, 8 input channels (latents + image latents), the
                 StableDiffusionInstructPix2PixPipeline's layout
  unet_upscale   UNet2DConditionModel, 7 input channels (latents + the low-res RGB) and
                 num_class_embeds 1000 (the noise level), StableDiffusionUpscalePipeline's
  unet_ldm       UNet2DModel, 6 input channels (latents + the low-res RGB), 3 out,
                 LDMSuperResolutionPipeline's
  vqvae          VQModel, 3 latent channels, factor 2

Weights are random (fixed seed) and small (the outputs mean nothing; what the tests check is
that the element runs each class exactly as the engine does).  Text: cross_attention_dim 32,
clip_text_small's hidden size.
"""

import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models", "common"))
import diffusers_torch as dt  # noqa: E402

OUT = os.path.join(ROOT, "tests", "elements", "models", "pipeline-parts")


def cond_unet(in_channels, **extra):
    return dt.UNet2DConditionModel(
        sample_size=8, in_channels=in_channels, out_channels=4,
        down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
        block_out_channels=[16, 32], layers_per_block=1, norm_num_groups=8,
        cross_attention_dim=32, attention_head_dim=2, **extra)


def randomize(model, seed):
    """Random weights of a sensible scale: the default init leaves some layers at zero."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    parts = {
        "unet_pix2pix": randomize(cond_unet(8), 1),
        "unet_upscale": randomize(cond_unet(7, num_class_embeds=1000), 2),
        "unet_ldm": randomize(dt.UNet2DModel(
            sample_size=8, in_channels=6, out_channels=3,
            down_block_types=["DownBlock2D", "AttnDownBlock2D"],
            up_block_types=["AttnUpBlock2D", "UpBlock2D"],
            block_out_channels=[16, 32], layers_per_block=1, norm_num_groups=8,
            attention_head_dim=8), 3),
        "vqvae": randomize(dt.VQModel(
            block_out_channels=[16, 32], down_block_types=["DownEncoderBlock2D"] * 2,
            up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=3,
            num_vq_embeddings=64, norm_num_groups=8, sample_size=16), 4),
    }
    for name, model in parts.items():
        folder = os.path.join(OUT, name)
        dt.save_pretrained(model.eval(), folder)
        print(folder, sum(p.numel() for p in model.parameters()), "parameters")


if __name__ == "__main__":
    main()
