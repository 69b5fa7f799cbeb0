/* ge-blocks.h: diffusers' building blocks, loaded by their module names.
 *
 * Each block is a plain struct of shapes and weight pointers into the
 * GeModelFile, loaded by *_load (prefix = the diffusers module path, e.g.
 * "down_blocks.1.resnets.0") and run by *_forward, which returns a tensor
 * carved from the arena after all its temporaries are released.
 */
#pragma once

#include "ge-model-file.h"
#include "ge-ops.h"

G_BEGIN_DECLS

/* Models report diffusers' module outputs to their GeModelTap (debugging,
 * the conformance check); @fmt builds the module path ("down_blocks.%d").
 * Does nothing when @tap is NULL. */
void ge_model_tap (GeModelTap tap, void *user_data, const GeTensor * t, const char *fmt, ...)
    G_GNUC_PRINTF (4, 5);

typedef struct {
  int channels, groups;
  float eps;
  const float *gamma, *beta;
} GeGroupNormW;

/* nn.Linear: W [out, in] as stored (16-bit in place, see
 * ge_weights_in_place), b [out] or NULL. */
typedef struct {
  int in, out;
  GeWeightView w;
  const float *b;
} GeLinearW;

typedef struct {
  int in, out;
  GeGroupNormW norm1, norm2;
  GeConv2d conv1, conv2, shortcut;
  gboolean has_shortcut;
  GeLinearW temb;               /* time_emb_proj */
  /* temb_b: NULL when the block takes no time embedding; temb_w: the f32
   * weights, NULL too when they are 16-bit (temb.w has them). */
  const float *temb_w, *temb_b;
  int temb_dim;
  float output_scale;
} GeResnet;

typedef struct {
  int channels, heads, head_dim, inner;
  GeGroupNormW norm;
  GeConv2d to_q, to_k, to_v, to_out;   /* linear layers as 1x1 convs */
  float rescale;
} GeAttnBlock;

typedef struct {
  GeConv2d conv;
} GeDownsample;

/* Nearest x2 then a 3x3 conv is, per output phase (dy, dx), a 2x2 conv of
 * the low-resolution input with summed weights: 4 taps instead of 9. */
typedef struct {
  GeConv2d conv;
  GeConv2d phase[4];            /* (dy, dx) = (i / 2, i % 2) */
} GeUpsample;

/* Common block hyper-parameters from a config. */
typedef struct {
  int groups;
  float eps;
  int temb_dim;                 /* 0: no time embedding */
  float output_scale;
} GeBlockOpts;

gboolean ge_group_norm_load (GeModelFile * mf, const char *prefix, int channels,
    int groups, float eps, GeGroupNormW * gn, GError ** error);
void ge_group_norm_apply (GeCtx * ctx, const GeGroupNormW * gn, const GeTensor * x,
    GeTensor * y, GeAct act);

/* Group norm as a GeConvInput for the conv that reads its output (scale
 * and shift arrays in the arena). */
GeConvInput ge_group_norm_input (GeCtx * ctx, const GeGroupNormW * gn, const GeTensor * x,
    GeAct act);

/* TRUE when loaders keep F16/BF16 weights as they are in the mapping (the
 * packed kernel runs and GE_F32_WEIGHTS is not set in the environment);
 * FALSE: they are converted to f32 at load. */
gboolean ge_weights_in_place (void);

/* Loads a conv; F16/BF16 weights become GeConv2d.weight16 (weight NULL)
 * when ge_weights_in_place (). */
gboolean ge_conv_load (GeModelFile * mf, const char *prefix, int in, int out, int k,
    int stride, int pad, gboolean bias, GeConv2d * conv, GError ** error);
/* ge_conv2d_params with weights of any dtype (16-bit: weight16). */
void ge_conv_init (GeConv2d * conv, int in, int out, int k, int stride, int pad,
    const GeWeightView * w, const float *bias);

/* nn.Linear @prefix ("….to_q": weight, bias); ge_linear_ex on it. */
gboolean ge_linear_load (GeModelFile * mf, const char *prefix, int in, int out,
    gboolean bias, GeLinearW * l, GError ** error);
void ge_linear_forward (GeCtx * ctx, const GeLinearW * l, const float *x, int rows, float *y);
/* Packs a conv's weights for the fast kernel where the CPU has one (the
 * copy is owned by @mf).  Call after changing padding or weights. */
void ge_conv_prepare (GeModelFile * mf, GeConv2d * conv);
/* Runs @conv on x into a new arena tensor. */
GeTensor ge_conv_forward (GeCtx * ctx, const GeConv2d * conv, const GeTensor * x);

gboolean ge_resnet_load (GeModelFile * mf, const char *prefix, int in, int out,
    const GeBlockOpts * o, GeResnet * r, GError ** error);
/* @temb_act: SiLU(emb), [n, temb_dim], or NULL for blocks without one. */
GeTensor ge_resnet_forward (GeCtx * ctx, const GeResnet * r, const GeTensor * x,
    const float *temb_act);
/* The same into @y ([n, out, h, w], not x), e.g. part of a larger buffer. */
void ge_resnet_forward_into (GeCtx * ctx, const GeResnet * r, const GeTensor * x,
    const float *temb_act, GeTensor * y);

/* head_dim <= 0 means one head over all channels. */
gboolean ge_attn_load (GeModelFile * mf, const char *prefix, int channels,
    int head_dim, int groups, float eps, float rescale, GeAttnBlock * a, GError ** error);
GeTensor ge_attn_forward (GeCtx * ctx, const GeAttnBlock * a, const GeTensor * x);

/* padding 0 means diffusers' F.pad (0, 1, 0, 1) then an unpadded conv. */
gboolean ge_downsample_load (GeModelFile * mf, const char *prefix, int channels,
    int padding, GeDownsample * d, GError ** error);
GeTensor ge_downsample_forward (GeCtx * ctx, const GeDownsample * d, const GeTensor * x);

gboolean ge_upsample_load (GeModelFile * mf, const char *prefix, int channels,
    GeUpsample * u, GError ** error);
/* Builds u->phase from u->conv (a 3x3 conv, padding 1, stride 1, with or
 * without bias), for a conv that is not Upsample2D's. */
void ge_upsample_fold (GeModelFile * mf, GeUpsample * u);
GeTensor ge_upsample_forward (GeCtx * ctx, const GeUpsample * u, const GeTensor * x);

/* ---- mid block: resnet, attention (optional), resnet ------------------- */
typedef struct {
  GeResnet res0, res1;
  GeAttnBlock attn;
  gboolean has_attn;
} GeMidBlock;

gboolean ge_mid_block_load (GeModelFile * mf, const char *prefix, int channels,
    const GeBlockOpts * o, gboolean add_attention, int head_dim, int attn_groups,
    GeMidBlock * m, GError ** error);
/* @into: where the output goes (not x; NULL: a new tensor). */
GeTensor ge_mid_block_forward (GeCtx * ctx, const GeMidBlock * m, const GeTensor * x,
    const float *temb_act, GeModelTap tap, void *tap_data, const char *prefix,
    const GeTensor * into);

/* Runtime plumbing shared by models: pool + arena, re-created when the
 * thread count changes. */
void ge_ctx_init (GeCtx * ctx, int n_threads);
void ge_ctx_clear (GeCtx * ctx);
void ge_ctx_set_n_threads (GeCtx * ctx, int n_threads);
/* What @want means for the model in @mf on this CPU: AUTO is what the
 * file's metadata "precision_auto" says ("int8" or "bf16": validated in
 * it), else F32; INT8 is BF16 where the CPU lacks AVX512-VNNI, BF16 is F32
 * where it lacks AVX512-BF16 (ge-precision.h). */
GePrecision ge_precision_resolve (GeModelFile * mf, GePrecision want);
void ge_ctx_set_precision (GeCtx * ctx, GeModelFile * mf, GePrecision precision);

G_END_DECLS
