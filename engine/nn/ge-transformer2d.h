/* ge-transformer2d.h: diffusers' Transformer2DModel (continuous input) with
 * BasicTransformerBlock, as the Stable Diffusion U-Net's cross-attention
 * blocks build it.
 *
 * Transformer2DModel: GroupNorm (eps 1e-6, not the U-Net's norm_eps) ->
 * proj_in -> blocks -> proj_out -> + input.  proj_in/proj_out are 1x1 convs
 * (use_linear_projection false, SD 1.x) or nn.Linear on the tokens after
 * the norm (SD 2.x); a Linear on the H*W tokens is the same map as a 1x1
 * conv in NCHW, so both run as one.
 *
 * BasicTransformerBlock (norm_type "layer_norm", LayerNorm eps 1e-5):
 *   h = attn1 (norm1 (h)) + h      self-attention, or cross-attention on
 *                                  encoder_hidden_states with only_cross_attention
 *   h = attn2 (norm2 (h), ehs) + h
 *   h = ff (norm3 (h)) + h         GEGLU: proj -> chunk(2) -> a * gelu (gate)
 *                                  (the first half is a; exact GELU) -> Linear
 * q/k/v have no bias (attention_bias is false in every U-Net block), to_out
 * has one; scale head_dim^-0.5.
 *
 * Tokens stay channel-major throughout ([n, channels, h, w], token = pixel),
 * so projections are plain GEMMs over the NCHW tensor and attention reads
 * them without transposes.  Attention is always computed in f32, which is
 * what diffusers' upcast_attention asks for.
 */
#pragma once

#include "ge-blocks.h"

G_BEGIN_DECLS

typedef struct {
  int heads, head_dim, inner;
  int kv_dim;                   /* features of the key/value source */
  gboolean cross;               /* keys/values from encoder_hidden_states */
  GeConv2d to_q, to_k, to_v, to_out;    /* 1x1; to_k/to_v read the context when cross */
} GeCrossAttn;

typedef struct {
  int dim, ff_inner;
  const float *norm_w[3], *norm_b[3];
  float eps;
  GeCrossAttn attn1, attn2;
  GeConv2d ff_proj, ff_out;     /* ff.net.0.proj (dim -> 2 ff_inner), ff.net.2 */
} GeBasicTransformerBlock;

typedef struct {
  int channels, inner, n_blocks;
  gboolean linear_projection;
  GeGroupNormW norm;
  GeConv2d proj_in, proj_out;
  GeBasicTransformerBlock *blocks;
} GeTransformer2D;

/* What a U-Net block passes to its Transformer2DModel. */
typedef struct {
  int heads;                    /* num_attention_heads; head_dim = channels / heads */
  int n_layers;                 /* transformer_layers_per_block for this layer */
  int cross_attention_dim;
  int groups;                   /* the block's resnet_groups */
  gboolean use_linear_projection;
  gboolean only_cross_attention;
} GeTransformer2DOpts;

gboolean ge_transformer2d_load (GeModelFile * mf, const char *prefix, int channels,
    const GeTransformer2DOpts * o, GeTransformer2D * t, GError ** error);
void ge_transformer2d_clear (GeTransformer2D * t);
gsize ge_transformer2d_n_params (const GeTransformer2D * t);

/* y = Transformer2DModel (x, encoder_hidden_states): @ehs is [x->n, seq,
 * cross_attention_dim] row-major.  Module outputs go to @tap under
 * @prefix (token-layout ones as [n, h*w, features], as diffusers has them). */
GeTensor ge_transformer2d_forward (GeCtx * ctx, const GeTransformer2D * t, const GeTensor * x,
    const float *ehs, int seq, GeModelTap tap, void *tap_data, const char *prefix);

G_END_DECLS
