/* transformer2d.c: Transformer2DModel and BasicTransformerBlock; see
 * ge-transformer2d.h. */
#include "ge-transformer2d.h"

#include <math.h>
#include <string.h>

#define W(name_, nd_, ...) \
  ({ char *n_ = g_strdup_printf ("%s.%s", prefix, name_); \
     gint64 s_[] = { __VA_ARGS__ }; \
     const float *w_ = ge_model_file_weight (mf, n_, nd_, s_, error); \
     g_free (n_); w_; })

/* A Linear (or 1x1 conv) weight as a 1x1 conv, packed for the GEMM. */
static gboolean
load_proj (GeModelFile * mf, const char *prefix, const char *name, int in, int out,
    gboolean bias, GeConv2d * c, GError ** error)
{
  char *p = g_strdup_printf ("%s.%s", prefix, name);
  gboolean ok = ge_conv_load (mf, p, in, out, 1, 1, 0, bias, c, error);
  g_free (p);
  return ok;
}

static gboolean
attn_load (GeModelFile * mf, const char *block, const char *name, int dim, int heads,
    int head_dim, int kv_dim, gboolean cross, GeCrossAttn * a, GError ** error)
{
  char *prefix = g_strdup_printf ("%s.%s", block, name);
  memset (a, 0, sizeof (*a));
  a->heads = heads;
  a->head_dim = head_dim;
  a->inner = heads * head_dim;
  a->kv_dim = kv_dim;
  a->cross = cross;
  gboolean ok = load_proj (mf, prefix, "to_q", dim, a->inner, FALSE, &a->to_q, error)
      && load_proj (mf, prefix, "to_out.0", a->inner, dim, TRUE, &a->to_out, error);
  if (ok)
    ok = load_proj (mf, prefix, "to_k", cross ? kv_dim : dim, a->inner, FALSE, &a->to_k, error)
        && load_proj (mf, prefix, "to_v", cross ? kv_dim : dim, a->inner, FALSE, &a->to_v, error);
  g_free (prefix);
  return ok;
}

static gboolean
block_load (GeModelFile * mf, const char *prefix, int dim, const GeTransformer2DOpts * o,
    int head_dim, GeBasicTransformerBlock * b, GError ** error)
{
  memset (b, 0, sizeof (*b));
  b->dim = dim;
  b->ff_inner = 4 * dim;
  b->eps = 1e-5f;
  for (int i = 0; i < 3; i++) {
    char *n = g_strdup_printf ("norm%d.weight", i + 1);
    char *nb = g_strdup_printf ("norm%d.bias", i + 1);
    b->norm_w[i] = W (n, 1, dim);
    b->norm_b[i] = b->norm_w[i] ? W (nb, 1, dim) : NULL;
    g_free (n);
    g_free (nb);
    if (!b->norm_b[i])
      return FALSE;
  }
  const int cd = o->cross_attention_dim;
  return attn_load (mf, prefix, "attn1", dim, o->heads, head_dim,
      o->only_cross_attention ? cd : dim, o->only_cross_attention, &b->attn1, error)
      && attn_load (mf, prefix, "attn2", dim, o->heads, head_dim, cd, TRUE, &b->attn2, error)
      && load_proj (mf, prefix, "ff.net.0.proj", dim, 2 * b->ff_inner, TRUE, &b->ff_proj, error)
      && load_proj (mf, prefix, "ff.net.2", b->ff_inner, dim, TRUE, &b->ff_out, error);
}

gboolean
ge_transformer2d_load (GeModelFile * mf, const char *prefix, int channels,
    const GeTransformer2DOpts * o, GeTransformer2D * t, GError ** error)
{
  memset (t, 0, sizeof (*t));
  if (o->heads <= 0 || channels / o->heads <= 0)
    return ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf),
        "%s: %d attention heads for %d channels", prefix, o->heads, channels);
  if (o->n_layers <= 0 || o->n_layers > 64 || o->cross_attention_dim <= 0)
    return ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf),
        "%s: implausible transformer_layers_per_block %d or cross_attention_dim %d", prefix,
        o->n_layers, o->cross_attention_dim);
  const int head_dim = channels / o->heads;
  t->channels = channels;
  t->inner = o->heads * head_dim;
  t->linear_projection = o->use_linear_projection;
  char *p = g_strdup_printf ("%s.norm", prefix);
  gboolean ok = ge_group_norm_load (mf, p, channels, o->groups, 1e-6f, &t->norm, error)
      && load_proj (mf, prefix, "proj_in", channels, t->inner, TRUE, &t->proj_in, error)
      && load_proj (mf, prefix, "proj_out", t->inner, channels, TRUE, &t->proj_out, error);
  g_free (p);
  if (!ok)
    return FALSE;
  t->blocks = g_new0 (GeBasicTransformerBlock, o->n_layers);
  t->n_blocks = o->n_layers;
  for (int i = 0; i < o->n_layers; i++) {
    p = g_strdup_printf ("%s.transformer_blocks.%d", prefix, i);
    ok = block_load (mf, p, t->inner, o, head_dim, &t->blocks[i], error);
    g_free (p);
    if (!ok)
      return FALSE;
  }
  return TRUE;
}

void
ge_transformer2d_clear (GeTransformer2D * t)
{
  g_clear_pointer (&t->blocks, g_free);
  t->n_blocks = 0;
}

static gsize
proj_params (const GeConv2d * c)
{
  return (gsize) c->out_channels * c->in_channels + (c->bias ? c->out_channels : 0);
}

static gsize
attn_params (const GeCrossAttn * a)
{
  const gsize kv = a->cross ? 2 * (gsize) a->inner * a->kv_dim
      : proj_params (&a->to_k) + proj_params (&a->to_v);
  return proj_params (&a->to_q) + kv + proj_params (&a->to_out);
}

gsize
ge_transformer2d_n_params (const GeTransformer2D * t)
{
  gsize n = 2 * (gsize) t->channels + proj_params (&t->proj_in) + proj_params (&t->proj_out);
  for (int i = 0; i < t->n_blocks; i++) {
    const GeBasicTransformerBlock *b = &t->blocks[i];
    n += 6 * (gsize) b->dim + attn_params (&b->attn1) + attn_params (&b->attn2)
        + proj_params (&b->ff_proj) + proj_params (&b->ff_out);
  }
  return n;
}

/* ---- forward ------------------------------------------------------------ */

typedef struct {
  GeModelTap tap;
  void *data;
  const char *prefix;
} Taps;

/* Reports channel-major x as diffusers' token layout [n, h*w, c]. */
static void
tap_tokens (GeCtx * ctx, const Taps * tp, const GeTensor * x, const char *name)
{
  if (!tp->tap)
    return;
  const gsize T = (gsize) x->h * x->w, per = (gsize) x->c * T;
  float *tok = ge_arena_alloc (ctx->arena, x->n * per);
  for (int b = 0; b < x->n; b++)
    for (int c = 0; c < x->c; c++)
      for (gsize t = 0; t < T; t++)
        tok[b * per + t * x->c + c] = x->data[b * per + c * T + t];
  GeTensor tt = { tok, x->n, (int) T, x->c, 1 };
  ge_model_tap (tp->tap, tp->data, &tt, "%s.%s", tp->prefix, name);
  ge_arena_free_floats (ctx->arena, tok);
}

/* h += to_out (@o), reporting to_out's own output as @name when tapped. */
static void
project_add (GeCtx * ctx, const GeConv2d * proj, const GeTensor * o, GeTensor * h,
    const Taps * tp, const char *name)
{
  if (!tp->tap) {
    ge_conv2d_accumulate (ctx, proj, o, h);
    return;
  }
  GeTensor r = ge_conv_forward (ctx, proj, o);
  tap_tokens (ctx, tp, &r, name);
  ge_add (ctx, h->data, r.data, h->data, ge_tensor_numel (h), 1.0f);
  ge_arena_free_floats (ctx->arena, r.data);
}

/* h += Attention (x, context) */
static void
attn_forward (GeCtx * ctx, const GeCrossAttn * a, const GeTensor * x, const float *ehs, int seq,
    GeTensor * h, const Taps * tp, const char *name)
{
  gsize mark = ge_arena_mark (ctx->arena);
  const int T = x->h * x->w, tk = a->cross ? seq : T;
  GeTensor q = ge_conv_forward (ctx, &a->to_q, x);
  const float *k, *v;
  if (a->cross) {
    /* The context channel-major, [n, kv_dim, 1, seq], so that k and v
     * come out as the 1x1 convs' [inner, seq] per sample. */
    GeTensor c = ge_tensor_new (ctx->arena, x->n, a->kv_dim, 1, seq);
    for (int b = 0; b < x->n; b++)
      for (int t = 0; t < seq; t++)
        for (int f = 0; f < a->kv_dim; f++)
          c.data[((gsize) b * a->kv_dim + f) * seq + t] = ehs[((gsize) b * seq + t) * a->kv_dim + f];
    k = ge_conv_forward (ctx, &a->to_k, &c).data;
    v = ge_conv_forward (ctx, &a->to_v, &c).data;
  } else {
    k = ge_conv_forward (ctx, &a->to_k, x).data;
    v = ge_conv_forward (ctx, &a->to_v, x).data;
  }
  GeTensor o = ge_tensor_new (ctx->arena, x->n, a->inner, x->h, x->w);
  const float scale = 1.0f / sqrtf ((float) a->head_dim);
  const gsize qper = (gsize) a->inner * T, kper = (gsize) a->inner * tk;
  for (int b = 0; b < x->n; b++)
    ge_cross_attention (ctx, q.data + b * qper, T, k + b * kper, v + b * kper,
        tk, o.data + b * qper, a->heads, a->head_dim, scale);
  project_add (ctx, &a->to_out, &o, h, tp, name);
  ge_arena_release (ctx->arena, mark);
}

/* One BasicTransformerBlock on @h in place. */
static void
block_forward (GeCtx * ctx, const GeBasicTransformerBlock * b, GeTensor * h, const float *ehs,
    int seq, const Taps * tp)
{
  static const char *norm_names[3] = { "norm1", "norm2", "norm3" };
  gsize mark = ge_arena_mark (ctx->arena);
  GeTensor nrm = ge_tensor_new (ctx->arena, h->n, h->c, h->h, h->w);
  const GeCrossAttn *attns[2] = { &b->attn1, &b->attn2 };
  for (int i = 0; i < 2; i++) {
    ge_layer_norm_channels (ctx, h, &nrm, b->eps, b->norm_w[i], b->norm_b[i]);
    tap_tokens (ctx, tp, &nrm, norm_names[i]);
    attn_forward (ctx, attns[i], &nrm, ehs, seq, h, tp, i ? "attn2" : "attn1");
  }
  ge_layer_norm_channels (ctx, h, &nrm, b->eps, b->norm_w[2], b->norm_b[2]);
  tap_tokens (ctx, tp, &nrm, norm_names[2]);
  GeTensor pr = ge_conv_forward (ctx, &b->ff_proj, &nrm);
  GeTensor g = ge_tensor_new (ctx->arena, h->n, b->ff_inner, h->h, h->w);
  const gsize half = (gsize) b->ff_inner * h->h * h->w;
  for (int s = 0; s < h->n; s++)
    ge_geglu (ctx, pr.data + 2 * s * half, pr.data + (2 * s + 1) * half, g.data + s * half, half);
  tap_tokens (ctx, tp, &g, "ff.net.0");
  project_add (ctx, &b->ff_out, &g, h, tp, "ff");
  ge_arena_release (ctx->arena, mark);
}

GeTensor
ge_transformer2d_forward (GeCtx * ctx, const GeTransformer2D * t, const GeTensor * x,
    const float *ehs, int seq, GeModelTap tap, void *tap_data, const char *prefix)
{
  GeTensor y = ge_tensor_new (ctx->arena, x->n, x->c, x->h, x->w);
  gsize mark = ge_arena_mark (ctx->arena);
  Taps tp = { tap, tap_data, prefix };

  /* The group norm is folded into proj_in's input; only a tap writes it. */
  GeConvInput gin = ge_group_norm_input (ctx, &t->norm, x, GE_ACT_NONE);
  if (tap) {
    GeTensor hn = ge_tensor_new (ctx->arena, x->n, x->c, x->h, x->w);
    ge_group_norm_apply (ctx, &t->norm, x, &hn, GE_ACT_NONE);
    ge_model_tap (tap, tap_data, &hn, "%s.norm", prefix);
    ge_arena_free_floats (ctx->arena, hn.data);
  }
  GeTensor h = ge_tensor_new (ctx->arena, x->n, t->inner, x->h, x->w);
  ge_conv2d_ex (ctx, &t->proj_in, x, &gin, &h);
  if (t->linear_projection)
    tap_tokens (ctx, &tp, &h, "proj_in");
  else
    ge_model_tap (tap, tap_data, &h, "%s.proj_in", prefix);

  for (int i = 0; i < t->n_blocks; i++) {
    char *bp = tap ? g_strdup_printf ("%s.transformer_blocks.%d", prefix, i) : NULL;
    Taps btp = { tap, tap_data, bp };
    block_forward (ctx, &t->blocks[i], &h, ehs, seq, &btp);
    if (tap) {
      Taps whole = { tap, tap_data, prefix };
      char *name = g_strdup_printf ("transformer_blocks.%d", i);
      tap_tokens (ctx, &whole, &h, name);
      g_free (name);
    }
    g_free (bp);
  }

  if (tap) {
    ge_conv2d (ctx, &t->proj_out, &h, &y);
    if (t->linear_projection)
      tap_tokens (ctx, &tp, &y, "proj_out");
    else
      ge_model_tap (tap, tap_data, &y, "%s.proj_out", prefix);
    ge_add (ctx, y.data, x->data, y.data, ge_tensor_numel (&y), 1.0f);
  } else {
    memcpy (y.data, x->data, sizeof (float) * ge_tensor_numel (x));
    ge_conv2d_accumulate (ctx, &t->proj_out, &h, &y);
  }
  ge_arena_release (ctx->arena, mark);
  return y;
}
