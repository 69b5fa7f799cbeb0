#!/usr/bin/python3
"""Generates golden test cases for configurations that tests/fixtures/diffusers does not cover.

Usage:  /usr/bin/python3 tests/golden/make_golden.py [CASE ...]     (default: all cases)

Each case is written to tests/golden/<case>/ in the same format as tests/fixtures/diffusers:
  config.json                          diffusers config (with _class_name), loadable by diffusers
  diffusion_pytorch_model.safetensors  random weights (F32, names = diffusers state_dict names)
  io.safetensors                       inputs, outputs (F32, *_f64 = same model in float64), debug.* taps
  meta.json                            seeds, calls, f32-vs-f64 gaps
  README.md                            the exact calls

The models are the PyTorch re-implementation in models/common/diffusers_torch.py, which reproduces the
diffusers reference fixtures to <= 3e-6 relative (models/common/check_fixtures.py); these goldens
are NOT produced by diffusers itself.  Everything is seeded, runs on 1 CPU thread, and is deterministic.
"""

import json
import math
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models", "common"))

import diffusers_torch as dt  # noqa: E402
import st  # noqa: E402

# ------------------------------------------------------------------------------------------------
# The cases
# ------------------------------------------------------------------------------------------------

CASES = {
    # google/ddpm-style UNet: pad (0,1,0,1) downsampling, [sin, cos] embedding with freq_shift=1,
    # single-head attention (attention_head_dim=None), eps 1e-6, mid_block_scale_factor sqrt(2),
    # 4 levels with one resnet per level, non-square input.
    "unet_pad0_4level": dict(
        cls="UNet2DModel", seed=7000,
        what="UNet2DModel 4 levels (16,16,16,24), layers_per_block=1, downsample_padding=0, "
             "flip_sin_to_cos=False, freq_shift=1, attention_head_dim=None (1 head), norm_eps=1e-6, "
             "mid_block_scale_factor=sqrt(2), input 16x24",
        config=dict(
            sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
            block_out_channels=[16, 16, 16, 24],
            down_block_types=["DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
            norm_num_groups=8, norm_eps=1e-6, attention_head_dim=None, downsample_padding=0,
            flip_sin_to_cos=False, freq_shift=1, mid_block_scale_factor=math.sqrt(2.0)),
        input_shape=(2, 3, 16, 24),
        timesteps=[("int", 0), ("tensor0d", 999), ("tensor1d", [640, 3])],
    ),
    # LDM super-resolution-style UNet: 6 input channels (latents + low-res image), 3 output channels,
    # three resnets per level, multi-head attention incl. the last (non-downsampling) level,
    # mid_block_scale_factor 0.75, downsample_padding=1, non-square input.
    "unet_cond6_lpb3": dict(
        cls="UNet2DModel", seed=7100,
        what="UNet2DModel 3 levels (8,16,16), in_channels=6 (concatenated conditioning), out_channels=3, "
             "layers_per_block=3, attention_head_dim=8 (2 heads), attention on the last level, "
             "mid_block_scale_factor=0.75, input 20x28",
        config=dict(
            sample_size=32, in_channels=6, out_channels=3, layers_per_block=3,
            block_out_channels=[8, 16, 16],
            down_block_types=["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
            up_block_types=["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
            norm_num_groups=4, attention_head_dim=8, mid_block_scale_factor=0.75),
        input_shape=(2, 6, 20, 28),
        timesteps=[("int", 1), ("tensor0d", 500), ("tensor1d", [999, 0])],
    ),
    # Smallest variant: 2 levels, no mid-block attention (add_attention=False), freq_shift=1 with the
    # default flip_sin_to_cos=True, downsample_padding=0, batch 1.
    "unet_noattn_2level": dict(
        cls="UNet2DModel", seed=7200,
        what="UNet2DModel 2 levels (16,24), layers_per_block=1, add_attention=False (no mid attention), "
             "flip_sin_to_cos=True with freq_shift=1, downsample_padding=0, batch 1, input 16x24",
        config=dict(
            sample_size=16, in_channels=3, out_channels=3, layers_per_block=1,
            block_out_channels=[16, 24], down_block_types=["DownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "UpBlock2D"], norm_num_groups=8, add_attention=False,
            freq_shift=1, downsample_padding=0),
        input_shape=(1, 3, 16, 24),
        timesteps=[("int", 10), ("tensor0d", 777), ("tensor1d", [250])],
    ),
    # One level (no down/upsampling: the mid block runs at full resolution), the layout of the
    # shipped super-resolution models (models/sr/MODEL.md) with fewer channels: 15 channels in
    # (pixel-unshuffled residual + LR frame), 12 out, rows wide enough for the engine's
    # interleaved implicit GEMM.
    "unet_1level_sr": dict(
        cls="UNet2DModel", seed=7250,
        what="UNet2DModel 1 level (16,), in_channels=15, out_channels=12, layers_per_block=1, "
             "add_attention=False, norm_num_groups=8, batch 1, input 10x64",
        config=dict(
            sample_size=None, in_channels=15, out_channels=12, layers_per_block=1,
            block_out_channels=[16], down_block_types=["DownBlock2D"], up_block_types=["UpBlock2D"],
            norm_num_groups=8, add_attention=False, attention_head_dim=None, flip_sin_to_cos=True,
            freq_shift=0, downsample_padding=1),
        input_shape=(1, 15, 10, 64),
        timesteps=[("int", 999), ("tensor0d", 499), ("tensor1d", [249])],
    ),
    # AutoencoderKL with 3 levels and 2 resnets per level (3 per decoder level).
    # Stable Diffusion 2.x-style UNet2DConditionModel: linear projections (use_linear_projection),
    # a per-block head count list, upcast_attention, 2 transformer layers in the first block,
    # a context width that is not the channel width, non-square input.
    "unet_cond_sd2_linear": dict(
        cls="UNet2DConditionModel", seed=7400,
        what="UNet2DConditionModel SD 2.x layout (16,32,32), use_linear_projection=True, "
             "attention_head_dim=[2,4,4] (heads per block), upcast_attention=True, "
             "transformer_layers_per_block=[2,1,1], cross_attention_dim=24, input 16x24, 5 text tokens",
        config=dict(
            sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=[16, 32, 32],
            down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
            norm_num_groups=8, attention_head_dim=[2, 4, 4], cross_attention_dim=24,
            use_linear_projection=True, upcast_attention=True, transformer_layers_per_block=[2, 1, 1]),
        input_shape=(2, 4, 16, 24), seq=5,
        timesteps=[("int", 0), ("tensor0d", 999), ("float", 437.75)],
    ),
    # x4-upscaler-style: 7 input channels (latents + the noised low-res RGB), the noise level as
    # class labels (num_class_embeds), only_cross_attention in the first blocks, 2 layers per block.
    "unet_cond_upscaler": dict(
        cls="UNet2DConditionModel", seed=7500,
        what="UNet2DConditionModel x4-upscaler layout (16,32,32), in_channels=7, num_class_embeds=50 "
             "(noise level as class_labels), only_cross_attention=[True,True,False], layers_per_block=2, "
             "attention_head_dim=4, cross_attention_dim=16, input 16x16",
        config=dict(
            sample_size=16, in_channels=7, out_channels=4, layers_per_block=2,
            block_out_channels=[16, 32, 32],
            down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
            up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
            norm_num_groups=8, attention_head_dim=4, cross_attention_dim=16, num_class_embeds=50,
            only_cross_attention=[True, True, False]),
        input_shape=(2, 7, 16, 16), seq=6, class_labels=[20, 3],
        timesteps=[("int", 0), ("tensor0d", 640), ("tensor1d", [999, 5])],
    ),
    # An SD 2.x-style (OpenCLIP) text encoder: exact gelu, the old eos_token_id 2 (pooling at the
    # argmax of the ids), another layer norm eps, ids with padding after eos.
    "clip_text_gelu_eos2": dict(
        cls="CLIPTextModel", seed=7600,
        what="CLIPTextModel hidden 32, 4 heads, 2 layers, intermediate 48, hidden_act gelu, "
             "eos_token_id 2 (argmax pooling), layer_norm_eps 1e-6, 12 positions",
        config=dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                    num_attention_heads=4, max_position_embeddings=12, hidden_act="gelu",
                    layer_norm_eps=1e-6, bos_token_id=0, eos_token_id=2, pad_token_id=1),
        ids=[[0, 17, 40, 9, 2, 1, 1, 1, 1, 1, 1, 1], [0, 63, 5, 22, 33, 8, 11, 2, 1, 1, 1, 1]],
    ),
    "vae_kl_3level": dict(
        cls="AutoencoderKL", seed=7300,
        what="AutoencoderKL 3 levels (8,16,16), layers_per_block=2, latent_channels=4, input 32x24",
        config=dict(
            in_channels=3, out_channels=3, block_out_channels=[8, 16, 16], layers_per_block=2,
            down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
            latent_channels=4, norm_num_groups=4, sample_size=32),
        input_shape=(2, 3, 32, 24),
    ),
    # VQModel (LDM super-resolution layout, scaled down): 2 levels, 3 latent channels, 64 codes.
    "vq_small": dict(
        cls="VQModel", seed=7400,
        what="VQModel 2 levels (16,32), layers_per_block=1, latent_channels=3, num_vq_embeddings=64, "
             "input 24x32",
        config=dict(
            in_channels=3, out_channels=3, block_out_channels=[16, 32], layers_per_block=1,
            down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
            latent_channels=3, num_vq_embeddings=64, norm_num_groups=8, sample_size=32),
        input_shape=(2, 3, 24, 32),
    ),
}

RANDOMIZE_TEXT = (
    "constructed with the config in `config.json`, then every parameter overwritten by "
    "`randomize_(model, seed)`: one `torch.Generator().manual_seed(seed)`, modules visited in "
    "`named_modules()` order: Conv2d/Linear weight ~ N(0,(gain/sqrt(fan_in))^2) with gain 2.0 for attention "
    "`to_q`/`to_k` and 1.4 otherwise, bias ~ N(0,0.1^2); GroupNorm weight ~ 1+N(0,0.3^2), bias ~ N(0,0.2^2); "
    "VQ codebook (`quantize.embedding.weight`) ~ N(0, 0.5^2). The weights are stored in "
    "`diffusion_pytorch_model.safetensors` (all F32, names exactly as diffusers' `model.state_dict()`, header "
    "metadata `{\"format\":\"pt\"}`); the outputs were computed with the model re-loaded from that file "
    "(`.eval()`, `torch.no_grad()`)."
)


def randomize_(model, seed):
    """Overwrites every parameter with seeded random values (same scheme as the diffusers fixtures)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                fan_in = mod.weight[0].numel()
                gain = 2.0 if name.endswith(("to_q", "to_k")) else 1.4
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * (gain / math.sqrt(fan_in)))
                if mod.bias is not None:
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen) * 0.1)
            elif isinstance(mod, nn.GroupNorm):
                mod.weight.copy_(1.0 + torch.randn(mod.weight.shape, generator=gen) * 0.3)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=gen) * 0.2)
            elif isinstance(mod, nn.Embedding):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * 0.5)


class Taps:
    """Records outputs (batch element 0) of the named sub-modules; first call of each wins."""

    def __init__(self, model, names):
        self.out = {}
        mods = dict(model.named_modules())
        self.handles = [mods[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name):
        def hook(_m, _i, output):
            if isinstance(output, tuple):  # down blocks return (hidden, skips): keep hidden
                output = output[0]
            self.out.setdefault("debug." + name, output[0:1].detach().clone())
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


def stats(t):
    return f"mean={t.mean().item():+.4f} std={t.std().item():.4f} absmax={t.abs().max().item():.4f}"


def provenance():
    return {
        "generator": "tests/golden/make_golden.py",
        "implementation": "models/common/diffusers_torch.py (PyTorch re-implementation of diffusers "
                          f"{dt.DIFFUSERS_VERSION} UNet2DModel/AutoencoderKL/VQModel; NOT diffusers itself)",
        "torch_version": torch.__version__,
        "device": "cpu",
        "torch_num_threads": 1,
        "attention": "baddbmm + float32 softmax, like diffusers AttnProcessor",
        "safetensors": "pure-python writer models/common/st.py",
    }


def build(case):
    """Builds the model, randomises it, saves it and re-loads it from disk (like the fixtures)."""
    spec = CASES[case]
    out_dir = os.path.join(HERE, case)
    model = dt.MODEL_CLASSES[spec["cls"]](**spec["config"])
    randomize_(model, spec["seed"])
    dt.save_pretrained(model, out_dir)
    model = dt.load_pretrained(out_dir)
    # (the CLIP reference has no float64 twin: its masks are float32's lowest value)
    model64 = None if spec["cls"] == "CLIPTextModel" else dt.load_pretrained(out_dir, dtype=torch.float64)
    return spec, out_dir, model, model64


# ------------------------------------------------------------------------------------------------
# Per-class generators: each returns (io dict, meta additions, README "calls" markdown)
# ------------------------------------------------------------------------------------------------


def gen_unet(spec, model, model64):
    cfg = model.config
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    x = torch.randn(spec["input_shape"], generator=gen)
    io = {"input.sample": x}
    half = cfg.block_out_channels[0] // 2
    io["time_proj.freqs"] = torch.exp((-math.log(10000) * torch.arange(0, half, dtype=torch.float32))
                                      / (half - cfg.freq_shift))
    # taps: conv_in, every down block, mid block, every up block (batch element 0, during call1)
    tap_names = ["conv_in"] + [f"down_blocks.{i}" for i in range(len(model.down_blocks))] + ["mid_block"] \
        + [f"up_blocks.{i}" for i in range(len(model.up_blocks))]
    calls, gaps, lines = [], {}, []
    for n, (kind, value) in enumerate(spec["timesteps"]):
        if kind == "int":
            t, t_store, expr = value, torch.tensor(value, dtype=torch.int64), f"{value}"
        elif kind == "tensor0d":
            t = t_store = torch.tensor(value, dtype=torch.int64)
            expr = f"torch.tensor({value})"
        else:
            t = t_store = torch.tensor(value, dtype=torch.int64)
            expr = f"torch.tensor({value})"
        taps = Taps(model, tap_names) if n == 1 else None
        with torch.no_grad():
            out = model(x, t).sample
            out64 = model64(x.double(), t).sample
            t_b = t_store.reshape(-1) * torch.ones(x.shape[0], dtype=torch.int64)
            t_emb = model.time_proj(t_b)
            emb = model.time_embedding(t_emb)
        if taps is not None:
            taps.close()
            io.update(taps.out)
        io.update({f"call{n}.timestep": t_store, f"call{n}.out": out, f"call{n}.out_f64": out64,
                   f"call{n}.t_emb": t_emb, f"call{n}.emb": emb})
        gaps[f"call{n}"] = (out.double() - out64).abs().max().item()
        py = f"model(io['input.sample'], {expr}).sample"
        calls.append({"call": n, "timestep_kind": kind, "timestep": value, "python": py, "out_stats": stats(out)})
        lines.append(f"- call{n}: `{py}` (timestep given as {kind}) → `call{n}.out` / `call{n}.out_f64`")
    meta = {"input": {"key": "input.sample", "shape": list(x.shape),
                      "generation": f"torch.randn({tuple(x.shape)}, generator=torch.Generator()"
                                    f".manual_seed({spec['seed'] + 1}))"},
            "calls": calls, "debug_call": 1, "f32_vs_f64_maxabs": gaps}
    text = (f"Input: `input.sample` = `{meta['input']['generation']}`, F32, NCHW.\n\n"
            "Calls (model in eval mode, `torch.no_grad()`):\n" + "\n".join(lines) + "\n\n"
            "For every call also: `callN.timestep` (the timestep value(s) passed, I64; a 0-d tensor for scalar "
            "timesteps), `callN.t_emb` = `model.time_proj(t_b)` (F32 [B, block_out_channels[0]]) and "
            "`callN.emb` = `model.time_embedding(t_emb)` (F32 [B, 4*block_out_channels[0]]), where "
            "`t_b = timestep * torch.ones(B, dtype=int64)` as in `UNet2DModel.forward`. `time_proj.freqs` = "
            "`torch.exp((-math.log(10000) * torch.arange(0, half, dtype=torch.float32)) / (half - freq_shift))` "
            "(use this table to match torch's float32 exp bit for bit).\n\n"
            f"Debug taps (batch element 0) recorded during call1: "
            + ", ".join(f"`debug.{n}`" for n in tap_names)
            + ". For `down_blocks.N` the value is the first element of the returned tuple (after the "
              "optional downsampler).\n")
    return io, meta, text


def gen_unet_cond(spec, model, model64):
    """UNet2DConditionModel: the same calls as gen_unet with text states (and class labels)."""
    cfg = model.config
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    x = torch.randn(spec["input_shape"], generator=gen)
    ehs = torch.randn((x.shape[0], spec["seq"], cfg.cross_attention_dim), generator=gen)
    io = {"input.sample": x, "input.encoder_hidden_states": ehs}
    labels = None
    if "class_labels" in spec:
        labels = torch.tensor(spec["class_labels"], dtype=torch.int64)
        io["input.class_labels"] = labels
    half = cfg.block_out_channels[0] // 2
    io["time_proj.freqs"] = torch.exp((-math.log(10000) * torch.arange(0, half, dtype=torch.float32))
                                      / (half - cfg.freq_shift))
    tap_names = ["conv_in"] + [f"down_blocks.{i}" for i in range(len(model.down_blocks))] + ["mid_block"] \
        + [f"up_blocks.{i}" for i in range(len(model.up_blocks))]
    calls, gaps, lines = [], {}, []
    for n, (kind, value) in enumerate(spec["timesteps"]):
        if kind == "int":
            t, t_store = value, torch.tensor(value, dtype=torch.int64)
        elif kind == "float":
            t = t_store = torch.tensor(value, dtype=torch.float32)
        else:
            t = t_store = torch.tensor(value, dtype=torch.int64)
        taps = Taps(model, tap_names) if n == 1 else None
        with torch.no_grad():
            out = model(x, t, ehs, class_labels=labels).sample
            out64 = model64(x.double(), t, ehs.double(), class_labels=labels).sample
        if taps is not None:
            taps.close()
            io.update(taps.out)
        io.update({f"call{n}.timestep": t_store, f"call{n}.out": out, f"call{n}.out_f64": out64})
        gaps[f"call{n}"] = (out.double() - out64).abs().max().item()
        py = (f"model(io['input.sample'], {value!r}, io['input.encoder_hidden_states']"
              + (", class_labels=io['input.class_labels']" if labels is not None else "") + ").sample")
        calls.append({"call": n, "timestep_kind": kind, "timestep": value, "python": py, "out_stats": stats(out)})
        lines.append(f"- call{n}: `{py}` (timestep given as {kind}) → `call{n}.out` / `call{n}.out_f64`")
    meta = {"input": {"key": "input.sample", "shape": list(x.shape),
                      "generation": f"x, then encoder_hidden_states: torch.randn from one "
                                    f"torch.Generator().manual_seed({spec['seed'] + 1})"},
            "calls": calls, "debug_call": 1, "f32_vs_f64_maxabs": gaps}
    text = ("Inputs: `input.sample`, `input.encoder_hidden_states` ([B, seq, cross_attention_dim])"
            + (", `input.class_labels` (I64 [B])" if labels is not None else "")
            + ", F32 unless said.\n\nCalls (model in eval mode, `torch.no_grad()`):\n" + "\n".join(lines)
            + "\n\n`callN.timestep` is the timestep passed (a float timestep is NOT truncated by "
              "UNet2DConditionModel). `time_proj.freqs` as in the other U-Net cases.\n\n"
              "Debug taps (batch element 0) recorded during call1: "
            + ", ".join(f"`debug.{n}`" for n in tap_names) + ".\n")
    return io, meta, text


def gen_clip(spec, model, model64):
    """CLIPTextModel: without and with the padding mask, every hidden state, pooled output."""
    ids = torch.tensor(spec["ids"], dtype=torch.int64)
    mask = (torch.arange(ids.shape[1])[None, :] <= (ids == model.config.eos_token_id).int().argmax(-1)[:, None])
    mask = mask.to(torch.int64)
    io = {"input.input_ids": ids, "input.attention_mask": mask}
    for n, m in enumerate((None, mask)):
        with torch.no_grad():
            o = model(ids, m, output_hidden_states=True)
        io[f"call{n}.last_hidden_state"] = o.last_hidden_state
        io[f"call{n}.pooler_output"] = o.pooler_output
        for k, h in enumerate(o.hidden_states):
            io[f"call{n}.hidden_states.{k}"] = h
    meta = {"calls": [{"call": 0, "attention_mask": None}, {"call": 1, "attention_mask": "input.attention_mask"}]}
    text = ("Inputs: `input.input_ids` (I64 [2, 12]) and `input.attention_mask` (I64, 1 up to the first eos).\n\n"
            "- call0: `model(ids, output_hidden_states=True)` (no mask, as Stable Diffusion calls it)\n"
            "- call1: `model(ids, attention_mask, output_hidden_states=True)`\n\n"
            "Each stores `callN.last_hidden_state`, `callN.pooler_output` (eos_token_id is 2: the row of "
            "`ids.argmax(-1)`) and `callN.hidden_states.K` (K = 0: embeddings; pre-final-LN).\n")
    return io, meta, text


def gen_vae(spec, model, model64):
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    x = torch.rand(spec["input_shape"], generator=gen) * 2 - 1
    lat = model.config.latent_channels
    n_down = len(model.config.block_out_channels) - 1
    b, _, h, w = x.shape
    z = torch.randn((b, lat, h >> n_down, w >> n_down), generator=gen)
    enc_taps = ["encoder.conv_in"] + [f"encoder.down_blocks.{i}" for i in range(len(model.encoder.down_blocks))] \
        + ["encoder.mid_block", "encoder", "quant_conv"]
    dec_taps = ["post_quant_conv", "decoder.conv_in", "decoder.mid_block"] \
        + [f"decoder.up_blocks.{i}" for i in range(len(model.decoder.up_blocks))] + ["decoder"]
    with torch.no_grad():
        taps = Taps(model, enc_taps)
        dist = model.encode(x).latent_dist
        taps.close()
        taps2 = Taps(model, dec_taps)
        dec_mean = model.decode(dist.mean).sample
        taps2.close()
        dec_z = model.decode(z).sample
        dist64 = model64.encode(x.double()).latent_dist
        dec_mean64 = model64.decode(dist64.mean).sample
        dec_z64 = model64.decode(z.double()).sample
    io = {"input.sample": x, "input.z": z, "encode.moments": dist.parameters, "encode.mean": dist.mean,
          "encode.logvar": dist.logvar, "encode.std": dist.std, "decode_mean.sample": dec_mean,
          "decode_z.sample": dec_z, "encode.mean_f64": dist64.mean, "encode.std_f64": dist64.std,
          "decode_mean.sample_f64": dec_mean64, "decode_z.sample_f64": dec_z64, **taps.out, **taps2.out}
    gaps = {"encode.mean": (dist.mean.double() - dist64.mean).abs().max().item(),
            "encode.std": (dist.std.double() - dist64.std).abs().max().item(),
            "decode_mean.sample": (dec_mean.double() - dec_mean64).abs().max().item(),
            "decode_z.sample": (dec_z.double() - dec_z64).abs().max().item()}
    meta = {"input": {"generation": f"gen = torch.Generator().manual_seed({spec['seed'] + 1}); "
                                    f"input.sample = torch.rand({tuple(x.shape)}, generator=gen)*2-1; "
                                    f"input.z = torch.randn({tuple(z.shape)}, generator=gen)"},
            "f32_vs_f64_maxabs": gaps,
            "debug_call": "encode(input.sample) for encoder taps, decode(encode.mean) for decoder taps"}
    text = (f"Inputs: `gen = torch.Generator().manual_seed({spec['seed'] + 1})`; `input.sample = "
            f"torch.rand({tuple(x.shape)}, generator=gen)*2-1` (non-square on purpose); then `input.z = "
            f"torch.randn({tuple(z.shape)}, generator=gen)`.\n\n"
            "Computed (eval, no_grad):\n"
            f"- `dist = model.encode(input.sample).latent_dist` → `encode.moments` (= `dist.parameters`, the "
            f"quant_conv output: channels 0..{lat - 1} mean, {lat}..{2 * lat - 1} logvar), `encode.mean`, "
            "`encode.logvar` (clamped to [-30,20]), `encode.std` (= exp(0.5*logvar)).\n"
            "- `model.decode(encode.mean).sample` → `decode_mean.sample`.\n"
            "- `model.decode(input.z).sample` → `decode_z.sample`.\n"
            "- `*_f64`: the same with the model and inputs in float64.\n\n"
            "`scaling_factor` is NOT applied by encode/decode. Encoder downsampling pads (0,1,0,1) then a "
            "3x3 stride-2 conv; all GroupNorms use eps=1e-6; the mid-block attention is single-head.\n\n"
            "Debug taps (batch element 0): " + ", ".join(f"`debug.{n}`" for n in enc_taps)
            + " during `encode`; " + ", ".join(f"`debug.{n}`" for n in dec_taps)
            + " during `decode(encode.mean)`.\n")
    return io, meta, text


def gen_vq(spec, model, model64):
    gen = torch.Generator().manual_seed(spec["seed"] + 1)
    x = torch.rand(spec["input_shape"], generator=gen) * 2 - 1
    with torch.no_grad():
        h = model.encode(x).latents
        _, idx = model.quantize(h)
        dec = model.decode(h).sample
        dec_nq = model.decode(h, force_not_quantize=True).sample
        dec64 = model64.decode(model64.encode(x.double()).latents).sample
        # robustness of the indices: exact float64 distances from the float32 latents
        zf = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1]).double()
        d = ((zf[:, None, :] - model.quantize.embedding.weight.double()[None]) ** 2).sum(-1).sqrt()
        top2 = d.topk(2, dim=1, largest=False).values
        margin = (top2[:, 1] - top2[:, 0]).min().item()
        exact_idx = d.argmin(dim=1)
    if not torch.equal(exact_idx, idx):
        raise RuntimeError("vq: cdist argmin differs from exact argmin: pick another seed")
    io = {"input.sample": x, "encode.latents": h, "quantize.indices": idx.to(torch.int64),
          "decode.sample": dec, "decode_noquant.sample": dec_nq}
    meta = {"input": {"generation": f"torch.rand({tuple(x.shape)}, generator=torch.Generator()"
                                    f".manual_seed({spec['seed'] + 1}))*2-1"},
            "quantize": {"distinct_indices": int(idx.unique().numel()),
                         "num_vq_embeddings": model.config.num_vq_embeddings,
                         "min_gap_2nd_best_distance": margin},
            "f32_vs_f64_maxabs": {"decode.sample": (dec.double() - dec64).abs().max().item()}}
    text = (f"Input: `input.sample = torch.rand({tuple(x.shape)}, generator=torch.Generator()"
            f".manual_seed({spec['seed'] + 1}))*2-1` (non-square).\n\n"
            "Computed (eval, no_grad):\n"
            "- `h = model.encode(input.sample).latents` → `encode.latents` (encoder + quant_conv, NOT quantised).\n"
            "- `model.decode(h).sample` → `decode.sample` (decode quantises by default, as the LDM "
            "super-resolution pipeline relies on).\n"
            "- `model.decode(h, force_not_quantize=True).sample` → `decode_noquant.sample`.\n"
            "- `quantize.indices` (I64, flat [B*H*W], row-major over (b, y, x)): "
            "`argmin(torch.cdist(z, codebook), 1)` with z = h permuted to NHWC and flattened; the quantised "
            "value is `z + (e - z)` in float32. The indices were checked against exact float64 distances; "
            f"the smallest gap between the best and second-best distance is {margin:.3g} "
            f"({int(idx.unique().numel())} distinct codes used).\n")
    return io, meta, text


GENERATORS = {"UNet2DModel": gen_unet, "UNet2DConditionModel": gen_unet_cond, "AutoencoderKL": gen_vae,
              "CLIPTextModel": gen_clip,
              "VQModel": gen_vq}


def write_case(case):
    spec, out_dir, model, model64 = build(case)
    io, meta_extra, calls_text = GENERATORS[spec["cls"]](spec, model, model64)
    io = {k: v.contiguous() for k, v in io.items()}
    st.save(os.path.join(out_dir, "io.safetensors"), io, metadata={"format": "pt"})

    sd = model.state_dict()
    meta = {"case": case, "class": spec["cls"], "seed": spec["seed"], **meta_extra,
            "weights": {"num_tensors": len(sd), "num_params": int(sum(v.numel() for v in sd.values()))},
            "provenance": provenance()}
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        f.write(json.dumps(meta, indent=2) + "\n")

    dtypes = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
    table = "\n".join(f"| `{k}` | {dtypes[v.dtype]} | {list(v.shape)} |" for k, v in sorted(io.items()))
    cfg = {k: v for k, v in model.config_dict().items() if k in spec["config"]}
    weights_text = RANDOMIZE_TEXT.replace("randomize_(model, seed)", f"randomize_(model, {spec['seed']})")
    readme = (
        f"# {case}: {spec['cls']}\n\n{spec['what']}.\n\n"
        "Golden case generated by `tests/golden/make_golden.py` with the PyTorch re-implementation "
        "`models/common/diffusers_torch.py` (checked against the real-diffusers fixtures in "
        "`tests/fixtures/diffusers` by `models/common/check_fixtures.py`), NOT by diffusers itself. "
        "Same file format as `tests/fixtures/diffusers`; read its `NOTES.md`.\n\n"
        f"Config (non-default keys; full config in `config.json`): `{json.dumps(cfg)}`\n\n"
        f"{calls_text}\n"
        f"Weights: {weights_text}\n\n"
        "`*_f64` tensors: the same model cast to float64 with float64 inputs (the sinusoidal time embedding "
        "is still built in float32 and the attention softmax runs in float32, as in diffusers); the "
        "f32-vs-f64 gap in `meta.json` shows how much float32 rounding alone moves the result. Suggested "
        "check for a float32 engine: max|err| / max|ref| < 1e-4 per output.\n\n"
        "Tensor layout: NCHW, row-major. Dtypes: F32 unless the key ends in `_f64` (F64) or is a "
        "timestep/index tensor (I64).\n\n"
        "## Files\n\n- `config.json`: diffusers (or transformers) config\n"
        f"- `{'model' if spec['cls'] == 'CLIPTextModel' else 'diffusion_pytorch_model'}.safetensors`: weights\n"
        "- `io.safetensors`: inputs / outputs / debug taps\n- `meta.json`: seeds, calls, f32-vs-f64 gaps\n\n"
        f"## Tensors in io.safetensors\n\n| key | dtype | shape |\n|---|---|---|\n{table}\n")
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write(readme)
    size = sum(os.path.getsize(os.path.join(out_dir, n)) for n in os.listdir(out_dir))
    print(f"{case}: {meta['weights']['num_params']} params, {size / 1024:.0f} KiB")
    return size


def main():
    torch.set_num_threads(1)
    cases = sys.argv[1:] or list(CASES)
    for case in cases:
        write_case(case)


if __name__ == "__main__":
    main()
