/* vae_tiny.c: diffusers' AutoencoderTiny (TAESD): EncoderTiny, DecoderTiny
 * and AutoencoderTinyBlock.
 *
 * The layer lists mirror diffusers' nn.Sequential indices:
 *   encoder: per level i, conv3x3 (i == 0: in -> c, bias; else stride 2,
 *            padding 1, NO bias), then num_encoder_blocks[i] blocks; last a
 *            conv3x3 c -> latent (bias).  Input mapped x -> (x + 1) / 2.
 *   decoder: tanh (z / 3) * 3, conv3x3 latent -> c (bias), ReLU; per level
 *            num_decoder_blocks[i] blocks, then (not on the last level)
 *            nearest upsampling, then conv3x3: c -> c without bias, or on
 *            the last level c -> out WITH bias.  Output mapped y -> 2y - 1,
 *            not clamped.
 *   block:   relu (conv (relu (conv (relu (conv (x))))) + x), the last ReLU
 *            after the add.  diffusers builds every block with in == out,
 *            so the skip is always the identity.
 *
 * encode/decode apply no scaling (AutoencoderTiny.encode/decode do not);
 * the 8-bit latent round trip of AutoencoderTiny.forward is in vae.c.
 *
 * Where the computation differs from diffusers' order (rounding only):
 * a nearest 2x upsampling followed by a conv runs as four 2x2 convs of the
 * low-resolution input (summed weights, see ge_upsample_fold), and the
 * encoder's input map and the ReLUs between convs are applied as the
 * convs read their input.
 */
#include "vae-tiny.h"

#include <math.h>
#include <string.h>

typedef enum {
  LAYER_CONV,
  LAYER_RELU,
  LAYER_BLOCK,
  LAYER_UPSAMPLE,
} LayerKind;

typedef struct {
  LayerKind kind;
  GeConv2d conv;                /* LAYER_CONV; LAYER_BLOCK: the three convs in block[] */
  GeConv2d block[3];
  GeUpsample up;                /* LAYER_CONV after a 2x LAYER_UPSAMPLE: up.phase */
  gboolean folded;
} Layer;

typedef struct {
  const char *name;
  int n_layers;
  Layer *layers;
} Stack;

struct _GeVaeTiny {
  GeVaeTinyInfo info;
  int upsample;                 /* upsampling_scaling_factor */
  int n_down;                   /* stride-2 convs of the encoder */
  Stack enc, dec;
};

static gboolean
check_levels (GeModelFile * mf, const char *chans_key, const gint64 * chans, int n_ch,
    const char *blocks_key, const gint64 * blocks, int n_blocks, GError ** error)
{
  const char *path = ge_model_file_path (mf);
  if (n_ch < 1 || n_ch > 16 || n_ch != n_blocks) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "%s has %d entries and %s %d "
        "(they must agree, 1 to 16 levels)", chans_key, n_ch, blocks_key, n_blocks);
    return FALSE;
  }
  for (int i = 0; i < n_ch; i++) {
    if (chans[i] <= 0 || chans[i] > 65536 || blocks[i] < 0 || blocks[i] > 64) {
      ge_fail (error, GE_ERROR_UNSUPPORTED, path, "%s[%d] = %" G_GINT64_FORMAT " / %s[%d] = %"
          G_GINT64_FORMAT " are implausible", chans_key, i, chans[i], blocks_key, i, blocks[i]);
      return FALSE;
    }
    /* EncoderTiny and DecoderTiny give level i's first conv and blocks
     * chans[i] inputs whatever level i - 1 produced: diffusers itself only
     * runs when all levels have the same width. */
    if (chans[i] != chans[0]) {
      ge_fail (error, GE_ERROR_UNSUPPORTED, path, "%s = [.., %" G_GINT64_FORMAT ", ..] differs "
          "from level to level (diffusers' tiny VAE cannot run that either)", chans_key,
          chans[i]);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
block_load (GeModelFile * mf, const char *prefix, int c, Layer * l, GError ** error)
{
  l->kind = LAYER_BLOCK;
  gboolean ok = TRUE;
  for (int i = 0; ok && i < 3; i++) {
    char *p = g_strdup_printf ("%s.conv.%d", prefix, 2 * i);
    ok = ge_conv_load (mf, p, c, c, 3, 1, 1, TRUE, &l->block[i], error);
    g_free (p);
  }
  return ok;
}

static gboolean
encoder_load (GeModelFile * mf, Stack * s, int in, int latent, const gint64 * chans,
    const gint64 * blocks, int n_levels, GError ** error)
{
  s->name = "encoder";
  int n = 1;
  for (int i = 0; i < n_levels; i++)
    n += 1 + (int) blocks[i];
  s->layers = g_new0 (Layer, n);
  s->n_layers = n;
  const int c = (int) chans[0];
  gboolean ok = TRUE;
  int k = 0;
  char *p = NULL;
#define NAME() (g_free (p), p = g_strdup_printf ("encoder.layers.%d", k))
  for (int i = 0; ok && i < n_levels; i++) {
    s->layers[k].kind = LAYER_CONV;
    ok = ge_conv_load (mf, NAME (), i == 0 ? in : c, c, 3, i == 0 ? 1 : 2, 1, i == 0,
        &s->layers[k].conv, error);
    k++;
    for (int b = 0; ok && b < blocks[i]; b++, k++)
      ok = block_load (mf, NAME (), c, &s->layers[k], error);
  }
  if (ok) {
    s->layers[k].kind = LAYER_CONV;
    ok = ge_conv_load (mf, NAME (), c, latent, 3, 1, 1, TRUE, &s->layers[k].conv, error);
  }
#undef NAME
  g_free (p);
  return ok;
}

static gboolean
decoder_load (GeModelFile * mf, Stack * s, int latent, int out, const gint64 * chans,
    const gint64 * blocks, int n_levels, int upsample, GError ** error)
{
  s->name = "decoder";
  int n = 2;
  for (int i = 0; i < n_levels; i++)
    n += (int) blocks[i] + (i < n_levels - 1) + 1;
  s->layers = g_new0 (Layer, n);
  s->n_layers = n;
  const int c = (int) chans[0];
  int k = 0;
  char *p = NULL;
#define NAME() (g_free (p), p = g_strdup_printf ("decoder.layers.%d", k))
  s->layers[0].kind = LAYER_CONV;
  gboolean ok = ge_conv_load (mf, NAME (), latent, c, 3, 1, 1, TRUE, &s->layers[0].conv, error);
  s->layers[1].kind = LAYER_RELU;
  k = 2;
  for (int i = 0; ok && i < n_levels; i++) {
    const gboolean last = i == n_levels - 1;
    for (int b = 0; ok && b < blocks[i]; b++, k++)
      ok = block_load (mf, NAME (), c, &s->layers[k], error);
    if (ok && !last)
      s->layers[k++].kind = LAYER_UPSAMPLE;
    if (!ok)
      break;
    Layer *l = &s->layers[k];
    l->kind = LAYER_CONV;
    ok = ge_conv_load (mf, NAME (), c, last ? out : c, 3, 1, 1, last, &l->conv, error);
    if (ok && !last && upsample == 2) {
      l->up.conv = l->conv;
      ge_upsample_fold (mf, &l->up);
      l->folded = TRUE;
    }
    k++;
  }
#undef NAME
  g_free (p);
  return ok;
}

GeVaeTiny *
ge_vae_tiny_load (GeModelFile * mf, GError ** error)
{
  const char *path = ge_model_file_path (mf);
  GeVaeTiny *t = g_new0 (GeVaeTiny, 1);
  gint64 in_ch, out_ch, latent, upsample;
  gint64 *enc_ch = NULL, *dec_ch = NULL, *enc_blocks = NULL, *dec_blocks = NULL, *bo = NULL;
  int n_enc_ch = 0, n_dec_ch = 0, n_enc_blocks = 0, n_dec_blocks = 0, n_bo = 0;
  const char *act, *upsample_fn;
  gboolean force_upcast;
  GeVaeTinyInfo *info = &t->info;
  /* force_upcast only matters to half-precision runs; block_out_channels
   * is diffusers' copy of decoder_block_out_channels.  Both are read so a
   * wrong type is still an error. */
  gboolean ok = ge_config_int (mf, "in_channels", 3, &in_ch, error)
      && ge_config_int (mf, "out_channels", 3, &out_ch, error)
      && ge_config_int (mf, "latent_channels", 4, &latent, error)
      && ge_config_int (mf, "upsampling_scaling_factor", 2, &upsample, error)
      && ge_config_int_array (mf, "encoder_block_out_channels", &enc_ch, &n_enc_ch, error)
      && ge_config_int_array (mf, "decoder_block_out_channels", &dec_ch, &n_dec_ch, error)
      && ge_config_int_array (mf, "num_encoder_blocks", &enc_blocks, &n_enc_blocks, error)
      && ge_config_int_array (mf, "num_decoder_blocks", &dec_blocks, &n_dec_blocks, error)
      && ge_config_int_array (mf, "block_out_channels", &bo, &n_bo, error)
      && ge_config_double (mf, "latent_magnitude", 3.0, &info->latent_magnitude, error)
      && ge_config_double (mf, "latent_shift", 0.5, &info->latent_shift, error)
      && ge_config_double (mf, "scaling_factor", 1.0, &info->scaling_factor, error)
      && ge_config_double (mf, "shift_factor", 0.0, &info->shift_factor, error)
      && ge_config_bool (mf, "force_upcast", FALSE, &force_upcast, error)
      && ge_config_string (mf, "act_fn", "relu", &act, error)
      && ge_config_string (mf, "upsample_fn", "nearest", &upsample_fn, error);
  if (!ok)
    goto fail;
  /* diffusers' defaults for the arrays: 64 channels, blocks (1,3,3,3)/(3,3,3,1). */
  static const gint64 def_ch[] = { 64, 64, 64, 64 }, def_enc[] = { 1, 3, 3, 3 },
      def_dec[] = { 3, 3, 3, 1 };
#define DEFAULT(a, n, d) if (!a) { a = g_memdup2 (d, sizeof (d)); n = G_N_ELEMENTS (d); }
  DEFAULT (enc_ch, n_enc_ch, def_ch);
  DEFAULT (dec_ch, n_dec_ch, def_ch);
  DEFAULT (enc_blocks, n_enc_blocks, def_enc);
  DEFAULT (dec_blocks, n_dec_blocks, def_dec);
#undef DEFAULT
  if (strcmp (act, "relu") != 0) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "act_fn \"%s\" is not supported for "
        "AutoencoderTiny (only \"relu\")", act);
    goto fail;
  }
  if (strcmp (upsample_fn, "nearest") != 0) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "upsample_fn \"%s\" is not supported "
        "(only \"nearest\")", upsample_fn);
    goto fail;
  }
  if (in_ch <= 0 || in_ch > 65536 || out_ch <= 0 || out_ch > 65536 || latent <= 0
      || latent > 65536) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "implausible channels (in %" G_GINT64_FORMAT
        ", out %" G_GINT64_FORMAT ", latent %" G_GINT64_FORMAT ")", in_ch, out_ch, latent);
    goto fail;
  }
  if (upsample < 1 || upsample > 16) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "upsampling_scaling_factor %" G_GINT64_FORMAT
        " is not supported (1 to 16)", upsample);
    goto fail;
  }
  if (!(info->latent_magnitude > 0) || !isfinite (info->latent_magnitude)
      || !isfinite (info->latent_shift)) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "latent_magnitude %g / latent_shift %g",
        info->latent_magnitude, info->latent_shift);
    goto fail;
  }
  if (!check_levels (mf, "encoder_block_out_channels", enc_ch, n_enc_ch,
          "num_encoder_blocks", enc_blocks, n_enc_blocks, error)
      || !check_levels (mf, "decoder_block_out_channels", dec_ch, n_dec_ch,
          "num_decoder_blocks", dec_blocks, n_dec_blocks, error))
    goto fail;
  /* One GeVae factor serves both directions: the decoder must undo the
   * encoder's downsampling exactly. */
  gint64 down = (gint64) 1 << (n_enc_ch - 1), up = 1;
  for (int i = 0; i < n_dec_ch - 1; i++)
    up *= upsample;             /* <= 16^15: no overflow */
  if (up != down) {
    ge_fail (error, GE_ERROR_UNSUPPORTED, path, "the encoder downsamples by %" G_GINT64_FORMAT
        " but the decoder upsamples by %" G_GINT64_FORMAT " (%d levels, "
        "upsampling_scaling_factor %" G_GINT64_FORMAT ")", down, up, n_dec_ch, upsample);
    goto fail;
  }
  info->in_channels = (int) in_ch;
  info->out_channels = (int) out_ch;
  info->latent_channels = (int) latent;
  info->factor = (int) down;
  t->upsample = (int) upsample;
  t->n_down = n_enc_ch - 1;
  ok = encoder_load (mf, &t->enc, info->in_channels, info->latent_channels, enc_ch,
      enc_blocks, n_enc_ch, error)
      && decoder_load (mf, &t->dec, info->latent_channels, info->out_channels, dec_ch,
      dec_blocks, n_dec_ch, t->upsample, error);
  if (!ok)
    goto fail;
  g_free (enc_ch);
  g_free (dec_ch);
  g_free (enc_blocks);
  g_free (dec_blocks);
  g_free (bo);
  return t;

fail:
  g_free (enc_ch);
  g_free (dec_ch);
  g_free (enc_blocks);
  g_free (dec_blocks);
  g_free (bo);
  ge_vae_tiny_free (t);
  return NULL;
}

void
ge_vae_tiny_free (GeVaeTiny * t)
{
  if (!t)
    return;
  g_free (t->enc.layers);
  g_free (t->dec.layers);
  g_free (t);
}

const GeVaeTinyInfo *
ge_vae_tiny_info (const GeVaeTiny * t)
{
  return &t->info;
}

void
ge_vae_tiny_latent_size (const GeVaeTiny * t, int h, int w, int *lh, int *lw)
{
  for (int i = 0; i < t->n_down; i++) {
    h = (h + 1) / 2;
    w = (w + 1) / 2;
  }
  *lh = h;
  *lw = w;
}

/* relu (conv3 (relu (conv2 (relu (conv1 (x))))) + x), into a new arena tensor. */
static GeTensor
block_forward (GeCtx * ctx, const Layer * l, const GeTensor * x)
{
  GeTensor y = ge_tensor_new (ctx->arena, x->n, l->block[2].out_channels, x->h, x->w);
  const gsize mark = ge_arena_mark (ctx->arena);
  const GeConvInput relu = { NULL, NULL, GE_ACT_RELU, 0 };
  GeTensor h1 = ge_conv_forward (ctx, &l->block[0], x);
  GeTensor h2 = ge_tensor_new (ctx->arena, x->n, l->block[1].out_channels, x->h, x->w);
  ge_conv2d_ex (ctx, &l->block[1], &h1, &relu, &h2);
  ge_conv2d_ex (ctx, &l->block[2], &h2, &relu, &y);
  const gsize n = ge_tensor_numel (&y);
  ge_add (ctx, x->data, y.data, y.data, n, 1.0f);
  ge_act (ctx, y.data, n, GE_ACT_RELU, 0.0f);
  ge_arena_release (ctx->arena, mark);
  return y;
}

/* Runs a stack on x (the caller's, never freed).  @first: how the first
 * conv reads x (or NULL); the last layer, a conv, writes into @out.
 * Each layer's input is freed once its output exists, so the arena peaks
 * at two activations plus a block's temporaries. */
static void
stack_forward (const GeVaeTiny * t, const Stack * s, GeCtx * ctx, GeModelTap tap,
    void *tap_data, const GeTensor * x, const GeConvInput * first, GeTensor * out)
{
  GeTensor h = *x;
  gboolean owned = FALSE, pending_up = FALSE;
  for (int k = 0; k < s->n_layers; k++) {
    const Layer *l = &s->layers[k];
    GeTensor y;
    switch (l->kind) {
      case LAYER_RELU:
        g_assert (owned);
        ge_act (ctx, h.data, ge_tensor_numel (&h), GE_ACT_RELU, 0.0f);
        ge_model_tap (tap, tap_data, &h, "%s.layers.%d", s->name, k);
        continue;
      case LAYER_UPSAMPLE:
        /* Left to the conv that follows (it reads h upsampled). */
        pending_up = TRUE;
        if (tap) {
          GeTensor u = ge_tensor_new (ctx->arena, h.n, h.c, h.h * t->upsample,
              h.w * t->upsample);
          ge_upsample_nearest (ctx, &h, &u);
          ge_model_tap (tap, tap_data, &u, "%s.layers.%d", s->name, k);
          ge_arena_free_floats (ctx->arena, u.data);
        }
        continue;
      case LAYER_BLOCK:
        y = block_forward (ctx, l, &h);
        break;
      case LAYER_CONV:{
        const int up = pending_up ? t->upsample : 1;
        int oh, ow;
        ge_conv2d_out_size (&l->conv, h.h * up, h.w * up, &oh, &ow);
        if (k == s->n_layers - 1)
          y = *out;
        else
          y = ge_tensor_new (ctx->arena, h.n, l->conv.out_channels, oh, ow);
        g_assert (y.h == oh && y.w == ow && y.c == l->conv.out_channels);
        if (pending_up && l->folded)
          ge_conv2d_phase2x (ctx, l->up.phase, &h, &y);
        else if (pending_up) {
          const GeConvInput in = { NULL, NULL, GE_ACT_NONE, up };
          ge_conv2d_ex (ctx, &l->conv, &h, &in, &y);
        } else
          ge_conv2d_ex (ctx, &l->conv, &h, k == 0 ? first : NULL, &y);
        pending_up = FALSE;
        break;
      }
      default:
        g_assert_not_reached ();
    }
    ge_model_tap (tap, tap_data, &y, "%s.layers.%d", s->name, k);
    if (owned)
      ge_arena_free_floats (ctx->arena, h.data);
    h = y;
    owned = y.data != out->data;
  }
  g_assert (!owned);
}

void
ge_vae_tiny_encode (const GeVaeTiny * t, GeCtx * ctx, GeModelTap tap, void *tap_data,
    const GeTensor * x, GeTensor * latents)
{
  const gsize mark = ge_arena_mark (ctx->arena);
  /* x -> (x + 1) / 2 as the first conv reads it: x * 0.5 + 0.5 rounds the
   * same (halving is exact), and the zero padding stays zero. */
  const gsize nc = (gsize) x->n * x->c;
  float *half = ge_arena_alloc (ctx->arena, nc);
  for (gsize i = 0; i < nc; i++)
    half[i] = 0.5f;
  const GeConvInput first = { half, half, GE_ACT_NONE, 0 };
  stack_forward (t, &t->enc, ctx, tap, tap_data, x, &first, latents);
  ge_model_tap (tap, tap_data, latents, "encoder");
  ge_arena_release (ctx->arena, mark);
}

void
ge_vae_tiny_decode (const GeVaeTiny * t, GeCtx * ctx, GeModelTap tap, void *tap_data,
    const GeTensor * z, GeTensor * y)
{
  const gsize mark = ge_arena_mark (ctx->arena);
  /* DecoderTiny's soft clamp of the latents. */
  GeTensor c = ge_tensor_new (ctx->arena, z->n, z->c, z->h, z->w);
  const gsize n = ge_tensor_numel (z);
  for (gsize i = 0; i < n; i++)
    c.data[i] = tanhf (z->data[i] / 3.0f) * 3.0f;
  stack_forward (t, &t->dec, ctx, tap, tap_data, &c, NULL, y);
  const gsize ny = ge_tensor_numel (y);
  for (gsize i = 0; i < ny; i++)
    y->data[i] = y->data[i] * 2.0f - 1.0f;
  ge_model_tap (tap, tap_data, y, "decoder");
  ge_arena_release (ctx->arena, mark);
}
