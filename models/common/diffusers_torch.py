"""Dependency-free PyTorch re-implementation of diffusers' UNet2DModel, UNet2DConditionModel,
AutoencoderKL, VQModel and AutoencoderTiny, and of transformers' CLIPTextModel.

Only torch is needed (no `diffusers`, no `safetensors`).  The module tree and therefore the
state_dict names are exactly diffusers' (0.35.x) and transformers', so a checkpoint loads with
`load_state_dict(..., strict=True)`, and the arithmetic follows diffusers (transformers for CLIP)
op by op (same torch calls in the same order), so float32 results agree to rounding level.
tests/fixtures/diffusers/NOTES.md lists the behaviours that matter; they are pointed out below.

Supported subset (anything else raises ValueError in the constructor):
  * UNet2DModel: positional time embedding, DownBlock2D / AttnDownBlock2D, UpBlock2D /
    AttnUpBlock2D, UNetMidBlock2D, conv down/upsampling, resnet_time_scale_shift "default",
    no class embedding, act_fn silu.
  * UNet2DConditionModel: CrossAttnDownBlock2D / DownBlock2D, UNetMidBlock2DCrossAttn,
    CrossAttnUpBlock2D / UpBlock2D, Transformer2DModel (conv or linear projection, GEGLU
    feed-forward, only_cross_attention, upcast_attention), class embedding via num_class_embeds
    (the x4 upscaler); no added/addition embeddings, no attention masks.
  * AutoencoderKL and VQModel: DownEncoderBlock2D / UpDecoderBlock2D, norm_type "group".
  * AutoencoderTiny: relu, nearest upsampling.
  * CLIPTextModel: quick_gelu or gelu, eager attention with the causal mask (and an optional
    padding mask), eos pooling.

Usage:
    model = load_pretrained("some/folder")       # config.json + diffusion_pytorch_model.safetensors
    out = model(sample, timestep).sample          # UNet2DModel
    out = model(sample, timestep, text).sample    # UNet2DConditionModel (text: [B, tokens, dim])
    text = model(input_ids).last_hidden_state     # CLIPTextModel (folder with model.safetensors)
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


def _head_to_batch(t, heads):
    """[B, S, heads*d] -> [B*heads, S, d] (diffusers Attention.head_to_batch_dim)."""
    b, s, dim = t.shape
    return t.reshape(b, s, heads, dim // heads).permute(0, 2, 1, 3).reshape(b * heads, s, dim // heads)


def _batch_to_head(t, heads):
    """[B*heads, S, d] -> [B, S, heads*d] (diffusers Attention.batch_to_head_dim)."""
    bh, s, d = t.shape
    return t.reshape(bh // heads, heads, s, d).permute(0, 2, 1, 3).reshape(bh // heads, s, d * heads)


def _attention(q, k, v, heads, scale, upcast_softmax, upcast_attention=False):
    """softmax(scale * q kᵀ) v over heads, computed like diffusers' AttnProcessor (baddbmm, then
    softmax, in float32 when upcast_softmax) so that the rounding matches.  q, k, v: [B, S, heads*d]."""
    q, k, v = _head_to_batch(q, heads), _head_to_batch(k, heads), _head_to_batch(v, heads)
    dtype = q.dtype
    if upcast_attention:
        q, k = q.float(), k.float()
    if torch.onnx.is_in_onnx_export():
        # same maths; avoids exporting an uninitialised torch.empty (beta=0 * garbage may be NaN)
        scores = torch.bmm(q, k.transpose(-1, -2)) * scale
    else:
        scores = torch.baddbmm(torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype, device=q.device),
                               q, k.transpose(-1, -2), beta=0, alpha=scale)
    if upcast_softmax:
        scores = scores.float()
    probs = scores.softmax(dim=-1).to(dtype)
    return _batch_to_head(torch.bmm(probs, v), heads)


class Attention(nn.Module):
    """Spatial self-attention with the diffusers names (group_norm, to_q, to_k, to_v, to_out.0).

    heads = C // head_dim, head h uses channels [h*d, (h+1)*d), score scale d**-0.5, softmax in
    float32, residual add, then divide by rescale_output_factor (NOTES.md 6).
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

    def forward(self, hidden_states, temb=None):
        residual = hidden_states
        b, c, h, w = hidden_states.shape
        # tokens are the H*W positions in row-major order
        x = hidden_states.view(b, c, h * w).transpose(1, 2)
        x = self.group_norm(x.transpose(1, 2)).transpose(1, 2)
        x = _attention(self.to_q(x), self.to_k(x), self.to_v(x), self.heads, self.scale, upcast_softmax=True)
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


def _run_attention(attn, hidden_states, encoder_hidden_states):
    """Spatial attention takes the image only; a Transformer2DModel also the text states."""
    if isinstance(attn, Transformer2DModel):
        return attn(hidden_states, encoder_hidden_states)
    return attn(hidden_states)


class DownBlock(nn.Module):
    """DownBlock2D / AttnDownBlock2D / CrossAttnDownBlock2D (UNet, returns skips) and
    DownEncoderBlock2D (VAE, returns h).

    Every resnet output (after its attention, if any) and the downsampler output are skips
    (NOTES.md 3).  make_attention(channels) builds the attention after each resnet (spatial
    Attention or Transformer2DModel), None for none.
    """

    def __init__(self, in_channels, out_channels, temb_channels, num_layers, eps, groups, add_downsample,
                 downsample_padding, make_attention=None, return_skips=True):
        super().__init__()
        self.return_skips = return_skips
        self.resnets = nn.ModuleList([
            ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, temb_channels, eps, groups)
            for i in range(num_layers)])
        if make_attention is not None:
            self.attentions = nn.ModuleList([make_attention(out_channels) for _ in range(num_layers)])
        else:
            self.attentions = None
        if add_downsample:
            self.downsamplers = nn.ModuleList([Downsample2D(out_channels, downsample_padding)])
        else:
            self.downsamplers = None

    def forward(self, hidden_states, temb=None, encoder_hidden_states=None):
        skips = ()
        for i, resnet in enumerate(self.resnets):
            hidden_states = resnet(hidden_states, temb)
            if self.attentions is not None:
                hidden_states = _run_attention(self.attentions[i], hidden_states, encoder_hidden_states)
            skips += (hidden_states,)
        if self.downsamplers is not None:
            for down in self.downsamplers:
                hidden_states = down(hidden_states)
            skips += (hidden_states,)
        if self.return_skips:
            return hidden_states, skips
        return hidden_states


class UpBlock(nn.Module):
    """UpBlock2D / AttnUpBlock2D / CrossAttnUpBlock2D (UNet, with skips) and UpDecoderBlock2D (VAE,
    no skips).

    UNet: each resnet gets cat([hidden, skip], 1) with the hidden state FIRST; skips are
    popped from the end (LIFO).  Resnet i takes prev_output_channel (i=0) or out_channels, plus
    the skip's channels: in_channels for the last resnet, out_channels otherwise.
    """

    def __init__(self, in_channels, prev_output_channel, out_channels, temb_channels, num_layers, eps, groups,
                 add_upsample, make_attention=None, with_skips=True):
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
        if make_attention is not None:
            self.attentions = nn.ModuleList([make_attention(out_channels) for _ in range(num_layers)])
        else:
            self.attentions = None
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if add_upsample else None

    def forward(self, hidden_states, res_hidden_states_tuple=None, temb=None, upsample_size=None,
                encoder_hidden_states=None):
        for i, resnet in enumerate(self.resnets):
            if self.with_skips:
                skip = res_hidden_states_tuple[-1]
                res_hidden_states_tuple = res_hidden_states_tuple[:-1]
                hidden_states = torch.cat([hidden_states, skip], dim=1)
            hidden_states = resnet(hidden_states, temb)
            if self.attentions is not None:
                hidden_states = _run_attention(self.attentions[i], hidden_states, encoder_hidden_states)
        if self.upsamplers is not None:
            for up in self.upsamplers:
                hidden_states = up(hidden_states, upsample_size)
        return hidden_states


class UNetMidBlock2D(nn.Module):
    """UNetMidBlock2D / UNetMidBlock2DCrossAttn: resnet -> attention -> resnet (both resnets take
    temb); the resnet outputs are divided by output_scale_factor.  make_attention(channels) builds
    the attention (None: none, like diffusers' add_attention=False)."""

    def __init__(self, in_channels, temb_channels, eps, groups, make_attention, output_scale_factor=1.0):
        super().__init__()
        self.resnets = nn.ModuleList([
            ResnetBlock2D(in_channels, in_channels, temb_channels, eps, groups, output_scale_factor)
            for _ in range(2)])
        # like diffusers: without attention the list holds None (no weights)
        self.attentions = nn.ModuleList([make_attention(in_channels) if make_attention is not None else None])

    def forward(self, hidden_states, temb=None, encoder_hidden_states=None):
        hidden_states = self.resnets[0](hidden_states, temb)
        for attn, resnet in zip(self.attentions, self.resnets[1:]):
            if attn is not None:
                hidden_states = _run_attention(attn, hidden_states, encoder_hidden_states)
            hidden_states = resnet(hidden_states, temb)
        return hidden_states


def _spatial_attention(head_dim, eps, groups, rescale_output_factor=1.0):
    """Factory for UNet2DModel / VAE attention blocks (head_dim None: one head of all channels)."""
    return lambda channels: Attention(channels, head_dim, eps, groups, rescale_output_factor)


# ----------------------------------------------------------------------------------------------
# Transformer parts (Stable Diffusion U-Net)
# ----------------------------------------------------------------------------------------------


class TransformerAttention(nn.Module):
    """attn1 / attn2 of BasicTransformerBlock: diffusers Attention with AttnProcessor on tokens [B, S, C].

    q/k/v have no bias in SD (attention_bias=False), to_out.0 has one.  k and v project
    cross_attention_dim-wide encoder states (attn2, or attn1 with only_cross_attention), else the
    tokens themselves.  No residual, no rescale, softmax in the input dtype (upcast_softmax=False),
    q and k in float32 with upcast_attention.
    """

    def __init__(self, query_dim, heads, dim_head, cross_attention_dim=None, bias=False, upcast_attention=False):
        super().__init__()
        inner_dim = heads * dim_head
        kv_dim = cross_attention_dim if cross_attention_dim is not None else query_dim
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.upcast_attention = upcast_attention
        self.to_q = nn.Linear(query_dim, inner_dim, bias=bias)
        self.to_k = nn.Linear(kv_dim, inner_dim, bias=bias)
        self.to_v = nn.Linear(kv_dim, inner_dim, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner_dim, query_dim, bias=True), nn.Dropout(0.0)])

    def forward(self, hidden_states, encoder_hidden_states=None):
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        x = _attention(self.to_q(hidden_states), self.to_k(context), self.to_v(context), self.heads, self.scale,
                       upcast_softmax=False, upcast_attention=self.upcast_attention)
        return self.to_out[1](self.to_out[0](x))


class GEGLU(nn.Module):
    """proj to 2*inner, chunk(2): the FIRST half times exact-erf gelu(the second half)."""

    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, hidden_states):
        hidden_states, gate = self.proj(hidden_states).chunk(2, dim=-1)
        return hidden_states * F.gelu(gate)


class FeedForward(nn.Module):
    """net = [GEGLU(dim -> 4*dim), Dropout, Linear(4*dim -> dim)]."""

    def __init__(self, dim, mult=4):
        super().__init__()
        inner_dim = int(dim * mult)
        self.net = nn.ModuleList([GEGLU(dim, inner_dim), nn.Dropout(0.0), nn.Linear(inner_dim, dim)])

    def forward(self, hidden_states):
        for module in self.net:
            hidden_states = module(hidden_states)
        return hidden_states


class BasicTransformerBlock(nn.Module):
    """norm_type "layer_norm" (LayerNorm eps 1e-5):
    h = attn1(norm1(x)) + x;  h = attn2(norm2(h), text) + h;  h = ff(norm3(h)) + h.
    With only_cross_attention, attn1 attends to the text as well (the x4 upscaler's down/up blocks)."""

    def __init__(self, dim, heads, dim_head, cross_attention_dim, only_cross_attention=False,
                 upcast_attention=False, norm_eps=1e-5):
        super().__init__()
        self.only_cross_attention = only_cross_attention
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn1 = TransformerAttention(dim, heads, dim_head,
                                          cross_attention_dim if only_cross_attention else None,
                                          upcast_attention=upcast_attention)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn2 = TransformerAttention(dim, heads, dim_head, cross_attention_dim,
                                          upcast_attention=upcast_attention)
        self.norm3 = nn.LayerNorm(dim, eps=norm_eps)
        self.ff = FeedForward(dim)

    def forward(self, hidden_states, encoder_hidden_states):
        attn_output = self.attn1(self.norm1(hidden_states),
                                 encoder_hidden_states if self.only_cross_attention else None)
        hidden_states = attn_output + hidden_states
        attn_output = self.attn2(self.norm2(hidden_states), encoder_hidden_states)
        hidden_states = attn_output + hidden_states
        ff_output = self.ff(self.norm3(hidden_states))
        return ff_output + hidden_states


class Transformer2DModel(nn.Module):
    """Continuous-input Transformer2DModel: GroupNorm (eps 1e-6, not norm_eps) -> proj_in ->
    tokens [B, H*W, C] row-major -> BasicTransformerBlocks -> proj_out -> + input.

    use_linear_projection=False (SD1): proj_in / proj_out are 1x1 convs applied in NCHW;
    True (SD2, x4 upscaler): Linear layers applied to the tokens.
    """

    def __init__(self, heads, dim_head, in_channels, num_layers, cross_attention_dim, norm_num_groups,
                 use_linear_projection, only_cross_attention=False, upcast_attention=False):
        super().__init__()
        inner_dim = heads * dim_head
        self.use_linear_projection = use_linear_projection
        self.norm = nn.GroupNorm(num_groups=norm_num_groups, num_channels=in_channels, eps=1e-6, affine=True)
        if use_linear_projection:
            self.proj_in = nn.Linear(in_channels, inner_dim)
        else:
            self.proj_in = nn.Conv2d(in_channels, inner_dim, kernel_size=1, stride=1, padding=0)
        self.transformer_blocks = nn.ModuleList([
            BasicTransformerBlock(inner_dim, heads, dim_head, cross_attention_dim, only_cross_attention,
                                  upcast_attention)
            for _ in range(num_layers)])
        if use_linear_projection:
            self.proj_out = nn.Linear(inner_dim, in_channels)
        else:
            self.proj_out = nn.Conv2d(inner_dim, in_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, hidden_states, encoder_hidden_states):
        batch, _, height, width = hidden_states.shape
        residual = hidden_states
        hidden_states = self.norm(hidden_states)
        if not self.use_linear_projection:
            hidden_states = self.proj_in(hidden_states)
            inner_dim = hidden_states.shape[1]
            hidden_states = hidden_states.permute(0, 2, 3, 1).reshape(batch, height * width, inner_dim)
        else:
            inner_dim = hidden_states.shape[1]
            hidden_states = hidden_states.permute(0, 2, 3, 1).reshape(batch, height * width, inner_dim)
            hidden_states = self.proj_in(hidden_states)
        for block in self.transformer_blocks:
            hidden_states = block(hidden_states, encoder_hidden_states)
        if not self.use_linear_projection:
            hidden_states = hidden_states.reshape(batch, height, width, inner_dim).permute(0, 3, 1, 2).contiguous()
            hidden_states = self.proj_out(hidden_states)
        else:
            hidden_states = self.proj_out(hidden_states)
            hidden_states = hidden_states.reshape(batch, height, width, inner_dim).permute(0, 3, 1, 2).contiguous()
        return hidden_states + residual


# ----------------------------------------------------------------------------------------------
# Config handling
# ----------------------------------------------------------------------------------------------


class _ConfigMixin:
    """Keeps the full config (defaults + given keys) like diffusers' ConfigMixin."""

    DEFAULTS = {}
    STRICT_CONFIG = True  # unknown keys are an error (diffusers configs); else kept and ignored

    def _init_config(self, kwargs):
        unknown = [k for k in kwargs if k not in self.DEFAULTS and not k.startswith("_")]
        if unknown and self.STRICT_CONFIG:
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
                make_attention=(_spatial_attention(head if head is not None else output_channel, eps, groups)
                                if t == "AttnDownBlock2D" else None)))

        attn_groups = c["attn_norm_num_groups"] if c["attn_norm_num_groups"] is not None else groups
        self.mid_block = UNetMidBlock2D(
            boc[-1], time_embed_dim, eps, groups,
            _spatial_attention(head if head is not None else boc[-1], eps, attn_groups, c["mid_block_scale_factor"])
            if c["add_attention"] else None,
            output_scale_factor=c["mid_block_scale_factor"])

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
                make_attention=(_spatial_attention(head if head is not None else output_channel, eps, groups)
                                if t == "AttnUpBlock2D" else None)))

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
# UNet2DConditionModel (Stable Diffusion U-Net)
# ----------------------------------------------------------------------------------------------


def _per_block(value, n, name):
    """An int (or bool) for every block, or a list with one entry per block."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"UNet2DConditionModel: {name} has {len(value)} entries for {n} blocks")
        return list(value)
    return [value] * n


class UNet2DConditionModel(nn.Module, _ConfigMixin):
    """The Stable Diffusion U-Net (SD 1.x/2.x layouts, the x4 upscaler's class embedding).

    `attention_head_dim` is the NUMBER OF HEADS per block (diffusers' historic naming: SD1.5's 8
    means 8 heads of 40/80/160 channels); an int or one value per block; the up blocks take the
    reversed list.  `num_class_embeds` (class_embed_type None) adds nn.Embedding(class_labels) to
    the time embedding.  The timestep is not truncated: a float goes straight into t * freqs.
    `resnet_out_scale_factor` is ignored like diffusers does for these block types.
    """

    DEFAULTS = dict(
        sample_size=None, in_channels=4, out_channels=4, center_input_sample=False, flip_sin_to_cos=True,
        freq_shift=0,
        down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        only_cross_attention=False, block_out_channels=[320, 640, 1280, 1280], layers_per_block=2,
        downsample_padding=1, mid_block_scale_factor=1, dropout=0.0, act_fn="silu", norm_num_groups=32,
        norm_eps=1e-5, cross_attention_dim=1280, transformer_layers_per_block=1,
        reverse_transformer_layers_per_block=None, encoder_hid_dim=None, encoder_hid_dim_type=None,
        attention_head_dim=8, num_attention_heads=None, dual_cross_attention=False, use_linear_projection=False,
        class_embed_type=None, addition_embed_type=None, addition_time_embed_dim=None, num_class_embeds=None,
        upcast_attention=False, resnet_time_scale_shift="default", resnet_skip_time_act=False,
        resnet_out_scale_factor=1.0, time_embedding_type="positional", time_embedding_dim=None,
        time_embedding_act_fn=None, timestep_post_act=None, time_cond_proj_dim=None, conv_in_kernel=3,
        conv_out_kernel=3, projection_class_embeddings_input_dim=None, attention_type="default",
        class_embeddings_concat=False, mid_block_only_cross_attention=None, cross_attention_norm=None,
        addition_embed_type_num_heads=64,
    )

    def __init__(self, **kwargs):
        super().__init__()
        c = self._init_config(kwargs)
        _check_act(c["act_fn"])
        for key, ok in (("time_embedding_type", "positional"), ("class_embed_type", None),
                        ("addition_embed_type", None), ("encoder_hid_dim", None), ("encoder_hid_dim_type", None),
                        ("num_attention_heads", None), ("dual_cross_attention", False),
                        ("resnet_time_scale_shift", "default"), ("resnet_skip_time_act", False),
                        ("time_embedding_act_fn", None), ("timestep_post_act", None), ("time_cond_proj_dim", None),
                        ("attention_type", "default"), ("class_embeddings_concat", False),
                        ("cross_attention_norm", None), ("reverse_transformer_layers_per_block", None),
                        ("mid_block_type", "UNetMidBlock2DCrossAttn")):
            if c[key] != ok:
                raise ValueError(f"UNet2DConditionModel: {key}={c[key]!r} is not supported (only {ok!r})")
        if c["norm_num_groups"] is None:
            raise ValueError("UNet2DConditionModel: norm_num_groups=None is not supported")
        boc = list(c["block_out_channels"])
        nb = len(boc)
        if len(c["down_block_types"]) != nb or len(c["up_block_types"]) != nb:
            raise ValueError("UNet2DConditionModel: block type lists must match block_out_channels")
        eps, groups = c["norm_eps"], c["norm_num_groups"]
        # num_attention_heads defaults to attention_head_dim (NOTES.md: it is the head count)
        heads = _per_block(c["attention_head_dim"], nb, "attention_head_dim")
        cross = _per_block(c["cross_attention_dim"], nb, "cross_attention_dim")
        lpb = _per_block(c["layers_per_block"], nb, "layers_per_block")
        tlpb = _per_block(c["transformer_layers_per_block"], nb, "transformer_layers_per_block")
        only_cross = _per_block(c["only_cross_attention"], nb, "only_cross_attention")
        time_embed_dim = c["time_embedding_dim"] or boc[0] * 4

        def transformer(n_heads, n_layers, cross_dim, only_cross_attention):
            return lambda channels: Transformer2DModel(
                n_heads, channels // n_heads, channels, n_layers, cross_dim, groups, c["use_linear_projection"],
                only_cross_attention, c["upcast_attention"])

        self.conv_in = nn.Conv2d(c["in_channels"], boc[0], kernel_size=c["conv_in_kernel"],
                                 padding=(c["conv_in_kernel"] - 1) // 2)
        self.time_proj = Timesteps(boc[0], c["flip_sin_to_cos"], c["freq_shift"])
        self.time_embedding = TimestepEmbedding(boc[0], time_embed_dim)
        if c["num_class_embeds"] is not None:
            self.class_embedding = nn.Embedding(c["num_class_embeds"], time_embed_dim)
        else:
            self.class_embedding = None

        self.down_blocks = nn.ModuleList()
        output_channel = boc[0]
        for i, t in enumerate(c["down_block_types"]):
            if t not in ("CrossAttnDownBlock2D", "DownBlock2D"):
                raise ValueError(f"UNet2DConditionModel: down block {t!r} is not supported")
            input_channel, output_channel = output_channel, boc[i]
            self.down_blocks.append(DownBlock(
                input_channel, output_channel, time_embed_dim, lpb[i], eps, groups,
                add_downsample=i != nb - 1, downsample_padding=c["downsample_padding"],
                make_attention=(transformer(heads[i], tlpb[i], cross[i], only_cross[i])
                                if t == "CrossAttnDownBlock2D" else None)))

        # UNetMidBlock2DCrossAttn: never only-cross-attention, resnets scaled by mid_block_scale_factor
        self.mid_block = UNetMidBlock2D(
            boc[-1], time_embed_dim, eps, groups, transformer(heads[-1], tlpb[-1], cross[-1], False),
            output_scale_factor=c["mid_block_scale_factor"])

        self.num_upsamplers = nb - 1
        rev = list(reversed(boc))
        rev_heads, rev_cross, rev_lpb, rev_tlpb, rev_only = (
            list(reversed(v)) for v in (heads, cross, lpb, tlpb, only_cross))
        self.up_blocks = nn.ModuleList()
        output_channel = rev[0]
        for i, t in enumerate(c["up_block_types"]):
            if t not in ("CrossAttnUpBlock2D", "UpBlock2D"):
                raise ValueError(f"UNet2DConditionModel: up block {t!r} is not supported")
            prev_output_channel, output_channel = output_channel, rev[i]
            input_channel = rev[min(i + 1, nb - 1)]
            self.up_blocks.append(UpBlock(
                input_channel, prev_output_channel, output_channel, time_embed_dim, rev_lpb[i] + 1, eps, groups,
                add_upsample=i != nb - 1,
                make_attention=(transformer(rev_heads[i], rev_tlpb[i], rev_cross[i], rev_only[i])
                                if t == "CrossAttnUpBlock2D" else None)))

        self.conv_norm_out = nn.GroupNorm(num_channels=boc[0], num_groups=groups, eps=eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(boc[0], c["out_channels"], kernel_size=c["conv_out_kernel"],
                                  padding=(c["conv_out_kernel"] - 1) // 2)

    def forward(self, sample, timestep, encoder_hidden_states, class_labels=None):
        """Returns an object with `.sample` like diffusers (UNet2DConditionOutput)."""
        # H and W not divisible by 2^num_upsamplers: the up blocks get the skip sizes
        forward_upsample_size = any(d % (2 ** self.num_upsamplers) != 0 for d in sample.shape[-2:])
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        # a python float becomes float64, an int int64; NOT truncated (unlike UNet2DModel)
        timesteps = timestep
        if not torch.is_tensor(timesteps):
            dtype = torch.float64 if isinstance(timestep, float) else torch.int64
            timesteps = torch.tensor([timesteps], dtype=dtype, device=sample.device)
        elif len(timesteps.shape) == 0:
            timesteps = timesteps[None].to(sample.device)
        timesteps = timesteps.expand(sample.shape[0])
        t_emb = self.time_proj(timesteps).to(dtype=sample.dtype)  # built in float32
        emb = self.time_embedding(t_emb)
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("class_labels should be provided when num_class_embeds > 0")
            emb = emb + self.class_embedding(class_labels).to(dtype=sample.dtype)

        sample = self.conv_in(sample)
        skips = (sample,)
        for block in self.down_blocks:
            sample, res = block(sample, emb, encoder_hidden_states)
            skips += res
        sample = self.mid_block(sample, emb, encoder_hidden_states)
        upsample_size = None
        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            if i != len(self.up_blocks) - 1 and forward_upsample_size:
                upsample_size = skips[-1].shape[2:]
            sample = block(sample, res, emb, upsample_size, encoder_hidden_states)
        sample = self.conv_out(self.conv_act(self.conv_norm_out(sample)))
        return SimpleNamespace(sample=sample)


# ----------------------------------------------------------------------------------------------
# AutoencoderTiny (TAESD)
# ----------------------------------------------------------------------------------------------


def _tiny_act(act_fn):
    if act_fn != "relu":
        raise ValueError(f"AutoencoderTiny: act_fn={act_fn!r}: only 'relu' is supported")
    return nn.ReLU()


class AutoencoderTinyBlock(nn.Module):
    """relu(conv(relu(conv(relu(conv(x))))) + skip(x)): the last ReLU is applied to the SUM;
    skip is a 1x1 conv without bias when the channel count changes."""

    def __init__(self, in_channels, out_channels, act_fn):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), _tiny_act(act_fn),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1), _tiny_act(act_fn),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1))
        self.skip = (nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
                     if in_channels != out_channels else nn.Identity())
        self.fuse = nn.ReLU()

    def forward(self, x):
        return self.fuse(self.conv(x) + self.skip(x))


class EncoderTiny(nn.Module):
    """x -> (x+1)/2, then conv (bias) + blocks, per further level a stride-2 conv without bias +
    blocks, and a last conv (bias) to the latent channels."""

    def __init__(self, in_channels, out_channels, num_blocks, block_out_channels, act_fn):
        super().__init__()
        layers = []
        for i, num_block in enumerate(num_blocks):
            num_channels = block_out_channels[i]
            if i == 0:
                layers.append(nn.Conv2d(in_channels, num_channels, kernel_size=3, padding=1))
            else:
                layers.append(nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1, stride=2, bias=False))
            for _ in range(num_block):
                layers.append(AutoencoderTinyBlock(num_channels, num_channels, act_fn))
        layers.append(nn.Conv2d(block_out_channels[-1], out_channels, kernel_size=3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x.add(1).div(2))


class DecoderTiny(nn.Module):
    """tanh(x/3)*3, conv (bias) + relu, per level blocks then (not last) nearest x2 + conv without
    bias; the last level's conv goes to out_channels WITH bias; y -> 2y-1 (not clamped)."""

    def __init__(self, in_channels, out_channels, num_blocks, block_out_channels, upsampling_scaling_factor,
                 act_fn, upsample_fn):
        super().__init__()
        layers = [nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1), _tiny_act(act_fn)]
        for i, num_block in enumerate(num_blocks):
            is_final_block = i == len(num_blocks) - 1
            num_channels = block_out_channels[i]
            for _ in range(num_block):
                layers.append(AutoencoderTinyBlock(num_channels, num_channels, act_fn))
            if not is_final_block:
                layers.append(nn.Upsample(scale_factor=upsampling_scaling_factor, mode=upsample_fn))
            conv_out_channel = num_channels if not is_final_block else out_channels
            layers.append(nn.Conv2d(num_channels, conv_out_channel, kernel_size=3, padding=1, bias=is_final_block))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        x = torch.tanh(x / 3) * 3
        x = self.layers(x)
        return x.mul(2).sub(1)


class AutoencoderTiny(nn.Module, _ConfigMixin):
    """TAESD.  encode/decode apply no scaling; forward round-trips the latents through uint8."""

    DEFAULTS = dict(
        in_channels=3, out_channels=3, encoder_block_out_channels=[64, 64, 64, 64],
        decoder_block_out_channels=[64, 64, 64, 64], act_fn="relu", upsample_fn="nearest", latent_channels=4,
        upsampling_scaling_factor=2, num_encoder_blocks=[1, 3, 3, 3], num_decoder_blocks=[3, 3, 3, 1],
        latent_magnitude=3, latent_shift=0.5, force_upcast=False, scaling_factor=1.0, shift_factor=0.0,
        block_out_channels=None,  # diffusers registers it (= decoder_block_out_channels); unused
    )

    def __init__(self, **kwargs):
        super().__init__()
        c = self._init_config(kwargs)
        if len(c["encoder_block_out_channels"]) != len(c["num_encoder_blocks"]) or \
                len(c["decoder_block_out_channels"]) != len(c["num_decoder_blocks"]):
            raise ValueError("AutoencoderTiny: block_out_channels and num_*_blocks lengths differ")
        self.config.block_out_channels = c["decoder_block_out_channels"]
        self.encoder = EncoderTiny(c["in_channels"], c["latent_channels"], c["num_encoder_blocks"],
                                   c["encoder_block_out_channels"], c["act_fn"])
        self.decoder = DecoderTiny(c["latent_channels"], c["out_channels"], c["num_decoder_blocks"],
                                   c["decoder_block_out_channels"], c["upsampling_scaling_factor"], c["act_fn"],
                                   c["upsample_fn"])

    def scale_latents(self, x):
        return x.div(2 * self.config.latent_magnitude).add(self.config.latent_shift).clamp(0, 1)

    def unscale_latents(self, x):
        return x.sub(self.config.latent_shift).mul(2 * self.config.latent_magnitude)

    def encode(self, x):
        return SimpleNamespace(latents=self.encoder(x))

    def decode(self, z):
        return SimpleNamespace(sample=self.decoder(z))

    def quantize_latents(self, latents):
        """The uint8 round trip of forward: round(clamp(z/(2*mag) + shift, 0, 1) * 255)."""
        return self.scale_latents(latents).mul_(255).round_().byte()

    def forward(self, sample):
        scaled = self.quantize_latents(self.encode(sample).latents)
        return self.decode(self.unscale_latents(scaled / 255.0))


# ----------------------------------------------------------------------------------------------
# CLIPTextModel (transformers)
# ----------------------------------------------------------------------------------------------


class QuickGELUActivation(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class GELUActivation(nn.Module):
    def forward(self, x):
        return F.gelu(x)


_CLIP_ACTS = {"quick_gelu": QuickGELUActivation, "gelu": GELUActivation}


class CLIPTextEmbeddings(nn.Module):
    def __init__(self, vocab_size, hidden_size, max_position_embeddings):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, hidden_size)
        self.position_embedding = nn.Embedding(max_position_embeddings, hidden_size)
        self.register_buffer("position_ids", torch.arange(max_position_embeddings).expand((1, -1)),
                             persistent=False)

    def forward(self, input_ids):
        position_ids = self.position_ids[:, :input_ids.shape[-1]]
        return self.token_embedding(input_ids) + self.position_embedding(position_ids)


class CLIPAttention(nn.Module):
    """Eager attention: q = q_proj(x) * head_dim**-0.5 BEFORE q kᵀ; the masks are ADDED to the
    scores (causal first, then the padding mask); softmax over keys in the input dtype."""

    def __init__(self, hidden_size, heads):
        super().__init__()
        self.num_heads = heads
        self.head_dim = hidden_size // heads
        self.scale = self.head_dim ** -0.5
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)

    def _shape(self, t, seq_len, bsz):
        return t.view(bsz, seq_len, self.num_heads, self.head_dim).transpose(1, 2).contiguous()

    def forward(self, hidden_states, causal_attention_mask=None, attention_mask=None):
        bsz, tgt_len, embed_dim = hidden_states.size()
        query_states = self.q_proj(hidden_states) * self.scale
        key_states = self._shape(self.k_proj(hidden_states), -1, bsz)
        value_states = self._shape(self.v_proj(hidden_states), -1, bsz)
        proj_shape = (bsz * self.num_heads, -1, self.head_dim)
        query_states = self._shape(query_states, tgt_len, bsz).view(*proj_shape)
        key_states = key_states.view(*proj_shape)
        value_states = value_states.view(*proj_shape)
        src_len = key_states.size(1)
        attn_weights = torch.bmm(query_states, key_states.transpose(1, 2))
        for mask in (causal_attention_mask, attention_mask):
            if mask is not None:
                attn_weights = attn_weights.view(bsz, self.num_heads, tgt_len, src_len) + mask
                attn_weights = attn_weights.view(bsz * self.num_heads, tgt_len, src_len)
        attn_weights = F.softmax(attn_weights, dim=-1)
        attn_output = torch.bmm(attn_weights, value_states)
        attn_output = attn_output.view(bsz, self.num_heads, tgt_len, self.head_dim).transpose(1, 2)
        attn_output = attn_output.reshape(bsz, tgt_len, embed_dim)
        return self.out_proj(attn_output)


class CLIPMLP(nn.Module):
    def __init__(self, hidden_size, intermediate_size, hidden_act):
        super().__init__()
        if hidden_act not in _CLIP_ACTS:
            raise ValueError(f"CLIPTextModel: hidden_act={hidden_act!r}: only {sorted(_CLIP_ACTS)} are supported")
        self.activation_fn = _CLIP_ACTS[hidden_act]()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)

    def forward(self, x):
        return self.fc2(self.activation_fn(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    """Pre-LN: h = x + attn(ln1(x)); y = h + mlp(ln2(h))."""

    def __init__(self, c):
        super().__init__()
        self.self_attn = CLIPAttention(c["hidden_size"], c["num_attention_heads"])
        self.layer_norm1 = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.mlp = CLIPMLP(c["hidden_size"], c["intermediate_size"], c["hidden_act"])
        self.layer_norm2 = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, hidden_states, causal_attention_mask, attention_mask=None):
        residual = hidden_states
        hidden_states = self.self_attn(self.layer_norm1(hidden_states), causal_attention_mask, attention_mask)
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.mlp(self.layer_norm2(hidden_states))
        return residual + hidden_states


class CLIPEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(c) for _ in range(c["num_hidden_layers"])])


def causal_attention_mask(seq_len, dtype=torch.float32, device=None):
    """[1, 1, S, S]: 0 on and below the diagonal, finfo(dtype).min above (transformers'
    _make_causal_mask, built with torch.full in float32)."""
    mask = torch.full((seq_len, seq_len), torch.finfo(dtype).min, device=device)
    cond = torch.arange(mask.size(-1), device=device)
    mask.masked_fill_(cond < (cond + 1).view(mask.size(-1), 1), 0)
    return mask.to(dtype)[None, None, :, :]


class CLIPTextTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.eos_token_id = c["eos_token_id"]
        self.embeddings = CLIPTextEmbeddings(c["vocab_size"], c["hidden_size"], c["max_position_embeddings"])
        self.encoder = CLIPEncoder(c)
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        input_ids = input_ids.view(-1, input_ids.shape[-1])
        hidden_states = self.embeddings(input_ids)
        bsz, seq_len = input_ids.shape
        causal = causal_attention_mask(seq_len, hidden_states.dtype, hidden_states.device).expand(
            bsz, 1, seq_len, seq_len)
        if attention_mask is not None:
            # 1 keep / 0 discard -> 0 / finfo.min added to the scores of the masked keys
            expanded = attention_mask[:, None, None, :].expand(bsz, 1, seq_len, seq_len).to(hidden_states.dtype)
            inverted = 1.0 - expanded
            attention_mask = inverted.masked_fill(inverted.to(torch.bool), torch.finfo(hidden_states.dtype).min)
        states = ()
        for layer in self.encoder.layers:
            states += (hidden_states,)
            hidden_states = layer(hidden_states, causal, attention_mask)
        states += (hidden_states,)
        last_hidden_state = self.final_layer_norm(hidden_states)
        rows = torch.arange(last_hidden_state.shape[0], device=last_hidden_state.device)
        ids = input_ids.to(dtype=torch.int, device=last_hidden_state.device)
        if self.eos_token_id == 2:  # old configs: the position of the largest id
            pooled = last_hidden_state[rows, ids.argmax(dim=-1)]
        else:  # the FIRST eos position
            pooled = last_hidden_state[rows, (ids == self.eos_token_id).int().argmax(dim=-1)]
        return SimpleNamespace(last_hidden_state=last_hidden_state, pooler_output=pooled,
                               hidden_states=states if output_hidden_states else None)


class CLIPTextModel(nn.Module, _ConfigMixin):
    """transformers' CLIPTextModel (weights text_model.*), eager attention, no projection.

    Stable Diffusion uses last_hidden_state (after final_layer_norm) with NO attention_mask;
    hidden_states[i] are the pre-final-LN states (i=0: embeddings).  The config is a
    transformers config.json: keys this model does not use (architectures, torch_dtype, ...)
    are kept but ignored.
    """

    DEFAULTS = dict(
        vocab_size=49408, hidden_size=512, intermediate_size=2048, projection_dim=512, num_hidden_layers=12,
        num_attention_heads=8, max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        attention_dropout=0.0, initializer_range=0.02, initializer_factor=1.0, pad_token_id=1,
        bos_token_id=49406, eos_token_id=49407,
    )
    STRICT_CONFIG = False

    def __init__(self, **kwargs):
        super().__init__()
        c = self._init_config(kwargs)
        self.text_model = CLIPTextTransformer(c)

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        return self.text_model(input_ids, attention_mask, output_hidden_states)

    def config_dict(self):
        """transformers-style: model_type and architectures instead of _class_name."""
        d = {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model"}
        d.update(vars(self.config))
        return d


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
        self.mid_block = UNetMidBlock2D(boc[-1], None, 1e-6, norm_num_groups,
                                        _spatial_attention(None, 1e-6, norm_num_groups)
                                        if mid_block_add_attention else None)
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
        self.mid_block = UNetMidBlock2D(boc[-1], None, 1e-6, norm_num_groups,
                                        _spatial_attention(None, 1e-6, norm_num_groups)
                                        if mid_block_add_attention else None)
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

MODEL_CLASSES = {"UNet2DModel": UNet2DModel, "AutoencoderKL": AutoencoderKL, "VQModel": VQModel,
                 "UNet2DConditionModel": UNet2DConditionModel, "AutoencoderTiny": AutoencoderTiny,
                 "CLIPTextModel": CLIPTextModel}
# transformers configs name the model by model_type (and architectures), not _class_name
_TRANSFORMERS_TYPES = {"clip_text_model": "CLIPTextModel"}
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors")  # diffusers, transformers

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
    """Builds the class named by config['_class_name'] (diffusers) or config['model_type']
    (transformers) from a config dict."""
    name = config.get("_class_name") or _TRANSFORMERS_TYPES.get(config.get("model_type"))
    if name not in MODEL_CLASSES:
        raise ValueError(f"unsupported _class_name {name!r}")
    return MODEL_CLASSES[name].from_config(config)


def load_pretrained(folder, dtype=torch.float32):
    """config.json + diffusion_pytorch_model.safetensors (or transformers' model.safetensors)
    -> model in eval mode (strict load), in @dtype whatever the file's dtype."""
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    model = model_from_config(config)
    paths = [os.path.join(folder, n) for n in WEIGHT_FILES if os.path.exists(os.path.join(folder, n))]
    if not paths:
        raise FileNotFoundError(f"{folder}: none of {', '.join(WEIGHT_FILES)}")
    weights, _ = st.load(paths[0])
    # older transformers checkpoints store the (non-persistent) position_ids buffer
    weights.pop("text_model.embeddings.position_ids", None)
    model.load_state_dict(rename_legacy_keys(weights), strict=True)  # copy_ converts F16/BF16
    return model.to(dtype).eval()


def load_file(path):
    """One exported .safetensors file, its config in __metadata__ (models/*/export.py) ->
    (model in eval mode, F32, strict load; the metadata dict)."""
    weights, meta = st.load(path)
    model = model_from_config(json.loads(meta["config"]))
    model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=True)
    return model.eval(), meta


def save_pretrained(model, folder, dtype=None):
    """Writes config.json and diffusion_pytorch_model.safetensors (model.safetensors for a
    transformers model), in the parameters' dtype or @dtype, metadata format=pt."""
    model.save_config(folder)
    sd = {k: v.detach().to(dtype or v.dtype).contiguous() for k, v in model.state_dict().items()}
    name = WEIGHT_FILES[1] if isinstance(model, CLIPTextModel) else WEIGHT_FILES[0]
    st.save(os.path.join(folder, name), sd, metadata={"format": "pt"})
