/* ge-ops.h: the engine's tensor operations.
 *
 * Every op computes in f32 on NCHW tensors allocated by the caller, splits
 * its work over ctx->pool and takes any scratch from ctx->arena (released
 * before returning).  Each op has a naive twin in tests/engine that it is
 * checked against.
 */
#pragma once

#include "ge-tensor.h"
#include "ge-safetensors.h"             /* GeDType */

G_BEGIN_DECLS

/* ---- convolution ------------------------------------------------------ */

typedef enum {
  GE_ACT_NONE,
  GE_ACT_SILU,
  GE_ACT_GELU,                  /* exact (erf) */
  GE_ACT_GELU_TANH,
  GE_ACT_RELU,
  GE_ACT_LEAKY_RELU,            /* slope in the param */
  GE_ACT_TANH,
  GE_ACT_SIGMOID,
} GeAct;

/* Where the bf16 kernel's copy of a conv's f32 weights goes: packed by the
 * first call that runs the conv in bf16, so that a model run in f32 never
 * carries it (half the f32 weights' size again).  @alloc gives memory that
 * lives as long as the weights (the model file's); copies of the GeConv2d
 * share the cache, and concurrent first calls pack once. */
typedef struct {
  gpointer packed;              /* guint32 *; NULL until the first bf16 call */
  float *(*alloc) (gpointer owner, gsize n_floats);
  gpointer owner;
  gpointer packed_int8;         /* NULL until the first int8 call (conv2d.c) */
} GeConvCache;

typedef struct {
  int in_channels, out_channels;
  int kh, kw;
  int stride_h, stride_w;
  int pad_top, pad_left, pad_bottom, pad_right;   /* zero padding */
  int dil_h, dil_w;
  int groups;
  const float *weight;          /* [out, in/groups, kh, kw] as in PyTorch */
  const float *bias;            /* [out] or NULL */
  const float *packed;          /* weights for the packed kernel, or NULL */
  /* Instead of weight and packed: the weights as F16 or BF16 (dtype16),
   * same layout, any alignment, e.g. straight from a model's mapping.  The
   * packed kernel converts them as it packs (exactly: the result is the
   * one of the f32 path on the converted weights); where it does not run
   * (no AVX-512) each call converts them into the arena. */
  const void *weight16;
  GeDType dtype16;
  /* The weights for the bf16 kernel (ge_conv2d_pack_bf16), or NULL: then
   * cache's, or with no cache either, a bf16 conv converts the rows
   * each task needs as it runs. */
  const guint32 *packed_bf16;
  GeConvCache *cache;
  /* May run in int8 (GE_PRECISION_INT8, with a cache to hold its weights):
   * the loaders set it for the convs of resnet blocks. */
  gboolean int8;
} GeConv2d;

/* Fills the common case: square kernel, symmetric padding, no dilation. */
GeConv2d ge_conv2d_params (int in, int out, int k, int stride, int pad,
    const float *weight, const float *bias);
void ge_conv2d_out_size (const GeConv2d * p, int h, int w, int *oh, int *ow);
/* How a conv's input is derived from x on the fly, saving a pass over
 * memory per block: a per-channel affine (scale, shift: [n, c], e.g. a
 * group norm reduced to its effect on each channel), then @act, then
 * nearest upsampling by @upsample (0 or 1: none).  Zero padding is applied
 * after all of it, as it would be to a materialised tensor. */
typedef struct {
  const float *scale, *shift;
  GeAct act;
  int upsample;
  /* Optional ([n, c] each, or NULL): each channel's minimum and maximum of
   * x (before the affine), NaN where it holds a NaN, e.g. from the pass
   * that found the group norm's statistics: an int8 conv takes its input
   * range from them instead of reading x once more. */
  const float *lo, *hi;
} GeConvInput;

/* Floats a packed copy of the weights needs (0: the packed kernel does not
 * run on this CPU, or the weights are 16-bit, so do not pack), and the packing itself: @storage must
 * outlive @p.  Models pack every conv once at load. */
gsize ge_conv2d_packed_size (const GeConv2d * p);
void ge_conv2d_pack (GeConv2d * p, float *storage);
/* The same for the bf16 kernel (guint32s; 0: it does not run on this CPU or
 * not on this conv).  Reads weight, weight16 or packed. */
gsize ge_conv2d_packed_bf16_size (const GeConv2d * p);
void ge_conv2d_pack_bf16 (GeConv2d * p, guint32 * storage);
/* Or later: @cache (zeroed but for alloc and owner, living as long as the
 * weights) gets the bf16 copy on the first bf16 call, and where @p->int8
 * the int8 weights on the first int8 call.  Models give every
 * conv with f32 weights one at load, where the CPU runs bf16 or int8. */
void ge_conv2d_set_cache (GeConv2d * p, GeConvCache * cache);
/* y must be [x->n, out_channels, oh, ow].  Never builds a full-image im2col:
 * at most a band of output rows per thread.  With ctx->precision BF16 (and
 * the CPU's support) convs of one group without dilation run the bf16
 * kernel: inputs rounded to bf16 as they are prepared, f32 sums and
 * output; the rest stays f32.  With INT8 (and VNNI) convs marked int8 run
 * in 8-bit integers (ge-precision.h), the others as in BF16. */
void ge_conv2d (GeCtx * ctx, const GeConv2d * p, const GeTensor * x, GeTensor * y);
/* The same on the input @in derives from @x (NULL: x itself). */
void ge_conv2d_ex (GeCtx * ctx, const GeConv2d * p, const GeTensor * x,
    const GeConvInput * in, GeTensor * y);
/* y += conv (x), bias included: a residual add folded into the GEMM's
 * output instead of a pass of its own. */
void ge_conv2d_accumulate (GeCtx * ctx, const GeConv2d * p, const GeTensor * x,
    GeTensor * y);
/* The same on the input @in derives from @x (NULL: x itself). */
void ge_conv2d_accumulate_ex (GeCtx * ctx, const GeConv2d * p, const GeTensor * x,
    const GeConvInput * in, GeTensor * y);
/* y = conv (in (x)) + @res (y's shape, not y itself): a resnet's residual,
 * added where the kernel stores y (int8) or by a pass after it, the same
 * float sums as ge_add (res, y) either way. */
void ge_conv2d_residual (GeCtx * ctx, const GeConv2d * p, const GeTensor * x,
    const GeConvInput * in, const float *res, GeTensor * y);
/* A 3x3 conv after 2x nearest upsampling, as four 2x2 convs of x (Upsample2D
 * builds them): y[2i + dy][2j + dx] = phase[2 dy + dx] (x)[i][j], where
 * phase (dy, dx) pads by 1 - dy, dy (rows) and 1 - dx, dx (columns).
 * y must be [x->n, out_channels, 2 h, 2 w]. */
void ge_conv2d_phase2x (GeCtx * ctx, const GeConv2d phase[4], const GeTensor * x,
    GeTensor * y);

/* 1-D convolutions on [n, c, 1, length] tensors (h == 1). */
typedef struct {
  int in_channels, out_channels, k, stride, pad_left, pad_right, dil, groups;
  const float *weight;          /* [out, in/groups, k] */
  const float *bias;
} GeConv1d;
int ge_conv1d_out_len (const GeConv1d * p, int len);
void ge_conv1d (GeCtx * ctx, const GeConv1d * p, const GeTensor * x, GeTensor * y);

/* Transposed convolutions (PyTorch ConvTranspose semantics: weight
 * [in, out/groups, kh, kw], output = (i-1)*s - 2p + d*(k-1) + output_padding + 1). */
typedef struct {
  int in_channels, out_channels, kh, kw, stride_h, stride_w, pad_h, pad_w;
  int out_pad_h, out_pad_w, dil_h, dil_w, groups;
  const float *weight;
  const float *bias;
} GeConvTranspose2d;
void ge_conv_transpose2d_out_size (const GeConvTranspose2d * p, int h, int w,
    int *oh, int *ow);
void ge_conv_transpose2d (GeCtx * ctx, const GeConvTranspose2d * p,
    const GeTensor * x, GeTensor * y);
/* 1-D: a 2-D transposed conv with kh = 1 on [n, c, 1, len]. */

/* ---- dense ------------------------------------------------------------ */

/* y[rows, out] = x[rows, in] * W^T + b, W [out, in] as nn.Linear. */
void ge_linear (GeCtx * ctx, const float *x, int rows, int in, const float *w,
    const float *b, int out, float *y);
/* The same with W as F32, F16 or BF16 (@dtype; any alignment, e.g. a
 * model's mapping), on the packed kernel where it runs, converting W as it
 * packs it (so 16-bit W gives bitwise the result of F32 W holding the same
 * numbers), threaded over ctx->pool; elsewhere OpenBLAS, 16-bit W
 * converted a block of rows at a time. */
void ge_linear_ex (GeCtx * ctx, const float *x, int rows, int in, const void *w,
    GeDType dtype, const float *b, int out, float *y);

/* ---- normalisation ----------------------------------------------------- */


/* GroupNorm over (c/groups, h, w) per sample with biased variance, then an
 * optional activation fused in.  In place allowed (y == x). */
void ge_group_norm (GeCtx * ctx, const GeTensor * x, GeTensor * y, int groups,
    float eps, const float *gamma, const float *beta, GeAct act);
/* The per-(sample, channel) scale and shift ([n, c] each) that group norm
 * amounts to: y = x * scale + shift.  Feeds GeConvInput.  @lo and @hi
 * (NULL: not wanted) get each channel's minimum and maximum of x, NaN for
 * both where it holds a NaN, from the same pass (GeConvInput's). */
void ge_group_norm_affine (GeCtx * ctx, const GeTensor * x, int groups, float eps,
    const float *gamma, const float *beta, float *scale, float *shift, float *lo, float *hi);
/* The smallest and largest of @n > 0 floats; NaN for both where one is
 * a NaN. */
void ge_min_max (const float *v, gsize n, float *mn, float *mx);
/* LayerNorm over the last @dim floats of each of @rows rows. */
void ge_layer_norm (GeCtx * ctx, const float *x, float *y, int rows, int dim,
    float eps, const float *gamma, const float *beta);
/* LayerNorm of channel-major tokens: each (n, h, w) position of x is a
 * token whose x->c features are normalised (biased variance, eps inside
 * the sqrt), then scaled by gamma[c] and shifted by beta[c].  In place
 * allowed. */
void ge_layer_norm_channels (GeCtx * ctx, const GeTensor * x, GeTensor * y, float eps,
    const float *gamma, const float *beta);

/* ---- element-wise ----------------------------------------------------- */

void ge_act (GeCtx * ctx, float *x, gsize n, GeAct act, float param);
/* dst = src, @n floats (not overlapping), on the pool. */
void ge_copy (GeCtx * ctx, const float *src, float *dst, gsize n);
/* y = (a + b) / divisor; any of them may alias. */
void ge_add (GeCtx * ctx, const float *a, const float *b, float *y, gsize n, float divisor);
/* x[n, c, :, :] += v[n, c] (broadcast a per-channel vector). */
void ge_add_channel_bias (GeCtx * ctx, GeTensor * x, const float *v);
/* GEGLU's gate: y = a * gelu (gate), exact (erf) GELU to within float
 * rounding; y may alias a. */
void ge_geglu (GeCtx * ctx, const float *a, const float *gate, float *y, gsize n);
/* Max-subtracted softmax of one row of @n floats, in place (vectorised;
 * all -inf gives NaN, as torch.softmax). */
void ge_softmax_row (float *row, int n);
/* y = cat([a, b], dim=1) */
void ge_concat_channels (GeCtx * ctx, const GeTensor * a, const GeTensor * b, GeTensor * y);

/* ---- resampling -------------------------------------------------------- */

/* Integer-factor nearest upsampling (source = floor(dst / f)). */
void ge_upsample_nearest (GeCtx * ctx, const GeTensor * x, GeTensor * y);
/* Bilinear upsampling to y's size, align_corners = FALSE (PyTorch). */
void ge_upsample_bilinear (GeCtx * ctx, const GeTensor * x, GeTensor * y);
/* Bicubic resampling to y's size as PyTorch's interpolate (mode="bicubic",
 * align_corners=False): Keys' cubic with A = -0.75, source indices clamped
 * at the borders, no antialiasing. */
void ge_upsample_bicubic (GeCtx * ctx, const GeTensor * x, GeTensor * y);
/* Average pooling k x k, stride k (no padding; y = floor(h/k)). */
void ge_avg_pool (GeCtx * ctx, const GeTensor * x, GeTensor * y, int k);
/* Pixel shuffle: [n, c*r*r, h, w] -> [n, c, h*r, w*r] and back. */
void ge_pixel_shuffle (GeCtx * ctx, const GeTensor * x, GeTensor * y, int r);
void ge_pixel_unshuffle (GeCtx * ctx, const GeTensor * x, GeTensor * y, int r);

/* ---- attention -------------------------------------------------------- */

/* Multi-head self-attention core on channel-major tokens: q, k, v are
 * [heads*d, T] (token index innermost, as NCHW gives after a 1x1 projection);
 * out is [heads*d, T].  Softmax is max-subtracted, queries in blocks so the
 * score matrix never exceeds a block of rows. */
void ge_attention (GeCtx * ctx, const float *q, const float *k, const float *v,
    float *out, int heads, int d, int tokens, float scale);
/* The same with @tq queries attending to @tk keys/values from another
 * source (cross-attention): q and out are [heads*d, tq], k and v
 * [heads*d, tk].  Always f32 (diffusers' upcast_attention is implied). */
void ge_cross_attention (GeCtx * ctx, const float *q, int tq, const float *k, const float *v,
    int tk, float *out, int heads, int d, float scale);

/* ---- embeddings -------------------------------------------------------- */

/* diffusers get_timestep_embedding: [n, dim] from n timesteps. */
void ge_timestep_embedding (const float *t, int n, int dim, gboolean flip_sin_to_cos,
    float freq_shift, float max_period, float *out);
/* Its frequency table: freqs[i] = exp (-ln (max_period) i / (half - freq_shift)),
 * i < half (diffusers' `exponent.exp ()`). */
void ge_timestep_frequencies (int half, float freq_shift, float max_period, float *freqs);

/* ---- attention on token-major rows ------------------------------------ */

/* Multi-head attention for n sequences of token-major rows: q [n, tq,
 * heads*d], k and v [n, tk, heads*d] (head h is columns h*d .. h*d+d-1 of
 * each row), out [n, tq, heads*d]; out = softmax(scale q·kᵀ + mask) v per
 * head.  @mask (NULL: none) is additive, [tq, tk] for sequence b at
 * mask + b * mask_stride (stride 0: one mask for all), e.g. 0 / -FLT_MAX for
 * causal or padding masks as transformers builds them; a query row whose
 * every score is -inf gives NaN, as in PyTorch. */
void ge_attention_masked (GeCtx * ctx, const float *q, const float *k, const float *v,
    float *out, int n, int heads, int d, int tq, int tk, float scale,
    const float *mask, gsize mask_stride);

/* ---- audio ------------------------------------------------------------ */

/* Mixed-radix FFT plan for n = 2^a 3^b 5^c (NULL for other sizes).  Shared
 * read-only by any number of threads; each call needs its own scratch of
 * ge_fft_scratch_size() floats. */
typedef struct _GeFft GeFft;
GeFft *ge_fft_new (int n);
void ge_fft_free (GeFft * f);
int ge_fft_size (const GeFft * f);
gsize ge_fft_scratch_size (const GeFft * f);
/* x[n] -> spec[n/2 + 1] complex (re, im interleaved), unnormalised. */
void ge_fft_forward_real (const GeFft * f, const float *x, float *spec, float *scratch);
/* The inverse of the above (divides by n), as numpy's irfft. */
void ge_fft_inverse_real (const GeFft * f, const float *spec, float *x, float *scratch);

/* One step of PyTorch's nn.GRU layer (gates r, z, n): @h [hidden] is
 * updated in place from gi = b_ih + w_ih x and gh = b_hh + w_hh h ([3
 * hidden] each, the layer's two products, which the caller makes). */
void ge_gru_update (const float *gi, const float *gh, float *h, int hidden);

G_END_DECLS
