/* vae.c: the Encoder and Decoder of diffusers' autoencoders, and the
 * AutoencoderKL / VQModel wrappers around them; an AutoencoderTiny is
 * handed to vae_tiny.c.  The VAE family hard-codes GroupNorm eps 1e-6 and
 * right/bottom padding before stride-2 convs, whatever the config says. */
#include "ge-vae.h"
#include "ge-blocks.h"
#include "vae-tiny.h"

#include <math.h>
#include <string.h>

#define VAE_EPS 1e-6f

typedef struct {
  int n_layers;
  GeResnet *resnets;
  gboolean has_sampler;
  GeDownsample down;
  GeUpsample up;
} Level;

typedef struct {
  const char *name;             /* "encoder" or "decoder" */
  GeConv2d conv_in, conv_out;
  int n_levels;
  Level *levels;
  GeMidBlock mid;
  GeGroupNormW norm_out;
} Coder;

struct _GeVae {
  GeModelFile *mf;
  GeCtx ctx;
  gboolean vq;
  GeVaeTiny *tiny;              /* an AutoencoderTiny: everything else unused */
  int in_ch, out_ch, latent_ch, embed_dim, n_levels, n_codes;
  double scaling_factor, shift_factor;
  Coder enc, dec;
  gboolean has_quant_conv, has_post_quant_conv;
  GeConv2d quant_conv, post_quant_conv;
  const float *codebook;        /* [n_codes, embed_dim] */
  GeModelTap tap;
  void *tap_data;
};

static void
coder_clear (Coder * c)
{
  for (int i = 0; i < c->n_levels && c->levels; i++)
    g_free (c->levels[i].resnets);
  g_free (c->levels);
  c->levels = NULL;
}

/* Encoder: conv_in -> DownEncoderBlock2D x levels -> mid -> GN -> SiLU -> conv_out */
static gboolean
encoder_load (GeModelFile * mf, Coder * c, int in_ch, int out_ch, const gint64 * chans,
    int n_ch, int layers, int groups, gboolean mid_attn, GError ** error)
{
  char *p = NULL;
  GeBlockOpts o = { groups, VAE_EPS, 0, 1.0f };
  c->name = "encoder";
  c->n_levels = n_ch;
  c->levels = g_new0 (Level, n_ch);
#define SUB(...) (g_free (p), p = g_strdup_printf (__VA_ARGS__))
  gboolean ok = ge_conv_load (mf, "encoder.conv_in", in_ch, (int) chans[0], 3, 1, 1, TRUE,
      &c->conv_in, error);
  int out_c = (int) chans[0];
  for (int i = 0; ok && i < n_ch; i++) {
    Level *lv = &c->levels[i];
    int in_c = out_c;
    out_c = (int) chans[i];
    lv->n_layers = layers;
    lv->resnets = g_new0 (GeResnet, layers);
    for (int l = 0; ok && l < layers; l++)
      ok = ge_resnet_load (mf, SUB ("encoder.down_blocks.%d.resnets.%d", i, l),
          l == 0 ? in_c : out_c, out_c, &o, &lv->resnets[l], error);
    lv->has_sampler = i != n_ch - 1;
    if (ok && lv->has_sampler)
      ok = ge_downsample_load (mf, SUB ("encoder.down_blocks.%d.downsamplers.0", i), out_c,
          0, &lv->down, error);
  }
  int top = (int) chans[n_ch - 1];
  ok = ok && ge_mid_block_load (mf, "encoder.mid_block", top, &o, mid_attn, top, groups,
      &c->mid, error)
      && ge_group_norm_load (mf, "encoder.conv_norm_out", top, groups, VAE_EPS, &c->norm_out,
      error)
      && ge_conv_load (mf, "encoder.conv_out", top, out_ch, 3, 1, 1, TRUE, &c->conv_out, error);
  g_free (p);
  return ok;
}

/* Decoder: conv_in -> mid -> UpDecoderBlock2D x levels -> GN -> SiLU -> conv_out */
static gboolean
decoder_load (GeModelFile * mf, Coder * c, int latent, int out_ch, const gint64 * chans,
    int n_ch, int layers, int groups, gboolean mid_attn, GError ** error)
{
  char *p = NULL;
  GeBlockOpts o = { groups, VAE_EPS, 0, 1.0f };
  c->name = "decoder";
  c->n_levels = n_ch;
  c->levels = g_new0 (Level, n_ch);
  int top = (int) chans[n_ch - 1];
  gboolean ok = ge_conv_load (mf, "decoder.conv_in", latent, top, 3, 1, 1, TRUE,
      &c->conv_in, error)
      && ge_mid_block_load (mf, "decoder.mid_block", top, &o, mid_attn, top, groups,
      &c->mid, error);
  int out_c = top;
  for (int i = 0; ok && i < n_ch; i++) {
    Level *lv = &c->levels[i];
    int prev = out_c;
    out_c = (int) chans[n_ch - 1 - i];
    lv->n_layers = layers + 1;
    lv->resnets = g_new0 (GeResnet, lv->n_layers);
    for (int l = 0; ok && l < lv->n_layers; l++)
      ok = ge_resnet_load (mf, SUB ("decoder.up_blocks.%d.resnets.%d", i, l),
          l == 0 ? prev : out_c, out_c, &o, &lv->resnets[l], error);
    lv->has_sampler = i != n_ch - 1;
    if (ok && lv->has_sampler)
      ok = ge_upsample_load (mf, SUB ("decoder.up_blocks.%d.upsamplers.0", i), out_c,
          &lv->up, error);
  }
#undef SUB
  int c0 = (int) chans[0];
  ok = ok && ge_group_norm_load (mf, "decoder.conv_norm_out", c0, groups, VAE_EPS,
      &c->norm_out, error)
      && ge_conv_load (mf, "decoder.conv_out", c0, out_ch, 3, 1, 1, TRUE, &c->conv_out, error);
  g_free (p);
  return ok;
}


/* Runs a coder on x; the result is written into @y (preallocated). */
static void
coder_forward (GeVae * v, const Coder * c, const GeTensor * x, GeTensor * y)
{
  GeCtx *ctx = &v->ctx;
  gsize mark = ge_arena_mark (ctx->arena);
  gboolean enc = c == &v->enc;
  GeTensor h = ge_conv_forward (ctx, &c->conv_in, x);
  ge_model_tap (v->tap, v->tap_data, &h, "%s.conv_in", c->name);
  char *mid = g_strdup_printf ("%s.mid_block", c->name);
  if (!enc) {
    h = ge_mid_block_forward (ctx, &c->mid, &h, NULL, v->tap, v->tap_data, mid, NULL);
    ge_model_tap (v->tap, v->tap_data, &h, "%s", mid);
  }
  for (int i = 0; i < c->n_levels; i++) {
    const Level *lv = &c->levels[i];
    for (int l = 0; l < lv->n_layers; l++)
      h = ge_resnet_forward (ctx, &lv->resnets[l], &h, NULL);
    if (lv->has_sampler)
      h = enc ? ge_downsample_forward (ctx, &lv->down, &h) : ge_upsample_forward (ctx, &lv->up, &h);
    ge_model_tap (v->tap, v->tap_data, &h, "%s.%s.%d", c->name, enc ? "down_blocks" : "up_blocks", i);
  }
  if (enc) {
    h = ge_mid_block_forward (ctx, &c->mid, &h, NULL, v->tap, v->tap_data, mid, NULL);
    ge_model_tap (v->tap, v->tap_data, &h, "%s", mid);
  }
  g_free (mid);
  GeConvInput norm_out = ge_group_norm_input (ctx, &c->norm_out, &h, GE_ACT_SILU);
  ge_conv2d_ex (ctx, &c->conv_out, &h, &norm_out, y);
  ge_model_tap (v->tap, v->tap_data, y, "%s", c->name);
  ge_arena_release (ctx->arena, mark);
}

static GeVae *
tiny_new (GeModelFile * mf, GError ** error)
{
  GeVaeTiny *t = ge_vae_tiny_load (mf, error);
  if (!t)
    return NULL;
  const GeVaeTinyInfo *info = ge_vae_tiny_info (t);
  GeVae *v = g_new0 (GeVae, 1);
  v->mf = ge_model_file_ref (mf);
  v->tiny = t;
  v->in_ch = info->in_channels;
  v->out_ch = info->out_channels;
  v->latent_ch = v->embed_dim = info->latent_channels;
  v->scaling_factor = info->scaling_factor;
  v->shift_factor = info->shift_factor;
  ge_ctx_init (&v->ctx, 0);
  return v;
}

GeVae *
ge_vae_new (GeModelFile * mf, GError ** error)
{
  const char *cls = ge_model_file_class (mf);
  if (strcmp (cls, "AutoencoderTiny") == 0)
    return tiny_new (mf, error);
  gboolean vq = strcmp (cls, "VQModel") == 0;
  if (!vq && strcmp (cls, "AutoencoderKL") != 0) {
    g_set_error (error, GE_ERROR, GE_ERROR_UNSUPPORTED,
        "%s: is a %s, not an AutoencoderKL, VQModel or AutoencoderTiny",
        ge_model_file_path (mf), cls);
    return NULL;
  }
  GeVae *v = g_new0 (GeVae, 1);
  v->mf = ge_model_file_ref (mf);
  v->vq = vq;
  gint64 in_ch, out_ch, latent, layers, groups, n_codes, embed_dim;
  gboolean mid_attn, use_qc, use_pqc;
  const char *act, *norm_type;
  gint64 *chans = NULL;
  const char **downs = NULL, **ups = NULL;
  int n_ch = 0, n_down = 0, n_up = 0;
  gboolean ok = ge_config_int (mf, "in_channels", 3, &in_ch, error)
      && ge_config_int (mf, "out_channels", 3, &out_ch, error)
      && ge_config_int (mf, "latent_channels", vq ? 3 : 4, &latent, error)
      && ge_config_int (mf, "layers_per_block", 1, &layers, error)
      && ge_config_int (mf, "norm_num_groups", 32, &groups, error)
      && ge_config_int (mf, "num_vq_embeddings", 256, &n_codes, error)
      && ge_config_int (mf, "vq_embed_dim", latent, &embed_dim, error)
      && ge_config_double (mf, "scaling_factor", vq ? 0.18215 : 0.18215, &v->scaling_factor, error)
      && ge_config_double (mf, "shift_factor", 0.0, &v->shift_factor, error)
      && ge_config_bool (mf, "mid_block_add_attention", TRUE, &mid_attn, error)
      && ge_config_bool (mf, "use_quant_conv", TRUE, &use_qc, error)
      && ge_config_bool (mf, "use_post_quant_conv", TRUE, &use_pqc, error)
      && ge_config_string (mf, "act_fn", "silu", &act, error)
      && ge_config_string (mf, "norm_type", "group", &norm_type, error)
      && ge_config_int_array (mf, "block_out_channels", &chans, &n_ch, error)
      && ge_config_string_array (mf, "down_block_types", &downs, &n_down, error)
      && ge_config_string_array (mf, "up_block_types", &ups, &n_up, error);
  if (!ok)
    goto fail;
  if (!chans) {
    chans = g_new (gint64, 1);
    chans[0] = 64;
    n_ch = 1;
  }
  if (strcmp (act, "silu") != 0 || strcmp (norm_type, "group") != 0) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "act_fn \"%s\" / norm_type \"%s\" not supported "
        "(only silu / group)", act, norm_type);
    goto fail;
  }
  if ((downs && n_down != n_ch) || (ups && n_up != n_ch)) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "%d block_out_channels but %d down and %d up blocks",
        n_ch, n_down, n_up);
    goto fail;
  }
  for (int i = 0; i < n_down; i++)
    if (strcmp (downs[i], "DownEncoderBlock2D") != 0) {
      ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "down block type \"%s\" is not supported", downs[i]);
      goto fail;
    }
  for (int i = 0; i < n_up; i++)
    if (strcmp (ups[i], "UpDecoderBlock2D") != 0) {
      ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "up block type \"%s\" is not supported", ups[i]);
      goto fail;
    }
  for (int i = 0; i < n_ch; i++)
    if (chans[i] <= 0 || chans[i] > 65536) {
      ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "block_out_channels[%d] = %" G_GINT64_FORMAT, i, chans[i]);
      goto fail;
    }
  if (in_ch <= 0 || out_ch <= 0 || latent <= 0 || layers <= 0 || layers > 64
      || groups <= 0 || embed_dim <= 0 || n_codes <= 0) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, ge_model_file_path (mf), "implausible channels, layers or groups");
    goto fail;
  }
  v->in_ch = (int) in_ch;
  v->out_ch = (int) out_ch;
  v->latent_ch = (int) latent;
  v->embed_dim = vq ? (int) embed_dim : (int) latent;
  v->n_codes = (int) n_codes;
  v->n_levels = n_ch;
  ge_ctx_init (&v->ctx, 0);

  /* AutoencoderKL's encoder outputs mean and logvar (double_z). */
  int enc_out = vq ? v->latent_ch : 2 * v->latent_ch;
  int q_ch = vq ? v->embed_dim : enc_out;
  v->has_quant_conv = vq || use_qc;
  v->has_post_quant_conv = vq || use_pqc;
  ok = encoder_load (mf, &v->enc, v->in_ch, enc_out, chans, n_ch, (int) layers, (int) groups,
      mid_attn, error)
      && decoder_load (mf, &v->dec, v->latent_ch, v->out_ch, chans, n_ch, (int) layers,
      (int) groups, mid_attn, error)
      && (!v->has_quant_conv || ge_conv_load (mf, "quant_conv", enc_out, q_ch, 1, 1, 0,
          TRUE, &v->quant_conv, error))
      && (!v->has_post_quant_conv || ge_conv_load (mf, "post_quant_conv", v->embed_dim,
          v->latent_ch, 1, 1, 0, TRUE, &v->post_quant_conv, error));
  if (ok && vq) {
    gint64 shape[] = { v->n_codes, v->embed_dim };
    ok = (v->codebook = ge_model_file_weight (mf, "quantize.embedding.weight", 2, shape,
            error)) != NULL;
  }
  if (!ok)
    goto fail;
  g_free (chans);
  g_free (downs);
  g_free (ups);
  return v;

fail:
  g_free (chans);
  g_free (downs);
  g_free (ups);
  ge_vae_free (v);
  return NULL;
}

void
ge_vae_free (GeVae * v)
{
  if (!v)
    return;
  coder_clear (&v->enc);
  coder_clear (&v->dec);
  ge_vae_tiny_free (v->tiny);
  ge_ctx_clear (&v->ctx);
  ge_model_file_unref (v->mf);
  g_free (v);
}

void
ge_vae_set_n_threads (GeVae * v, int n_threads)
{
  ge_ctx_set_n_threads (&v->ctx, n_threads);
}

GePrecision
ge_vae_set_precision (GeVae * v, GePrecision precision)
{
  ge_ctx_set_precision (&v->ctx, v->mf, precision);
  return v->ctx.precision;
}

void
ge_vae_set_tap (GeVae * v, GeModelTap t, void *user_data)
{
  v->tap = t;
  v->tap_data = user_data;
}

gboolean ge_vae_is_vq (const GeVae * v) { return v->vq; }
gboolean ge_vae_is_tiny (const GeVae * v) { return v->tiny != NULL; }
gboolean ge_vae_has_distribution (const GeVae * v) { return !v->vq && !v->tiny; }
int ge_vae_in_channels (const GeVae * v) { return v->in_ch; }
int ge_vae_out_channels (const GeVae * v) { return v->out_ch; }
int ge_vae_latent_channels (const GeVae * v) { return v->vq ? v->embed_dim : v->latent_ch; }
int
ge_vae_downsample_factor (const GeVae * v)
{
  return v->tiny ? ge_vae_tiny_info (v->tiny)->factor : 1 << (v->n_levels - 1);
}
double ge_vae_scaling_factor (const GeVae * v) { return v->scaling_factor; }
double ge_vae_shift_factor (const GeVae * v) { return v->shift_factor; }
guint ge_vae_n_system_allocs (const GeVae * v) { return ge_arena_n_system_allocs (v->ctx.arena); }

void
ge_vae_latent_size (const GeVae * v, int h, int w, int *lh, int *lw)
{
  if (v->tiny) {
    ge_vae_tiny_latent_size (v->tiny, h, w, lh, lw);
    return;
  }
  /* Each pad (0,1,0,1) + 3x3 stride-2 conv maps s >= 2 to floor(s / 2);
   * 0 marks an input too small to encode. */
  for (int i = 0; i < v->n_levels - 1; i++) {
    h = h >= 2 ? (h - 2) / 2 + 1 : 0;
    w = w >= 2 ? (w - 2) / 2 + 1 : 0;
  }
  *lh = h;
  *lw = w;
}

static gboolean
check_size (GeVae * v, int n, int h, int w, int minimum, const char *what, GError ** error)
{
  if (n > 0 && h >= minimum && w >= minimum)
    return TRUE;
  g_set_error (error, GE_ERROR, GE_ERROR_SHAPE, "%s: %s of %dx%d (batch %d) is too small",
      ge_model_file_path (v->mf), what, w, h, n);
  return FALSE;
}

gboolean
ge_vae_encode (GeVae * v, const float *x, int n, int h, int w, float *mean,
    float *logvar, GError ** error)
{
  int lh, lw;
  ge_vae_latent_size (v, h, w, &lh, &lw);
  if (!check_size (v, n, MIN (lh, h), MIN (lw, w), 1, "input", error))
    return FALSE;
  GeCtx *ctx = &v->ctx;
  if (v->tiny) {
    const GeTensor xin = { (float *) x, n, v->in_ch, h, w };
    GeTensor lat = { mean, n, v->latent_ch, lh, lw };
    ge_vae_tiny_encode (v->tiny, ctx, v->tap, v->tap_data, &xin, &lat);
    ge_arena_reset (ctx->arena);
    return TRUE;
  }
  const int enc_out = v->enc.conv_out.out_channels;
  GeTensor xin = { (float *) x, n, v->in_ch, h, w };
  GeTensor e = ge_tensor_new (ctx->arena, n, enc_out, lh, lw);
  coder_forward (v, &v->enc, &xin, &e);
  GeTensor m = e;
  if (v->has_quant_conv) {
    m = ge_conv_forward (ctx, &v->quant_conv, &e);
    ge_model_tap (v->tap, v->tap_data, &m, "quant_conv");
  }
  const gsize plane = (gsize) lh * lw;
  const int lc = ge_vae_latent_channels (v);
  for (int b = 0; b < n; b++) {
    const float *src = m.data + (gsize) b * m.c * plane;
    memcpy (mean + (gsize) b * lc * plane, src, sizeof (float) * lc * plane);
    if (!v->vq && logvar)
      for (gsize i = 0; i < (gsize) lc * plane; i++)
        logvar[(gsize) b * lc * plane + i] = CLAMP (src[lc * plane + i], -30.0f, 20.0f);
  }
  ge_arena_reset (ctx->arena);
  return TRUE;
}

static void
quantize (const GeVae * v, const float *z, int n, int lh, int lw, float *zq, gint64 * indices)
{
  const int d = v->embed_dim;
  const gsize plane = (gsize) lh * lw;
  for (int b = 0; b < n; b++)
    for (gsize p = 0; p < plane; p++) {
      const float *zb = z + (gsize) b * d * plane + p;
      int best = 0;
      double best_d = INFINITY;
      for (int k = 0; k < v->n_codes; k++) {
        const float *e = v->codebook + (gsize) k * d;
        double dist = 0;
        for (int c = 0; c < d; c++) {
          double diff = (double) zb[c * plane] - e[c];
          dist += diff * diff;
        }
        if (dist < best_d) {    /* strict: the first index wins ties */
          best_d = dist;
          best = k;
        }
      }
      const float *e = v->codebook + (gsize) best * d;
      for (int c = 0; c < d; c++) {
        float zc = zb[c * plane];
        zq[(gsize) b * d * plane + c * plane + p] = zc + (e[c] - zc);
      }
      if (indices)
        indices[(gsize) b * plane + p] = best;
    }
}

gboolean
ge_vae_quantize (GeVae * v, const float *z, int n, int lh, int lw, float *zq,
    gint64 * indices, GError ** error)
{
  if (!v->vq) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID, "%s: an %s has no codebook",
        ge_model_file_path (v->mf), v->tiny ? "AutoencoderTiny" : "AutoencoderKL");
    return FALSE;
  }
  if (!check_size (v, n, lh, lw, 1, "latent", error))
    return FALSE;
  quantize (v, z, n, lh, lw, zq, indices);
  return TRUE;
}

gboolean
ge_vae_decode (GeVae * v, const float *z, int n, int lh, int lw, gboolean quant,
    float *out, GError ** error)
{
  if (!check_size (v, n, lh, lw, 1, "latent", error))
    return FALSE;
  GeCtx *ctx = &v->ctx;
  const int f = ge_vae_downsample_factor (v);
  if (v->tiny) {
    const GeTensor zin = { (float *) z, n, v->latent_ch, lh, lw };
    GeTensor y = { out, n, v->out_ch, lh * f, lw * f };
    ge_vae_tiny_decode (v->tiny, ctx, v->tap, v->tap_data, &zin, &y);
    ge_arena_reset (ctx->arena);
    return TRUE;
  }
  GeTensor zin = { (float *) z, n, ge_vae_latent_channels (v), lh, lw };
  if (v->vq && quant) {
    zin = ge_tensor_new (ctx->arena, n, v->embed_dim, lh, lw);
    quantize (v, z, n, lh, lw, zin.data, NULL);
  }
  GeTensor pz = zin;
  if (v->has_post_quant_conv) {
    pz = ge_conv_forward (ctx, &v->post_quant_conv, &zin);
    ge_model_tap (v->tap, v->tap_data, &pz, "post_quant_conv");
  }
  GeTensor y = { out, n, v->out_ch, lh * f, lw * f };
  coder_forward (v, &v->dec, &pz, &y);
  ge_arena_reset (ctx->arena);
  return TRUE;
}

/* AutoencoderTiny.scale_latents then .mul_(255).round_().byte(), in float32
 * as torch runs it (round half to even, like torch.round). */
gboolean
ge_vae_latents_to_u8 (const GeVae * v, const float *z, gsize n, guint8 * q, GError ** error)
{
  if (!v->tiny) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID, "%s: only an AutoencoderTiny stores "
        "its latents in 8 bits", ge_model_file_path (v->mf));
    return FALSE;
  }
  const GeVaeTinyInfo *info = ge_vae_tiny_info (v->tiny);
  const float range = (float) (2 * info->latent_magnitude), shift = (float) info->latent_shift;
  for (gsize i = 0; i < n; i++) {
    const float s = z[i] / range + shift;
    /* clamp (0, 1); NaN goes to 0 rather than to an undefined cast */
    q[i] = (guint8) nearbyintf ((s > 0.0f ? (s < 1.0f ? s : 1.0f) : 0.0f) * 255.0f);
  }
  return TRUE;
}

/* AutoencoderTiny.unscale_latents (q / 255.0). */
gboolean
ge_vae_latents_from_u8 (const GeVae * v, const guint8 * q, gsize n, float *z, GError ** error)
{
  if (!v->tiny) {
    g_set_error (error, GE_ERROR, GE_ERROR_INVALID, "%s: only an AutoencoderTiny stores "
        "its latents in 8 bits", ge_model_file_path (v->mf));
    return FALSE;
  }
  const GeVaeTinyInfo *info = ge_vae_tiny_info (v->tiny);
  const float range = (float) (2 * info->latent_magnitude), shift = (float) info->latent_shift;
  for (gsize i = 0; i < n; i++)
    z[i] = ((float) q[i] / 255.0f - shift) * range;
  return TRUE;
}
