/* conf-models.c: UNet2DModel, UNet2DConditionModel, AutoencoderKL, VQModel
 * and AutoencoderTiny cases.  Each reads its inputs with conf_use () and
 * checks its outputs with conf_check* (), so that the dispatcher can fail
 * every stored tensor that neither happened to (conf_fail_unchecked). */
#include "conf.h"
#include "ge-ops.h"
#include "ge-unet2d.h"
#include "ge-vae.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Debug taps hold batch element 0 of a module output, named debug.<module>. */
typedef struct {
  Conf *c;
  int call;                     /* UNet call whose embeddings are checked */
  gboolean active;              /* record debug.* taps */
  GHashTable *seen;
} Taps;

static void
on_tap (const char *name, const float *data, int n, int ch, int h, int w, void *user_data)
{
  Taps *t = user_data;
  /* The UNet's time embeddings are stored for the whole batch of each call. */
  const char *emb = strcmp (name, "time_proj") == 0 ? "t_emb"
      : strcmp (name, "time_embedding") == 0 ? "emb" : NULL;
  if (emb) {
    char *key = g_strdup_printf ("call%d.%s", t->call, emb);
    if (ge_safetensors_find (t->c->io, key))
      conf_check_out (t->c, key, data, (gsize) n * ch * h * w);
    g_free (key);
    /* ... and as a debug tap of the debug call, where one is stored */
  }
  if (!t->active)
    return;
  char *key = g_strdup_printf ("debug.%s", name);
  if (ge_safetensors_find (t->c->io, key) && !g_hash_table_contains (t->seen, key)) {
    conf_check_out (t->c, key, data, (gsize) ch * h * w);
    g_hash_table_add (t->seen, key);
  } else
    g_free (key);
}

static GeModelFile *
open_model (Conf * c, const char *dir)
{
  GError *err = NULL;
  GeModelFile *mf = ge_model_file_open (dir, &err);
  if (!mf) {
    printf ("%s\n", err->message);
    g_error_free (err);
    c->n_failed++;
  }
  return mf;
}

static int
meta_debug_call (Conf * c)
{
  JsonParser *p;
  int call = -1;
  char *path = g_build_filename (c->dir, "meta.json", NULL);
  gboolean exists = g_file_test (path, G_FILE_TEST_EXISTS);
  g_free (path);
  if (!exists)
    return -1;
  JsonObject *meta = conf_read_json (c, "meta.json", &p);
  if (!meta)
    return -1;
  JsonNode *d = json_object_get_member (meta, "debug_call");
  if (d && JSON_NODE_HOLDS_VALUE (d)) {
    if (json_node_get_value_type (d) == G_TYPE_INT64)
      call = (int) json_node_get_int (d);
    else if (json_node_get_value_type (d) == G_TYPE_STRING)
      sscanf (json_node_get_string (d), "call%d", &call);
  }
  g_object_unref (p);
  return call;
}

static const GeStTensor *
input_tensor (Conf * c, const char *key)
{
  const GeStTensor *t = conf_use (c, key);
  if (!t || t->ndim != 4) {
    printf ("%-48s %s\n", key, t ? "is not 4-D" : "MISSING in io.safetensors");
    c->n_failed++;
    return NULL;
  }
  return t;
}

/* time_proj.freqs: the frequency table of the engine's time embedding at
 * the model's freq_shift and width (get_timestep_embedding's `exponent.exp ()`). */
static void
check_time_freqs (Conf * c, GeModelFile * mf)
{
  const char *key = "time_proj.freqs";
  if (!ge_safetensors_find (c->io, key))
    return;
  GError *err = NULL;
  gint64 *chans = NULL;
  int n_ch = 0;
  double shift;
  if (!ge_config_double (mf, "freq_shift", 0, &shift, &err)
      || !ge_config_int_array (mf, "block_out_channels", &chans, &n_ch, &err) || n_ch < 1) {
    printf ("%-48s %s\n", key, err ? err->message : "no block_out_channels in the config");
    g_clear_error (&err);
    conf_use (c, key);
    c->n_failed++;
    g_free (chans);
    return;
  }
  const int half = (int) (chans[0] / 2);
  float *f = g_new (float, MAX (half, 1));
  ge_timestep_frequencies (half, (float) shift, 10000.0f, f);
  conf_check (c, key, f, half);
  g_free (f);
  g_free (chans);
}

/* The per-call input @what ("sample", "encoder_hidden_states",
 * "class_labels"): callN.<what>, else input.<what>; NULL when neither. */
static const GeStTensor *
call_input (Conf * c, int call, const char *what)
{
  char *key = g_strdup_printf ("call%d.%s", call, what);
  const GeStTensor *t = conf_use (c, key);
  g_free (key);
  if (!t) {
    key = g_strdup_printf ("input.%s", what);
    t = conf_use (c, key);
    g_free (key);
  }
  return t;
}

/* UNet2DModel and UNet2DConditionModel (encoder_hidden_states and, for a
 * class-conditioned model, class_labels per call or for all calls). */
void
conf_unet_case (Conf * c, const char *dir)
{
  GeModelFile *mf = open_model (c, dir);
  if (!mf)
    return;
  GError *err = NULL;
  GeUNet2D *u = ge_unet2d_new (mf, &err);
  if (u)
    check_time_freqs (c, mf);
  ge_model_file_unref (mf);
  if (!u) {
    printf ("%s\n", err->message);
    g_error_free (err);
    c->n_failed++;
    return;
  }
  const gboolean cond = ge_unet2d_cross_attention_dim (u) > 0;
  printf ("%s, %" G_GSIZE_FORMAT " parameters\n", cond ? "UNet2DConditionModel" : "UNet2DModel",
      ge_unet2d_n_params (u));
  Taps taps = { c, 0, FALSE, g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL) };
  ge_unet2d_set_tap (u, on_tap, &taps);
  const int debug_call = meta_debug_call (c);

  for (int call = 0;; call++) {
    char *out_key = g_strdup_printf ("call%d.out", call);
    if (!ge_safetensors_find (c->io, out_key)) {
      g_free (out_key);
      break;
    }
    char *in_key = g_strdup_printf ("call%d.sample", call);
    if (!ge_safetensors_find (c->io, in_key)) {
      g_free (in_key);
      in_key = g_strdup ("input.sample");
    }
    char *t_key = g_strdup_printf ("call%d.timestep", call);
    const GeStTensor *xt = input_tensor (c, in_key);
    const GeStTensor *tt = conf_use (c, t_key);
    if (xt && tt) {
      const int n = (int) xt->shape[0];
      float *x = g_new (float, xt->n_elements);
      ge_st_tensor_to_f32 (xt, x);
      float *t = g_new (float, n);
      double *tv = g_new (double, MAX (tt->n_elements, 1));
      ge_st_tensor_to_f64 (tt, tv);
      for (int b = 0; b < n; b++)
        t[b] = (float) tv[tt->n_elements == 1 ? 0 : MIN ((gsize) b, tt->n_elements - 1)];
      gsize out_n = (gsize) n * ge_unet2d_out_channels (u) * xt->shape[2] * xt->shape[3];
      float *out = g_new (float, out_n);

      taps.call = call;
      taps.active = call == debug_call;
      float *ehs = NULL, *labels = NULL;
      int seq = 0;
      gboolean ok;
      if (cond) {
        const GeStTensor *et = call_input (c, call, "encoder_hidden_states");
        const GeStTensor *lt = call_input (c, call, "class_labels");
        if (et && et->ndim == 3 && et->shape[0] == n
            && et->shape[2] == ge_unet2d_cross_attention_dim (u)) {
          seq = (int) et->shape[1];
          ehs = g_new (float, et->n_elements);
          ge_st_tensor_to_f32 (et, ehs);
        }
        if (lt) {
          double *lv = g_new (double, MAX (lt->n_elements, 1));
          ge_st_tensor_to_f64 (lt, lv);
          labels = g_new (float, n);
          for (int b = 0; b < n; b++)
            labels[b] = (float) lv[lt->n_elements == 1 ? 0 : MIN ((gsize) b, lt->n_elements - 1)];
          g_free (lv);
        }
        if (!ehs)
          g_set_error (&err, GE_ERROR, GE_ERROR_SHAPE, "call%d: encoder_hidden_states missing "
              "or not [%d, seq, %d]", call, n, ge_unet2d_cross_attention_dim (u));
        ok = ehs && ge_unet2d_forward_cond (u, x, n, (int) xt->shape[2], (int) xt->shape[3],
            t, ehs, seq, labels, out, &err);
      } else
        ok = ge_unet2d_forward (u, x, n, (int) xt->shape[2], (int) xt->shape[3], t, out, &err);
      g_free (ehs);
      g_free (labels);
      if (!ok) {
        printf ("%s\n", err->message);
        g_clear_error (&err);
        c->n_failed++;
      } else
        conf_check_out (c, out_key, out, out_n);
      taps.active = FALSE;
      g_free (x);
      g_free (t);
      g_free (tv);
      g_free (out);
    } else if (!tt) {
      printf ("%-48s MISSING in io.safetensors\n", t_key);
      c->n_failed++;
    }
    g_free (in_key);
    g_free (t_key);
    g_free (out_key);
  }
  g_hash_table_unref (taps.seen);
  ge_unet2d_free (u);
}

/* An AutoencoderKL or VQModel with every module output going to @taps. */
static GeVae *
open_vae (Conf * c, const char *dir, Taps * taps)
{
  GeModelFile *mf = open_model (c, dir);
  if (!mf)
    return NULL;
  GError *err = NULL;
  GeVae *v = ge_vae_new (mf, &err);
  ge_model_file_unref (mf);
  if (!v) {
    printf ("%s\n", err->message);
    g_error_free (err);
    c->n_failed++;
    return NULL;
  }
  taps->seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  ge_vae_set_tap (v, on_tap, taps);
  return v;
}

/* AutoencoderKL: encode -> moments/mean/logvar/std, decode(mean), decode(z). */
void
conf_vae_case (Conf * c, const char *dir)
{
  Taps taps = { c, -1, TRUE, NULL };
  GeVae *v = open_vae (c, dir, &taps);
  if (!v)
    return;
  GError *err = NULL;

  const GeStTensor *xt = input_tensor (c, "input.sample");
  if (xt) {
    const int n = (int) xt->shape[0], h = (int) xt->shape[2], w = (int) xt->shape[3];
    const int lc = ge_vae_latent_channels (v);
    int lh, lw;
    ge_vae_latent_size (v, h, w, &lh, &lw);
    const gsize ln = (gsize) n * lc * lh * lw, plane = (gsize) lh * lw;
    float *x = g_new (float, xt->n_elements);
    ge_st_tensor_to_f32 (xt, x);
    float *mean = g_new (float, ln), *logvar = g_new (float, ln), *std = g_new (float, ln);
    float *moments = g_new (float, 2 * ln);
    if (ge_vae_encode (v, x, n, h, w, mean, logvar, &err)) {
      for (gsize i = 0; i < ln; i++)
        std[i] = expf (0.5f * logvar[i]);
      for (int b = 0; b < n; b++) {
        memcpy (moments + (gsize) b * 2 * lc * plane, mean + (gsize) b * lc * plane,
            sizeof (float) * lc * plane);
        memcpy (moments + (gsize) (2 * b + 1) * lc * plane, logvar + (gsize) b * lc * plane,
            sizeof (float) * lc * plane);
      }
      /* The stored moments are unclamped; they only differ where
       * logvar leaves [-30, 20], which random weights never reach. */
      conf_check_out (c, "encode.moments", moments, 2 * ln);
      conf_check_out (c, "encode.mean", mean, ln);
      if (ge_safetensors_find (c->io, "encode.logvar"))
        conf_check_out (c, "encode.logvar", logvar, ln);
      conf_check_out (c, "encode.std", std, ln);

      /* Decoder taps come from decode(mean). */
      gsize on = (gsize) n * ge_vae_out_channels (v) * lh * ge_vae_downsample_factor (v)
          * lw * ge_vae_downsample_factor (v);
      float *out = g_new (float, on);
      if (ge_vae_decode (v, mean, n, lh, lw, FALSE, out, &err))
        conf_check_out (c, "decode_mean.sample", out, on);
      taps.active = FALSE;
      float *z;
      gsize zn;
      if (!err && (z = conf_try_load_f32 (c, "input.z", &zn))) {
        const GeStTensor *zt = ge_safetensors_find (c->io, "input.z");
        int zh = (int) zt->shape[2], zw = (int) zt->shape[3], zb = (int) zt->shape[0];
        gsize dn = (gsize) zb * ge_vae_out_channels (v) * zh * zw
            * ge_vae_downsample_factor (v) * ge_vae_downsample_factor (v);
        float *dz = g_new (float, dn);
        if (ge_vae_decode (v, z, zb, zh, zw, FALSE, dz, &err))
          conf_check_out (c, "decode_z.sample", dz, dn);
        g_free (dz);
        g_free (z);
      }
      g_free (out);
    }
    if (err) {
      printf ("%s\n", err->message);
      g_clear_error (&err);
      c->n_failed++;
    }
    g_free (x);
    g_free (mean);
    g_free (logvar);
    g_free (std);
    g_free (moments);
  }
  g_hash_table_unref (taps.seen);
  ge_vae_free (v);
}

/* VQModel: encode -> latents h, quantize -> indices, decode with and
 * without quantisation.  Outputs answer to our golden cases' names and to
 * the diffusers names (VQModel.decode's force_not_quantize, VectorQuantizer's
 * z_q and min_encoding_indices). */
static const char *const vq_decode_names[] = { "decode.sample", "decode_quantized.sample", NULL };
static const char *const vq_noquant_names[] = { "decode_noquant.sample",
  "decode_unquantized.sample", NULL
};
static const char *const vq_zq_names[] = { "quantize.latents", "quantize.z_q", NULL };
static const char *const vq_index_names[] = { "quantize.indices",
  "quantize.min_encoding_indices", NULL
};

void
conf_vq_case (Conf * c, const char *dir)
{
  Taps taps = { c, -1, TRUE, NULL };
  GeVae *v = open_vae (c, dir, &taps);
  if (!v)
    return;
  GError *err = NULL;
  const GeStTensor *xt = input_tensor (c, "input.sample");
  if (xt) {
    const int n = (int) xt->shape[0], h = (int) xt->shape[2], w = (int) xt->shape[3];
    const int lc = ge_vae_latent_channels (v), f = ge_vae_downsample_factor (v);
    int lh, lw;
    ge_vae_latent_size (v, h, w, &lh, &lw);
    const gsize ln = (gsize) n * lc * lh * lw;
    const gsize on = (gsize) n * ge_vae_out_channels (v) * lh * f * lw * f;
    float *x = g_new (float, xt->n_elements), *lat = g_new (float, ln);
    float *zq = g_new (float, ln), *out = g_new (float, on);
    gint64 *idx = g_new (gint64, (gsize) n * lh * lw);
    ge_st_tensor_to_f32 (xt, x);
    if (ge_vae_encode (v, x, n, h, w, lat, NULL, &err)) {
      conf_check_out (c, "encode.latents", lat, ln);
      /* Decode and quantise from the stored latents, so a near-tie in the
       * codebook search cannot be blamed on encoder rounding. */
      float *ref = conf_try_load_f32 (c, "encode.latents", NULL);
      const float *src = ref ? ref : lat;
      const char *k_idx = conf_pick (c, vq_index_names), *k_zq = conf_pick (c, vq_zq_names);
      const char *k_dec = conf_pick (c, vq_decode_names);
      const char *k_noq = conf_pick (c, vq_noquant_names);
      ge_vae_quantize (v, src, n, lh, lw, zq, idx, NULL);
      if (k_idx)
        conf_check_ints (c, k_idx, idx, (gsize) n * lh * lw);
      if (k_zq)
        conf_check_out (c, k_zq, zq, ln);
      if (ge_vae_decode (v, src, n, lh, lw, TRUE, out, &err))
        conf_check_out (c, k_dec ? k_dec : vq_decode_names[0], out, on);
      if (!err && k_noq && ge_vae_decode (v, src, n, lh, lw, FALSE, out, &err))
        conf_check_out (c, k_noq, out, on);
      g_free (ref);
    }
    if (err) {
      printf ("%s\n", err->message);
      g_clear_error (&err);
      c->n_failed++;
    }
    g_free (x);
    g_free (lat);
    g_free (zq);
    g_free (out);
    g_free (idx);
  }
  g_hash_table_unref (taps.seen);
  ge_vae_free (v);
}

/* AutoencoderTiny: encode -> latents; decode (the stored latents) and
 * decode (input.z); forward = decode of the latents after their 8-bit
 * round trip (the bytes are compared exactly).  Debug taps come from the
 * encode and from decode (encode.latents). */
void
conf_tiny_case (Conf * c, const char *dir)
{
  Taps taps = { c, -1, TRUE, NULL };
  GeVae *v = open_vae (c, dir, &taps);
  if (!v)
    return;
  GError *err = NULL;
  const GeStTensor *xt = input_tensor (c, "input.sample");
  if (xt) {
    const int n = (int) xt->shape[0], h = (int) xt->shape[2], w = (int) xt->shape[3];
    const int lc = ge_vae_latent_channels (v), f = ge_vae_downsample_factor (v);
    int lh, lw;
    ge_vae_latent_size (v, h, w, &lh, &lw);
    const gsize ln = (gsize) n * lc * lh * lw;
    const gsize on = (gsize) n * ge_vae_out_channels (v) * lh * f * lw * f;
    float *x = g_new (float, xt->n_elements), *lat = g_new (float, ln);
    float *rt = g_new (float, ln), *out = g_new (float, on);
    guint8 *q = g_new (guint8, ln);
    ge_st_tensor_to_f32 (xt, x);
    gboolean ok = ge_vae_encode (v, x, n, h, w, lat, NULL, &err);
    if (ok) {
      conf_check_out (c, "encode.latents", lat, ln);
      float *ref = conf_try_load_f32 (c, "encode.latents", NULL);
      if (ref && (ok = ge_vae_decode (v, ref, n, lh, lw, FALSE, out, &err)))
        conf_check_out (c, "decode_latents.sample", out, on);
      g_free (ref);
    }
    taps.active = FALSE;
    const GeStTensor *zt = ok ? input_tensor (c, "input.z") : NULL;
    if (zt) {
      const int zb = (int) zt->shape[0], zh = (int) zt->shape[2], zw = (int) zt->shape[3];
      const gsize dn = (gsize) zb * ge_vae_out_channels (v) * zh * f * zw * f;
      float *z = g_new (float, zt->n_elements), *dz = g_new (float, dn);
      ge_st_tensor_to_f32 (zt, z);
      if ((ok = ge_vae_decode (v, z, zb, zh, zw, FALSE, dz, &err)))
        conf_check_out (c, "decode_z.sample", dz, dn);
      g_free (z);
      g_free (dz);
    }
    if (ok && ge_vae_latents_to_u8 (v, lat, ln, q, &err)) {
      gint64 *qi = g_new (gint64, ln);
      for (gsize i = 0; i < ln; i++)
        qi[i] = q[i];
      if (ge_safetensors_find (c->io, "forward.quantized_u8_as_i64"))
        conf_check_ints (c, "forward.quantized_u8_as_i64", qi, ln);
      g_free (qi);
      if (ge_vae_latents_from_u8 (v, q, ln, rt, &err)
          && ge_vae_decode (v, rt, n, lh, lw, FALSE, out, &err))
        conf_check_out (c, "forward.sample", out, on);
    }
    if (err) {
      printf ("%s\n", err->message);
      g_clear_error (&err);
      c->n_failed++;
    }
    g_free (x);
    g_free (lat);
    g_free (rt);
    g_free (out);
    g_free (q);
  }
  g_hash_table_unref (taps.seen);
  ge_vae_free (v);
}
