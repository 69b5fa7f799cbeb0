"""Dependency-free PyTorch re-implementation of diffusers' UNet2DModel, AutoencoderKL and VQModel.

Only torch is needed (no `diffusers`, no `safetensors`).  The module tree and therefore the
state_dict names are exactly diffusers' (0.35.x), so a diffusers checkpoint loads with
`load_state_dict(..., strict=True)`, and the arithmetic follows diffusers op by op (same torch
calls in the same order), so float32 results agree with diffusers to rounding level.
tests/fixtures/diffusers/NOTES.md lists the behaviours that matter; they are pointed out below.

Supported subset (anything else raises ValueError in the constructor):
  * UNet2DModel: positional time embedding, DownBlock2D / AttnDownBlock2D, UpBlock2D /
    AttnUpBlock2D, UNetMidBlock2D, conv down/upsampling, resnet_time_scale_shift "default",
    no class embedding, act_fn silu.
  * AutoencoderKL and VQModel: DownEncoderBlock2D / UpDecoderBlock2D, norm_type "group".

Usage:
    model = load_pretrained("some/folder")       # config.json + diffusion_pytorch_model.safetensors
    out = model(sample, timestep).sample          # UNet2DModel
"""

import json
import math
import os
import re
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

try:  # imported as part of a package (models.common) or with models/common on sys.path
    from . import st
except ImportError:
    import st

DIFFUSERS_VERSION = "0.35.2"  # the diffusers version whose behaviour and config format this follows


def _check_act(act_fn):
    if act_fn != "silu":
        raise ValueError(f"act_fn={act_fn!r}: only 'silu' is supported")


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------


def get_timestep_embedding(timesteps, embedding_dim, flip_sin_to_cos=False, downscale_freq_shift=1.0,
                           scale=1.0, max_period=10000):
    """Sinusoidal embedding, exactly diffusers.models.embeddings.get_timestep_embedding.

    freqs = exp(-ln(10000) * i / (half - freq_shift)) is computed with torch's float32 exp (NOTES.md 5:
    it is not correctly rounded, so a C port should use the stored freqs table).
    """
    half_dim = embedding_dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half_dim, dtype=torch.float32, device=timesteps.device)
    exponent = exponent / (half_dim - downscale_freq_shift)
    emb = torch.exp(exponent)
    emb = timesteps[:, None].float() * emb[None, :]
    emb = scale * emb
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half_dim:], emb[:, :half_dim]], dim=-1)
    if embedding_dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


class Timesteps(nn.Module):
    """time_proj: no parameters."""

    def __init__(self, num_channels, flip_sin_to_cos, downscale_freq_shift):
        super().__init__()
        self.num_channels = num_channels
        self.flip_sin_to_cos = flip_sin_to_cos
        self.downscale_freq_shift = downscale_freq_shift

    def forward(self, timesteps):
        return get_timestep_embedding(timesteps, self.num_channels, flip_sin_to_cos=self.flip_sin_to_cos,
                                      downscale_freq_shift=self.downscale_freq_shift)


class TimestepEmbedding(nn.Module):
    """time_embedding: Linear -> SiLU -> Linear (no activation at the end)."""

    def __init__(self, in_channels, time_embed_dim):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, sample):
        return self.linear_2(self.act(self.linear_1(sample)))


class ResnetBlock2D(nn.Module):
    """GN -> SiLU -> conv1 -> (+ Linear(SiLU(temb))) -> GN -> SiLU -> conv2; (shortcut + h) / scale.

    The time term is added BEFORE norm2 (NOTES.md 4).  temb_channels=None (VAE) drops time_emb_proj.
    """

    def __init__(self, in_channels, out_channels, temb_channels, eps, groups, output_scale_factor=1.0):
        super().__init__()
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(num_groups=groups, num_channels=in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels) if temb_channels is not None else None
        self.norm2 = nn.GroupNorm(num_groups=groups, num_channels=out_channels, eps=eps, affine=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.nonlinearity = nn.SiLU()
        # 1x1 conv on the residual path only when the channel count changes
        self.conv_shortcut = (nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)
                              if in_channels != out_channels else None)

    def forward(self, input_tensor, temb=None):
        h = self.nonlinearity(self.norm1(input_tensor))
        h = self.conv1(h)
        if self.time_emb_proj is not None and temb is not None:
            h = h + self.time_emb_proj(self.nonlinearity(temb))[:, :, None, None]
        h = self.nonlinearity(self.norm2(h))
        h = self.conv2(h)
        if self.conv_shortcut is not None:
            input_tensor = self.conv_shortcut(input_tensor.contiguous())
        return (input_tensor + h) / self.output_scale_factor


class Attention(nn.Module):
    """Spatial self-attention with the diffusers names (group_norm, to_q, to_k, to_v, to_out.0).

    heads = C // head_dim, head h uses channels [h*d, (h+1)*d), score scale d**-0.5, softmax in
    float32, residual add, then divide by rescale_output_factor (NOTES.md 6).  Computed like
    diffusers' AttnProcessor (baddbmm + softmax) so that the rounding matches.
    """

    def __init__(self, channels, head_dim, eps, groups, rescale_output_factor=1.0):
        super().__init__()
        if head_dim is None:
            head_dim = channels  # one head
        self.heads = channels // head_dim
        self.head_dim = head_dim
        inner_dim = head_dim * self.heads
        self.scale = head_dim ** -0.5
        self.rescale_output_factor = rescale_output_factor
        self.group_norm = nn.GroupNorm(num_channels=channels, num_groups=groups, eps=eps, affine=True)
        self.to_q = nn.Linear(channels, inner_dim, bias=True)
        self.to_k = nn.Linear(channels, inner_dim, bias=True)
        self.to_v = nn.Linear(channels, inner_dim, bias=True)
        self.to_out = nn.ModuleList([nn.Linear(inner_dim, channels, bias=True), nn.Dropout(0.0)])

    def _head_to_batch(self, t):  # [B, S, heads*d] -> [B*heads, S, d]
        b, s, dim = t.shape
        return t.reshape(b, s, self.heads, dim // self.heads).permute(0, 2, 1, 3).reshape(
            b * self.heads, s, dim // self.heads)

    def _batch_to_head(self, t):  # [B*heads, S, d] -> [B, S, heads*d]
        bh, s, d = t.shape
        return t.reshape(bh // self.heads, self.heads, s, d).permute(0, 2, 1, 3).reshape(
            bh // self.heads, s, d * self.heads)

    def forward(self, hidden_states, temb=None):
        residual = hidden_states
        b, c, h, w = hidden_states.shape
        # tokens are the H*W positions in row-major order
        x = hidden_states.view(b, c, h * w).transpose(1, 2)
        x = self.group_norm(x.transpose(1, 2)).transpose(1, 2)
        q = self._head_to_batch(self.to_q(x))
        k = self._head_to_batch(self.to_k(x))
        v = self._head_to_batch(self.to_v(x))
        dtype = q.dtype
        if torch.onnx.is_in_onnx_export():
            # same maths; avoids exporting an uninitialised torch.empty (beta=0 * garbage may be NaN)
            scores = torch.bmm(q, k.transpose(-1, -2)) * self.scale
        else:
            scores = torch.baddbmm(torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=dtype, device=q.device),
                                   q, k.transpose(-1, -2), beta=0, alpha=self.scale)
        probs = scores.float().softmax(dim=-1).to(dtype)  # upcast_softmax=True
        x = self._batch_to_head(torch.bmm(probs, v))
        x = self.to_out[0](x)
        x = self.to_out[1](x)
        x = x.transpose(-1, -2).reshape(b, c, h, w)
        return (x + residual) / self.rescale_output_factor


class Downsample2D(nn.Module):
    """3x3 stride-2 conv; padding=0 means F.pad (0,1,0,1) (right column, bottom row) first (NOTES.md 1)."""

    def __init__(self, channels, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=padding, bias=True)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0)
        return self.conv(x)


class Upsample2D(nn.Module):
    """Nearest x2 upsampling, then a 3x3 conv with padding 1 (NOTES.md 2)."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=True)

    def forward(self, x, output_size=None):
        dtype = x.dtype
        if dtype == torch.bfloat16:
            x = x.to(torch.float32)
        if x.shape[0] >= 64:
            x = x.contiguous()
        if output_size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=output_size, mode="nearest")
        if dtype == torch.bfloat16:
            x = x.to(dtype)
        return self.conv(x)


class DownBlock(nn.Module):
    """DownBlock2D / AttnDownBlock2D (UNet, returns skips) and DownEncoderBlock2D (VAE, returns h).

    Every resnet output (after its attention, if any) and the downsampler output are skips
    (NOTES.md 3).
    """

    def __init__(self, in_channels, out_channels, temb_channels, num_layers, eps, groups, add_downsample,
                 downsample_padding, attention_head_dim=None, with_attention=False, return_skips=True):
        super().__init__()
        self.return_skips = return_skips
        self.resnets = nn.ModuleList([
            ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, temb_channels, eps, groups)
            for i in range(num_layers)])
        if with_attention:
            self.attentions = nn.ModuleList([
                Attention(out_channels, attention_head_dim, eps, groups) for _ in range(num_layers)])
        else:
            self.attentions = None
        if add_downsample:
            self.downsamplers = nn.ModuleList([Downsample2D(out_channels, downsample_padding)])
        else:
            self.downsamplers = None

    def forward(self, hidden_states, temb=None):
        skips = ()
        for i, resnet in enumerate(self.resnets):
            hidden_states = resnet(hidden_states, temb)
            if self.attentions is not None:
                hidden_states = self.attentions[i](hidden_states)
            skips += (hidden_states,)
        if self.downsamplers is not None:
            for down in self.downsamplers:
                hidden_states = down(hidden_states)
            skips += (hidden_states,)
        if self.return_skips:
            return hidden_states, skips
        return hidden_states


class UpBlock(nn.Module):
    """UpBlock2D / AttnUpBlock2D (UNet, with skips) and UpDecoderBlock2D (VAE, no skips).

    UNet: each resnet gets cat([hidden, skip], 1) with the hidden state FIRST; skips are
    popped from the end (LIFO).  Resnet i takes prev_output_channel (i=0) or out_channels, plus
    the skip's channels: in_channels for the last resnet, out_channels otherwise.
    """

    def __init__(self, in_channels, prev_output_channel, out_channels, temb_channels, num_layers, eps, groups,
                 add_upsample, attention_head_dim=None, with_attention=False, with_skips=True):
        super().__init__()
        self.with_skips = with_skips
        resnets = []
        for i in range(num_layers):
            if with_skips:
                res_skip_channels = in_channels if i == num_layers - 1 else out_channels
                resnet_in = (prev_output_channel if i == 0 else out_channels) + res_skip_channels
            else:
                resnet_in = in_channels if i == 0 else out_channels
            resnets.append(ResnetBlock2D(resnet_in, out_channels, temb_channels, eps, groups))
        self.resnets = nn.ModuleList(resnets)
        if with_attention:
            self.attentions = nn.ModuleList([
                Attention(out_channels, attention_head_dim, eps, groups) for _ in range(num_layers)])
        else:
            self.attentions = None
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if add_upsample else None

    def forward(self, hidden_states, res_hidden_states_tuple=None, temb=None, upsample_size=None):
        for i, resnet in enumerate(self.resnets):
            if self.with_skips:
                skip = res_hidden_states_tuple[-1]
                res_hidden_states_tuple = res_hidden_states_tuple[:-1]
                hidden_states = torch.cat([hidden_states, skip], dim=1)
            hidden_states = resnet(hidden_states, temb)
            if self.attentions is not None:
                hidden_states = self.attentions[i](hidden_states)
        if self.upsamplers is not None:
            for up in self.upsamplers:
                hidden_states = up(hidden_states, upsample_size)
        return hidden_states


class UNetMidBlock2D(nn.Module):
    """resnet -> attention -> resnet (both resnets take temb); outputs divided by output_scale_factor."""

    def __init__(self, in_channels, temb_channels, eps, groups, attn_groups, attention_head_dim,
                 output_scale_factor=1.0, add_attention=True):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock2D(in_channels, in_channels, temb_channels, eps, groups, output_scale_factor)
            for _ in range(2)])
        if add_attention:
            self.attentions = nn.ModuleList([
                Attention(in_channels, attention_head_dim, eps, attn_groups, output_scale_factor)])
        else:
            self.attentions = nn.ModuleList([None])  # like diffusers: no attention weights

    def forward(self, hidden_states, temb=None):
        hidden_states = self.resnets[0](hidden_states, temb)
        for attn, resnet in zip(self.attentions, self.resnets[1:]):
            if attn is not None:
                hidden_states = attn(hidden_states)
            hidden_states = resnet(hidden_states, temb)
        return hidden_states


# ----------------------------------------------------------------------------------------------
# Config handling
# ----------------------------------------------------------------------------------------------


class _ConfigMixin:
    """Keeps the full config (defaults + given keys) like diffusers' ConfigMixin."""

    DEFAULTS = {}

    def _init_config(self, kwargs):
        unknown = [k for k in kwargs if k not in self.DEFAULTS and not k.startswith("_")]
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown config keys {unknown}")
        cfg = dict(self.DEFAULTS)
        cfg.update({k: v for k, v in kwargs.items() if not k.startswith("_")})
        self.config = SimpleNamespace(**cfg)
        return cfg

    @classmethod
    def from_config(cls, config):
        """Builds the model from a diffusers config dict (keys starting with '_' are ignored)."""
        return cls(**{k: v for k, v in config.items() if not k.startswith("_")})

    def config_dict(self):
        """The config as diffusers' save_config writes it (with _class_name/_diffusers_version)."""
        d = {"_class_name": type(self).__name__, "_diffusers_version": DIFFUSERS_VERSION}
        for k, v in vars(self.config).items():
            d[k] = list(v) if isinstance(v, tuple) else v
        return d

    def save_config(self, folder):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "config.json"), "w") as f:
            f.write(json.dumps(self.config_dict(), indent=2, sort_keys=True) + "\n")


# ----------------------------------------------------------------------------------------------
# UNet2DModel
# ----------------------------------------------------------------------------------------------


class UNet2DModel(nn.Module, _ConfigMixin):
    DEFAULTS = dict(
        sample_size=None, in_channels=3, out_channels=3, center_input_sample=False,
        time_embedding_type="positional", time_embedding_dim=None, freq_shift=0, flip_sin_to_cos=True,
        down_block_types=["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
        mid_block_type="UNetMidBlock2D",
        up_block_types=["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
        block_out_channels=[224, 448, 672, 896], layers_per_block=2, mid_block_scale_factor=1,
        downsample_padding=1, downsample_type="conv", upsample_type="conv", dropout=0.0, act_fn="silu",
        attention_head_dim=8, norm_num_groups=32, attn_norm_num_groups=None, norm_eps=1e-5,
        resnet_time_scale_shift="default", add_attention=True, class_embed_type=None, num_class_embeds=None,
        num_train_timesteps=None,
    )

    def __init__(self, **kwargs):
        super().__init__()
        c = self._init_config(kwargs)
        _check_act(c["act_fn"])
        for key, ok in (("time_embedding_type", "positional"), ("mid_block_type", "UNetMidBlock2D"),
                        ("downsample_type", "conv"), ("upsample_type", "conv"),
                        ("resnet_time_scale_shift", "default"), ("class_embed_type", None),
                        ("num_class_embeds", None)):
            if c[key] != ok:
                raise ValueError(f"UNet2DModel: {key}={c[key]!r} is not supported (only {ok!r})")
        boc = list(c["block_out_channels"])
        if len(c["down_block_types"]) != len(boc) or len(c["up_block_types"]) != len(boc):
            raise ValueError("UNet2DModel: block type lists must match block_out_channels")
        eps, groups, lpb, head = c["norm_eps"], c["norm_num_groups"], c["layers_per_block"], c["attention_head_dim"]
        time_embed_dim = c["time_embedding_dim"] or boc[0] * 4

        self.conv_in = nn.Conv2d(c["in_channels"], boc[0], kernel_size=3, padding=(1, 1))
        self.time_proj = Timesteps(boc[0], c["flip_sin_to_cos"], c["freq_shift"])
        self.time_embedding = TimestepEmbedding(boc[0], time_embed_dim)

        self.down_blocks = nn.ModuleList()
        output_channel = boc[0]
        for i, t in enumerate(c["down_block_types"]):
            if t not in ("DownBlock2D", "AttnDownBlock2D"):
                raise ValueError(f"UNet2DModel: down block {t!r} is not supported")
            input_channel, output_channel = output_channel, boc[i]
            self.down_blocks.append(DownBlock(
                input_channel, output_channel, time_embed_dim, lpb, eps, groups,
                add_downsample=i != len(boc) - 1, downsample_padding=c["downsample_padding"],
                attention_head_dim=head if head is not None else output_channel,
                with_attention=t == "AttnDownBlock2D"))

        self.mid_block = UNetMidBlock2D(
            boc[-1], time_embed_dim, eps, groups,
            attn_groups=c["attn_norm_num_groups"] if c["attn_norm_num_groups"] is not None else groups,
            attention_head_dim=head if head is not None else boc[-1],
            output_scale_factor=c["mid_block_scale_factor"], add_attention=c["add_attention"])

        self.up_blocks = nn.ModuleList()
        rev = list(reversed(boc))
        output_channel = rev[0]
        for i, t in enumerate(c["up_block_types"]):
            if t not in ("UpBlock2D", "AttnUpBlock2D"):
                raise ValueError(f"UNet2DModel: up block {t!r} is not supported")
            prev_output_channel, output_channel = output_channel, rev[i]
            input_channel = rev[min(i + 1, len(boc) - 1)]
            self.up_blocks.append(UpBlock(
                input_channel, prev_output_channel, output_channel, time_embed_dim, lpb + 1, eps, groups,
                add_upsample=i != len(boc) - 1,
                attention_head_dim=head if head is not None else output_channel,
                with_attention=t == "AttnUpBlock2D"))

        num_groups_out = groups if groups is not None else min(boc[0] // 4, 32)
        self.conv_norm_out = nn.GroupNorm(num_channels=boc[0], num_groups=num_groups_out, eps=eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[0], c["out_channels"], kernel_size=3, padding=1)

    def forward(self, sample, timestep):
        """Returns an object with `.sample` like diffusers (UNet2DOutput)."""
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        # timestep: python number (truncated to int64), 0-d or 1-d tensor; broadcast to the batch
        timesteps = timestep
        if not torch.is_tensor(timesteps):
            timesteps = torch.tensor([timesteps], dtype=torch.long, device=sample.device)
        elif len(timesteps.shape) == 0:
            timesteps = timesteps[None].to(sample.device)
        timesteps = timesteps * torch.ones(sample.shape[0], dtype=timesteps.dtype, device=timesteps.device)
        t_emb = self.time_proj(timesteps).to(dtype=self.conv_in.weight.dtype)  # built in float32
        emb = self.time_embedding(t_emb)

        sample = self.conv_in(sample)
        skips = (sample,)
        for block in self.down_blocks:
            sample, res = block(sample, emb)
            skips += res
        sample = self.mid_block(sample, emb)
        for block in self.up_blocks:
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            sample = block(sample, res, emb)
        sample = self.conv_out(self.conv_act(self.conv_norm_out(sample)))
        return SimpleNamespace(sample=sample)


# ----------------------------------------------------------------------------------------------
# VAE parts
# ----------------------------------------------------------------------------------------------


class Encoder(nn.Module):
    """VAE/VQ encoder: GroupNorm eps is always 1e-6 and downsampling always pads (0,1,0,1)."""

    def __init__(self, in_channels, out_channels, down_block_types, block_out_channels, layers_per_block,
                 norm_num_groups, double_z, mid_block_add_attention):
        super().__init__()
        boc = list(block_out_channels)
        self.conv_in = nn.Conv2d(in_channels, boc[0], kernel_size=3, stride=1, padding=1)
        self.down_blocks = nn.ModuleList()
        output_channel = boc[0]
        for i, t in enumerate(down_block_types):
            if t != "DownEncoderBlock2D":
                raise ValueError(f"Encoder: down block {t!r} is not supported")
            input_channel, output_channel = output_channel, boc[i]
            self.down_blocks.append(DownBlock(
                input_channel, output_channel, None, layers_per_block, 1e-6, norm_num_groups,
                add_downsample=i != len(boc) - 1, downsample_padding=0, return_skips=False))
        self.mid_block = UNetMidBlock2D(boc[-1], None, 1e-6, norm_num_groups, norm_num_groups,
                                        attention_head_dim=boc[-1], add_attention=mid_block_add_attention)
        self.conv_norm_out = nn.GroupNorm(num_channels=boc[-1], num_groups=norm_num_groups, eps=1e-6)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[-1], 2 * out_channels if double_z else out_channels, 3, padding=1)

    def forward(self, sample):
        sample = self.conv_in(sample)
        for block in self.down_blocks:
            sample = block(sample)
        sample = self.mid_block(sample)
        return self.conv_out(self.conv_act(self.conv_norm_out(sample)))


class Decoder(nn.Module):
    """conv_in -> mid -> up blocks (reversed channels, layers_per_block+1 resnets, no skips) -> GN/SiLU/conv."""

    def __init__(self, in_channels, out_channels, up_block_types, block_out_channels, layers_per_block,
                 norm_num_groups, mid_block_add_attention):
        super().__init__()
        boc = list(block_out_channels)
        self.conv_in = nn.Conv2d(in_channels, boc[-1], kernel_size=3, stride=1, padding=1)
        self.mid_block = UNetMidBlock2D(boc[-1], None, 1e-6, norm_num_groups, norm_num_groups,
                                        attention_head_dim=boc[-1], add_attention=mid_block_add_attention)
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(boc))
        output_channel = rev[0]
        for i, t in enumerate(up_block_types):
            if t != "UpDecoderBlock2D":
                raise ValueError(f"Decoder: up block {t!r} is not supported")
            prev_output_channel, output_channel = output_channel, rev[i]
            self.up_blocks.append(UpBlock(
                prev_output_channel, None, output_channel, None, layers_per_block + 1, 1e-6, norm_num_groups,
                add_upsample=i != len(boc) - 1, with_skips=False))
        self.conv_norm_out = nn.GroupNorm(num_channels=boc[0], num_groups=norm_num_groups, eps=1e-6)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[0], out_channels, 3, padding=1)

    def forward(self, z):
        sample = self.conv_in(z)
        sample = self.mid_block(sample)
        for block in self.up_blocks:
            sample = block(sample)
        return self.conv_out(self.conv_act(self.conv_norm_out(sample)))


class DiagonalGaussianDistribution:
    """moments = [mean | logvar] on channels; logvar clamped to [-30, 20]."""

    def __init__(self, parameters):
        self.parameters = parameters
        self.mean, self.logvar = torch.chunk(parameters, 2, dim=1)
        self.logvar = torch.clamp(self.logvar, -30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator=None):
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self):
        return self.mean


class AutoencoderKL(nn.Module, _ConfigMixin):
    DEFAULTS = dict(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D"], block_out_channels=[64], layers_per_block=1, act_fn="silu",
        latent_channels=4, norm_num_groups=32, sample_size=32, scaling_factor=0.18215, shift_factor=None,
        latents_mean=None, latents_std=None, force_upcast=True, use_quant_conv=True, use_post_quant_conv=True,
        mid_block_add_attention=True,
    )

    def __init__(self, **kwargs):
        super().__init__()
        c = self._init_config(kwargs)
        _check_act(c["act_fn"])
        lat = c["latent_channels"]
        self.encoder = Encoder(c["in_channels"], lat, c["down_block_types"], c["block_out_channels"],
                               c["layers_per_block"], c["norm_num_groups"], True, c["mid_block_add_attention"])
        self.decoder = Decoder(lat, c["out_channels"], c["up_block_types"], c["block_out_channels"],
                               c["layers_per_block"], c["norm_num_groups"], c["mid_block_add_attention"])
        self.quant_conv = nn.Conv2d(2 * lat, 2 * lat, 1) if c["use_quant_conv"] else None
        self.post_quant_conv = nn.Conv2d(lat, lat, 1) if c["use_post_quant_conv"] else None

    def encode(self, x):
        """NOTE: scaling_factor is NOT applied (pipelines do that)."""
        h = self.encoder(x)
        moments = self.quant_conv(h) if self.quant_conv is not None else h
        return SimpleNamespace(latent_dist=DiagonalGaussianDistribution(moments))

    def decode(self, z):
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return SimpleNamespace(sample=self.decoder(z))

    def forward(self, sample, sample_posterior=False, generator=None):
        dist = self.encode(sample).latent_dist
        z = dist.sample(generator) if sample_posterior else dist.mode()
        return self.decode(z)


class VectorQuantizer(nn.Module):
    """quantize.embedding: nearest codebook row by argmin(cdist) (first index on ties)."""

    def __init__(self, n_e, vq_embed_dim):
        super().__init__()
        self.n_e = n_e
        self.vq_embed_dim = vq_embed_dim
        self.embedding = nn.Embedding(n_e, vq_embed_dim)
        self.embedding.weight.data.uniform_(-1.0 / n_e, 1.0 / n_e)

    def forward(self, z):
        """Returns (z_q, indices): z_q = z + (e - z) in float32 like diffusers; indices flat [B*H*W]."""
        z = z.permute(0, 2, 3, 1).contiguous()
        z_flat = z.view(-1, self.vq_embed_dim)
        idx = torch.argmin(torch.cdist(z_flat, self.embedding.weight), dim=1)
        z_q = self.embedding(idx).view(z.shape)
        z_q = z + (z_q - z).detach()
        return z_q.permute(0, 3, 1, 2).contiguous(), idx


class VQModel(nn.Module, _ConfigMixin):
    DEFAULTS = dict(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D"], block_out_channels=[64], layers_per_block=1, act_fn="silu",
        latent_channels=3, sample_size=32, num_vq_embeddings=256, norm_num_groups=32, vq_embed_dim=None,
        scaling_factor=0.18215, norm_type="group", mid_block_add_attention=True, lookup_from_codebook=False,
        force_upcast=False,
    )

    def __init__(self, **kwargs):
        super().__init__()
        c = self._init_config(kwargs)
        _check_act(c["act_fn"])
        if c["norm_type"] != "group":
            raise ValueError("VQModel: only norm_type='group' is supported")
        lat = c["latent_channels"]
        vq_dim = c["vq_embed_dim"] if c["vq_embed_dim"] is not None else lat
        self.encoder = Encoder(c["in_channels"], lat, c["down_block_types"], c["block_out_channels"],
                               c["layers_per_block"], c["norm_num_groups"], False, c["mid_block_add_attention"])
        self.quant_conv = nn.Conv2d(lat, vq_dim, 1)
        self.quantize = VectorQuantizer(c["num_vq_embeddings"], vq_dim)
        self.post_quant_conv = nn.Conv2d(vq_dim, lat, 1)
        self.decoder = Decoder(lat, c["out_channels"], c["up_block_types"], c["block_out_channels"],
                               c["layers_per_block"], c["norm_num_groups"], c["mid_block_add_attention"])

    def encode(self, x):
        """latents = quant_conv(encoder(x)) (not quantised)."""
        return SimpleNamespace(latents=self.quant_conv(self.encoder(x)))

    def decode(self, h, force_not_quantize=False):
        """Quantises by default (NOTES.md: the LDM super-resolution pipeline relies on this)."""
        if not force_not_quantize:
            quant, _ = self.quantize(h)
        elif self.config.lookup_from_codebook:
            raise ValueError("VQModel: lookup_from_codebook is not supported")
        else:
            quant = h
        return SimpleNamespace(sample=self.decoder(self.post_quant_conv(quant)))

    def forward(self, sample):
        return self.decode(self.encode(sample).latents)


# ----------------------------------------------------------------------------------------------
# Loading / saving
# ----------------------------------------------------------------------------------------------

MODEL_CLASSES = {"UNet2DModel": UNet2DModel, "AutoencoderKL": AutoencoderKL, "VQModel": VQModel}

_LEGACY_ATTN = re.compile(r"^(.*\.attentions\.\d+\.)(query|key|value|proj_attn)\.(weight|bias)$")
_LEGACY_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def rename_legacy_keys(state_dict):
    """Renames old attention weight names (query/key/value/proj_attn) to to_q/to_k/to_v/to_out.0,
    as diffusers does at load time for old hub checkpoints.  Returns a new dict."""
    out = {}
    for k, v in state_dict.items():
        m = _LEGACY_ATTN.match(k)
        if m:
            k = f"{m.group(1)}{_LEGACY_NAMES[m.group(2)]}.{m.group(3)}"
            # very old checkpoints store the attention projections as 1x1 conv weights
            if v.dim() == 4 and k.endswith(".weight"):
                v = v[:, :, 0, 0]
        out[k] = v
    return out


def model_from_config(config):
    """Builds the class named by config['_class_name'] from a config dict."""
    name = config.get("_class_name")
    if name not in MODEL_CLASSES:
        raise ValueError(f"unsupported _class_name {name!r}")
    return MODEL_CLASSES[name].from_config(config)


def load_pretrained(folder, dtype=torch.float32):
    """config.json + diffusion_pytorch_model.safetensors -> model in eval mode (strict load)."""
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    model = model_from_config(config)
    weights, _ = st.load(os.path.join(folder, "diffusion_pytorch_model.safetensors"))
    model.load_state_dict(rename_legacy_keys(weights), strict=True)
    return model.to(dtype).eval()


def load_file(path):
    """One exported .safetensors file, its config in __metadata__ (models/*/export.py) ->
    (model in eval mode, F32, strict load; the metadata dict)."""
    weights, meta = st.load(path)
    model = model_from_config(json.loads(meta["config"]))
    model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    return model.eval(), meta


def save_pretrained(model, folder):
    """Writes config.json and diffusion_pytorch_model.safetensors (F32, metadata format=pt)."""
    model.save_config(folder)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    st.save(os.path.join(folder, "diffusion_pytorch_model.safetensors"), sd, metadata={"format": "pt"})
