/* conf-clip.c: transformers CLIPTextModel cases.
 *
 * io.safetensors holds input.input_ids and input.attention_mask [B, T];
 * call0 ran without the attention mask (as Stable Diffusion does), call1
 * with it.  Each call stores last_hidden_state, pooler_output and
 * hidden_states.K (K = 0: embeddings, K = i: output of layer i - 1), all
 * checked through the model's taps; debug.* taps of the debug call hold
 * batch element 0.  clip_skip outputs have no stored reference: they are
 * checked against the final LayerNorm, computed here in double, of the
 * stored hidden state they select.
 */
#include "conf.h"
#include "ge-clip-text.h"
#include "ge-model-file.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  Conf *c;
  int call, n_layers;
  gboolean debug;
} ClipTaps;

static void
on_tap (const char *name, const float *data, int n, int ch, int h, int w, void *user_data)
{
  ClipTaps *t = user_data;
  const gsize per = (gsize) ch * h * w;
  int layer = -1, end = 0;
  char *key = NULL;
  if (strcmp (name, "text_model.embeddings") == 0)
    key = g_strdup_printf ("call%d.hidden_states.0", t->call);
  else if (sscanf (name, "text_model.encoder.layers.%d%n", &layer, &end) == 1 && !name[end])
    key = g_strdup_printf ("call%d.hidden_states.%d", t->call, layer + 1);
  if (key) {
    conf_check (t->c, key, data, (gsize) n * per);
    g_free (key);
  }
  if (!t->debug)
    return;
  key = g_strdup_printf ("debug.%s", name);
  if (ge_safetensors_find (t->c->io, key))
    conf_check (t->c, key, data, per);
  g_free (key);
}

/* pool_index [B]: the position the engine pooled, found as the first row
 * of its last_hidden_state equal to its pooled output. */
static void
check_pool_index (Conf * c, const float *last, const float *pooled, int b, int len, int H)
{
  if (!ge_safetensors_find (c->io, "pool_index"))
    return;
  gint64 *idx = g_new (gint64, b);
  for (int i = 0; i < b; i++) {
    idx[i] = -1;
    for (int r = 0; r < len && idx[i] < 0; r++)
      if (memcmp (last + ((gsize) i * len + r) * H, pooled + (gsize) i * H,
              sizeof (float) * H) == 0)
        idx[i] = r;
  }
  conf_check_ints (c, "pool_index", idx, b);
  g_free (idx);
}

/* causal_mask [1, 1, T, T]: the additive mask the model applies, 0 on and
 * below the diagonal, the lowest float above it (transformers'
 * _create_4d_causal_attention_mask), which the engine's attention adds. */
static void
check_causal_mask (Conf * c)
{
  const GeStTensor *t = ge_safetensors_find (c->io, "causal_mask");
  if (!t)
    return;
  const int T = (int) t->shape[t->ndim - 1];
  float *m = g_new (float, (gsize) T * T);
  for (int i = 0; i < T; i++)
    for (int j = 0; j < T; j++)
      m[i * T + j] = j > i ? -G_MAXFLOAT : 0.0f;
  conf_check (c, "causal_mask", m, (gsize) T * T);
  g_free (m);
}

/* An I64 input as gint32. */
static gint32 *
load_ids (Conf * c, const char *key, int *b, int *len)
{
  const GeStTensor *t = conf_use (c, key);
  if (!t || t->ndim != 2) {
    printf ("%-48s %s\n", key, t ? "is not 2-D" : "MISSING in io.safetensors");
    c->n_failed++;
    return NULL;
  }
  *b = (int) t->shape[0];
  *len = (int) t->shape[1];
  gint32 *v = g_new (gint32, MAX (t->n_elements, 1));
  for (gsize i = 0; i < t->n_elements; i++)
    v[i] = (gint32) ge_st_tensor_get_int (t, i);
  return v;
}

static int
debug_call (Conf * c)
{
  char *path = g_build_filename (c->dir, "meta.json", NULL);
  gboolean exists = g_file_test (path, G_FILE_TEST_EXISTS);
  g_free (path);
  if (!exists)
    return -1;
  JsonParser *p;
  JsonObject *meta = conf_read_json (c, "meta.json", &p);
  if (!meta)
    return -1;
  int call = -1;
  JsonNode *d = json_object_get_member (meta, "debug_call");
  if (d && JSON_NODE_HOLDS_VALUE (d) && json_node_get_value_type (d) == G_TYPE_INT64)
    call = (int) json_node_get_int (d);
  g_object_unref (p);
  return call;
}

/* Compares @got with @ref (double) as conf_check does. */
static void
check_ref (Conf * c, const char *label, const float *got, const double *ref, gsize n)
{
  double maxref = 0, maxerr = 0;
  for (gsize i = 0; i < n; i++) {
    maxref = fmax (maxref, fabs (ref[i]));
    double e = fabs ((double) got[i] - ref[i]);
    if (!(e <= maxerr))
      maxerr = isnan (e) ? INFINITY : e;
  }
  double rel = maxref > 0 ? maxerr / maxref : maxerr;
  gboolean ok = rel <= CONF_TOL;
  printf ("%-48s max rel err %.3e %s\n", label, rel, ok ? "ok" : "FAIL");
  c->n_checked++;
  if (!ok)
    c->n_failed++;
  if (!(rel <= c->worst))
    c->worst = rel;
}

/* clip_skip s: final_layer_norm (hidden_states[L - s]), referenced from the
 * stored hidden state and the stored LayerNorm weights. */
static void
check_skips (Conf * c, GeClipText * m, GeModelFile * mf, int call, const gint32 * ids,
    const gint32 * mask, int b, int len)
{
  const int H = ge_clip_text_hidden_size (m), L = ge_clip_text_num_layers (m);
  const gsize rows = (gsize) b * len;
  gint64 shape[1] = { H };
  double eps;
  const float *g = ge_model_file_weight (mf, "text_model.final_layer_norm.weight", 1, shape, NULL);
  const float *beta = ge_model_file_weight (mf, "text_model.final_layer_norm.bias", 1, shape, NULL);
  if (!g || !beta || !ge_config_double (mf, "layer_norm_eps", 1e-5, &eps, NULL)) {
    printf ("clip_skip: final_layer_norm weights unreadable\n");
    c->n_failed++;
    return;
  }
  float *got = g_new (float, rows * H), *pooled = g_new (float, (gsize) b * H);
  double *ref = g_new (double, rows * H);
  for (int skip = 0; skip <= L; skip++) {
    char *key = g_strdup_printf ("call%d.hidden_states.%d", call, L - skip);
    float *hs = conf_load_f32 (c, key, NULL);
    g_free (key);
    GError *err = NULL;
    if (!hs)
      break;
    if (!ge_clip_text_forward_skip (m, ids, b, len, mask, skip, got, pooled, &err)) {
      printf ("%s\n", err->message);
      g_clear_error (&err);
      c->n_failed++;
      g_free (hs);
      break;
    }
    for (gsize r = 0; r < rows; r++) {
      const float *x = hs + r * H;
      double mean = 0, var = 0;
      for (int i = 0; i < H; i++)
        mean += x[i];
      mean /= H;
      for (int i = 0; i < H; i++)
        var += (x[i] - mean) * (x[i] - mean);
      var /= H;
      for (int i = 0; i < H; i++)
        ref[r * H + i] = (x[i] - mean) / sqrt (var + eps) * g[i] + beta[i];
    }
    char *label = g_strdup_printf ("call%d clip_skip %d (LN of hidden_states.%d)", call, skip,
        L - skip);
    check_ref (c, label, got, ref, rows * H);
    g_free (label);
    /* The pooled output stays the whole model's. */
    label = g_strdup_printf ("call%d.pooler_output", call);
    conf_check (c, label, pooled, (gsize) b * H);
    g_free (label);
    g_free (hs);
  }
  g_free (got);
  g_free (pooled);
  g_free (ref);
}

void
conf_clip_text_case (Conf * c, const char *dir)
{
  GError *err = NULL;
  GeModelFile *mf = ge_model_file_open (dir, &err);
  GeClipText *m = mf ? ge_clip_text_new (mf, &err) : NULL;
  if (!m) {
    printf ("%s\n", err->message);
    g_error_free (err);
    ge_model_file_unref (mf);
    c->n_failed++;
    return;
  }
  printf ("%s, %d layers, hidden %d\n", ge_model_file_class (mf), ge_clip_text_num_layers (m),
      ge_clip_text_hidden_size (m));
  int b, len, mb, mlen;
  gint32 *ids = load_ids (c, "input.input_ids", &b, &len);
  gint32 *mask = load_ids (c, "input.attention_mask", &mb, &mlen);
  if (ids && mask && (mb != b || mlen != len)) {
    printf ("input.attention_mask does not match input.input_ids\n");
    c->n_failed++;
    g_clear_pointer (&mask, g_free);
  }
  check_causal_mask (c);
  const int dbg = debug_call (c);
  const int H = ge_clip_text_hidden_size (m), P = ge_clip_text_pooled_dim (m);
  ClipTaps taps = { c, 0, ge_clip_text_num_layers (m), FALSE };
  ge_clip_text_set_tap (m, on_tap, &taps);
  for (int call = 0; ids; call++) {
    char *lk = g_strdup_printf ("call%d.last_hidden_state", call);
    char *pk = g_strdup_printf ("call%d.pooler_output", call);
    if (!ge_safetensors_find (c->io, lk)) {
      g_free (lk);
      g_free (pk);
      break;
    }
    /* call1 is the one with the attention mask (see the case README). */
    const gint32 *cm = call == 1 ? mask : NULL;
    if (call == 1 && !mask) {
      printf ("call1 needs input.attention_mask\n");
      c->n_failed++;
    }
    float *last = g_new (float, (gsize) b * len * H), *pooled = g_new (float, (gsize) b * P);
    taps.call = call;
    taps.debug = call == dbg;
    if (!ge_clip_text_forward (m, ids, b, len, cm, last, pooled, &err)) {
      printf ("%s\n", err->message);
      g_clear_error (&err);
      c->n_failed++;
    } else {
      conf_check (c, lk, last, (gsize) b * len * H);
      conf_check (c, pk, pooled, (gsize) b * P);
      if (call == 0 && P == H)
        check_pool_index (c, last, pooled, b, len, H);
      taps.debug = FALSE;
      ge_clip_text_set_tap (m, NULL, NULL);
      check_skips (c, m, mf, call, ids, cm, b, len);
      ge_clip_text_set_tap (m, on_tap, &taps);
    }
    g_free (last);
    g_free (pooled);
    g_free (lk);
    g_free (pk);
  }
  g_free (ids);
  g_free (mask);
  ge_clip_text_free (m);
  ge_model_file_unref (mf);
}
