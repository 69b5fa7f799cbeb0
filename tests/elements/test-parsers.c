/* test-parsers.c: the plugin's parsers that the fuzz targets run, on the
 * cases the fuzzers found or that were fixed beside them: mask files
 * (plugins/gstmaskfile.c) and the latent stream's caps
 * (plugins/gstlatentcaps.c). */
#include <math.h>
#include <string.h>
#include <sys/resource.h>

#include <gio/gio.h>
#include <gst/gst.h>

#include "gstlatentcaps.h"
#include "gstmaskfile.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static guint8 *
parse (const gchar * bytes, gsize len, gint * w, gint * h, GError ** error)
{
  return gst_mask_file_parse ((const guint8 *) bytes, len, "m.pgm", w, h,
      error);
}

static void
test_pgm (void)
{
  static const gchar p5[] = "P5\n3 1\n255\n\x00\x80\xff";
  static const gchar p5_16[] = "P5 2 1 65535\n\x00\x00\xff\xff";
  static const gchar p2[] = "P2\n# c\n2 2\n10\n0 5\n10 1\n";
  gint w, h;
  guint8 *m;

  m = parse (p5, sizeof p5 - 1, &w, &h, NULL);
  g_assert_nonnull (m);
  g_assert_cmpint (w, ==, 3);
  g_assert_cmpint (h, ==, 1);
  g_assert_cmpmem (m, 3, "\x00\x80\xff", 3);
  g_free (m);
  m = parse (p5_16, sizeof p5_16 - 1, &w, &h, NULL);
  g_assert_nonnull (m);
  g_assert_cmpmem (m, 2, "\x00\xff", 2);
  g_free (m);
  m = parse (p2, sizeof p2 - 1, &w, &h, NULL);
  g_assert_nonnull (m);
  g_assert_cmpint (w, ==, 2);
  g_assert_cmpint (h, ==, 2);
  /* (v * 255 + 5) / 10 */
  g_assert_cmpmem (m, 4, "\x00\x80\xff\x1a", 4);
  g_free (m);
}

static void
expect_bad (const gchar * bytes, gsize len, const gchar * why)
{
  GError *err = NULL;
  gint w, h;

  g_assert_null (parse (bytes, len, &w, &h, &err));
  g_assert_error (err, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_assert_nonnull (strstr (err->message, "m.pgm"));
  g_assert_nonnull (strstr (err->message, why));
  g_error_free (err);
}

static void
expect_bad_seed (const gchar * name, const gchar * why)
{
  gchar *path = g_build_filename (g_getenv ("GE_MASK_SEEDS"), name, NULL);
  gchar *data;
  gsize len;

  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  expect_bad (data, len, why);
  g_free (data);
  g_free (path);
}

/* What a header alone once bought: 4 GiB for a PGM, 1.9 GB for a PNG chunk
 * (found by fuzz-mask; kept as fuzz/corpus-mask/regress-*).  Under a 1 GiB
 * address space limit the old code aborted in g_malloc or failed in
 * libpng for want of memory. */
static void
test_huge_headers (void)
{
  if (g_test_subprocess ()) {
#ifndef UNDER_ASAN
    struct rlimit lim = { 1u << 30, 1u << 30 };
    g_assert_cmpint (setrlimit (RLIMIT_AS, &lim), ==, 0);
#endif
    expect_bad ("P5 65535 65535 255\n", 19, "more pixels");
    expect_bad ("P2 65535 65535 255\n0 1 2\n", 25, "more pixels");
    /* Within the limit on pixels, the data must be there first. */
    expect_bad ("P5 16384 16384 65535\n\x01\x02", 23, "truncated");
    expect_bad ("P2 16384 16384 255\n0 1 2\n", 25, "truncated");
    expect_bad ("P5 16384 16384 255", 18, "truncated");
    /* A 45-byte PNG whose iTXt chunk claims 1.9 GB (libpng allocated it
     * before reading), and a 69-byte one of 16384 x 16384 pixels. */
    expect_bad_seed ("regress-png-chunk-longer-than-file.png",
        "longer than the rest of the file");
    expect_bad_seed ("regress-png-huge-header.png", "too short for its size");
    return;
  }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

static void
test_pgm_strict (void)
{
  /* The magic and the maximum value must be followed by whitespace. */
  expect_bad ("P512 1 255\n\x00", 12, "whitespace after P2 or P5");
  expect_bad ("P5 2 1 255X\x00\x01", 13, "whitespace after the maximum");
  expect_bad ("P5\n1 1\n0\n\x00", 10, "bad PGM header");
  expect_bad ("P2\n2 1\n10\n5 11\n", 15, "out of range");
  expect_bad ("", 0, "not a PGM");
}

static void
test_png (void)
{
  const gchar *dir = g_getenv ("GE_MASK_SEEDS");
  static const struct
  {
    const gchar *name;
    gint w, h;
  } ok[] = {
    { "valid-gray8.png", 4, 3 }, { "valid-gray16.png", 2, 2 },
    { "valid-rgba.png", 2, 1 }, { "valid-palette.png", 4, 1 },
    { "valid-interlaced.png", 2, 2 },
  };

  g_assert_nonnull (dir);
  for (guint i = 0; i < G_N_ELEMENTS (ok); i++) {
    gchar *path = g_build_filename (dir, ok[i].name, NULL);
    GError *err = NULL;
    gint w, h;
    guint8 *m = gst_mask_file_load (path, &w, &h, &err);

    g_assert_no_error (err);
    g_assert_nonnull (m);
    g_assert_cmpint (w, ==, ok[i].w);
    g_assert_cmpint (h, ==, ok[i].h);
    g_free (m);
    g_free (path);
  }
  {
    gchar *path = g_build_filename (dir, "valid-gray8.png", NULL);
    gchar *data;
    gsize len;
    gint w, h;
    guint8 *m;

    g_assert_true (g_file_get_contents (path, &data, &len, NULL));
    m = parse (data, len, &w, &h, NULL);
    g_assert_cmpmem (m, 4, "\x00\x55\xaa\xff", 4);
    g_free (m);
    expect_bad (data, len - 20, "m.pgm");
    g_free (data);
    g_free (path);
  }
}

static GstCaps *
caps (const gchar * s)
{
  GstCaps *c = gst_caps_from_string (s);

  g_assert_nonnull (c);
  return c;
}

#define LATENT "other/tensors, format=(string)static, num_tensors=(int)1, " \
  "types=(string)float32, "

/* A NaN, an infinite or a tiny applied-scaling-factor once reached the
 * decoder's 1 / scaling as is (NaN latents, or infinite ones); any factor
 * that cannot be undone is refused (vaedecode posts a negotiation error). */
static void
test_applied_scaling (void)
{
  static const struct
  {
    const gchar *field;
    gdouble want;
  } cases[] = {
    { "", 1.0 }, { ", applied-scaling-factor=(double)0.18215", 0.18215 },
    { ", applied-scaling-factor=(double)nan", 0 },
    { ", applied-scaling-factor=(double)inf", 0 },
    { ", applied-scaling-factor=(double)1e-300", 0 },
    { ", applied-scaling-factor=(double)1e300", 0 },
    { ", applied-scaling-factor=(double)-2", 0 },
    { ", applied-scaling-factor=(double)0", 0 },
    { ", applied-scaling-factor=(int)2", 0 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    gchar *s = g_strconcat (LATENT "dimensions=(string)8:8:4:1",
        cases[i].field, NULL);
    GstCaps *c = caps (s);
    gdouble a;
    gboolean ok = gst_latent_caps_applied_scaling (c, &a);

    /* want 0: refused */
    g_assert_cmpint (ok, ==, cases[i].want != 0);
    if (ok) {
      g_assert_cmpfloat (a, ==, cases[i].want);
      g_assert_true (isfinite ((gfloat) (1.0 / a)));
    }
    gst_caps_unref (c);
    g_free (s);
  }
}

/* Out-of-range sizes and framerates once passed into the other side's
 * caps as they were (width=-64, framerate="fast"). */
static void
test_caps_ranges (void)
{
  GstCaps *c, *v, *tmpl = caps (GST_VAE_VIDEO_CAPS);

  c = caps (LATENT "dimensions=(string)8:8:4:1, video-width=(int)-64, "
      "video-height=(int)64");
  v = gst_latent_caps_to_video (c, 8, 4);
  g_assert_true (gst_caps_is_empty (v));
  gst_caps_unref (v);
  gst_caps_unref (c);

  c = caps (LATENT "dimensions=(string)8:8:4:1, framerate=(string)fast");
  v = gst_latent_caps_to_video (c, 8, 4);
  g_assert_true (gst_caps_is_empty (v));
  gst_caps_unref (v);
  gst_caps_unref (c);

  c = caps (LATENT "dimensions=(string)8:8:4:1, framerate=(fraction)30/1");
  v = gst_latent_caps_to_video (c, 8, 4);
  g_assert_true (gst_caps_is_subset (v, tmpl));
  g_assert_true (gst_caps_is_fixed (v) == FALSE);
  {
    GstStructure *s = gst_caps_get_structure (v, 0);
    gint w, h, n, d;

    g_assert_true (gst_structure_get_int (s, "width", &w) && w == 64);
    g_assert_true (gst_structure_get_int (s, "height", &h) && h == 64);
    g_assert_true (gst_structure_get_fraction (s, "framerate", &n, &d));
    g_assert_cmpint (n, ==, 30);
  }
  gst_caps_unref (v);
  gst_caps_unref (c);

  c = caps ("video/x-raw, width=(int)70000, height=(int)64");
  v = gst_latent_caps_from_video (c, 8, 4, 0.18215);
  g_assert_true (gst_caps_is_empty (v));
  gst_caps_unref (v);
  gst_caps_unref (c);

  c = caps ("video/x-raw, width=(int)17, height=(int)9, "
      "framerate=(fraction)-30/1");
  v = gst_latent_caps_from_video (c, 8, 4, 0.18215);
  g_assert_true (gst_caps_is_empty (v));
  gst_caps_unref (v);
  gst_caps_unref (c);
  gst_caps_unref (tmpl);
}

static void
test_caps_check (void)
{
  GstCaps *c;
  gint lw, lh, lc, lf;

  c = caps ("video/x-raw, width=(int)17, height=(int)9, "
      "framerate=(fraction)25/1");
  {
    GstCaps *l = gst_latent_caps_from_video (c, 8, 4, 0.18215);
    g_assert_cmpint (gst_caps_get_size (l), ==, 1);
    g_assert_cmpstr (gst_structure_get_string (gst_caps_get_structure (l, 0),
            "dimensions"), ==, "3:2:4:1");
    g_assert_cmpint (gst_latent_caps_check (l, 8, 4, 17, 9, &lw, &lh, &lc,
            &lf), ==, GST_LATENT_CAPS_OK);
    g_assert_cmpint (lw, ==, 3);
    g_assert_cmpint (lh, ==, 2);
    g_assert_cmpint (lf, ==, 8);
    g_assert_cmpint (gst_latent_caps_check (l, 8, 4, 25, 9, &lw, &lh, &lc,
            &lf), ==, GST_LATENT_CAPS_OTHER_SIZE);
    g_assert_cmpint (gst_latent_caps_check (l, 8, 3, 17, 9, &lw, &lh, &lc,
            &lf), ==, GST_LATENT_CAPS_OTHER_MODEL);
    g_assert_cmpint (gst_latent_caps_check (l, 4, 4, 17, 9, &lw, &lh, &lc,
            &lf), ==, GST_LATENT_CAPS_OTHER_MODEL);
    gst_caps_unref (l);
  }
  gst_caps_unref (c);

  c = caps (LATENT "dimensions=(string)3:2:4:1, downsample-factor=(int)0");
  g_assert_cmpint (gst_latent_caps_check (c, 8, 4, 17, 9, &lw, &lh, &lc, &lf),
      ==, GST_LATENT_CAPS_OTHER_MODEL);
  gst_caps_unref (c);
  c = caps (LATENT "dimensions=(string)3:2:4");
  g_assert_cmpint (gst_latent_caps_check (c, 8, 4, 17, 9, &lw, &lh, &lc, &lf),
      ==, GST_LATENT_CAPS_OK);
  gst_caps_unref (c);
  c = caps (LATENT "dimensions=(string)3:2:4:2");
  g_assert_cmpint (gst_latent_caps_check (c, 8, 4, 17, 9, &lw, &lh, &lc, &lf),
      ==, GST_LATENT_CAPS_NOT_TENSOR);
  gst_caps_unref (c);
  c = caps ("EMPTY");
  g_assert_cmpint (gst_latent_caps_check (c, 8, 4, 17, 9, &lw, &lh, &lc, &lf),
      ==, GST_LATENT_CAPS_NOT_TENSOR);
  gst_caps_unref (c);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/mask/pgm", test_pgm);
  g_test_add_func ("/mask/pgm-strict", test_pgm_strict);
  g_test_add_func ("/mask/png", test_png);
  g_test_add_func ("/mask/huge-headers", test_huge_headers);
  g_test_add_func ("/latent-caps/applied-scaling", test_applied_scaling);
  g_test_add_func ("/latent-caps/ranges", test_caps_ranges);
  g_test_add_func ("/latent-caps/check", test_caps_check);
  return g_test_run ();
}
