/* test-sr: the super-resolution task against PyTorch goldens made from the
 * training code's own definitions with the engine's noise
 * (tests/golden/make_sr_golden.py), plus determinism, planned memory,
 * tiling, strides and errors. */
#include "ge-safetensors.h"
#include "ge-sr.h"

#include <stdlib.h>
#include <string.h>

static char *
path_of (const char *a, const char *b, const char *c)
{
  return g_test_build_filename (G_TEST_DIST, "..", a, b, c, NULL);
}

typedef struct {
  GeSafetensors *st;
  guint8 *lr, *ref;
  int w, h, s;
} Golden;

static void
golden_load (Golden * g, const char *name)
{
  char *p = path_of ("golden", "sr", name);
  g->st = ge_safetensors_open (p, NULL);
  g_assert_nonnull (g->st);
  const GeStTensor *lr = ge_safetensors_find (g->st, "lr"), *out = ge_safetensors_find (g->st, "out");
  g_assert_true (lr && out && lr->dtype == GE_DTYPE_U8 && out->dtype == GE_DTYPE_U8);
  g->h = (int) lr->shape[0];
  g->w = (int) lr->shape[1];
  g->s = (int) (out->shape[0] / lr->shape[0]);
  g->lr = (guint8 *) lr->data;
  g->ref = (guint8 *) out->data;
  g_free (p);
}

static GeSr *
model (const char *name)
{
  char *p = path_of ("elements", "models", name);
  GError *err = NULL;
  GeSr *sr = ge_sr_new (p, &err);
  g_assert_no_error (err);
  g_free (p);
  return sr;
}

static guint8 *
run (GeSr * sr, const guint8 * rgb, int w, int h, int s)
{
  GeImageU8 in = { (guint8 *) rgb, w, h, w * 3, 3, 0, 1, 2, -1 };
  guint8 *o = g_malloc (w * s * h * s * 3);
  GeImageU8 out = { o, w * s, h * s, w * s * 3, 3, 0, 1, 2, -1 };
  GError *err = NULL;
  g_assert_true (ge_sr_process (sr, &in, &out, &err));
  g_assert_no_error (err);
  return o;
}

/* The engine reproduces the PyTorch reference up to rounding: no byte
 * more than 1 apart, and those only where the float result sits on a .5. */
static void
test_golden (gconstpointer data)
{
  const char *name = data;
  Golden g;
  golden_load (&g, name);
  GeSr *sr = model (name);
  ge_sr_set_seed (sr, 7);
  g_assert_cmpint (ge_sr_scale (sr), ==, g.s);
  guint8 *o = run (sr, g.lr, g.w, g.h, g.s);
  gsize n = (gsize) g.w * g.s * g.h * g.s * 3, off = 0;
  int maxd = 0;
  for (gsize i = 0; i < n; i++) {
    int d = abs (o[i] - g.ref[i]);
    maxd = MAX (maxd, d);
    off += d != 0;
  }
  g_test_message ("%s: max diff %d, %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " differ", name,
      maxd, off, n);
  g_assert_cmpint (maxd, <=, 1);
  g_assert_cmpuint (off, <=, n / 100);
  g_free (o);
  ge_sr_free (sr);
  ge_safetensors_free (g.st);
}

static void
test_determinism_and_memory (void)
{
  Golden g;
  golden_load (&g, "diffusionsr-x2.safetensors");
  GeSr *a = model ("diffusionsr-x2.safetensors"), *b = model ("diffusionsr-x2.safetensors");
  ge_sr_set_n_threads (b, 3);
  guint8 *o1 = run (a, g.lr, g.w, g.h, 2);
  guint8 *o2 = run (a, g.lr, g.w, g.h, 2);
  g_assert_cmpuint (ge_sr_n_allocs (a), ==, 0);       /* second frame: planned */
  guint8 *o3 = run (b, g.lr, g.w, g.h, 2);
  gsize n = (gsize) g.w * 2 * g.h * 2 * 3;
  g_assert_cmpmem (o1, n, o2, n);
  g_assert_cmpmem (o1, n, o3, n);      /* thread count does not change bytes */
  ge_sr_set_seed (a, 1);
  guint8 *o4 = run (a, g.lr, g.w, g.h, 2);
  g_assert_true (memcmp (o1, o4, n) != 0);
  g_free (o1);
  g_free (o2);
  g_free (o3);
  g_free (o4);
  ge_sr_free (a);
  ge_sr_free (b);
  ge_safetensors_free (g.st);
}

/* Padded strides and a 4-byte layout give the same picture. */
static void
test_strides (void)
{
  Golden g;
  golden_load (&g, "diffusionsr-x2.safetensors");
  GeSr *sr = model ("diffusionsr-x2.safetensors");
  guint8 *tight = run (sr, g.lr, g.w, g.h, 2);
  const int is = g.w * 4 + 12, os = g.w * 2 * 4 + 20;
  guint8 *in = g_malloc0 (is * g.h), *out = g_malloc0 (os * g.h * 2);
  for (int y = 0; y < g.h; y++)
    for (int x = 0; x < g.w; x++)
      for (int c = 0; c < 3; c++)       /* BGRx */
        in[y * is + x * 4 + 2 - c] = g.lr[(y * g.w + x) * 3 + c];
  GeImageU8 i = { in, g.w, g.h, is, 4, 2, 1, 0, -1 };
  GeImageU8 o = { out, g.w * 2, g.h * 2, os, 4, 2, 1, 0, -1 };
  g_assert_true (ge_sr_process (sr, &i, &o, NULL));
  for (int y = 0; y < g.h * 2; y++) {
    for (int x = 0; x < g.w * 2; x++) {
      for (int c = 0; c < 3; c++)
        g_assert_cmpint (out[y * os + x * 4 + 2 - c], ==, tight[(y * g.w * 2 + x) * 3 + c]);
      g_assert_cmpint (out[y * os + x * 4 + 3], ==, 0);        /* x: not ours */
    }
    for (int x = g.w * 2 * 4; x < os; x++)
      g_assert_cmpint (out[y * os + x], ==, 0);       /* the row's padding */
  }
  g_free (in);
  g_free (out);
  g_free (tight);
  ge_sr_free (sr);
  ge_safetensors_free (g.st);
}

static void
test_errors (void)
{
  GError *err = NULL;
  char *p = path_of ("elements", "models", "wrong-architecture.safetensors");
  g_assert_null (ge_sr_new (p, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (err->message, p));
  g_clear_error (&err);
  g_free (p);
  p = path_of ("elements", "models", "truncated.safetensors");
  g_assert_null (ge_sr_new (p, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_CORRUPT);
  g_clear_error (&err);
  g_free (p);

  GeSr *sr = model ("diffusionsr-x2.safetensors");
  guint8 buf[16 * 16 * 3] = { 0 }, big[64 * 64 * 3];
  GeImageU8 small = { buf, 4, 4, 12, 3, 0, 1, 2, -1 };
  GeImageU8 o = { big, 8, 8, 24, 3, 0, 1, 2, -1 };
  g_assert_false (ge_sr_process (sr, &small, &o, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_SHAPE);
  g_clear_error (&err);
  GeImageU8 in = { buf, 16, 16, 48, 3, 0, 1, 2, -1 };
  GeImageU8 wrong = { big, 30, 32, 90, 3, 0, 1, 2, -1 };
  g_assert_false (ge_sr_process (sr, &in, &wrong, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_SHAPE);
  g_clear_error (&err);
  ge_sr_free (sr);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_data_func ("/sr/golden-x2", "diffusionsr-x2.safetensors", test_golden);
  g_test_add_data_func ("/sr/golden-x4", "diffusionsr-x4.safetensors", test_golden);
  g_test_add_func ("/sr/determinism-memory", test_determinism_and_memory);
  g_test_add_func ("/sr/strides", test_strides);
  g_test_add_func ("/sr/errors", test_errors);
  return g_test_run ();
}
