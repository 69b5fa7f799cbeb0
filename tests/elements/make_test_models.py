#!/usr/bin/python3
"""Writes the tiny models the diffusionsr element tests load (tests/elements/models/).

Run from the repository root when the model-file format changes:
    /usr/bin/python3 tests/elements/make_test_models.py

The files are in exactly the format of the shipped models (engine/ge-sr.h, models/sr/train.py):
a diffusers UNet2DModel working at low resolution, whose input is the noisy high-resolution
residual pixel-unshuffled by the scale concatenated with the low-resolution image
(in_channels 3*s*s + 3, out_channels 3*s*s), a DDIMScheduler config (trailing timesteps,
"sample" prediction) and the task ({"scale": s, "num_inference_steps": 2, ...}).  Weights are
random (fixed seed), so the outputs mean nothing, but they do depend on the noise and on the
image, which is what the element tests need (seeds change bytes, tiles must agree).

It writes the VAEs of the vaeencode/vaedecode tests: vae.safetensors (factor 4, 4 latent
channels, named like the installed model), vae-f2.safetensors (factor 2) and vae-c3.safetensors
(3 latent channels) for the mismatch errors, and the image-to-image models of
engine/ge-img2img.h: diffusionimg2img.safetensors (colorization: chroma at half resolution under
the source's luma) and img2img-rgb.safetensors (a paired RGB translation at full resolution);
`--vae-only` writes only these.

It also writes the inpainting models of engine/ge-inpaint.h: diffusioninpaint.safetensors in
the format of models/inpaint/train.py's (the residual over a classical fill), inpaint-x0.safetensors
in the plain one (the model predicts the image), and unconditional-ddpm.safetensors, a plain
diffusers UNet2DModel for RePaint.

Besides the working models it writes broken ones for the error paths:
  truncated.safetensors      a working model cut in the middle of its tensor data
  not-a-model.safetensors    text, not a safetensors file at all
  wrong-architecture.safetensors  a valid AutoencoderKL file, not a UNet2DModel
  wrong-scale.safetensors    an x2 UNet whose task claims scale 4 (channels do not match)
The working models are named like the installed ones (diffusionsr-x2/-x4.safetensors) so
that the tests can point GST_GENERATIVE_MODEL_DIR here and run the element with no
properties set.
"""

import json
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models", "common"))
import diffusers_torch as dt  # noqa: E402
import st  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "models", "sr"))
import train  # noqa: E402

OUT = os.path.join(ROOT, "tests", "elements", "models")


def scheduler_config():
    """The trained models' scheduler (models/sr/train.py), so the test models
    exercise the same sampler settings."""
    return train.scheduler_config("squaredcos_cap_v2")


def unet(s, seed):
    """A two-level UNet (8, 16 channels): a few thousand parameters."""
    torch.manual_seed(seed)
    m = dt.UNet2DModel(
        sample_size=None, in_channels=3 * s * s + 3, out_channels=3 * s * s,
        down_block_types=["DownBlock2D"] * 2, up_block_types=["UpBlock2D"] * 2,
        block_out_channels=[8, 16], layers_per_block=1, norm_num_groups=4,
        add_attention=False, attention_head_dim=None, flip_sin_to_cos=True, freq_shift=0,
        downsample_padding=1, act_fn="silu", norm_eps=1e-5)
    # With PyTorch's default init the predicted residual moves 8-bit pixels by about 25
    # levels (std), mostly passed-through noise; a tenth of conv_out brings that to a few
    # levels, still clearly seed-dependent, so that the tiling tolerance means something.
    with torch.no_grad():
        m.conv_out.weight.mul_(0.1)
    return m


def metadata(model, task):
    return {
        "format": "pt",
        "architecture": "UNet2DModel",
        "config": json.dumps(model.config_dict()),
        "scheduler": json.dumps(scheduler_config()),
        "task": json.dumps(task),
    }


def task(s):
    # residual_scale 1: the U-Net's output is the residual itself, whichever way a reader
    # treats the key.
    return {"scale": s, "num_inference_steps": 2, "residual_scale": 1.0}


def save_sr(path, s, seed, task_scale=None):
    m = unet(s, seed)
    t = task(task_scale or s)
    st.save(path, m.state_dict(), metadata(m, t))
    return path


def save_inpaint(path, seed, residual):
    """A three-level inpainting UNet (8, 16, 16 channels, mid-block attention): 7 channels in,
    3 out.  residual: models/inpaint/train.py's formulation (noisy residual, mask, base fill);
    else the plain one (noisy image, mask, masked image)."""
    torch.manual_seed(seed)
    m = dt.UNet2DModel(
        sample_size=None, in_channels=7, out_channels=3,
        down_block_types=["DownBlock2D"] * 3, up_block_types=["UpBlock2D"] * 3,
        block_out_channels=[8, 16, 16], layers_per_block=1, norm_num_groups=4,
        add_attention=True, attention_head_dim=8, flip_sin_to_cos=True, freq_shift=0,
        downsample_padding=1, act_fn="silu", norm_eps=1e-5)
    task = {"task": "inpaint", "num_inference_steps": 2}
    if residual:
        task.update(residual="base_fill", residual_scale=2.0, base_sigmas=[8.0, 2.0], base_support=0.3,
                    base_harmonic_sweeps=16, base_harmonic_omega=1.9)
    st.save(path, m.state_dict(), metadata(m, task))
    return path


def save_unconditional(path, seed):
    """A plain diffusers UNet2DModel (3 channels in and out, epsilon) with a DDPMScheduler config
    and no task: what a converted diffusers checkpoint looks like; inpainting runs RePaint."""
    torch.manual_seed(seed)
    m = dt.UNet2DModel(
        sample_size=None, in_channels=3, out_channels=3,
        down_block_types=["DownBlock2D"] * 2, up_block_types=["UpBlock2D"] * 2,
        block_out_channels=[8, 16], layers_per_block=1, norm_num_groups=4,
        add_attention=False, attention_head_dim=None, flip_sin_to_cos=True, freq_shift=0,
        downsample_padding=1, act_fn="silu", norm_eps=1e-5)
    sched = {"_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_start": 0.0001,
             "beta_end": 0.02, "beta_schedule": "linear", "clip_sample": True,
             "prediction_type": "epsilon"}
    st.save(path, m.state_dict(), {"format": "pt", "architecture": "UNet2DModel",
                                   "config": json.dumps(m.config_dict()), "scheduler": json.dumps(sched)})
    return path


def save_vae(path, seed, channels, latent):
    """A diffusers AutoencoderKL with mid-block attention, as models/vae/export.py writes them
    (config in the metadata, no task): factor 2^(len(channels)-1)."""
    torch.manual_seed(seed)
    m = dt.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * len(channels),
        up_block_types=["UpDecoderBlock2D"] * len(channels), block_out_channels=channels,
        layers_per_block=1, latent_channels=latent, norm_num_groups=4, scaling_factor=0.5)
    st.save(path, m.state_dict(), {"format": "pt", "architecture": "AutoencoderKL",
                                   "config": json.dumps(m.config_dict())})
    return path


def save_img2img(path, seed, target, s):
    """An image-to-image UNet in the format of engine/ge-img2img.h (models/img2img/): two levels
    (8, 16 channels); target "chroma": x_t (2) + unshuffled luma (s*s) in, chroma out; "rgb":
    unshuffled x_t and source (3*s*s each) in, unshuffled target out."""
    torch.manual_seed(seed)
    cx, cc = (2, s * s) if target == "chroma" else (3 * s * s, 3 * s * s)
    m = dt.UNet2DModel(
        sample_size=None, in_channels=cx + cc, out_channels=cx,
        down_block_types=["DownBlock2D"] * 2, up_block_types=["UpBlock2D"] * 2,
        block_out_channels=[8, 16], layers_per_block=1, norm_num_groups=4,
        add_attention=False, attention_head_dim=None, flip_sin_to_cos=True, freq_shift=0,
        downsample_padding=1, act_fn="silu", norm_eps=1e-5)
    with torch.no_grad():
        m.conv_out.weight.mul_(0.3)
    task = {"task": "img2img", "target": target, "scale": s, "num_inference_steps": 3}
    st.save(path, m.state_dict(), metadata(m, task))
    return path


def main():
    os.makedirs(OUT, exist_ok=True)
    save_img2img(os.path.join(OUT, "diffusionimg2img.safetensors"), 11, "chroma", 2)
    save_img2img(os.path.join(OUT, "img2img-rgb.safetensors"), 12, "rgb", 1)
    save_vae(os.path.join(OUT, "vae.safetensors"), 8, [8, 16, 16], 4)
    save_vae(os.path.join(OUT, "vae-f2.safetensors"), 9, [8, 8], 4)
    save_vae(os.path.join(OUT, "vae-c3.safetensors"), 10, [8, 16, 16], 3)
    if "--vae-only" in sys.argv:  # and the image-to-image models
        return
    save_inpaint(os.path.join(OUT, "inpaint-x0.safetensors"), 5, False)
    save_inpaint(os.path.join(OUT, "diffusioninpaint.safetensors"), 7, True)
    save_unconditional(os.path.join(OUT, "unconditional-ddpm.safetensors"), 6)
    x2 = save_sr(os.path.join(OUT, "diffusionsr-x2.safetensors"), 2, 1)
    save_sr(os.path.join(OUT, "diffusionsr-x4.safetensors"), 4, 2)
    save_sr(os.path.join(OUT, "wrong-scale.safetensors"), 2, 3, task_scale=4)

    with open(x2, "rb") as f:
        data = f.read()
    with open(os.path.join(OUT, "truncated.safetensors"), "wb") as f:
        f.write(data[: len(data) * 2 // 3])

    with open(os.path.join(OUT, "not-a-model.safetensors"), "w") as f:
        f.write("This is a text file, not a safetensors model.\n")

    torch.manual_seed(4)
    vae = dt.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[8, 8], layers_per_block=1,
        latent_channels=2, norm_num_groups=4)
    st.save(os.path.join(OUT, "wrong-architecture.safetensors"), vae.state_dict(), {
        "format": "pt",
        "architecture": "AutoencoderKL",
        "config": json.dumps(vae.config_dict()),
        "scheduler": json.dumps(scheduler_config()),
        "task": json.dumps(task(2)),
    })

    for name in sorted(os.listdir(OUT)):
        print("%8d %s" % (os.path.getsize(os.path.join(OUT, name)), name))


if __name__ == "__main__":
    main()
