/* test-vae-codec: frames <-> latents against a PyTorch golden made with the
 * diffusers-structured reference and the engine's noise
 * (tests/golden/make_vae_golden.py), plus tiling, strides, determinism,
 * planned memory and errors. */
#include "ge-safetensors.h"
#include "ge-vae-codec.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *
path_of (const char *a, const char *b, const char *c)
{
  return g_test_build_filename (G_TEST_DIST, "..", a, b, c, NULL);
}

static GeVaeCodec *
codec (const char *name)
{
  char *p = path_of ("elements", "models", name);
  GError *err = NULL;
  GeVaeCodec *c = ge_vae_codec_new (p, &err);
  g_assert_no_error (err);
  g_free (p);
  return c;
}

typedef struct {
  GeSafetensors *st;
  const guint8 *image, *out;
  float *mean, *sample, *tiled_mean;    /* aligned copies */
  int w, h, c, lw, lh;
} Golden;

/* Tensors sit at any byte offset of the file (an odd-sized U8 tensor comes
 * first): floats are read from an aligned copy. */
static float *
floats (const GeStTensor * t)
{
  return g_memdup2 (t->data, t->n_bytes);
}

static void
golden_free (Golden * g)
{
  g_free (g->mean);
  g_free (g->sample);
  g_free (g->tiled_mean);
  ge_safetensors_free (g->st);
}

static void
golden_load (Golden * g)
{
  char *p = path_of ("golden", "vae", "vae.safetensors");
  g->st = ge_safetensors_open (p, NULL);
  g_assert_nonnull (g->st);
  const GeStTensor *im = ge_safetensors_find (g->st, "image"),
      *m = ge_safetensors_find (g->st, "mean"), *s = ge_safetensors_find (g->st, "sample"),
      *o = ge_safetensors_find (g->st, "out");
  g_assert_true (im && m && s && o && m->dtype == GE_DTYPE_F32 && o->dtype == GE_DTYPE_U8);
  g->h = (int) im->shape[0];
  g->w = (int) im->shape[1];
  g->c = (int) m->shape[0];
  g->lh = (int) m->shape[1];
  g->lw = (int) m->shape[2];
  g->image = im->data;
  g->out = o->data;
  g->mean = floats (m);
  g->sample = floats (s);
  g->tiled_mean = floats (ge_safetensors_find (g->st, "tiled_mean"));
  g_free (p);
}

static GeImageU8
rgb (const guint8 * data, int w, int h)
{
  GeImageU8 im = { (guint8 *) data, w, h, w * 3, 3, 0, 1, 2, -1 };
  return im;
}

static float *
encode (GeVaeCodec * c, const guint8 * data, int w, int h)
{
  int lw, lh;
  ge_vae_codec_latent_size (c, w, h, &lw, &lh);
  float *z = g_new (float, (gsize) ge_vae_codec_latent_channels (c) * lw * lh);
  GeImageU8 im = rgb (data, w, h);
  GError *err = NULL;
  g_assert_true (ge_vae_codec_encode (c, &im, z, &err));
  g_assert_no_error (err);
  return z;
}

static guint8 *
decode (GeVaeCodec * c, const float *z, int w, int h)
{
  int lw, lh;
  ge_vae_codec_latent_size (c, w, h, &lw, &lh);
  guint8 *o = g_malloc ((gsize) w * h * 3);
  GeImageU8 im = rgb (o, w, h);
  GError *err = NULL;
  g_assert_true (ge_vae_codec_decode (c, z, lw, lh, &im, &err));
  g_assert_no_error (err);
  return o;
}

/* Largest difference over the largest reference magnitude. */
static double
rel_diff (const float *a, const float *ref, gsize n)
{
  double d = 0, m = 0;
  for (gsize i = 0; i < n; i++) {
    d = MAX (d, fabs ((double) a[i] - ref[i]));
    m = MAX (m, fabs ((double) ref[i]));
  }
  return d / m;
}

static void
test_golden (void)
{
  Golden g;
  golden_load (&g);
  GeVaeCodec *c = codec ("vae.safetensors");
  g_assert_cmpint (ge_vae_codec_factor (c), ==, 4);
  g_assert_cmpint (ge_vae_codec_latent_channels (c), ==, g.c);
  g_assert_cmpfloat (ge_vae_codec_scaling_factor (c), ==, 0.5);
  int lw, lh;
  ge_vae_codec_latent_size (c, g.w, g.h, &lw, &lh);
  g_assert_cmpint (lw, ==, g.lw);
  g_assert_cmpint (lh, ==, g.lh);
  const gsize n = (gsize) g.c * g.lw * g.lh;

  float *z = encode (c, g.image, g.w, g.h);
  g_assert_cmpfloat (rel_diff (z, g.mean, n), <, 1e-4);
  ge_vae_codec_set_sample_mode (c, GE_VAE_SAMPLE, 7);
  float *s = encode (c, g.image, g.w, g.h);
  g_assert_cmpfloat (rel_diff (s, g.sample, n), <, 1e-4);
  g_assert_cmpfloat (rel_diff (s, g.mean, n), >, 1e-2);       /* the noise is there */

  guint8 *o = decode (c, g.mean, g.w, g.h);
  int maxd = 0, off = 0;
  for (gsize i = 0; i < (gsize) g.w * g.h * 3; i++) {
    maxd = MAX (maxd, abs (o[i] - g.out[i]));
    off += o[i] != g.out[i];
  }
  g_test_message ("decode: max diff %d, %d bytes differ", maxd, off);
  g_assert_cmpint (maxd, <=, 1);
  g_assert_cmpint (off, <=, g.w * g.h * 3 / 100);
  g_free (z);
  g_free (s);
  g_free (o);
  ge_vae_codec_free (c);
  golden_free (&g);
}

/* Same seed, same latent; another seed, another; threads change nothing;
 * the second frame of a size allocates nothing. */
static void
test_determinism_and_memory (void)
{
  Golden g;
  golden_load (&g);
  GeVaeCodec *a = codec ("vae.safetensors"), *b = codec ("vae.safetensors");
  ge_vae_codec_set_n_threads (b, 3);
  ge_vae_codec_set_sample_mode (a, GE_VAE_SAMPLE, 3);
  ge_vae_codec_set_sample_mode (b, GE_VAE_SAMPLE, 3);
  const gsize n = (gsize) g.c * g.lw * g.lh;
  float *z1 = encode (a, g.image, g.w, g.h), *z2 = encode (a, g.image, g.w, g.h);
  g_assert_cmpuint (ge_vae_codec_n_allocs (a), ==, 0);
  float *z3 = encode (b, g.image, g.w, g.h);
  g_assert_cmpmem (z1, n * 4, z2, n * 4);
  g_assert_cmpmem (z1, n * 4, z3, n * 4);
  ge_vae_codec_set_sample_mode (a, GE_VAE_SAMPLE, 4);
  float *z4 = encode (a, g.image, g.w, g.h);
  g_assert_true (memcmp (z1, z4, n * 4) != 0);
  guint8 *o1 = decode (a, z1, g.w, g.h), *o2 = decode (a, z1, g.w, g.h);
  g_assert_cmpuint (ge_vae_codec_n_allocs (a), ==, 0);
  g_assert_cmpmem (o1, g.w * g.h * 3, o2, g.w * g.h * 3);
  g_free (z1);
  g_free (z2);
  g_free (z3);
  g_free (z4);
  g_free (o1);
  g_free (o2);
  ge_vae_codec_free (a);
  ge_vae_codec_free (b);
  golden_free (&g);
}

/* A BGRx frame with padded rows encodes to the RGB frame's latent; decoding
 * into it writes the same pixels and an opaque alpha. */
static void
test_strides (void)
{
  Golden g;
  golden_load (&g);
  GeVaeCodec *c = codec ("vae.safetensors");
  const int st = g.w * 4 + 12;
  guint8 *in = g_malloc0 ((gsize) st * g.h);
  for (int y = 0; y < g.h; y++)
    for (int x = 0; x < g.w; x++)
      for (int ch = 0; ch < 3; ch++)
        in[y * st + x * 4 + 2 - ch] = g.image[(y * g.w + x) * 3 + ch];
  GeImageU8 bgrx = { in, g.w, g.h, st, 4, 2, 1, 0, -1 };
  const gsize n = (gsize) g.c * g.lw * g.lh;
  float *z = g_new (float, n), *ref = encode (c, g.image, g.w, g.h);
  g_assert_true (ge_vae_codec_encode (c, &bgrx, z, NULL));
  g_assert_cmpmem (z, n * 4, ref, n * 4);

  guint8 *tight = decode (c, z, g.w, g.h);
  guint8 *out = g_malloc0 ((gsize) st * g.h);
  GeImageU8 bgra = { out, g.w, g.h, st, 4, 2, 1, 0, 3 };
  g_assert_true (ge_vae_codec_decode (c, z, g.lw, g.lh, &bgra, NULL));
  for (int y = 0; y < g.h; y++)
    for (int x = 0; x < g.w; x++) {
      for (int ch = 0; ch < 3; ch++)
        g_assert_cmpint (out[y * st + x * 4 + 2 - ch], ==, tight[(y * g.w + x) * 3 + ch]);
      g_assert_cmpint (out[y * st + x * 4 + 3], ==, 255);
    }
  g_free (in);
  g_free (out);
  g_free (z);
  g_free (ref);
  g_free (tight);
  ge_vae_codec_free (c);
  golden_free (&g);
}

/* Tiled encoding and decoding against the golden's tiles (tile starts and
 * weights written out independently in the generator), and how far they are
 * from the whole frame (GroupNorm statistics are per tile: with this random
 * test model, far; the trained model's numbers are in the benchmark). */
static void
test_tiling (void)
{
  Golden g;
  golden_load (&g);
  const GeStTensor *tm = ge_safetensors_find (g.st, "tiled_mean"),
      *to = ge_safetensors_find (g.st, "tiled_out");
  g_assert_true (tm && to);
  const int w = 2 * g.w, h = 2 * g.h;   /* the golden crop, mirrored into 2x2 */
  guint8 *img = g_malloc ((gsize) w * h * 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int ch = 0; ch < 3; ch++) {
        const int sy = y < g.h ? y : h - 1 - y, sx = x < g.w ? x : w - 1 - x;
        img[(y * w + x) * 3 + ch] = g.image[(sy * g.w + sx) * 3 + ch];
      }
  GeVaeCodec *c = codec ("vae.safetensors");
  int lw, lh;
  ge_vae_codec_latent_size (c, w, h, &lw, &lh);
  const gsize n = (gsize) g.c * lw * lh;
  g_assert_cmpuint (tm->shape[1] * tm->shape[2], ==, (guint64) lw * lh);
  float *whole = encode (c, img, w, h);
  ge_vae_codec_set_tiling (c, 32, 16);
  float *tiled = encode (c, img, w, h);
  g_assert_cmpfloat (rel_diff (tiled, g.tiled_mean, n), <, 1e-4);
  g_test_message ("tiled vs whole frame (random model): latent max rel diff %.3f",
      rel_diff (tiled, whole, n));
  guint8 *pt = decode (c, g.tiled_mean, w, h);
  int maxd = 0;
  for (gsize i = 0; i < (gsize) w * h * 3; i++)
    maxd = MAX (maxd, abs (pt[i] - ((const guint8 *) to->data)[i]));
  g_assert_cmpint (maxd, <=, 1);
  /* Another frame of the same size with the same tiling plans nothing. */
  g_free (tiled);
  tiled = encode (c, img, w, h);
  g_assert_cmpuint (ge_vae_codec_n_allocs (c), ==, 0);
  g_free (img);
  g_free (whole);
  g_free (tiled);
  g_free (pt);
  ge_vae_codec_free (c);
  golden_free (&g);
}

static void
test_errors (void)
{
  GError *err = NULL;
  const char *cases[][2] = {
    { "missing.safetensors", NULL },
    { "truncated.safetensors", NULL },
    { "diffusionsr-x2.safetensors", NULL },
  };
  const int codes[] = { GE_ERROR_NOT_FOUND, GE_ERROR_CORRUPT, GE_ERROR_UNSUPPORTED };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    char *p = path_of ("elements", "models", cases[i][0]);
    g_assert_null (ge_vae_codec_new (p, &err));
    g_assert_error (err, GE_ERROR, codes[i]);
    g_assert_nonnull (strstr (err->message, p));
    g_clear_error (&err);
    g_free (p);
  }

  GeVaeCodec *c = codec ("vae.safetensors");
  float z[4 * 3 * 2] = { 0 };
  guint8 buf[16 * 16 * 3];
  GeImageU8 o = rgb (buf, 16, 8);       /* a 3x2 latent is 9..12 x 5..8 pixels */
  g_assert_false (ge_vae_codec_decode (c, z, 3, 2, &o, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_SHAPE);
  g_clear_error (&err);
  o = rgb (buf, 12, 7);
  g_assert_true (ge_vae_codec_decode (c, z, 3, 2, &o, &err));
  z[5] = NAN;
  g_assert_false (ge_vae_codec_decode (c, z, 3, 2, &o, &err));
  g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
  g_clear_error (&err);
  /* Finite latents that overflow inside the decoder: an error, not NaN
   * pixels turned into some 8-bit value. */
  {
    float big[4 * 12 * 8];
    guint8 *pixels = g_malloc (48 * 32 * 3);
    GeImageU8 bo = rgb (pixels, 48, 32);

    for (guint i = 0; i < G_N_ELEMENTS (big); i++)
      big[i] = i % 3 ? FLT_MAX : -FLT_MAX;
    g_assert_false (ge_vae_codec_decode (c, big, 12, 8, &bo, &err));
    g_assert_error (err, GE_ERROR, GE_ERROR_INVALID);
    g_assert_nonnull (strstr (err->message, "overflows"));
    g_clear_error (&err);
    g_free (pixels);
  }
  /* A 1x1 frame pads to one latent pixel. */
  float one[4];
  GeImageU8 px = rgb (buf, 1, 1);
  g_assert_true (ge_vae_codec_encode (c, &px, one, &err));
  g_assert_no_error (err);
  ge_vae_codec_free (c);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/vae-codec/golden", test_golden);
  g_test_add_func ("/vae-codec/determinism-memory", test_determinism_and_memory);
  g_test_add_func ("/vae-codec/strides", test_strides);
  g_test_add_func ("/vae-codec/tiling", test_tiling);
  g_test_add_func ("/vae-codec/errors", test_errors);
  return g_test_run ();
}
