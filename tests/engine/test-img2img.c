/* test-img2img: the image-to-image task against PyTorch goldens made from
 * the header's description with the engine's noise
 * (tests/golden/make_img2img_golden.py), at full and SDEdit strength, for a
 * colorization and an RGB model; plus determinism, planned memory,
 * tiling, strides, alpha and errors. */
#include "ge-img2img.h"
#include "ge-safetensors.h"

#include <stdlib.h>
#include <string.h>

static char *
path_of (const char *a, const char *b, const char *c)
{
  return g_test_build_filename (G_TEST_DIST, "..", a, b, c, NULL);
}

typedef struct {
  GeSafetensors *st;
  const guint8 *image, *out, *out_sdedit;
  int w, h;
} Golden;

static void
golden_load (Golden * g, const char *name)
{
  char *p = path_of ("golden", "img2img", name);
  g->st = ge_safetensors_open (p, NULL);
  g_assert_nonnull (g->st);
  const GeStTensor *im = ge_safetensors_find (g->st, "image");
  g->h = (int) im->shape[0];
  g->w = (int) im->shape[1];
  g->image = im->data;
  g->out = ge_safetensors_find (g->st, "out")->data;
  g->out_sdedit = ge_safetensors_find (g->st, "out_sdedit")->data;
  g_free (p);
}

static GeImg2Img *
model (const char *name)
{
  char *p = path_of ("elements", "models", name);
  GError *err = NULL;
  GeImg2Img *t = ge_img2img_new (p, &err);
  g_assert_no_error (err);
  g_free (p);
  return t;
}

static guint8 *
run (GeImg2Img * t, const guint8 * rgb, int w, int h)
{
  GeImageU8 in = { (guint8 *) rgb, w, h, w * 3, 3, 0, 1, 2, -1 };
  guint8 *o = g_malloc ((gsize) w * h * 3);
  GeImageU8 out = { o, w, h, w * 3, 3, 0, 1, 2, -1 };
  GError *err = NULL;
  g_assert_true (ge_img2img_process (t, &in, &out, &err));
  g_assert_no_error (err);
  return o;
}

/* No byte more than 1 apart (float rounding at .5), and those rare. */
static void
compare (const guint8 * o, const guint8 * ref, gsize n, const char *what)
{
  int maxd = 0;
  gsize off = 0;
  for (gsize i = 0; i < n; i++) {
    int d = abs (o[i] - ref[i]);
    maxd = MAX (maxd, d);
    off += d != 0;
  }
  g_test_message ("%s: max diff %d, %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " differ", what,
      maxd, off, n);
  g_assert_cmpint (maxd, <=, 1);
  g_assert_cmpuint (off, <=, n / 50);
}

static void
test_golden (gconstpointer data)
{
  char *file = g_strdup_printf ("%s.safetensors", (const char *) data);
  Golden g;
  golden_load (&g, file);
  GeImg2Img *t = model (file);
  ge_img2img_set_seed (t, 7);
  const gsize n = (gsize) g.w * g.h * 3;
  guint8 *o = run (t, g.image, g.w, g.h);
  compare (o, g.out, n, "strength 1");
  ge_img2img_set_strength (t, 0.7f);
  guint8 *o2 = run (t, g.image, g.w, g.h);
  compare (o2, g.out_sdedit, n, "strength 0.7");
  g_assert_true (memcmp (o, o2, n) != 0);
  g_free (o);
  g_free (o2);
  ge_img2img_free (t);
  ge_safetensors_free (g.st);
  g_free (file);
}

/* Same seed same bytes (any thread count), another seed others; the second
 * frame allocates nothing; strength 0 gives the source back (to the
 * rounding of its chroma's block average, for a colorization model). */
static void
test_determinism_and_memory (void)
{
  Golden g;
  golden_load (&g, "img2img-rgb.safetensors");
  GeImg2Img *a = model ("img2img-rgb.safetensors"), *b = model ("img2img-rgb.safetensors");
  ge_img2img_set_n_threads (b, 3);
  const gsize n = (gsize) g.w * g.h * 3;
  guint8 *o1 = run (a, g.image, g.w, g.h), *o2 = run (a, g.image, g.w, g.h);
  g_assert_cmpuint (ge_img2img_n_allocs (a), ==, 0);
  guint8 *o3 = run (b, g.image, g.w, g.h);
  g_assert_cmpmem (o1, n, o2, n);
  g_assert_cmpmem (o1, n, o3, n);
  ge_img2img_set_seed (a, 1);
  guint8 *o4 = run (a, g.image, g.w, g.h);
  g_assert_true (memcmp (o1, o4, n) != 0);
  ge_img2img_set_strength (a, 0.0f);
  guint8 *o5 = run (a, g.image, g.w, g.h);
  g_assert_cmpmem (o5, n, g.image, n);
  g_free (o1);
  g_free (o2);
  g_free (o3);
  g_free (o4);
  g_free (o5);
  ge_img2img_free (a);
  ge_img2img_free (b);
  ge_safetensors_free (g.st);
}

/* A BGRA frame with padded rows: the same colours, alpha passed through. */
static void
test_strides_alpha (void)
{
  Golden g;
  golden_load (&g, "diffusionimg2img.safetensors");
  GeImg2Img *t = model ("diffusionimg2img.safetensors");
  guint8 *tight = run (t, g.image, g.w, g.h);
  const int st = g.w * 4 + 8;
  guint8 *in = g_malloc0 ((gsize) st * g.h), *out = g_malloc0 ((gsize) st * g.h);
  for (int y = 0; y < g.h; y++)
    for (int x = 0; x < g.w; x++) {
      for (int c = 0; c < 3; c++)
        in[y * st + x * 4 + 2 - c] = g.image[(y * g.w + x) * 3 + c];
      in[y * st + x * 4 + 3] = (guint8) (x * 7 + y);
    }
  GeImageU8 i = { in, g.w, g.h, st, 4, 2, 1, 0, 3 }, o = { out, g.w, g.h, st, 4, 2, 1, 0, 3 };
  g_assert_true (ge_img2img_process (t, &i, &o, NULL));
  for (int y = 0; y < g.h; y++)
    for (int x = 0; x < g.w; x++) {
      for (int c = 0; c < 3; c++)
        g_assert_cmpint (out[y * st + x * 4 + 2 - c], ==, tight[(y * g.w + x) * 3 + c]);
      g_assert_cmpint (out[y * st + x * 4 + 3], ==, (guint8) (x * 7 + y));
    }
  g_free (in);
  g_free (out);
  g_free (tight);
  ge_img2img_free (t);
  ge_safetensors_free (g.st);
}

/* Tiling: a tile as large as the frame changes nothing; small tiles run,
 * stay deterministic and plan their memory once. */
static void
test_tiling (void)
{
  Golden g;
  golden_load (&g, "img2img-rgb.safetensors");
  GeImg2Img *t = model ("img2img-rgb.safetensors");
  const gsize n = (gsize) g.w * g.h * 3;
  guint8 *whole = run (t, g.image, g.w, g.h);
  ge_img2img_set_tiling (t, 64, 8);
  guint8 *big = run (t, g.image, g.w, g.h);
  g_assert_cmpmem (whole, n, big, n);
  ge_img2img_set_tiling (t, 16, 8);
  guint8 *a = run (t, g.image, g.w, g.h), *b = run (t, g.image, g.w, g.h);
  g_assert_cmpuint (ge_img2img_n_allocs (t), ==, 0);
  g_assert_cmpmem (a, n, b, n);
  double mad = 0;
  for (gsize i = 0; i < n; i++)
    mad += abs (a[i] - whole[i]);
  g_test_message ("16-pixel tiles vs whole frame (random model): mean abs diff %.2f", mad / n);
  g_assert_true (memcmp (a, whole, n) != 0);
  g_free (whole);
  g_free (big);
  g_free (a);
  g_free (b);
  ge_img2img_free (t);
  ge_safetensors_free (g.st);
}

static void
test_errors (void)
{
  const char *files[] = { "missing.safetensors", "truncated.safetensors", "diffusionsr-x2.safetensors",
    "vae.safetensors"
  };
  const int codes[] = { GE_ERROR_NOT_FOUND, GE_ERROR_CORRUPT, GE_ERROR_UNSUPPORTED,
    GE_ERROR_UNSUPPORTED
  };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    GError *err = NULL;
    char *p = path_of ("elements", "models", files[i]);
    g_assert_null (ge_img2img_new (p, &err));
    g_assert_error (err, GE_ERROR, codes[i]);
    g_assert_nonnull (strstr (err->message, p));
    g_clear_error (&err);
    g_free (p);
  }
  GeImg2Img *t = model ("diffusionimg2img.safetensors");
  guint8 buf[8 * 8 * 3] = { 0 };
  GeImageU8 in = { buf, 8, 8, 24, 3, 0, 1, 2, -1 }, out = { buf, 8, 7, 24, 3, 0, 1, 2, -1 };
  GError *err = NULL;
  g_assert_false (ge_img2img_process (t, &in, &out, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_SHAPE);
  g_clear_error (&err);
  /* A 1x1 frame is padded, not refused. */
  GeImageU8 px = { buf, 1, 1, 3, 3, 0, 1, 2, -1 }, po = { buf + 3, 1, 1, 3, 3, 0, 1, 2, -1 };
  g_assert_true (ge_img2img_process (t, &px, &po, &err));
  g_assert_no_error (err);
  ge_img2img_free (t);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_data_func ("/img2img/golden-chroma", "diffusionimg2img", test_golden);
  g_test_add_data_func ("/img2img/golden-rgb", "img2img-rgb", test_golden);
  g_test_add_func ("/img2img/determinism-memory", test_determinism_and_memory);
  g_test_add_func ("/img2img/strides-alpha", test_strides_alpha);
  g_test_add_func ("/img2img/tiling", test_tiling);
  g_test_add_func ("/img2img/errors", test_errors);
  return g_test_run ();
}
