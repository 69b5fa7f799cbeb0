/* test-clip: the CLIP text model beyond the transformers numbers: thread
 * counts agree, steady-state runs allocate nothing, F16 weights load from
 * the .fp16 variant, CLIPTextModelWithProjection projects the pooled
 * output, and every broken model or input gives an error naming the file
 * and the cause.
 *
 * References come from the clip_text_small fixture (io.safetensors) or are
 * computed here from it, never taken from the engine itself. */
#include "ge-clip-text.h"
#include "ge-safetensors.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

#define CASE "clip_text_small"

static char *fixtures, *tmpdir;

static char *
fixture (const char *file)
{
  return g_build_filename (fixtures, "diffusers", CASE, file, NULL);
}

static GeSafetensors *
io (void)
{
  char *p = fixture ("io.safetensors");
  GeSafetensors *st = ge_safetensors_open (p, NULL);
  g_assert_nonnull (st);
  g_free (p);
  return st;
}

static float *
load_f32 (const char *key, gsize * n)
{
  GeSafetensors *st = io ();
  const GeStTensor *t = ge_safetensors_find (st, key);
  g_assert_nonnull (t);
  float *d = g_new (float, t->n_elements);
  ge_st_tensor_to_f32 (t, d);
  if (n)
    *n = t->n_elements;
  ge_safetensors_free (st);
  return d;
}

/* input.input_ids / input.attention_mask as gint32 [2, 77]. */
static gint32 *
load_ints (const char *key)
{
  GeSafetensors *st = io ();
  const GeStTensor *t = ge_safetensors_find (st, key);
  g_assert_nonnull (t);
  g_assert_cmpint (t->n_elements, ==, 2 * 77);
  gint32 *v = g_new (gint32, t->n_elements);
  for (gsize i = 0; i < t->n_elements; i++)
    v[i] = (gint32) ge_st_tensor_get_int (t, i);
  ge_safetensors_free (st);
  return v;
}

static double
rel_err (const float *a, const double *ref, gsize n)
{
  double m = 0, e = 0;
  for (gsize i = 0; i < n; i++) {
    m = fmax (m, fabs (ref[i]));
    e = fmax (e, isnan (a[i]) ? INFINITY : fabs (a[i] - ref[i]));
  }
  return e / m;
}

static double
rel_err_f (const float *a, const float *ref, gsize n)
{
  double *r = g_new (double, n);
  for (gsize i = 0; i < n; i++)
    r[i] = ref[i];
  double e = rel_err (a, r, n);
  g_free (r);
  return e;
}

/* ---- building model folders ------------------------------------------- */

static guint16
f32_to_f16 (float f)
{
  /* Normal range only (the weights here are neither huge nor tiny). */
  guint32 b;
  memcpy (&b, &f, 4);
  guint32 sign = (b >> 16) & 0x8000;
  int exp = (int) ((b >> 23) & 0xff) - 127 + 15;
  guint32 man = b & 0x7fffff;
  if (exp <= 0)
    return (guint16) sign;
  guint32 h = sign | ((guint32) exp << 10) | (man >> 13);
  guint32 rest = man & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
    h++;
  return (guint16) h;
}

/* Writes the fixture's weights to @path, as F16 when @f16, plus @extra
 * ([extra_rows, extra_cols] F32 named @extra_name) when set. */
static void
write_weights (const char *path, gboolean f16, const char *extra_name, const float *extra,
    int extra_rows, int extra_cols)
{
  char *src = fixture ("model.safetensors");
  GeSafetensors *st = ge_safetensors_open (src, NULL);
  g_assert_nonnull (st);
  GString *hdr = g_string_new ("{\"__metadata__\":{\"format\":\"pt\"}");
  GByteArray *data = g_byte_array_new ();
  for (guint i = 0; i < ge_safetensors_n_tensors (st); i++) {
    const GeStTensor *t = ge_safetensors_nth (st, i);
    float *f = g_new (float, t->n_elements);
    ge_st_tensor_to_f32 (t, f);
    gsize start = data->len;
    for (gsize k = 0; k < t->n_elements; k++) {
      if (f16) {
        guint16 h = f32_to_f16 (f[k]);
        g_byte_array_append (data, (guint8 *) & h, 2);
      } else
        g_byte_array_append (data, (guint8 *) & f[k], 4);
    }
    g_string_append_printf (hdr, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name,
        f16 ? "F16" : "F32");
    for (int d = 0; d < t->ndim; d++)
      g_string_append_printf (hdr, "%s%" G_GINT64_FORMAT, d ? "," : "", t->shape[d]);
    g_string_append_printf (hdr, "],\"data_offsets\":[%u,%u]}", (guint) start, data->len);
    g_free (f);
  }
  if (extra_name) {
    gsize start = data->len;
    g_byte_array_append (data, (const guint8 *) extra, (guint) (4 * extra_rows * extra_cols));
    g_string_append_printf (hdr, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],"
        "\"data_offsets\":[%u,%u]}", extra_name, extra_rows, extra_cols, (guint) start, data->len);
  }
  g_string_append_c (hdr, '}');
  while (hdr->len % 8)
    g_string_append_c (hdr, ' ');
  guint64 hl = hdr->len;
  GByteArray *file = g_byte_array_new ();
  g_byte_array_append (file, (guint8 *) & hl, 8);
  g_byte_array_append (file, (guint8 *) hdr->str, hdr->len);
  g_byte_array_append (file, data->data, data->len);
  g_assert_true (g_file_set_contents (path, (char *) file->data, file->len, NULL));
  g_byte_array_unref (file);
  g_byte_array_unref (data);
  g_string_free (hdr, TRUE);
  ge_safetensors_free (st);
  g_free (src);
}

/* The fixture's config.json with @from replaced by @to (both NULL: as is). */
static void
write_config (const char *dir, const char *from, const char *to)
{
  char *src = fixture ("config.json"), *text;
  g_assert_true (g_file_get_contents (src, &text, NULL, NULL));
  if (from) {
    char *hit = strstr (text, from);
    g_assert_nonnull (hit);
    char *edited = g_strdup_printf ("%.*s%s%s", (int) (hit - text), text, to, hit + strlen (from));
    g_free (text);
    text = edited;
  }
  char *path = g_build_filename (dir, "config.json", NULL);
  g_assert_true (g_file_set_contents (path, text, -1, NULL));
  g_free (path);
  g_free (text);
  g_free (src);
}

static void
clean_dir (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name (d))) {
    char *p = g_build_filename (dir, name, NULL);
    g_remove (p);
    g_free (p);
  }
  if (d)
    g_dir_close (d);
}

/* ---- tests --------------------------------------------------------------- */

static GeClipText *
open_fixture (void)
{
  char *dir = g_build_filename (fixtures, "diffusers", CASE, NULL);
  GeModelFile *mf = ge_model_file_open (dir, NULL);
  g_assert_nonnull (mf);
  g_assert_cmpstr (ge_model_file_class (mf), ==, "CLIPTextModel");
  GeClipText *m = ge_clip_text_new (mf, NULL);
  g_assert_nonnull (m);
  ge_model_file_unref (mf);
  g_free (dir);
  return m;
}

static void
test_threads_steady_state (void)
{
  GeClipText *m = open_fixture ();
  g_assert_cmpint (ge_clip_text_hidden_size (m), ==, 32);
  g_assert_cmpint (ge_clip_text_max_positions (m), ==, 77);
  g_assert_cmpint (ge_clip_text_eos_id (m), ==, 913);
  g_assert_cmpint (ge_clip_text_pooled_dim (m), ==, 32);
  gint32 *ids = load_ints ("input.input_ids"), *mask = load_ints ("input.attention_mask");
  gsize n;
  float *ref = load_f32 ("call1.last_hidden_state", &n);
  float *pref = load_f32 ("call1.pooler_output", NULL);
  float *out = g_new (float, n), *again = g_new (float, n), *pooled = g_new (float, 64);
  for (int threads = 1; threads <= 3; threads++) {
    ge_clip_text_set_n_threads (m, threads);
    g_assert_true (ge_clip_text_forward (m, ids, 2, 77, mask, out, pooled, NULL));
    g_assert_cmpfloat (rel_err_f (out, ref, n), <=, 1e-4);
    g_assert_cmpfloat (rel_err_f (pooled, pref, 64), <=, 1e-4);
    g_assert_true (ge_clip_text_forward (m, ids, 2, 77, mask, again, NULL, NULL));
    g_assert_cmpuint (ge_clip_text_n_allocs (m), ==, 0);
    g_assert_cmpmem (again, n * 4, out, n * 4);
  }
  /* A shorter sequence (the first 10 tokens): causal attention makes its
   * states those of the first 10 positions of the full run. */
  gint32 short_ids[2 * 10];
  for (int b = 0; b < 2; b++)
    memcpy (short_ids + b * 10, ids + b * 77, 10 * sizeof (gint32));
  g_assert_true (ge_clip_text_forward (m, short_ids, 2, 10, NULL, again, NULL, NULL));
  float *ref0 = load_f32 ("call0.last_hidden_state", NULL);
  for (int b = 0; b < 2; b++)
    g_assert_cmpfloat (rel_err_f (again + b * 10 * 32, ref0 + b * 77 * 32, 10 * 32), <=, 1e-4);
  g_free (ref0);
  g_free (ids);
  g_free (mask);
  g_free (ref);
  g_free (pref);
  g_free (out);
  g_free (again);
  g_free (pooled);
  ge_clip_text_free (m);
}

/* A transformers folder as the hub has it for SDXL's second encoder:
 * "architectures": ["CLIPTextModelWithProjection"], F16 weights only in
 * model.fp16.safetensors, plus text_projection.  text_embeds =
 * text_projection (pooler_output), referenced from the stored pooled
 * output (F16 weights: a looser bound). */
static void
test_projection_fp16 (void)
{
  char *dir = g_build_filename (tmpdir, "proj", NULL);
  g_mkdir (dir, 0755);
  write_config (dir, "\"attention_dropout\"",
      "\"architectures\": [\"CLIPTextModelWithProjection\"], \"attention_dropout\"");
  const int P = 32, H = 32;
  float *w = g_new (float, P * H);
  GRand *rng = g_rand_new_with_seed (5);
  for (int i = 0; i < P * H; i++)
    w[i] = (float) g_rand_double_range (rng, -0.3, 0.3);
  g_rand_free (rng);
  char *wts = g_build_filename (dir, "model.fp16.safetensors", NULL);
  write_weights (wts, TRUE, "text_projection.weight", w, P, H);
  GError *err = NULL;
  GeModelFile *mf = ge_model_file_open (dir, &err);
  g_assert_no_error (err);
  g_assert_cmpstr (ge_model_file_class (mf), ==, "CLIPTextModelWithProjection");
  GeClipText *m = ge_clip_text_new (mf, &err);
  g_assert_no_error (err);
  ge_model_file_unref (mf);
  g_assert_cmpint (ge_clip_text_pooled_dim (m), ==, P);
  gint32 *ids = load_ints ("input.input_ids");
  gsize n;
  float *ref = load_f32 ("call0.last_hidden_state", &n), *pref = load_f32 ("call0.pooler_output", NULL);
  float *out = g_new (float, n), *pooled = g_new (float, 2 * P);
  g_assert_true (ge_clip_text_forward (m, ids, 2, 77, NULL, out, pooled, &err));
  g_assert_cmpfloat (rel_err_f (out, ref, n), <=, 5e-3);
  double proj[2 * 32];
  for (int b = 0; b < 2; b++)
    for (int o = 0; o < P; o++) {
      double acc = 0;
      for (int i = 0; i < H; i++)
        acc += (double) w[o * H + i] * pref[b * H + i];
      proj[b * P + o] = acc;
    }
  g_assert_cmpfloat (rel_err (pooled, proj, 2 * P), <=, 5e-3);
  ge_clip_text_free (m);
  g_free (ids);
  g_free (ref);
  g_free (pref);
  g_free (out);
  g_free (pooled);
  g_free (w);
  g_free (wts);
  clean_dir (dir);
  g_rmdir (dir);
  g_free (dir);
}

/* Pooling picks a row of last_hidden_state: with eos_token_id 912 (the
 * bos id) the first 912, position 0; with 2 (old configs) the largest id's
 * first position; with an id absent from the sequence, position 0. */
static void
test_pooling_rules (void)
{
  char *dir = g_build_filename (tmpdir, "pool", NULL);
  char *wts = g_build_filename (dir, "model.safetensors", NULL);
  g_mkdir (dir, 0755);
  write_weights (wts, FALSE, NULL, NULL, 0, 0);
  gint32 *ids = load_ints ("input.input_ids");
  float *last = load_f32 ("call0.last_hidden_state", NULL);
  float *out = g_new (float, 2 * 77 * 32), pooled[2 * 32];
  static const char *eos[] = { "\"eos_token_id\": 912", "\"eos_token_id\": 2",
    "\"eos_token_id\": 5000" };
  for (int r = 0; r < 3; r++) {
    write_config (dir, "\"eos_token_id\": 913", eos[r]);
    GeModelFile *mf = ge_model_file_open (dir, NULL);
    GeClipText *m = ge_clip_text_new (mf, NULL);
    g_assert_nonnull (m);
    ge_model_file_unref (mf);
    g_assert_true (ge_clip_text_forward (m, ids, 2, 77, NULL, out, pooled, NULL));
    for (int b = 0; b < 2; b++) {
      int at = 0;
      if (r == 1)
        for (int t = 1; t < 77; t++)
          if (ids[b * 77 + t] > ids[b * 77 + at])
            at = t;
      g_assert_cmpint (r != 1 || at > 0, ==, TRUE);
      g_assert_cmpfloat (rel_err_f (pooled + b * 32, last + (b * 77 + at) * 32, 32), <=, 1e-4);
    }
    ge_clip_text_free (m);
  }
  g_free (ids);
  g_free (last);
  g_free (out);
  clean_dir (dir);
  g_rmdir (dir);
  g_free (wts);
  g_free (dir);
}

static void
expect_load_error (const char *dir, int code, const char *must_contain)
{
  GError *err = NULL;
  GeModelFile *mf = ge_model_file_open (dir, &err);
  GeClipText *m = mf ? ge_clip_text_new (mf, &err) : NULL;
  ge_model_file_unref (mf);
  g_assert_null (m);
  g_assert_error (err, GE_ERROR, code);
  if (!strstr (err->message, dir) || (must_contain && !strstr (err->message, must_contain))) {
    g_printerr ("message \"%s\" lacks \"%s\" or \"%s\"\n", err->message, dir,
        must_contain ? must_contain : "");
    g_assert_not_reached ();
  }
  g_error_free (err);
}

static void
test_load_errors (void)
{
  char *dir = g_build_filename (tmpdir, "broken", NULL);
  char *wts = g_build_filename (dir, "model.safetensors", NULL);
  g_mkdir (dir, 0755);

  /* No weights file: named. */
  write_config (dir, NULL, NULL);
  expect_load_error (dir, GE_ERROR_NOT_FOUND, "model.safetensors");

  write_weights (wts, FALSE, NULL, NULL, 0, 0);
  /* Without hidden_size the default (512) shapes the first weight. */
  write_config (dir, "\"hidden_size\": 32,", "");
  expect_load_error (dir, GE_ERROR_SHAPE, "text_model.embeddings.token_embedding.weight");
  /* A config that disagrees with a tensor's shape names that tensor. */
  write_config (dir, "\"intermediate_size\": 64", "\"intermediate_size\": 48");
  expect_load_error (dir, GE_ERROR_SHAPE, "text_model.encoder.layers.0.mlp.fc1.weight");
  write_config (dir, "\"num_attention_heads\": 4", "\"num_attention_heads\": 5");
  expect_load_error (dir, GE_ERROR_UNSUPPORTED, "num_attention_heads");
  write_config (dir, "\"quick_gelu\"", "\"silu\"");
  expect_load_error (dir, GE_ERROR_UNSUPPORTED, "silu");
  write_config (dir, "\"hidden_size\": 32", "\"hidden_size\": \"32\"");
  expect_load_error (dir, GE_ERROR_CORRUPT, "hidden_size");
  /* Every layer is required. */
  write_config (dir, "\"num_hidden_layers\": 3", "\"num_hidden_layers\": 4");
  expect_load_error (dir, GE_ERROR_NOT_FOUND, "text_model.encoder.layers.3");
  /* The projection too, when the class says so. */
  write_config (dir, "\"attention_dropout\"",
      "\"architectures\": [\"CLIPTextModelWithProjection\"], \"attention_dropout\"");
  expect_load_error (dir, GE_ERROR_NOT_FOUND, "text_projection.weight");
  /* Another transformers class is not a CLIP text model. */
  write_config (dir, "\"attention_dropout\"",
      "\"architectures\": [\"CLIPVisionModel\"], \"attention_dropout\"");
  expect_load_error (dir, GE_ERROR_UNSUPPORTED, "CLIPVisionModel");
  /* A config that names no class at all. */
  write_config (dir, "\"model_type\": \"clip_text_model\",", "");
  expect_load_error (dir, GE_ERROR_UNSUPPORTED, "architectures");

  clean_dir (dir);
  g_rmdir (dir);
  g_free (wts);
  g_free (dir);
}

/* The call first: C leaves argument evaluation order open. */
#define EXPECT_RUN_ERROR(call, must_contain) G_STMT_START { \
    GError *err = NULL; \
    gboolean ok = call; \
    expect_run_error (ok, err, must_contain); \
  } G_STMT_END

static void
expect_run_error (gboolean ok, GError * err, const char *must_contain)
{
  g_assert_false (ok);
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_assert_nonnull (strstr (err->message, CASE));
  g_assert_nonnull (strstr (err->message, must_contain));
  g_error_free (err);
}

static void
test_run_errors (void)
{
  GeClipText *m = open_fixture ();
  gint32 *ids = load_ints ("input.input_ids"), *mask = load_ints ("input.attention_mask");
  float *out = g_new (float, 2 * 78 * 32);
  gint32 *long_ids = g_new0 (gint32, 78);
  EXPECT_RUN_ERROR (ge_clip_text_forward (m, long_ids, 1, 78, NULL, out, NULL, &err), "77");
  EXPECT_RUN_ERROR (ge_clip_text_forward (m, ids, 0, 77, NULL, out, NULL, &err), "tokens");
  ids[80] = 914;
  EXPECT_RUN_ERROR (ge_clip_text_forward (m, ids, 2, 77, NULL, out, NULL, &err), "914");
  ids[80] = -1;
  EXPECT_RUN_ERROR (ge_clip_text_forward (m, ids, 2, 77, NULL, out, NULL, &err), "-1");
  ids[80] = 0;
  mask[5] = 2;
  EXPECT_RUN_ERROR (ge_clip_text_forward (m, ids, 2, 77, mask, out, NULL, &err),
      "attention_mask");
  EXPECT_RUN_ERROR (ge_clip_text_forward_skip (m, ids, 2, 77, NULL, 4, out, NULL, &err),
      "clip_skip");
  EXPECT_RUN_ERROR (ge_clip_text_forward_hidden (m, ids, 2, 77, NULL, -1, FALSE, out, NULL,
          &err), "hidden state");
  g_free (ids);
  g_free (mask);
  g_free (long_ids);
  g_free (out);
  ge_clip_text_free (m);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  fixtures = g_test_build_filename (G_TEST_DIST, "..", "fixtures", NULL);
  tmpdir = g_dir_make_tmp ("ge-test-clip-XXXXXX", NULL);
  g_test_add_func ("/clip/threads-steady-state", test_threads_steady_state);
  g_test_add_func ("/clip/projection-fp16", test_projection_fp16);
  g_test_add_func ("/clip/pooling-rules", test_pooling_rules);
  g_test_add_func ("/clip/load-errors", test_load_errors);
  g_test_add_func ("/clip/run-errors", test_run_errors);
  int r = g_test_run ();
  g_rmdir (tmpdir);
  g_free (tmpdir);
  g_free (fixtures);
  return r;
}
