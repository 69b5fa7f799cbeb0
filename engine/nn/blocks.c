/* blocks.c: ResnetBlock2D, Attention, Downsample2D, Upsample2D and
 * UNetMidBlock2D with diffusers' exact order of operations (NOTES in
 * tests/fixtures/diffusers list the details each one depends on). */
#include "ge-blocks.h"
#include "ge-pool.h"
#include "gemm.h"

#include <math.h>
#include <string.h>

#define W(name_, nd_, ...) \
  ({ char *n_ = g_strdup_printf ("%s.%s", prefix, name_); \
     gint64 s_[] = { __VA_ARGS__ }; \
     const float *w_ = ge_model_file_weight (mf, n_, nd_, s_, error); \
     g_free (n_); w_; })

/* 16-bit weights stay in the mapping where the packed kernel runs (it
 * converts them as it packs).  Without it (OpenBLAS) they are converted
 * once at load; GE_F32_WEIGHTS set in the environment does that too (to
 * compare memory and speed). */
gboolean
ge_weights_in_place (void)
{
  static int state = -1;
  if (state < 0)
    state = ge_gemm_packed_available () && !g_getenv ("GE_F32_WEIGHTS");
  return state;
}

/* The weight @name of @prefix: 16-bit as it is when ge_weights_in_place (),
 * else converted to f32. */
static gboolean
weight_load (GeModelFile * mf, const char *prefix, const char *name, int ndim,
    const gint64 * shape, GeWeightView * v, GError ** error)
{
  char *n = g_strdup_printf ("%s.%s", prefix, name);
  gboolean ok = ge_model_file_weight_view (mf, n, ndim, shape, v, error);
  if (ok && v->dtype != GE_DTYPE_F32 && !ge_weights_in_place ()) {
    v->data = ge_model_file_weight (mf, n, ndim, shape, error);
    v->dtype = GE_DTYPE_F32;
    ok = v->data != NULL;
  }
  g_free (n);
  return ok;
}

gboolean
ge_linear_load (GeModelFile * mf, const char *prefix, int in, int out, gboolean bias,
    GeLinearW * l, GError ** error)
{
  memset (l, 0, sizeof (*l));
  l->in = in;
  l->out = out;
  const gint64 shape[2] = { out, in };
  return weight_load (mf, prefix, "weight", 2, shape, &l->w, error)
      && (!bias || (l->b = W ("bias", 1, out)));
}

void
ge_linear_forward (GeCtx * ctx, const GeLinearW * l, const float *x, int rows, float *y)
{
  ge_linear_ex (ctx, x, rows, l->in, l->w.data, l->w.dtype, l->b, l->out, y);
}

gboolean
ge_group_norm_load (GeModelFile * mf, const char *prefix, int channels, int groups,
    float eps, GeGroupNormW * gn, GError ** error)
{
  if (groups <= 0 || channels % groups) {
    g_set_error (error, GE_ERROR, GE_ERROR_UNSUPPORTED,
        "%s: %s: %d channels cannot be split into %d groups", ge_model_file_path (mf),
        prefix, channels, groups);
    return FALSE;
  }
  gn->channels = channels;
  gn->groups = groups;
  gn->eps = eps;
  return (gn->gamma = W ("weight", 1, channels)) && (gn->beta = W ("bias", 1, channels));
}

void
ge_group_norm_apply (GeCtx * ctx, const GeGroupNormW * gn, const GeTensor * x,
    GeTensor * y, GeAct act)
{
  ge_group_norm (ctx, x, y, gn->groups, gn->eps, gn->gamma, gn->beta, act);
}

gboolean
ge_conv_load (GeModelFile * mf, const char *prefix, int in, int out, int k, int stride,
    int pad, gboolean bias, GeConv2d * conv, GError ** error)
{
  const gint64 shape[4] = { out, in, k, k };
  GeWeightView v;
  if (!weight_load (mf, prefix, "weight", 4, shape, &v, error))
    return FALSE;
  const float *b = NULL;
  if (bias && !(b = W ("bias", 1, out)))
    return FALSE;
  ge_conv_init (conv, in, out, k, stride, pad, &v, b);
  ge_conv_prepare (mf, conv);
  return TRUE;
}

void
ge_conv_init (GeConv2d * conv, int in, int out, int k, int stride, int pad,
    const GeWeightView * w, const float *bias)
{
  const gboolean f32 = w->dtype == GE_DTYPE_F32;
  *conv = ge_conv2d_params (in, out, k, stride, pad, f32 ? w->data : NULL, bias);
  if (!f32) {
    conv->weight16 = w->data;
    conv->dtype16 = w->dtype;
  }
}

/* Largest bf16 copy of a conv with 16-bit weights: every conv of the
 * shipped F16 models (the largest 0.6 MB), SD's conv_in and conv_out, none
 * of SD's 320-1280-channel 3x3 convs (1.8-29 MB). */
#define BF16_COPY_16_MAX ((gsize) 1 << 20)

static float *
model_file_alloc (gpointer mf, gsize n_floats)
{
  return ge_model_file_alloc (mf, n_floats);
}

void
ge_conv_prepare (GeModelFile * mf, GeConv2d * conv)
{
  gsize n = ge_conv2d_packed_size (conv);
  if (n)
    ge_conv2d_pack (conv, ge_model_file_alloc (mf, n));
  /* The bf16 copy (half the f32 one) where the CPU runs bf16, made by
   * the first forward in bf16: f32 runs do not pay for it (SD 1.5's f32
   * U-Net would carry 1.7 GB more).  16-bit weights in place get one only
   * when it is small (BF16_COPY_16_MAX): the tasks convert the rest per
   * call, so that a large F16 model does not carry a second copy of its
   * big convs, but a small conv's conversion would be paid per call for
   * a few pixels (a quarter of the GEMM at 40x23, img2img's inner level). */
  const gsize bf16_words = ge_conv2d_packed_bf16_size (conv);
  /* The int8 copy (of the resnets' convs) goes in the same cache, where
   * the CPU runs int8, with AVX512-BF16 or without; the rule for 16-bit
   * weights takes the bf16 copy's size (about 2 bytes a weight) either way. */
  const gboolean int8 = ge_gemm_int8_available () && conv->groups == 1;
  const gsize copy_bytes = bf16_words ? bf16_words * sizeof (guint32)
      : (gsize) conv->out_channels * conv->in_channels * conv->kh * conv->kw * 2;
  if ((bf16_words || int8) && (!conv->weight16 || copy_bytes <= BF16_COPY_16_MAX)) {
    GeConvCache *c = (GeConvCache *) ge_model_file_alloc (mf,
        (sizeof (GeConvCache) + sizeof (float) - 1) / sizeof (float));
    *c = (GeConvCache) { NULL, model_file_alloc, mf, NULL };
    ge_conv2d_set_cache (conv, c);
  }
}

GeTensor
ge_conv_forward (GeCtx * ctx, const GeConv2d * conv, const GeTensor * x)
{
  int oh, ow;
  ge_conv2d_out_size (conv, x->h, x->w, &oh, &ow);
  GeTensor y = ge_tensor_new (ctx->arena, x->n, conv->out_channels, oh, ow);
  ge_conv2d (ctx, conv, x, &y);
  return y;
}

gboolean
ge_resnet_load (GeModelFile * mf, const char *prefix, int in, int out,
    const GeBlockOpts * o, GeResnet * r, GError ** error)
{
  char *p = NULL;
  memset (r, 0, sizeof (*r));
  r->in = in;
  r->out = out;
  r->output_scale = o->output_scale;
  r->temb_dim = o->temb_dim;
#define SUB(name_) (g_free (p), p = g_strdup_printf ("%s.%s", prefix, name_))
  gboolean ok = ge_group_norm_load (mf, SUB ("norm1"), in, o->groups, o->eps, &r->norm1, error)
      && ge_conv_load (mf, SUB ("conv1"), in, out, 3, 1, 1, TRUE, &r->conv1, error)
      && ge_group_norm_load (mf, SUB ("norm2"), out, o->groups, o->eps, &r->norm2, error)
      && ge_conv_load (mf, SUB ("conv2"), out, out, 3, 1, 1, TRUE, &r->conv2, error);
  if (ok && o->temb_dim > 0) {
    char *tp = g_strdup_printf ("%s.time_emb_proj", prefix);
    ok = ge_linear_load (mf, tp, o->temb_dim, out, TRUE, &r->temb, error);
    g_free (tp);
    r->temb_w = r->temb.w.dtype == GE_DTYPE_F32 ? r->temb.w.data : NULL;
    r->temb_b = r->temb.b;
  }
  r->has_shortcut = in != out;
  if (ok && r->has_shortcut)
    ok = ge_conv_load (mf, SUB ("conv_shortcut"), in, out, 1, 1, 0, TRUE, &r->shortcut, error);
#undef SUB
  g_free (p);
  /* int8 precision: the resnets' convs (bench/int8_quality.py: quantizing
   * the first and last conv of the SR U-Nets too cost 0.05-0.07 dB). */
  r->conv1.int8 = r->conv2.int8 = r->shortcut.int8 = TRUE;
  return ok;
}

GeConvInput
ge_group_norm_input (GeCtx * ctx, const GeGroupNormW * gn, const GeTensor * x, GeAct act)
{
  const gsize nc = (gsize) x->n * x->c;
  GeConvInput in = { ge_arena_alloc (ctx->arena, nc), ge_arena_alloc (ctx->arena, nc), act, 0 };
  /* int8 convs want the channels' ranges: found in the statistics' pass */
  if (ctx->precision == GE_PRECISION_INT8 && ge_precision_int8_available ()) {
    in.lo = ge_arena_alloc (ctx->arena, nc);
    in.hi = ge_arena_alloc (ctx->arena, nc);
  }
  ge_group_norm_affine (ctx, x, gn->groups, gn->eps, gn->gamma, gn->beta,
      (float *) in.scale, (float *) in.shift, (float *) in.lo, (float *) in.hi);
  return in;
}

GeTensor
ge_resnet_forward (GeCtx * ctx, const GeResnet * r, const GeTensor * x, const float *temb_act)
{
  GeTensor y = ge_tensor_new (ctx->arena, x->n, r->out, x->h, x->w);
  ge_resnet_forward_into (ctx, r, x, temb_act, &y);
  return y;
}

void
ge_resnet_forward_into (GeCtx * ctx, const GeResnet * r, const GeTensor * x,
    const float *temb_act, GeTensor * out)
{
  GeTensor y = *out;
  gsize mark = ge_arena_mark (ctx->arena);

  /* GN -> SiLU -> conv, with the normalisation applied as the conv reads
   * its input: the normalised tensor is never written out. */
  GeConvInput in1 = ge_group_norm_input (ctx, &r->norm1, x, GE_ACT_SILU);
  GeTensor h = ge_tensor_new (ctx->arena, x->n, r->out, x->h, x->w);
  GeConv2d conv1 = r->conv1;
  float *proj = NULL;
  if (r->temb_b && temb_act) {
    /* The time term goes in before norm2 (diffusers' "default" norm); for
     * one sample it is just more conv1 bias. */
    proj = ge_arena_alloc (ctx->arena, (gsize) x->n * r->out);
    ge_linear_forward (ctx, &r->temb, temb_act, x->n, proj);
    if (x->n == 1) {
      for (int c = 0; c < r->out; c++)
        proj[c] += conv1.bias[c];
      conv1.bias = proj;
    }
  }
  ge_conv2d_ex (ctx, &conv1, x, &in1, &h);
  if (proj && x->n > 1)
    ge_add_channel_bias (ctx, &h, proj);
  GeConvInput in2 = ge_group_norm_input (ctx, &r->norm2, &h, GE_ACT_SILU);
  const gboolean plain_residual = !r->has_shortcut && r->output_scale == 1.0f;
  if (plain_residual)
    ge_conv2d_residual (ctx, &r->conv2, &h, &in2, x->data, &y);
  else
    ge_conv2d_ex (ctx, &r->conv2, &h, &in2, &y);

  /* the shortcut reads x as it is: norm1's ranges of x serve it too */
  const GeConvInput raw = { NULL, NULL, GE_ACT_NONE, 0, in1.lo, in1.hi };
  if (r->has_shortcut && r->output_scale == 1.0f)
    ge_conv2d_accumulate_ex (ctx, &r->shortcut, x, &raw, &y);
  else if (r->has_shortcut) {
    GeTensor sc = ge_tensor_new (ctx->arena, x->n, r->out, x->h, x->w);
    ge_conv2d_ex (ctx, &r->shortcut, x, &raw, &sc);
    ge_add (ctx, sc.data, y.data, y.data, ge_tensor_numel (&y), r->output_scale);
  } else if (!plain_residual)
    ge_add (ctx, x->data, y.data, y.data, ge_tensor_numel (&y), r->output_scale);
  ge_arena_release (ctx->arena, mark);
}

/* nn.Linear weights [out, in] are 1x1 conv weights: the projection of an
 * NCHW tensor is then one banded sgemm with no transposes. */
static gboolean
linear_as_conv (GeModelFile * mf, const char *block, const char *name, int in, int out,
    GeConv2d * c, GError ** error)
{
  char *prefix = g_strdup_printf ("%s.%s", block, name);
  GeLinearW l;
  gboolean ok = ge_linear_load (mf, prefix, in, out, TRUE, &l, error);
  g_free (prefix);
  if (!ok)
    return FALSE;
  ge_conv_init (c, in, out, 1, 1, 0, &l.w, l.b);
  ge_conv_prepare (mf, c);
  return TRUE;
}

gboolean
ge_attn_load (GeModelFile * mf, const char *prefix, int channels, int head_dim,
    int groups, float eps, float rescale, GeAttnBlock * a, GError ** error)
{
  memset (a, 0, sizeof (*a));
  a->channels = channels;
  a->head_dim = head_dim > 0 ? head_dim : channels;
  a->heads = head_dim > 0 ? channels / head_dim : 1;
  if (a->heads < 1) {
    g_set_error (error, GE_ERROR, GE_ERROR_UNSUPPORTED,
        "%s: %s: attention_head_dim %d exceeds the %d channels", ge_model_file_path (mf),
        prefix, head_dim, channels);
    return FALSE;
  }
  a->inner = a->heads * a->head_dim;
  a->rescale = rescale;
  char *gn = g_strdup_printf ("%s.group_norm", prefix);
  gboolean ok = ge_group_norm_load (mf, gn, channels, groups, eps, &a->norm, error)
      && linear_as_conv (mf, prefix, "to_q", channels, a->inner, &a->to_q, error)
      && linear_as_conv (mf, prefix, "to_k", channels, a->inner, &a->to_k, error)
      && linear_as_conv (mf, prefix, "to_v", channels, a->inner, &a->to_v, error)
      && linear_as_conv (mf, prefix, "to_out.0", a->inner, channels, &a->to_out, error);
  g_free (gn);
  return ok;
}

GeTensor
ge_attn_forward (GeCtx * ctx, const GeAttnBlock * a, const GeTensor * x)
{
  GeTensor y = ge_tensor_new (ctx->arena, x->n, x->c, x->h, x->w);
  gsize mark = ge_arena_mark (ctx->arena);
  GeTensor hn = ge_tensor_new (ctx->arena, x->n, x->c, x->h, x->w);
  ge_group_norm_apply (ctx, &a->norm, x, &hn, GE_ACT_NONE);
  GeTensor q = ge_conv_forward (ctx, &a->to_q, &hn);
  GeTensor k = ge_conv_forward (ctx, &a->to_k, &hn);
  GeTensor v = ge_conv_forward (ctx, &a->to_v, &hn);
  GeTensor o = ge_tensor_new (ctx->arena, x->n, a->inner, x->h, x->w);
  const int T = x->h * x->w;
  const gsize per = (gsize) a->inner * T;
  const float scale = 1.0f / sqrtf ((float) a->head_dim);
  for (int b = 0; b < x->n; b++)
    ge_attention (ctx, q.data + b * per, k.data + b * per, v.data + b * per,
        o.data + b * per, a->heads, a->head_dim, T, scale);
  ge_conv2d (ctx, &a->to_out, &o, &y);
  ge_add (ctx, y.data, x->data, y.data, ge_tensor_numel (&y), a->rescale);
  ge_arena_release (ctx->arena, mark);
  return y;
}

gboolean
ge_downsample_load (GeModelFile * mf, const char *prefix, int channels, int padding,
    GeDownsample * d, GError ** error)
{
  char *p = g_strdup_printf ("%s.conv", prefix);
  gboolean ok = ge_conv_load (mf, p, channels, channels, 3, 2, padding, TRUE, &d->conv, error);
  g_free (p);
  if (ok && padding == 0) {
    /* F.pad (x, (0, 1, 0, 1)): one zero column right, one zero row below. */
    d->conv.pad_bottom = 1;
    d->conv.pad_right = 1;
  }
  return ok;
}

GeTensor
ge_downsample_forward (GeCtx * ctx, const GeDownsample * d, const GeTensor * x)
{
  return ge_conv_forward (ctx, &d->conv, x);
}

gboolean
ge_upsample_load (GeModelFile * mf, const char *prefix, int channels, GeUpsample * u,
    GError ** error)
{
  char *p = g_strdup_printf ("%s.conv", prefix);
  gboolean ok = ge_conv_load (mf, p, channels, channels, 3, 1, 1, TRUE, &u->conv, error);
  g_free (p);
  if (ok)
    ge_upsample_fold (mf, u);
  return ok;
}

void
ge_upsample_fold (GeModelFile * mf, GeUpsample * u)
{
  const int channels = u->conv.out_channels, cin = u->conv.in_channels;
  /* Output row 2i + dy reads upsampled rows 2i + dy - 1 .. 2i + dy + 1,
   * i.e. low-resolution rows i - 1 + dy + a for a = 0, 1: taps ky fold
   * into a = (dy + ky + 1) / 2 - dy ... tabulated below. */
  static const int fold[2][3] = { { 0, 1, 1 }, { 0, 0, 1 } };   /* [d][k] -> a */
  const gsize cc = (gsize) channels * cin;
  /* The phase weights are sums of taps, no longer 16-bit numbers: they
   * stay f32 (16 C^2 floats against the 9 C^2 16-bit numbers of the conv;
   * for SD 1.5's three upsamplers 236 MB, the largest f32 share of an f16
   * model).  Where they are packed, the unpacked sums are not kept. */
  const gboolean packs = ge_gemm_packed_available ();
  float *taps = NULL;
  if (u->conv.weight16)         /* read as f32, one output channel's taps at a time */
    taps = g_new (float, 9 * (gsize) cin);
  for (int ph = 0; ph < 4; ph++) {
    const int dy = ph / 2, dx = ph % 2;
    float *w = packs ? g_new0 (float, cc * 4) : ge_model_file_alloc (mf, cc * 4);
    if (!packs)
      memset (w, 0, sizeof (float) * cc * 4);
    for (int o = 0; o < channels; o++) {
      const float *t = u->conv.weight ? u->conv.weight + (gsize) o * cin * 9 : NULL;
      if (taps) {
        ge_half_to_f32 ((const guint8 *) u->conv.weight16 + 2 * (gsize) o * cin * 9,
            u->conv.dtype16, 9 * (gsize) cin, taps);
        t = taps;
      }
      for (int i = 0; i < cin; i++)
        for (int ky = 0; ky < 3; ky++)
          for (int kx = 0; kx < 3; kx++)
            w[((gsize) o * cin + i) * 4 + fold[dy][ky] * 2 + fold[dx][kx]] +=
                t[i * 9 + ky * 3 + kx];
    }
    GeConv2d *c = &u->phase[ph];
    *c = ge_conv2d_params (cin, channels, 2, 1, 0, w, u->conv.bias);
    c->pad_top = 1 - dy;
    c->pad_bottom = dy;
    c->pad_left = 1 - dx;
    c->pad_right = dx;
    ge_conv_prepare (mf, c);
    if (packs) {
      g_free (w);
      c->weight = NULL;         /* the packed copy is all the kernel reads */
    }
  }
  g_free (taps);
}

GeTensor
ge_upsample_forward (GeCtx * ctx, const GeUpsample * u, const GeTensor * x)
{
  GeTensor y = ge_tensor_new (ctx->arena, x->n, u->conv.out_channels, x->h * 2, x->w * 2);
  ge_conv2d_phase2x (ctx, u->phase, x, &y);
  return y;
}

gboolean
ge_mid_block_load (GeModelFile * mf, const char *prefix, int channels,
    const GeBlockOpts * o, gboolean add_attention, int head_dim, int attn_groups,
    GeMidBlock * m, GError ** error)
{
  char *p0 = g_strdup_printf ("%s.resnets.0", prefix);
  char *p1 = g_strdup_printf ("%s.resnets.1", prefix);
  char *pa = g_strdup_printf ("%s.attentions.0", prefix);
  m->has_attn = add_attention;
  gboolean ok = ge_resnet_load (mf, p0, channels, channels, o, &m->res0, error)
      && (!add_attention || ge_attn_load (mf, pa, channels, head_dim, attn_groups,
              o->eps, o->output_scale, &m->attn, error))
      && ge_resnet_load (mf, p1, channels, channels, o, &m->res1, error);
  g_free (p0);
  g_free (p1);
  g_free (pa);
  return ok;
}

void
ge_model_tap (GeModelTap tap, void *user_data, const GeTensor * t, const char *fmt, ...)
{
  if (!tap)
    return;
  va_list ap;
  va_start (ap, fmt);
  char *name = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  tap (name, t->data, t->n, t->c, t->h, t->w, user_data);
  g_free (name);
}

GeTensor
ge_mid_block_forward (GeCtx * ctx, const GeMidBlock * m, const GeTensor * x,
    const float *temb_act, GeModelTap tap, void *tap_data, const char *prefix,
    const GeTensor * into)
{
  GeTensor h = ge_resnet_forward (ctx, &m->res0, x, temb_act);
  ge_model_tap (tap, tap_data, &h, "%s.resnets.0", prefix);
  if (m->has_attn) {
    GeTensor a = ge_attn_forward (ctx, &m->attn, &h);
    ge_arena_free_floats (ctx->arena, h.data);
    h = a;
    ge_model_tap (tap, tap_data, &h, "%s.attentions.0", prefix);
  }
  GeTensor y;
  if (into) {
    y = *into;
    ge_resnet_forward_into (ctx, &m->res1, &h, temb_act, &y);
  } else
    y = ge_resnet_forward (ctx, &m->res1, &h, temb_act);
  ge_arena_free_floats (ctx->arena, h.data);
  return y;
}

void
ge_ctx_init (GeCtx * ctx, int n_threads)
{
  ctx->pool = ge_pool_new (n_threads);
  ctx->arena = ge_arena_new ();
}

void
ge_ctx_clear (GeCtx * ctx)
{
  g_clear_pointer (&ctx->pool, ge_pool_free);
  g_clear_pointer (&ctx->arena, ge_arena_free);
}

void
ge_ctx_set_n_threads (GeCtx * ctx, int n_threads)
{
  int want = n_threads > 0 ? n_threads : (int) g_get_num_processors ();
  if (ctx->pool && ge_pool_n_threads (ctx->pool) == want)
    return;
  ge_pool_free (ctx->pool);
  ctx->pool = ge_pool_new (want);
}

GePrecision
ge_precision_resolve (GeModelFile * mf, GePrecision want)
{
  if (want == GE_PRECISION_AUTO) {
    const char *m = mf ? ge_model_file_metadata (mf, "precision_auto") : NULL;
    want = g_strcmp0 (m, "int8") == 0 ? GE_PRECISION_INT8
        : g_strcmp0 (m, "bf16") == 0 ? GE_PRECISION_BF16 : GE_PRECISION_F32;
  }
  if (want == GE_PRECISION_INT8 && ge_gemm_int8_available ())
    return GE_PRECISION_INT8;
  return ge_precision_uses_bf16 (want) && ge_gemm_bf16_available ()
      ? GE_PRECISION_BF16 : GE_PRECISION_F32;
}

void
ge_ctx_set_precision (GeCtx * ctx, GeModelFile * mf, GePrecision precision)
{
  ctx->precision = ge_precision_resolve (mf, precision);
}
