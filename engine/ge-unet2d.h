/* ge-unet2d.h: diffusers' UNet2DModel and UNet2DConditionModel (the
 * Stable Diffusion U-Net), one type for both.
 *
 * UNet2DModel: any configuration built from DownBlock2D, AttnDownBlock2D,
 * UpBlock2D, AttnUpBlock2D and UNetMidBlock2D (any number of levels,
 * channels and layers per block, positional time embedding).
 *
 * UNet2DConditionModel: CrossAttnDownBlock2D, DownBlock2D,
 * UNetMidBlock2DCrossAttn (or UNetMidBlock2D, or none), CrossAttnUpBlock2D
 * and UpBlock2D (AttnDown/UpBlock2D too), with Transformer2DModel /
 * BasicTransformerBlock attention; per-block attention_head_dim (the number
 * of heads, as diffusers reads it), cross_attention_dim, layers_per_block,
 * transformer_layers_per_block and only_cross_attention; both
 * use_linear_projection settings; conv_in/conv_out kernels; the class
 * embedding of the x4 upscaler (num_class_embeds: nn.Embedding of the noise
 * level) and class_embed_type "timestep".  Refused with GE_ERROR_UNSUPPORTED
 * (naming the key): dual_cross_attention, addition_embed_type,
 * encoder_hid_dim(_type), time_cond_proj_dim, timestep_post_act,
 * time_embedding_act_fn, class_embeddings_concat, other class_embed_types,
 * attention_type other than "default", num_attention_heads (diffusers
 * refuses it too), the Simple, K and Skip block types.  upcast_attention is accepted:
 * attention always runs in f32.  Differences from diffusers: H and W must
 * be multiples of ge_unet2d_size_multiple() (diffusers can pass an upsample
 * size instead); no attention masks.
 *
 * Weights are named as diffusers names them.  Inputs are NCHW f32.
 */
#pragma once

#include "ge-model-file.h"
#include "ge-precision.h"

G_BEGIN_DECLS

typedef struct _GeUNet2D GeUNet2D;

GeUNet2D *ge_unet2d_new (GeModelFile * mf, GError ** error);
void ge_unet2d_free (GeUNet2D * u);
/* 0 = one thread per core. */
void ge_unet2d_set_n_threads (GeUNet2D * u, int n_threads);
/* The precision its convolutions run in (ge-precision.h); the default is
 * GE_PRECISION_F32.  Returns what runs on this CPU: F32 or BF16. */
GePrecision ge_unet2d_set_precision (GeUNet2D * u, GePrecision precision);
int ge_unet2d_in_channels (const GeUNet2D * u);
int ge_unet2d_out_channels (const GeUNet2D * u);
int ge_unet2d_size_multiple (const GeUNet2D * u);
/* num_train_timesteps from the config (1000 when absent). */
int ge_unet2d_num_train_timesteps (const GeUNet2D * u);
gsize ge_unet2d_n_params (const GeUNet2D * u);

/* out[n, out_channels, h, w] = unet (x[n, in_channels, h, w], t[n]).
 * Timesteps are used as given (UNet2DModel truncates Python floats to
 * int64, not tensors: pass integers to match a diffusers pipeline).  A
 * UNet2DConditionModel is GE_ERROR_INVALID here. */
gboolean ge_unet2d_forward (GeUNet2D * u, const float *x, int n, int h, int w,
    const float *timesteps, float *out, GError ** error);

/* UNet2DConditionModel: encoder_hidden_states [n, seq_len, cross_attention_dim] row-major;
 * class_labels [n] (the x4 upscaler's noise level) or NULL when the model has no class
 * embedding (ignored then, as diffusers does).  Timesteps are floats used as given
 * (UNet2DConditionModel does not truncate them).  A UNet2DModel is GE_ERROR_INVALID here. */
gboolean ge_unet2d_forward_cond (GeUNet2D * u, const float *x, int n, int h, int w,
    const float *timesteps, const float *encoder_hidden_states, int seq_len,
    const float *class_labels, float *out, GError ** error);
/* 0 for a UNet2DModel. */
int ge_unet2d_cross_attention_dim (const GeUNet2D * u);
gboolean ge_unet2d_has_class_embedding (const GeUNet2D * u);

/* Debugging: @tap sees each diffusers module output during forward. */
void ge_unet2d_set_tap (GeUNet2D * u, GeModelTap tap, void *user_data);

/* Allocations the last forward made (0 once shapes repeat). */
guint ge_unet2d_n_allocs (const GeUNet2D * u);
/* Bytes of activation memory planned for the largest input so far. */
gsize ge_unet2d_workspace_bytes (const GeUNet2D * u);

G_END_DECLS
