/* test-models: UNet2DModel/UNet2DConditionModel/AutoencoderKL/AutoencoderTiny loading and running beyond the
 * diffusers numbers: steady-state runs allocate nothing, thread counts agree,
 * F16/BF16 and single-file exports load, legacy attention names load, and
 * every broken model gives an error naming the file and the cause.
 *
 * Reference outputs come from the diffusers fixtures (io.safetensors), never
 * from the engine itself. */
#include "ge-safetensors.h"
#include "ge-unet2d.h"
#include "ge-vae.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

static char *fixtures, *tmpdir;

static char *
fixture (const char *c, const char *file)
{
  return g_build_filename (fixtures, "diffusers", c, file, NULL);
}

static float *
load_f32 (const char *case_name, const char *key, gsize * n)
{
  char *p = fixture (case_name, "io.safetensors");
  GeSafetensors *st = ge_safetensors_open (p, NULL);
  g_assert_nonnull (st);
  const GeStTensor *t = ge_safetensors_find (st, key);
  g_assert_nonnull (t);
  float *d = g_new (float, t->n_elements);
  ge_st_tensor_to_f32 (t, d);
  if (n)
    *n = t->n_elements;
  ge_safetensors_free (st);
  g_free (p);
  return d;
}

static double
rel_err (const float *a, const float *ref, gsize n)
{
  double m = 0, e = 0;
  for (gsize i = 0; i < n; i++) {
    m = fmax (m, fabs (ref[i]));
    e = fmax (e, isnan (a[i]) ? INFINITY : fabs (a[i] - ref[i]));
  }
  return e / m;
}

/* ---- a tiny safetensors writer, to build variants of the fixtures ------ */

typedef enum { AS_F32, AS_F16, AS_BF16 } Conv;

static guint16
f32_to_bf16 (float f)
{
  guint32 b;
  memcpy (&b, &f, 4);
  return (guint16) ((b + 0x7fff + ((b >> 16) & 1)) >> 16);     /* round to nearest even */
}

static guint16
f32_to_f16 (float f)
{
  /* Normal range only (the weights here are small and not tiny). */
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

/* Writes @src's tensors (renamed by @rename, dropped when it returns NULL,
 * converted to @conv, with shape @reshape_name doubled in its first dim if
 * set) plus @metadata to @path. */
/* Set: proj_in/proj_out weights lose their trailing 1x1 (as nn.Linear). */
static gboolean squeeze_proj;
/* Set: one more tensor, an embedding table (see write_variant). */
static const char *extra_table;
static int extra_rows, extra_cols, extra_zero_row;

static void
write_variant (const char *src_path, const char *path, Conv conv,
    char *(*rename) (const char *), const char *metadata_json, const char *reshape_name)
{
  GeSafetensors *st = ge_safetensors_open (src_path, NULL);
  g_assert_nonnull (st);
  GString *hdr = g_string_new ("{");
  GByteArray *data = g_byte_array_new ();
  if (metadata_json)
    g_string_append_printf (hdr, "\"__metadata__\":%s", metadata_json);
  for (guint i = 0; i < ge_safetensors_n_tensors (st); i++) {
    const GeStTensor *t = ge_safetensors_nth (st, i);
    char *name = rename ? rename (t->name) : g_strdup (t->name);
    if (!name)
      continue;
    gsize n = t->n_elements;
    float *f = g_new (float, n);
    ge_st_tensor_to_f32 (t, f);
    gboolean grow = reshape_name && strcmp (t->name, reshape_name) == 0;
    gsize start = data->len;
    for (int rep = 0; rep < (grow ? 2 : 1); rep++)
      for (gsize k = 0; k < n; k++) {
        if (conv == AS_F32)
          g_byte_array_append (data, (guint8 *) & f[k], 4);
        else {
          guint16 h = conv == AS_F16 ? f32_to_f16 (f[k]) : f32_to_bf16 (f[k]);
          g_byte_array_append (data, (guint8 *) & h, 2);
        }
      }
    g_string_append_printf (hdr, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", hdr->len > 1 ? "," : "",
        name, conv == AS_F32 ? "F32" : conv == AS_F16 ? "F16" : "BF16");
    int ndim = t->ndim;
    if (squeeze_proj && (g_str_has_suffix (name, "proj_in.weight")
            || g_str_has_suffix (name, "proj_out.weight")))
      while (ndim > 2 && t->shape[ndim - 1] == 1)
        ndim--;
    for (int d = 0; d < ndim; d++)
      g_string_append_printf (hdr, "%s%" G_GINT64_FORMAT, d ? "," : "",
          t->shape[d] * (grow && d == 0 ? 2 : 1));
    g_string_append_printf (hdr, "],\"data_offsets\":[%u,%u]}", (guint) start, data->len);
    g_free (f);
    g_free (name);
  }
  if (extra_table) {
    /* [extra_rows, extra_cols] of ones, except row extra_zero_row. */
    gsize start = data->len;
    for (int r = 0; r < extra_rows; r++)
      for (int k = 0; k < extra_cols; k++) {
        float f = r == extra_zero_row ? 0.0f : 1.0f;
        g_byte_array_append (data, (guint8 *) & f, 4);
      }
    g_string_append_printf (hdr, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],"
        "\"data_offsets\":[%u,%u]}", extra_table, extra_rows, extra_cols, (guint) start, data->len);
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
}

/* The fixture's config.json as an escaped JSON string for __metadata__. */
static char *
metadata_with_config (const char *case_name, const char *arch)
{
  char *p = fixture (case_name, "config.json"), *text;
  g_assert_true (g_file_get_contents (p, &text, NULL, NULL));
  GString *esc = g_string_new (NULL);
  for (const char *c = text; *c; c++) {
    if (*c == '"' || *c == '\\')
      g_string_append_c (esc, '\\');
    if (*c == '\n')
      continue;
    g_string_append_c (esc, *c);
  }
  char *m = g_strdup_printf ("{\"format\":\"pt\",\"architecture\":\"%s\",\"config\":\"%s\"}",
      arch, esc->str);
  g_string_free (esc, TRUE);
  g_free (text);
  g_free (p);
  return m;
}

/* Runs the fixture UNet's call1 on the model at @path; returns its output. */
static float *
run_unet (const char *path, int threads, guint * allocs_second_run, GError ** error)
{
  GeModelFile *mf = ge_model_file_open (path, error);
  if (!mf)
    return NULL;
  GeUNet2D *u = ge_unet2d_new (mf, error);
  ge_model_file_unref (mf);
  if (!u)
    return NULL;
  ge_unet2d_set_n_threads (u, threads);
  gsize n;
  float *x = load_f32 ("unet_ddpm_small", "input.sample", &n);
  float t[2] = { 500, 500 };
  float *out = g_new (float, n);
  gboolean ok = ge_unet2d_forward (u, x, 2, 32, 32, t, out, error);
  if (ok && allocs_second_run) {
    float *again = g_new (float, n);
    ok = ge_unet2d_forward (u, x, 2, 32, 32, t, again, error);
    *allocs_second_run = ge_unet2d_n_allocs (u);
    /* Same input, same threads: the same bits. */
    g_assert_cmpmem (again, n * 4, out, n * 4);
    g_free (again);
  }
  ge_unet2d_free (u);
  g_free (x);
  if (!ok)
    g_clear_pointer (&out, g_free);
  return out;
}

static void
test_unet_steady_state (void)
{
  char *dir = g_build_filename (fixtures, "diffusers", "unet_ddpm_small", NULL);
  gsize n;
  float *ref = load_f32 ("unet_ddpm_small", "call1.out", &n);
  for (int threads = 1; threads <= 2; threads++) {
    guint allocs = 99;
    float *out = run_unet (dir, threads, &allocs, NULL);
    g_assert_nonnull (out);
    g_assert_cmpuint (allocs, ==, 0);
    g_assert_cmpfloat (rel_err (out, ref, n), <, 1e-5);
    g_free (out);
  }
  g_free (ref);
  g_free (dir);
}

/* The packed copies of unet_ddpm_small's U-Net at @path: runs f32 (no
 * copy may appear), bf16 (one may), bf16 again (the same bytes, nothing
 * more packed) and f32 again (f32's bytes); *@loaded, *@after: the derived
 * bytes after load and after the bf16 forwards; returns what bf16 ran as. */
static GePrecision
bf16_copy_run (const char *path, gsize * loaded, gsize * after)
{
  GeModelFile *mf = ge_model_file_open (path, NULL);
  g_assert_nonnull (mf);
  GeUNet2D *u = ge_unet2d_new (mf, NULL);
  g_assert_nonnull (u);
  gsize n;
  float *x = load_f32 ("unet_ddpm_small", "input.sample", &n);
  float *ref = load_f32 ("unet_ddpm_small", "call1.out", &n);
  float t[2] = { 500, 500 };
  float *f32 = g_new (float, n), *bf16 = g_new (float, n), *again = g_new (float, n);
  *loaded = ge_model_file_derived_bytes (mf);

  g_assert_true (ge_unet2d_forward (u, x, 2, 32, 32, t, f32, NULL));
  g_assert_cmpuint (ge_model_file_derived_bytes (mf), ==, *loaded);
  const GePrecision p = ge_unet2d_set_precision (u, GE_PRECISION_BF16);
  g_assert_cmpuint (ge_model_file_derived_bytes (mf), ==, *loaded);
  g_assert_true (ge_unet2d_forward (u, x, 2, 32, 32, t, bf16, NULL));
  *after = ge_model_file_derived_bytes (mf);
  g_test_message ("%s: packed copies: %" G_GSIZE_FORMAT " bytes after load and f32, %"
      G_GSIZE_FORMAT " after bf16 (%s)", path, *loaded, *after, ge_precision_name (p));
  if (p != GE_PRECISION_BF16)
    g_assert_cmpuint (*after, ==, *loaded);
  g_assert_cmpfloat (rel_err (bf16, ref, n), <, 5e-2);
  g_assert_true (ge_unet2d_forward (u, x, 2, 32, 32, t, again, NULL));
  g_assert_cmpuint (ge_model_file_derived_bytes (mf), ==, *after);
  g_assert_cmpmem (again, n * 4, bf16, n * 4);
  ge_unet2d_set_precision (u, GE_PRECISION_F32);
  g_assert_true (ge_unet2d_forward (u, x, 2, 32, 32, t, again, NULL));
  g_assert_cmpmem (again, n * 4, f32, n * 4);
  ge_unet2d_free (u);
  ge_model_file_unref (mf);
  g_free (x);
  g_free (ref);
  g_free (f32);
  g_free (bf16);
  g_free (again);
  return p;
}

/* A conv with f32 weights packs its bf16 copy on the first bf16 forward,
 * never in f32: the memory a model adds to its file (the packed copies)
 * stays the f32 kernel's through f32 runs, grows by about half of it when
 * bf16 first runs (only where it runs), and not again; the outputs are
 * the same bits before and after. */
static void
test_unet_bf16_copy_on_demand (void)
{
  char *dir = g_build_filename (fixtures, "diffusers", "unet_ddpm_small", NULL);
  gsize loaded, after;
  if (bf16_copy_run (dir, &loaded, &after) == GE_PRECISION_BF16) {
    /* pairs of channels at half the size; odd counts and rows padded to
     * the kernel's tile add a little */
    g_assert_cmpuint (after, >, loaded + loaded / 3);
    g_assert_cmpuint (after, <, loaded + loaded * 3 / 4);
  }
  g_free (dir);
}

/* 16-bit weights: the small convs of a small model get their bf16 copy too
 * (BF16_COPY_16_MAX in blocks.c); f32 forwards read the F16 numbers in
 * place. */
static void
test_unet_bf16_copy_f16_weights (void)
{
  char *src = fixture ("unet_ddpm_small", "diffusion_pytorch_model.safetensors");
  char *meta = metadata_with_config ("unet_ddpm_small", "UNet2DModel");
  char *path = g_build_filename (tmpdir, "unet-f16.safetensors", NULL);
  write_variant (src, path, AS_F16, NULL, meta, NULL);
  gsize loaded, after;
  if (bf16_copy_run (path, &loaded, &after) == GE_PRECISION_BF16) {
    /* every conv of this U-Net is far under 1 MiB: the copies hold about
     * as many bytes as the F16 file, which is mostly conv weights */
    GStatBuf st;
    g_assert_cmpint (g_stat (path, &st), ==, 0);
    g_assert_cmpuint (after - loaded, >, (gsize) st.st_size / 2);
    g_assert_cmpuint (after - loaded, <, (gsize) st.st_size * 3 / 2);
  }
  g_unlink (path);
  g_free (path);
  g_free (meta);
  g_free (src);
}

/* GE_PRECISION_INT8: the resnets' convs in int8 where the CPU has VNNI
 * (close to diffusers' output, and not bf16's bytes), else bf16's bytes
 * exactly (models-no-int8 runs this with GE_NO_INT8). */
static void
test_unet_int8 (void)
{
  char *dir = g_build_filename (fixtures, "diffusers", "unet_ddpm_small", NULL);
  GeModelFile *mf = ge_model_file_open (dir, NULL);
  g_assert_nonnull (mf);
  GeUNet2D *u = ge_unet2d_new (mf, NULL);
  g_assert_nonnull (u);
  gsize n;
  float *x = load_f32 ("unet_ddpm_small", "input.sample", &n);
  float *ref = load_f32 ("unet_ddpm_small", "call1.out", &n);
  float t[2] = { 500, 500 };
  float *bf16 = g_new (float, n), *int8 = g_new (float, n);
  ge_unet2d_set_precision (u, GE_PRECISION_BF16);
  g_assert_true (ge_unet2d_forward (u, x, 2, 32, 32, t, bf16, NULL));
  const GePrecision p = ge_unet2d_set_precision (u, GE_PRECISION_INT8);
  g_assert_true (ge_unet2d_forward (u, x, 2, 32, 32, t, int8, NULL));
  g_test_message ("int8 runs as %s: rel err %.3g (bf16 %.3g)", ge_precision_name (p),
      rel_err (int8, ref, n), rel_err (bf16, ref, n));
  if (ge_precision_int8_available ()) {
    g_assert_cmpint (p, ==, GE_PRECISION_INT8);
    g_assert_true (memcmp (int8, bf16, n * 4) != 0);
    /* 8-bit inputs and weights: errors of a few 2^-8 */
    g_assert_cmpfloat (rel_err (int8, ref, n), <, 5e-2);
  } else {
    g_assert_cmpint (p, !=, GE_PRECISION_INT8);
    g_assert_cmpmem (int8, n * 4, bf16, n * 4);
  }
  ge_unet2d_free (u);
  ge_model_file_unref (mf);
  g_free (x);
  g_free (ref);
  g_free (bf16);
  g_free (int8);
  g_free (dir);
}

/* Found by fuzz-config: an integer key or array entry too large for an
 * integer (1.1e307 in a block_out_channels) was cast anyway, which is
 * undefined; such a config is corrupt, named in the error. */
static void
check_huge_integers (const char *model, const char *const (*edits)[2], guint n_edits)
{
  char *src = fixture (model, "config.json"), *text;
  g_assert_true (g_file_get_contents (src, &text, NULL, NULL));
  char *dir = g_build_filename (tmpdir, "huge-int", NULL);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  char *weights = fixture (model, "diffusion_pytorch_model.safetensors");
  char *link = g_build_filename (dir, "diffusion_pytorch_model.safetensors", NULL);
  g_unlink (link);
  g_assert_cmpint (symlink (weights, link), ==, 0);
  char *cfg = g_build_filename (dir, "config.json", NULL);
  for (guint i = 0; i < n_edits; i++) {
    char **parts = g_strsplit (text, edits[i][0], 2);
    g_assert_nonnull (parts[1]);
    char *edited = g_strconcat (parts[0], edits[i][1], parts[1], NULL);
    g_assert_true (g_file_set_contents (cfg, edited, -1, NULL));
    GError *err = NULL;
    GeModelFile *mf = ge_model_file_open (dir, &err);
    GeUNet2D *u = mf ? ge_unet2d_new (mf, &err) : NULL;
    g_assert_null (u);
    g_assert_error (err, GE_ERROR, GE_ERROR_CORRUPT);
    g_assert_nonnull (strstr (err->message, dir));
    g_error_free (err);
    if (mf)
      ge_model_file_unref (mf);
    g_free (edited);
    g_strfreev (parts);
  }
  g_unlink (cfg);
  g_unlink (link);
  g_rmdir (dir);
  g_free (cfg);
  g_free (link);
  g_free (weights);
  g_free (dir);
  g_free (text);
  g_free (src);
}

static void
test_config_huge_integers (void)
{
  static const char *const plain[][2] = {
    { "\"block_out_channels\": [", "\"block_out_channels\": [1.1e307, " },
    { "\"layers_per_block\": ", "\"layers_per_block\": 1e300, \"x_\": " },
    { "\"layers_per_block\": ", "\"layers_per_block\": -9.3e18, \"x_\": " },
  };
  /* the conditional U-Net's per-block keys (their own reader): whole
   * numbers no int holds are not integers either */
  static const char *const cond[][2] = {
    { "\"transformer_layers_per_block\": ", "\"transformer_layers_per_block\": 1e300, \"x_\": " },
    { "\"attention_head_dim\": ", "\"attention_head_dim\": 4294967304, \"x_\": " },
    { "\"layers_per_block\": ", "\"layers_per_block\": [1e300, 1, 1], \"x_\": " },
  };
  check_huge_integers ("unet_ddpm_small", plain, G_N_ELEMENTS (plain));
  check_huge_integers ("unet_cond_sd_small", cond, G_N_ELEMENTS (cond));
}

static void
test_unet_single_file_and_dtypes (void)
{
  char *src = fixture ("unet_ddpm_small", "diffusion_pytorch_model.safetensors");
  char *meta = metadata_with_config ("unet_ddpm_small", "UNet2DModel");
  gsize n;
  float *ref = load_f32 ("unet_ddpm_small", "call1.out", &n);
  /* F16 keeps 11 bits, BF16 8: the bounds follow from that, not from runs. */
  struct { Conv conv; double tol; } cases[] = { { AS_F32, 1e-5 }, { AS_F16, 5e-3 }, { AS_BF16, 5e-2 } };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    char *path = g_build_filename (tmpdir, "unet.safetensors", NULL);
    write_variant (src, path, cases[i].conv, NULL, meta, NULL);
    GError *err = NULL;
    float *out = run_unet (path, 1, NULL, &err);
    g_assert_no_error (err);
    double e = rel_err (out, ref, n);
    g_assert_cmpfloat (e, <, cases[i].tol);
    if (cases[i].conv != AS_F32)
      g_assert_cmpfloat (e, >, 0);      /* the conversion really happened */
    g_free (out);
    g_free (path);
  }
  g_free (ref);
  g_free (meta);
  g_free (src);
}

static char *
to_legacy (const char *name)
{
  static const char *map[][2] = { { ".to_q.", ".query." }, { ".to_k.", ".key." },
  { ".to_v.", ".value." }, { ".to_out.0.", ".proj_attn." } };
  for (guint i = 0; i < G_N_ELEMENTS (map); i++) {
    const char *hit = strstr (name, map[i][0]);
    if (hit)
      return g_strdup_printf ("%.*s%s%s", (int) (hit - name), name, map[i][1],
          hit + strlen (map[i][0]));
  }
  return g_strdup (name);
}

static void
test_unet_legacy_names (void)
{
  char *src = fixture ("unet_ddpm_small", "diffusion_pytorch_model.safetensors");
  char *meta = metadata_with_config ("unet_ddpm_small", "UNet2DModel");
  char *path = g_build_filename (tmpdir, "legacy.safetensors", NULL);
  write_variant (src, path, AS_F32, to_legacy, meta, NULL);
  gsize n;
  float *ref = load_f32 ("unet_ddpm_small", "call1.out", &n);
  GError *err = NULL;
  float *out = run_unet (path, 1, NULL, &err);
  g_assert_no_error (err);
  g_assert_cmpfloat (rel_err (out, ref, n), <, 1e-5);
  g_free (out);
  g_free (ref);
  g_free (path);
  g_free (meta);
  g_free (src);
}

static const char *drop_target;

static char *
drop_one (const char *name)
{
  return strcmp (name, drop_target) == 0 ? NULL : g_strdup (name);
}

static void
expect_error (const char *path, GQuark domain, int code, const char *must_contain)
{
  GError *err = NULL;
  float *out = run_unet (path, 1, NULL, &err);
  g_assert_null (out);
  g_assert_error (err, domain, code);
  g_assert_nonnull (strstr (err->message, path));
  if (must_contain && !strstr (err->message, must_contain)) {
    g_printerr ("message \"%s\" lacks \"%s\"\n", err->message, must_contain);
    g_assert_not_reached ();
  }
  g_error_free (err);
}

static void
test_unet_errors (void)
{
  char *src = fixture ("unet_ddpm_small", "diffusion_pytorch_model.safetensors");
  char *meta = metadata_with_config ("unet_ddpm_small", "UNet2DModel");
  char *path = g_build_filename (tmpdir, "broken.safetensors", NULL);

  drop_target = "mid_block.attentions.0.to_k.weight";
  write_variant (src, path, AS_F32, drop_one, meta, NULL);
  expect_error (path, GE_ERROR, GE_ERROR_NOT_FOUND, drop_target);

  write_variant (src, path, AS_F32, NULL, meta, "up_blocks.1.resnets.2.conv1.weight");
  expect_error (path, GE_ERROR, GE_ERROR_SHAPE, "up_blocks.1.resnets.2.conv1.weight");

  /* A weights file without our metadata is not mistaken for a model. */
  write_variant (src, path, AS_F32, NULL, NULL, NULL);
  expect_error (path, GE_ERROR, GE_ERROR_UNSUPPORTED, "config");

  /* Unknown architecture and unsupported block types are refused by name. */
  char *bad = metadata_with_config ("unet_ddpm_small", "UNet3DConditionModel");
  write_variant (src, path, AS_F32, NULL, bad, NULL);
  expect_error (path, GE_ERROR, GE_ERROR_UNSUPPORTED, "UNet3DConditionModel");
  g_free (bad);
  char *m2 = metadata_with_config ("unet_ddpm_small", "UNet2DModel");
  char *hit = strstr (m2, "AttnDownBlock2D");
  g_assert_nonnull (hit);
  memcpy (hit, "SkipDownBlock2D", 15);
  write_variant (src, path, AS_F32, NULL, m2, NULL);
  expect_error (path, GE_ERROR, GE_ERROR_UNSUPPORTED, "SkipDownBlock2D");
  g_free (m2);

  /* Missing files and folders. */
  char *missing = g_build_filename (tmpdir, "nope.safetensors", NULL);
  expect_error (missing, GE_ERROR, GE_ERROR_NOT_FOUND, NULL);
  expect_error (tmpdir, GE_ERROR, GE_ERROR_NOT_FOUND, "config.json");
  g_free (missing);

  /* An input size the U-Net cannot halve twice. */
  char *dir = g_build_filename (fixtures, "diffusers", "unet_ddpm_small", NULL);
  GeModelFile *mf = ge_model_file_open (dir, NULL);
  GeUNet2D *u = ge_unet2d_new (mf, NULL);
  float x[3 * 30 * 30] = { 0 }, out[3 * 30 * 30], t = 1;
  GError *err = NULL;
  g_assert_false (ge_unet2d_forward (u, x, 1, 30, 30, &t, out, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_SHAPE);
  g_clear_error (&err);
  /* A UNet file is not a VAE. */
  g_assert_null (ge_vae_new (mf, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_UNSUPPORTED);
  g_error_free (err);
  ge_unet2d_free (u);
  ge_model_file_unref (mf);
  g_free (dir);
  g_remove (path);
  g_free (path);
  g_free (meta);
  g_free (src);
}

/* ---- UNet2DConditionModel ---------------------------------------------- */

#define COND "unet_cond_sd_small"

/* The fixture's call1 (timesteps 999 and 37) on the conditional U-Net at
 * @path with @labels; the output, or NULL and @error. */
static float *
run_cond (const char *path, int threads, const float *labels, guint * allocs_second_run,
    GError ** error)
{
  GeModelFile *mf = ge_model_file_open (path, error);
  if (!mf)
    return NULL;
  GeUNet2D *u = ge_unet2d_new (mf, error);
  ge_model_file_unref (mf);
  if (!u)
    return NULL;
  g_assert_cmpint (ge_unet2d_cross_attention_dim (u), ==, 32);
  ge_unet2d_set_n_threads (u, threads);
  gsize n;
  float *x = load_f32 (COND, "input.sample", &n);
  float *ehs = load_f32 (COND, "input.encoder_hidden_states", NULL);
  float t[2] = { 999, 37 };
  float *out = g_new (float, n);
  gboolean ok = ge_unet2d_forward_cond (u, x, 2, 16, 16, t, ehs, 7, labels, out, error);
  if (ok && allocs_second_run) {
    float *again = g_new (float, n);
    ok = ge_unet2d_forward_cond (u, x, 2, 16, 16, t, ehs, 7, labels, again, error);
    *allocs_second_run = ge_unet2d_n_allocs (u);
    g_assert_cmpmem (again, n * 4, out, n * 4);
    g_free (again);
  }
  ge_unet2d_free (u);
  g_free (x);
  g_free (ehs);
  if (!ok)
    g_clear_pointer (&out, g_free);
  return out;
}

static void
test_cond_steady_state (void)
{
  char *dir = g_build_filename (fixtures, "diffusers", COND, NULL);
  gsize n;
  float *ref = load_f32 (COND, "call1.out", &n);
  for (int threads = 1; threads <= 2; threads++) {
    guint allocs = 99;
    float *out = run_cond (dir, threads, NULL, &allocs, NULL);
    g_assert_nonnull (out);
    g_assert_cmpuint (allocs, ==, 0);
    g_assert_cmpfloat (rel_err (out, ref, n), <, 1e-5);
    g_free (out);
  }
  g_free (ref);
  g_free (dir);
}

/* The fixture's config as metadata with each @from replaced by @to (both
 * as they appear in config.json, quotes unescaped). */
static char *
cond_meta (const char *from, const char *to)
{
  char *m = metadata_with_config (COND, "UNet2DConditionModel");
  if (!from)
    return m;
  GString *f = g_string_new (NULL), *t = g_string_new (NULL);
  for (const char *c = from; *c; c++)
    g_string_append_printf (f, *c == '"' ? "\\%c" : "%c", *c);
  for (const char *c = to; *c; c++)
    g_string_append_printf (t, *c == '"' ? "\\%c" : "%c", *c);
  g_assert_nonnull (strstr (m, f->str));
  char **parts = g_strsplit (m, f->str, -1);
  char *r = g_strjoinv (t->str, parts);
  g_strfreev (parts);
  g_free (m);
  g_string_free (f, TRUE);
  g_string_free (t, TRUE);
  return r;
}

/* nn.Linear on the tokens after the group norm is the 1x1 conv on NCHW:
 * with use_linear_projection (SD 2.x) and the same weights as [out, in]
 * matrices, diffusers computes the same function, so call1.out holds. */

static void
test_cond_linear_projection (void)
{
  char *src = fixture (COND, "diffusion_pytorch_model.safetensors");
  char *meta = cond_meta ("\"use_linear_projection\": false", "\"use_linear_projection\": true");
  char *path = g_build_filename (tmpdir, "cond-linear.safetensors", NULL);
  squeeze_proj = TRUE;          /* proj_in/proj_out [out, in, 1, 1] -> [out, in] */
  write_variant (src, path, AS_F32, NULL, meta, NULL);
  squeeze_proj = FALSE;
  gsize n;
  float *ref = load_f32 (COND, "call1.out", &n);
  GError *err = NULL;
  float *out = run_cond (path, 1, NULL, NULL, &err);
  g_assert_no_error (err);
  g_assert_cmpfloat (rel_err (out, ref, n), <, 1e-5);
  g_free (out);
  g_free (meta);

  /* Keys with defaults may be absent (hub configs often lack the newer
   * ones): transformer_layers_per_block 1, only_cross_attention false. */
  meta = cond_meta ("\"transformer_layers_per_block\": 1,", "");
  char *key = strstr (meta, "only_cross_attention");
  g_assert_nonnull (key);
  key[0] = 'O';                 /* an unknown key, ignored as diffusers does */
  write_variant (src, path, AS_F32, NULL, meta, NULL);
  out = run_cond (path, 1, NULL, NULL, &err);
  g_assert_no_error (err);
  g_assert_cmpfloat (rel_err (out, ref, n), <, 1e-5);
  g_free (out);

  g_free (ref);
  g_remove (path);
  g_free (path);
  g_free (meta);
  g_free (src);
}

/* num_class_embeds with class_embed_type null (the x4 upscaler): label k
 * adds row k of class_embedding.weight to the time embedding.  With row 3
 * zero, labels 3 give the fixture's output; another row changes only its
 * own sample. */
static void
test_cond_class_embedding (void)
{
  char *src = fixture (COND, "diffusion_pytorch_model.safetensors");
  char *meta = cond_meta ("\"num_class_embeds\": null", "\"num_class_embeds\": 10");
  char *path = g_build_filename (tmpdir, "cond-class.safetensors", NULL);
  extra_table = "class_embedding.weight";
  extra_rows = 10;
  extra_cols = 128;
  extra_zero_row = 3;
  write_variant (src, path, AS_F32, NULL, meta, NULL);
  extra_table = NULL;
  gsize n;
  float *ref = load_f32 (COND, "call1.out", &n);
  const gsize half = n / 2;
  float three[2] = { 3, 3 }, mixed[2] = { 4, 3 };
  GError *err = NULL;
  float *out = run_cond (path, 1, three, NULL, &err);
  g_assert_no_error (err);
  g_assert_cmpfloat (rel_err (out, ref, n), <, 1e-5);
  g_free (out);
  out = run_cond (path, 1, mixed, NULL, &err);
  g_assert_no_error (err);
  g_assert_cmpfloat (rel_err (out, ref, half), >, 1e-2);
  g_assert_cmpfloat (rel_err (out + half, ref + half, half), <, 1e-5);
  g_free (out);
  float bad[3][2] = { { 10, 3 }, { 2.5f, 3 }, { -1, 3 } };
  for (int i = 0; i < 4; i++) {
    g_assert_null (run_cond (path, 1, i < 3 ? bad[i] : NULL, NULL, &err));
    g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
    g_clear_error (&err);
  }
  g_free (ref);
  g_remove (path);
  g_free (path);
  g_free (meta);
  g_free (src);
}

static void
expect_cond_error (const char *from, const char *to, int code, const char *must_contain)
{
  char *src = fixture (COND, "diffusion_pytorch_model.safetensors");
  char *meta = cond_meta (from, to);
  char *path = g_build_filename (tmpdir, "cond-bad.safetensors", NULL);
  write_variant (src, path, AS_F32, NULL, meta, NULL);
  GError *err = NULL;
  g_assert_null (run_cond (path, 1, NULL, NULL, &err));
  g_assert_error (err, GE_ERROR, code);
  g_assert_nonnull (strstr (err->message, path));
  if (!strstr (err->message, must_contain)) {
    g_printerr ("message \"%s\" lacks \"%s\"\n", err->message, must_contain);
    g_assert_not_reached ();
  }
  g_error_free (err);
  g_remove (path);
  g_free (path);
  g_free (meta);
  g_free (src);
}

static void
test_cond_errors (void)
{
  const int U = GE_ERROR_UNSUPPORTED;
  expect_cond_error ("\"dual_cross_attention\": false", "\"dual_cross_attention\": true", U,
      "dual_cross_attention");
  expect_cond_error ("\"addition_embed_type\": null", "\"addition_embed_type\": \"text_time\"",
      U, "addition_embed_type");
  expect_cond_error ("\"num_attention_heads\": null", "\"num_attention_heads\": 8", U,
      "num_attention_heads");
  expect_cond_error ("\"class_embed_type\": null", "\"class_embed_type\": \"projection\"", U,
      "class_embed_type");
  expect_cond_error ("\"mid_block_type\": \"UNetMidBlock2DCrossAttn\"",
      "\"mid_block_type\": \"UNetMidBlock2DSimpleCrossAttn\"", U, "UNetMidBlock2DSimpleCrossAttn");
  expect_cond_error ("\"DownBlock2D\"", "\"SimpleCrossAttnDownBlock2D\"", U,
      "SimpleCrossAttnDownBlock2D");
  expect_cond_error ("\"attention_type\": \"default\"", "\"attention_type\": \"gated\"", U,
      "attention_type");
  /* Per-block lists must have one entry per block. */
  expect_cond_error ("\"attention_head_dim\": 8", "\"attention_head_dim\": [8, 8]", GE_ERROR_CORRUPT,
      "attention_head_dim");
  expect_cond_error ("\"cross_attention_dim\": 32", "\"cross_attention_dim\": 48", GE_ERROR_SHAPE,
      "attn2.to_k.weight");
  /* The x4 upscaler's class embedding needs its table. */
  expect_cond_error ("\"num_class_embeds\": null", "\"num_class_embeds\": 10", GE_ERROR_NOT_FOUND,
      "class_embedding.weight");

  /* The wrong forward for each class. */
  char *dir = g_build_filename (fixtures, "diffusers", COND, NULL);
  GeModelFile *mf = ge_model_file_open (dir, NULL);
  GeUNet2D *u = ge_unet2d_new (mf, NULL);
  ge_model_file_unref (mf);
  g_free (dir);
  float *x = g_new0 (float, 4 * 16 * 16), *out = g_new (float, 4 * 16 * 16), t = 1;
  float ehs[7 * 32] = { 0 };
  GError *err = NULL;
  g_assert_false (ge_unet2d_has_class_embedding (u));
  g_assert_false (ge_unet2d_forward (u, x, 1, 16, 16, &t, out, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (ge_unet2d_forward_cond (u, x, 1, 16, 16, &t, NULL, 7, NULL, out, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  g_assert_false (ge_unet2d_forward_cond (u, x, 1, 10, 16, &t, ehs, 7, NULL, out, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_SHAPE);
  g_clear_error (&err);
  ge_unet2d_free (u);
  dir = g_build_filename (fixtures, "diffusers", "unet_ddpm_small", NULL);
  mf = ge_model_file_open (dir, NULL);
  u = ge_unet2d_new (mf, NULL);
  ge_model_file_unref (mf);
  g_assert_cmpint (ge_unet2d_cross_attention_dim (u), ==, 0);
  g_assert_false (ge_unet2d_forward_cond (u, x, 1, 32, 32, &t, ehs, 7, NULL, out, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  ge_unet2d_free (u);
  g_free (dir);
  g_free (x);
  g_free (out);
}

/* The VAE at a size that is not a multiple of its factor: pad (0,1,0,1)
 * then a stride-2 conv gives floor(s / 2), decode returns factor * latent. */
static void
test_vae_odd_size (void)
{
  char *dir = g_build_filename (fixtures, "diffusers", "vae_kl_small", NULL);
  GeModelFile *mf = ge_model_file_open (dir, NULL);
  GeVae *v = ge_vae_new (mf, NULL);
  g_assert_nonnull (v);
  ge_model_file_unref (mf);
  g_assert_cmpint (ge_vae_downsample_factor (v), ==, 2);
  int lh, lw;
  ge_vae_latent_size (v, 33, 17, &lh, &lw);
  g_assert_cmpint (lh, ==, 16);
  g_assert_cmpint (lw, ==, 8);
  ge_vae_latent_size (v, 1, 8, &lh, &lw);
  g_assert_cmpint (lh, ==, 0);
  ge_vae_latent_size (v, 33, 17, &lh, &lw);
  float *x = g_new0 (float, 3 * 33 * 17), *m = g_new (float, 4 * lh * lw);
  float *lv = g_new (float, 4 * lh * lw), *o = g_new (float, 3 * lh * 2 * lw * 2);
  g_assert_true (ge_vae_encode (v, x, 1, 33, 17, m, lv, NULL));
  g_assert_true (ge_vae_decode (v, m, 1, lh, lw, FALSE, o, NULL));
  for (int i = 0; i < 3 * lh * 2 * lw * 2; i++)
    g_assert_true (isfinite (o[i]));
  GError *err = NULL;
  g_assert_false (ge_vae_quantize (v, m, 1, lh, lw, m, NULL, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_error_free (err);
  g_free (x);
  g_free (m);
  g_free (lv);
  g_free (o);
  ge_vae_free (v);
  g_free (dir);
}

/* AutoencoderTiny (taesd_small): the GeVae accessors, ceil sizes at odd
 * inputs, logvar left alone, steady-state runs allocate nothing, the 8-bit
 * latent storage, and configs the engine refuses. */
static GeVae *
open_tiny (const char *from, const char *to, GError ** error)
{
  char *dir = g_build_filename (fixtures, "diffusers", "taesd_small", NULL);
  if (from) {
    /* A copy of the case with one config string replaced. */
    char *cfg_path = fixture ("taesd_small", "config.json"), *cfg, *w;
    gsize wn;
    g_assert_true (g_file_get_contents (cfg_path, &cfg, NULL, NULL));
    char *wpath = fixture ("taesd_small", "diffusion_pytorch_model.safetensors");
    g_assert_true (g_file_get_contents (wpath, &w, &wn, NULL));
    g_assert_nonnull (strstr (cfg, from));
    GString *s = g_string_new (cfg);
    g_string_replace (s, from, to, 1);
    g_free (dir);
    dir = g_build_filename (tmpdir, "tiny", NULL);
    g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
    char *p1 = g_build_filename (dir, "config.json", NULL);
    char *p2 = g_build_filename (dir, "diffusion_pytorch_model.safetensors", NULL);
    g_assert_true (g_file_set_contents (p1, s->str, s->len, NULL));
    g_assert_true (g_file_set_contents (p2, w, wn, NULL));
    g_free (p1);
    g_free (p2);
    g_string_free (s, TRUE);
    g_free (cfg);
    g_free (w);
    g_free (cfg_path);
    g_free (wpath);
  }
  GeModelFile *mf = ge_model_file_open (dir, error);
  GeVae *v = mf ? ge_vae_new (mf, error) : NULL;
  if (mf)
    ge_model_file_unref (mf);
  g_free (dir);
  return v;
}

static void
test_vae_tiny (void)
{
  GeVae *v = open_tiny (NULL, NULL, NULL);
  g_assert_nonnull (v);
  g_assert_true (ge_vae_is_tiny (v));
  g_assert_false (ge_vae_is_vq (v));
  g_assert_false (ge_vae_has_distribution (v));
  g_assert_cmpint (ge_vae_downsample_factor (v), ==, 8);
  g_assert_cmpint (ge_vae_latent_channels (v), ==, 4);
  g_assert_cmpfloat (ge_vae_scaling_factor (v), ==, 1.0);
  g_assert_cmpfloat (ge_vae_shift_factor (v), ==, 0.0);
  int lh, lw;
  /* 3x3 stride-2 convs with padding 1: ceil (s / 2) per level. */
  ge_vae_latent_size (v, 33, 17, &lh, &lw);
  g_assert_cmpint (lh, ==, 5);
  g_assert_cmpint (lw, ==, 3);

  const int n = 1, h = 33, w = 17;
  float *x = g_new (float, 3 * h * w), *m = g_new (float, 4 * lh * lw);
  float *lv = g_new (float, 4 * lh * lw), *o = g_new (float, 3 * lh * 8 * lw * 8);
  for (int i = 0; i < 3 * h * w; i++)
    x[i] = sinf (0.37f * i);
  for (int i = 0; i < 4 * lh * lw; i++)
    lv[i] = 42.0f;
  guint allocs = 0;
  for (int run = 0; run < 3; run++) {
    g_assert_true (ge_vae_encode (v, x, n, h, w, m, lv, NULL));
    g_assert_true (ge_vae_decode (v, m, n, lh, lw, FALSE, o, NULL));
    if (run == 1)
      allocs = ge_vae_n_system_allocs (v);
    if (run == 2)
      g_assert_cmpuint (ge_vae_n_system_allocs (v), ==, allocs);
  }
  for (int i = 0; i < 4 * lh * lw; i++)
    g_assert_cmpfloat (lv[i], ==, 42.0f);
  for (int i = 0; i < 3 * lh * 8 * lw * 8; i++)
    g_assert_true (isfinite (o[i]));

  /* 8-bit storage: the ends clamp, the middle rounds half to even, and
   * the way back is (q / 255 - 0.5) * 6. */
  const float z[] = { -100.0f, 100.0f, 0.0f, NAN, 3.0f * (1.0f / 255.0f) };
  guint8 q[G_N_ELEMENTS (z)];
  float back[G_N_ELEMENTS (z)];
  g_assert_true (ge_vae_latents_to_u8 (v, z, G_N_ELEMENTS (z), q, NULL));
  g_assert_cmpuint (q[0], ==, 0);
  g_assert_cmpuint (q[1], ==, 255);
  g_assert_cmpuint (q[2], ==, 128);     /* 127.5 -> 128 */
  g_assert_cmpuint (q[3], ==, 0);
  g_assert_true (ge_vae_latents_from_u8 (v, q, G_N_ELEMENTS (z), back, NULL));
  g_assert_cmpfloat (back[0], ==, -3.0f);
  g_assert_cmpfloat (back[1], ==, 3.0f);

  GError *err = NULL;
  g_assert_false (ge_vae_quantize (v, m, 1, lh, lw, m, NULL, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  g_free (x);
  g_free (m);
  g_free (lv);
  g_free (o);
  ge_vae_free (v);

  /* An AutoencoderKL has no 8-bit storage. */
  char *dir = g_build_filename (fixtures, "diffusers", "vae_kl_small", NULL);
  GeModelFile *mf = ge_model_file_open (dir, NULL);
  v = ge_vae_new (mf, NULL);
  ge_model_file_unref (mf);
  g_assert_true (ge_vae_has_distribution (v));
  g_assert_false (ge_vae_is_tiny (v));
  g_assert_false (ge_vae_latents_to_u8 (v, z, 1, q, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  ge_vae_free (v);
  g_free (dir);

  /* Configs diffusers would build but the engine does not run. */
  static const char *const refused[][3] = {
    { "\"act_fn\": \"relu\"", "\"act_fn\": \"silu\"", "act_fn" },
    { "\"upsample_fn\": \"nearest\"", "\"upsample_fn\": \"bilinear\"", "upsample_fn" },
    { "\"upsampling_scaling_factor\": 2", "\"upsampling_scaling_factor\": 3", "upsamples" },
    { "\"num_decoder_blocks\": [\n    2,", "\"num_decoder_blocks\": [\n", "num_decoder_blocks" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (refused); i++) {
    g_assert_null (open_tiny (refused[i][0], refused[i][1], &err));
    g_assert_error (err, GE_ERROR, GE_ERROR_UNSUPPORTED);
    if (!strstr (err->message, refused[i][2]) || !strstr (err->message, tmpdir)) {
      g_printerr ("message \"%s\" lacks \"%s\"\n", err->message, refused[i][2]);
      g_assert_not_reached ();
    }
    g_clear_error (&err);
  }
  char *tdir = g_build_filename (tmpdir, "tiny", NULL);
  char *p1 = g_build_filename (tdir, "config.json", NULL);
  char *p2 = g_build_filename (tdir, "diffusion_pytorch_model.safetensors", NULL);
  g_remove (p1);
  g_remove (p2);
  g_rmdir (tdir);
  g_free (p1);
  g_free (p2);
  g_free (tdir);
}

/* The fixture VAE's encode (mean) of input.sample and decode of input.z on
 * the model at @dir; both g_malloc'd. */
static void
run_vae (const char *dir, float **mean, float **dec)
{
  GeModelFile *mf = ge_model_file_open (dir, NULL);
  g_assert_nonnull (mf);
  GeVae *v = ge_vae_new (mf, NULL);
  g_assert_nonnull (v);
  ge_model_file_unref (mf);
  ge_vae_set_n_threads (v, 2);
  gsize nx, nz;
  float *x = load_f32 ("vae_kl_small", "input.sample", &nx);
  float *z = load_f32 ("vae_kl_small", "input.z", &nz);
  *mean = g_new (float, nz);
  float *lv = g_new (float, nz);
  *dec = g_new (float, nx);
  g_assert_true (ge_vae_encode (v, x, 2, 32, 24, *mean, lv, NULL));
  g_assert_true (ge_vae_decode (v, z, 2, 16, 12, FALSE, *dec, NULL));
  g_free (lv);
  g_free (x);
  g_free (z);
  ge_vae_free (v);
}

/* A diffusers folder in tmpdir/@name: the fixture's config.json and
 * weights written as @conv; with @rounded, F32 holding the 16-bit values
 * of @conv (the same numbers as F32 weights). */
static char *
write_folder (const char *case_name, const char *name, Conv conv, gboolean rounded)
{
  char *dir = g_build_filename (tmpdir, name, NULL);
  g_mkdir (dir, 0755);
  char *src = fixture (case_name, "diffusion_pytorch_model.safetensors");
  char *dst = g_build_filename (dir, "diffusion_pytorch_model.safetensors", NULL);
  write_variant (src, dst, conv, NULL, NULL, NULL);
  if (rounded) {                /* read back exactly, written as F32 */
    char *tmp = g_strconcat (dst, ".16", NULL);
    g_rename (dst, tmp);
    write_variant (tmp, dst, AS_F32, NULL, NULL, NULL);
    g_unlink (tmp);
    g_free (tmp);
  }
  char *cfg = fixture (case_name, "config.json"), *text;
  gsize len;
  g_assert_true (g_file_get_contents (cfg, &text, &len, NULL));
  char *cdst = g_build_filename (dir, "config.json", NULL);
  g_assert_true (g_file_set_contents (cdst, text, len, NULL));
  g_free (cdst);
  g_free (text);
  g_free (cfg);
  g_free (dst);
  g_free (src);
  return dir;
}

static void
remove_folder (char *dir)
{
  char *a = g_build_filename (dir, "diffusion_pytorch_model.safetensors", NULL);
  char *b = g_build_filename (dir, "config.json", NULL);
  g_unlink (a);
  g_unlink (b);
  g_rmdir (dir);
  g_free (a);
  g_free (b);
  g_free (dir);
}

/* F16 and BF16 models run with their weights in place (converted as the
 * kernels pack them) must give what the same numbers as F32 weights give:
 * the convs bitwise, the linear layers (time embedding) to rounding, as
 * OpenBLAS sums in another order.  The error of the 16-bit models against
 * the f32 fixture outputs is the file's own precision loss, reported. */
static void
test_models_16bit_in_place (void)
{
  const Conv convs[] = { AS_F16, AS_BF16 };
  gsize n;
  float *uref = load_f32 ("unet_ddpm_small", "call1.out", &n);
  float *mref = load_f32 ("vae_kl_small", "encode.mean", NULL);
  float *dref = load_f32 ("vae_kl_small", "decode_z.sample", NULL);
  gsize nm = 2 * 4 * 16 * 12, nd = 2 * 3 * 32 * 24;
  for (guint i = 0; i < G_N_ELEMENTS (convs); i++) {
    const char *tag = convs[i] == AS_F16 ? "f16" : "bf16";
    char *n16 = g_strdup_printf ("unet-%s", tag), *nq = g_strdup_printf ("unet-%s-f32", tag);
    char *d16 = write_folder ("unet_ddpm_small", n16, convs[i], FALSE);
    char *dq = write_folder ("unet_ddpm_small", nq, convs[i], TRUE);
    float *o16 = run_unet (d16, 2, NULL, NULL), *oq = run_unet (dq, 2, NULL, NULL);
    double e = rel_err (o16, oq, n);
    g_test_message ("UNet %s in place vs as f32: %.3e; %s vs the f32 fixture: %.3e", tag, e,
        tag, rel_err (o16, uref, n));
    g_assert_cmpfloat (e, <=, 1e-6);
    g_free (o16);
    g_free (oq);
    remove_folder (d16);
    remove_folder (dq);
    g_free (n16);
    g_free (nq);

    n16 = g_strdup_printf ("vae-%s", tag);
    nq = g_strdup_printf ("vae-%s-f32", tag);
    d16 = write_folder ("vae_kl_small", n16, convs[i], FALSE);
    dq = write_folder ("vae_kl_small", nq, convs[i], TRUE);
    float *m16, *dec16, *mq, *decq;
    run_vae (d16, &m16, &dec16);
    run_vae (dq, &mq, &decq);
    double em = rel_err (m16, mq, nm), ed = rel_err (dec16, decq, nd);
    g_test_message ("VAE %s in place vs as f32: encode %.3e decode %.3e; vs the f32 fixture: "
        "encode %.3e decode %.3e", tag, em, ed, rel_err (m16, mref, nm), rel_err (dec16, dref, nd));
    g_assert_cmpfloat (em, <=, 1e-6);
    g_assert_cmpfloat (ed, <=, 1e-6);
    g_free (m16);
    g_free (dec16);
    g_free (mq);
    g_free (decq);
    remove_folder (d16);
    remove_folder (dq);
    g_free (n16);
    g_free (nq);
  }
  g_free (uref);
  g_free (mref);
  g_free (dref);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  fixtures = g_test_build_filename (G_TEST_DIST, "..", "fixtures", NULL);
  tmpdir = g_dir_make_tmp ("ge-test-models-XXXXXX", NULL);
  g_test_add_func ("/unet/steady-state", test_unet_steady_state);
  g_test_add_func ("/unet/single-file-dtypes", test_unet_single_file_and_dtypes);
  g_test_add_func ("/unet/bf16-copy-on-demand", test_unet_bf16_copy_on_demand);
  g_test_add_func ("/unet/bf16-copy-f16-weights", test_unet_bf16_copy_f16_weights);
  g_test_add_func ("/unet/int8", test_unet_int8);
  g_test_add_func ("/config/huge-integers", test_config_huge_integers);
  g_test_add_func ("/unet/legacy-names", test_unet_legacy_names);
  g_test_add_func ("/unet/errors", test_unet_errors);
  g_test_add_func ("/unet-cond/steady-state", test_cond_steady_state);
  g_test_add_func ("/unet-cond/linear-projection", test_cond_linear_projection);
  g_test_add_func ("/unet-cond/class-embedding", test_cond_class_embedding);
  g_test_add_func ("/unet-cond/errors", test_cond_errors);
  g_test_add_func ("/vae/odd-size", test_vae_odd_size);
  g_test_add_func ("/vae/tiny", test_vae_tiny);

  g_test_add_func ("/models/16-bit-in-place", test_models_16bit_in_place);
  int r = g_test_run ();
  g_rmdir (tmpdir);
  g_free (tmpdir);
  g_free (fixtures);
  return r;
}
