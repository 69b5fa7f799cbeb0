/* test-diffusionsr: the diffusionsr element through GstHarness and real
 * pipelines: caps both ways, sizes, determinism, tiling, strides and odd
 * sizes, alpha, metas, QoS, latency, every error path, and a PNG through
 * gst_parse_launch.
 *
 * The models are the tiny random-weight ones of make_test_models.py
 * (GE_TEST_MODELS), never the installed ones: meson points
 * GST_GENERATIVE_MODEL_DIR at them too, so "no properties set" loads them.
 */
#include "elementcheck.h"

#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <gst/base/gstbasetransform.h>

#include <glib/gstdio.h>
#include <string.h>

static gchar *
model (const gchar * name)
{
  return test_path ("GE_TEST_MODELS", name);
}

/* A harness around "diffusionsr model-file=<tiny x2 model> <extra>". */
static GstHarness *
sr_harness (const gchar * file, const gchar * extra)
{
  gchar *path = model (file);
  gchar *launch = g_strdup_printf ("diffusionsr model-file=\"%s\" %s", path,
      extra ? extra : "");
  GstHarness *h = gst_harness_new_parse (launch);

  g_free (launch);
  g_free (path);
  return h;
}

static GstElement *
sr_element (GstHarness * h)
{
  GstElement *e = gst_harness_find_element (h, "diffusionsr");

  fail_unless (e != NULL);
  gst_object_unref (e);         /* the harness keeps it alive */
  return e;
}

/* A smooth, deterministic, structured picture (gradients and a disc), so
 * that the model sees edges and flat areas; channel c of pixel (x, y). */
static guint8
pattern (gint x, gint y, gint c)
{
  gint dx = x - 13, dy = y - 9;
  gint v = (x * 5 + y * 3 + c * 60) & 255;

  if (dx * dx + dy * dy < 49)
    v = 255 - v / 2;
  return (guint8) v;
}

/* A frame of @format, @w x @h, with @stride bytes per row (0 = GStreamer's
 * default); a padded stride is described by a GstVideoMeta, as decoders
 * and pools do.  The padding is filled with junk that must not leak. */
static GstBuffer *
make_frame (GstVideoFormat format, gint w, gint h, gint stride,
    GstClockTime pts)
{
  GstVideoInfo info;
  GstBuffer *buf;
  GstMapInfo map;
  gint x, y, c;
  const GstVideoFormatInfo *fi;
  gint ps;

  gst_video_info_set_format (&info, format, w, h);
  fi = info.finfo;
  ps = GST_VIDEO_FORMAT_INFO_PSTRIDE (fi, 0);
  if (stride == 0)
    stride = GST_VIDEO_INFO_PLANE_STRIDE (&info, 0);
  buf = gst_buffer_new_allocate (NULL, (gsize) stride * h, NULL);
  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  memset (map.data, 0xA5, map.size);
  for (y = 0; y < h; y++) {
    for (x = 0; x < w; x++) {
      guint8 *p = map.data + (gsize) y * stride + x * ps;

      for (c = 0; c < (gint) GST_VIDEO_FORMAT_INFO_N_COMPONENTS (fi); c++)
        p[GST_VIDEO_FORMAT_INFO_POFFSET (fi, c)] = pattern (x, y, c);
      if (GST_VIDEO_FORMAT_INFO_HAS_ALPHA (fi))
        p[GST_VIDEO_FORMAT_INFO_POFFSET (fi, 3)] = x < w / 2 ? 255 : 0;
    }
  }
  gst_buffer_unmap (buf, &map);
  if (stride != GST_VIDEO_INFO_PLANE_STRIDE (&info, 0)) {
    gsize offset[GST_VIDEO_MAX_PLANES] = { 0 };
    gint strides[GST_VIDEO_MAX_PLANES] = { stride };

    gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE, format,
        w, h, 1, offset, strides);
  }
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = GST_SECOND / 30;
  return buf;
}

static gchar *
caps_string (GstVideoFormat format, gint w, gint h)
{
  return g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=30/1,pixel-aspect-ratio=1/1",
      gst_video_format_to_string (format), w, h);
}

/* An output image: tight rows of (channel bytes) for comparisons. */
typedef struct
{
  gint w, h, ps;
  guint8 *px;                   /* w * h * 4: r, g, b, a (a 255 if none) */
} Img;

static Img
img_from_buffer (GstHarness * h, GstBuffer * buf)
{
  GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
  GstVideoInfo info;
  GstVideoFrame frame;
  Img img;
  gint x, y;

  fail_unless (caps != NULL);
  fail_unless (gst_video_info_from_caps (&info, caps));
  gst_caps_unref (caps);
  fail_unless (gst_video_frame_map (&frame, &info, buf, GST_MAP_READ));
  img.w = GST_VIDEO_FRAME_WIDTH (&frame);
  img.h = GST_VIDEO_FRAME_HEIGHT (&frame);
  img.ps = GST_VIDEO_FRAME_COMP_PSTRIDE (&frame, 0);
  img.px = g_malloc ((gsize) img.w * img.h * 4);
  for (y = 0; y < img.h; y++) {
    for (x = 0; x < img.w; x++) {
      guint8 *o = img.px + ((gsize) y * img.w + x) * 4;
      gint c;

      for (c = 0; c < 3; c++)
        o[c] = *((guint8 *) GST_VIDEO_FRAME_COMP_DATA (&frame, c)
            + (gsize) y * GST_VIDEO_FRAME_COMP_STRIDE (&frame, c) +
            x * img.ps);
      o[3] = GST_VIDEO_INFO_HAS_ALPHA (&info) ?
          *((guint8 *) GST_VIDEO_FRAME_COMP_DATA (&frame, 3)
          + (gsize) y * GST_VIDEO_FRAME_COMP_STRIDE (&frame, 3) +
          x * img.ps) : 255;
    }
  }
  gst_video_frame_unmap (&frame);
  return img;
}

/* Pushes one frame through a fresh harness and returns the output. */
static Img
run_one (const gchar * file, const gchar * props, GstVideoFormat format,
    gint w, gint h, gint stride)
{
  GstHarness *hr = sr_harness (file, props);
  gchar *caps = caps_string (format, w, h);
  GstBuffer *out;
  Img img;

  gst_harness_set_src_caps_str (hr, caps);
  g_free (caps);
  fail_unless_equals_int (gst_harness_push (hr, make_frame (format, w, h,
              stride, 0)), GST_FLOW_OK);
  out = gst_harness_pull (hr);
  fail_unless (out != NULL);
  img = img_from_buffer (hr, out);
  gst_buffer_unref (out);
  gst_harness_teardown (hr);
  return img;
}

static void
img_diff (const Img * a, const Img * b, gboolean with_alpha, gdouble * mean,
    gint * max, gdouble * frac_diff)
{
  gsize i, n = (gsize) a->w * a->h, count = 0, differ = 0;
  gdouble sum = 0;

  fail_unless_equals_int (a->w, b->w);
  fail_unless_equals_int (a->h, b->h);
  *max = 0;
  for (i = 0; i < n * 4; i++) {
    gint d;

    if (!with_alpha && i % 4 == 3)
      continue;
    d = ABS ((gint) a->px[i] - (gint) b->px[i]);
    sum += d;
    *max = MAX (*max, d);
    differ += d != 0;
    count++;
  }
  *mean = sum / count;
  *frac_diff = (gdouble) differ / count;
}

/* ------------------------------------------------------------------------ */
/* caps */

static GstCaps *
transform_caps (GstElement * e, GstPadDirection dir, const gchar * caps_str)
{
  GstCaps *caps = gst_caps_from_string (caps_str);
  GstCaps *res;

  fail_unless (caps != NULL, "bad caps %s", caps_str);
  res = GST_BASE_TRANSFORM_GET_CLASS (e)->transform_caps (GST_BASE_TRANSFORM
      (e), dir, caps, NULL);
  gst_caps_unref (caps);
  return res;
}

static void
assert_caps_equal (GstCaps * caps, const gchar * expected)
{
  GstCaps *exp = gst_caps_from_string (expected);
  gchar *got = gst_caps_to_string (caps);

  fail_unless (gst_caps_is_equal (caps, exp), "got %s, expected %s", got,
      expected);
  g_free (got);
  gst_caps_unref (exp);
  gst_caps_unref (caps);
}

GST_START_TEST (test_caps_transform)
{
  GstElement *e = gst_element_factory_make ("diffusionsr", NULL);
  GstCaps *c;

  fail_unless (e != NULL);

  /* fixed sizes, both ways; format, rate and pixel aspect ratio kept */
  assert_caps_equal (transform_caps (e, GST_PAD_SINK,
          "video/x-raw,format=RGB,width=40,height=30,framerate=25/1,"
          "pixel-aspect-ratio=4/3"),
      "video/x-raw,format=RGB,width=80,height=60,framerate=25/1,"
      "pixel-aspect-ratio=4/3");
  assert_caps_equal (transform_caps (e, GST_PAD_SRC,
          "video/x-raw,format=BGRA,width=80,height=60,pixel-aspect-ratio=1/1"),
      "video/x-raw,format=BGRA,width=40,height=30,pixel-aspect-ratio=1/1");
  /* an odd output size has no input size */
  c = transform_caps (e, GST_PAD_SRC, "video/x-raw,width=81,height=60");
  fail_unless (gst_caps_is_empty (c));
  gst_caps_unref (c);

  /* ranges: exactly the multiples of the scale */
  assert_caps_equal (transform_caps (e, GST_PAD_SINK,
          "video/x-raw,width=[1,100],height=[8,9]"),
      "video/x-raw,width=(int)[2,200,2],height=(int)[16,18,2]");
  assert_caps_equal (transform_caps (e, GST_PAD_SRC,
          "video/x-raw,width=[3,100],height=[9,10]"),
      "video/x-raw,width=(int)[2,50],height=(int)5");
  c = transform_caps (e, GST_PAD_SINK, "video/x-raw,width=[1,MAX],height=1");
  {
    GstCaps *ok = gst_caps_from_string ("video/x-raw,width=2147483646,"
        "height=2");
    GstCaps *odd = gst_caps_from_string ("video/x-raw,width=2147483647,"
        "height=2");

    fail_unless (gst_caps_is_subset (ok, c));
    fail_if (gst_caps_can_intersect (odd, c));
    gst_caps_unref (ok);
    gst_caps_unref (odd);
  }
  gst_caps_unref (c);

  /* lists, and lists of ranges (checked by value: comparing mixed lists
   * trips a critical inside GStreamer 1.22's gst_caps_is_equal, and its
   * gst_caps_is_subset misses values of a range inside a list) */
  assert_caps_equal (transform_caps (e, GST_PAD_SINK,
          "video/x-raw,width={10,20},height=5"),
      "video/x-raw,width={20,40},height=10");
  c = transform_caps (e, GST_PAD_SINK,
      "video/x-raw,width=10,height={5,[6,7]}");
  {
    const gint in[] = { 10, 12, 14 }, out[] = { 11, 13, 16, 5 };
    guint k;

    for (k = 0; k < G_N_ELEMENTS (in); k++) {
      gchar *str = g_strdup_printf ("video/x-raw,width=20,height=%d", in[k]);
      GstCaps *v = gst_caps_from_string (str);

      /* a fixed caps intersects exactly when it is contained */
      fail_unless (gst_caps_can_intersect (v, c), "%s not in result", str);
      gst_caps_unref (v);
      g_free (str);
    }
    for (k = 0; k < G_N_ELEMENTS (out); k++) {
      gchar *str = g_strdup_printf ("video/x-raw,width=20,height=%d", out[k]);
      GstCaps *v = gst_caps_from_string (str);

      fail_if (gst_caps_can_intersect (v, c), "%s in result", str);
      gst_caps_unref (v);
      g_free (str);
    }
  }
  gst_caps_unref (c);
  assert_caps_equal (transform_caps (e, GST_PAD_SRC,
          "video/x-raw,width={20,25},height={10,12}"),
      "video/x-raw,width=10,height={5,6}");

  /* x4 */
  g_object_set (e, "scale", 4, NULL);
  assert_caps_equal (transform_caps (e, GST_PAD_SINK,
          "video/x-raw,width=10,height=3"), "video/x-raw,width=40,height=12");
  assert_caps_equal (transform_caps (e, GST_PAD_SRC,
          "video/x-raw,width=[40,49],height=12"),
      "video/x-raw,width=(int)[10,12],height=3");

  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_caps_query_and_refusals)
{
  GstHarness *h = sr_harness ("diffusionsr-x2.safetensors", NULL);
  GstElement *e = sr_element (h);
  GstPad *sink = gst_element_get_static_pad (e, "sink");
  GstPad *src = gst_element_get_static_pad (e, "src");
  GstCaps *c, *want;
  const gchar *bad[] = {
    "video/x-raw,format=I420,width=40,height=30",
    "video/x-raw,format=GRAY8,width=40,height=30",
    "video/x-raw,format=RGB,width=40,height=30,interlace-mode=interleaved",
    "video/x-raw,format=RGB,width=40,height=30,interlace-mode=mixed",
    "audio/x-raw,format=S16LE",
  };
  guint i;

  /* What the src pad offers follows upstream's caps, scaled. */
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGBx,width=40,height=30,framerate=30/1");
  c = gst_pad_query_caps (src, NULL);
  want = gst_caps_from_string ("video/x-raw,format=RGBx,width=80,height=60,"
      "framerate=30/1");
  fail_unless (gst_caps_is_subset (c, want), "src caps %" GST_PTR_FORMAT, c);
  gst_caps_unref (c);
  gst_caps_unref (want);
  c = gst_pad_get_current_caps (src);
  want = gst_caps_from_string ("video/x-raw,format=RGBx,width=80,height=60,"
      "framerate=30/1");
  fail_unless (c && gst_caps_is_subset (c, want));
  gst_caps_unref (c);
  gst_caps_unref (want);

  for (i = 0; i < G_N_ELEMENTS (bad); i++) {
    GstCaps *b = gst_caps_from_string (bad[i]);

    fail_if (gst_pad_query_accept_caps (sink, b), "accepted %s", bad[i]);
    gst_caps_unref (b);
  }
  c = gst_caps_from_string ("video/x-raw,format=BGRA,width=40,height=30,"
      "framerate=30/1");
  fail_unless (gst_pad_query_accept_caps (sink, c));
  gst_caps_unref (c);

  gst_object_unref (sink);
  gst_object_unref (src);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* ------------------------------------------------------------------------ */
/* output */

GST_START_TEST (test_output_size)
{
  struct
  {
    const gchar *file, *props;
    gint w, h, scale;
  } cases[] = {
    {"diffusionsr-x2.safetensors", NULL, 40, 30, 2},
    {"diffusionsr-x4.safetensors", "scale=4", 20, 12, 4},
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (cases); i++) {
    GstHarness *h = sr_harness (cases[i].file, cases[i].props);
    gchar *caps = caps_string (GST_VIDEO_FORMAT_RGB, cases[i].w, cases[i].h);
    GstCaps *out_caps;
    GstVideoInfo info;
    GstBuffer *out;

    gst_harness_set_src_caps_str (h, caps);
    g_free (caps);
    fail_unless_equals_int (gst_harness_push (h,
            make_frame (GST_VIDEO_FORMAT_RGB, cases[i].w, cases[i].h, 0,
                5 * GST_SECOND)), GST_FLOW_OK);
    out = gst_harness_pull (h);
    out_caps = gst_pad_get_current_caps (h->sinkpad);
    fail_unless (gst_video_info_from_caps (&info, out_caps));
    fail_unless_equals_int (GST_VIDEO_INFO_WIDTH (&info),
        cases[i].w * cases[i].scale);
    fail_unless_equals_int (GST_VIDEO_INFO_HEIGHT (&info),
        cases[i].h * cases[i].scale);
    fail_unless_equals_int (GST_VIDEO_INFO_FORMAT (&info),
        GST_VIDEO_FORMAT_RGB);
    fail_unless (gst_buffer_get_size (out) >= GST_VIDEO_INFO_SIZE (&info));
    /* timestamps kept */
    fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 5 * GST_SECOND);
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), GST_SECOND / 30);
    gst_caps_unref (out_caps);
    gst_buffer_unref (out);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* No properties at all: the "installed" model (GST_GENERATIVE_MODEL_DIR,
 * which meson points at the test models) of the chosen scale. */
GST_START_TEST (test_no_properties)
{
  GstHarness *h = gst_harness_new ("diffusionsr");
  gchar *file = NULL, *want = model ("diffusionsr-x2.safetensors");
  GstBuffer *out;
  GstElement *e;

  g_object_get (h->element, "model-file", &file, NULL);
  fail_unless_equals_string (file, want);
  g_free (file);
  g_free (want);
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=BGRx,width=16,height=8,framerate=30/1");
  fail_unless_equals_int (gst_harness_push (h,
          make_frame (GST_VIDEO_FORMAT_BGRx, 16, 8, 0, 0)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless_equals_int (gst_buffer_get_size (out), 32 * 16 * 4);
  gst_buffer_unref (out);
  gst_harness_teardown (h);

  /* scale=4 alone picks the x4 model */
  e = gst_element_factory_make ("diffusionsr", NULL);
  g_object_set (e, "scale", 4, NULL);
  g_object_get (e, "model-file", &file, NULL);
  want = model ("diffusionsr-x4.safetensors");
  fail_unless_equals_string (file, want);
  g_free (file);
  g_free (want);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_harness_set_src_caps_str (h,
      "video/x-raw,format=RGB,width=8,height=8,framerate=30/1");
  fail_unless_equals_int (gst_harness_push (h,
          make_frame (GST_VIDEO_FORMAT_RGB, 8, 8, 0, 0)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless_equals_int (gst_buffer_get_size (out), 32 * 32 * 3);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_determinism)
{
  Img a = run_one ("diffusionsr-x2.safetensors", "seed=7",
      GST_VIDEO_FORMAT_RGB, 24, 16, 0);
  Img b = run_one ("diffusionsr-x2.safetensors", "seed=7",
      GST_VIDEO_FORMAT_RGB, 24, 16, 0);
  Img c = run_one ("diffusionsr-x2.safetensors", "seed=8",
      GST_VIDEO_FORMAT_RGB, 24, 16, 0);
  GstHarness *h;
  GstBuffer *o1, *o2;
  gdouble mean, frac;
  gint max;

  /* same seed, same bytes */
  fail_unless (memcmp (a.px, b.px, (gsize) a.w * a.h * 4) == 0);
  /* another seed, other noise: most pixels change */
  img_diff (&a, &c, FALSE, &mean, &max, &frac);
  GST_INFO ("seed 7 vs 8: mean %.2f max %d, %.0f%% differ", mean, max,
      100 * frac);
  fail_unless (frac > 0.5, "only %.1f%% of the bytes differ", 100 * frac);
  g_free (a.px);
  g_free (b.px);
  g_free (c.px);

  /* The same frame twice in one stream: the same output (no shimmer). */
  h = sr_harness ("diffusionsr-x2.safetensors", NULL);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=24,"
      "height=16,framerate=30/1");
  gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_RGB, 24, 16, 0, 0));
  gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_RGB, 24, 16, 0,
          GST_SECOND / 30));
  o1 = gst_harness_pull (h);
  o2 = gst_harness_pull (h);
  {
    GstMapInfo m1, m2;

    gst_buffer_map (o1, &m1, GST_MAP_READ);
    gst_buffer_map (o2, &m2, GST_MAP_READ);
    fail_unless_equals_int (m1.size, m2.size);
    fail_unless (memcmp (m1.data, m2.data, m1.size) == 0);
    gst_buffer_unmap (o1, &m1);
    gst_buffer_unmap (o2, &m2);
  }
  gst_buffer_unref (o1);
  gst_buffer_unref (o2);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* precision: auto is f32 for a model whose file does not mark it
 * validated in bf16 (these test models), so the same bytes as f32; bf16
 * (f32 where the CPU lacks AVX512-BF16) stays within a level or two of it:
 * the inputs of every multiply-add rounded to 8 bits change a 0-255
 * output by about 0.1 on average with this random model. */
GST_START_TEST (test_precision)
{
  Img f32 = run_one ("diffusionsr-x2.safetensors", "precision=f32",
      GST_VIDEO_FORMAT_RGB, 64, 48, 0);
  Img autop = run_one ("diffusionsr-x2.safetensors", NULL,
      GST_VIDEO_FORMAT_RGB, 64, 48, 0);
  Img bf16 = run_one ("diffusionsr-x2.safetensors", "precision=bf16",
      GST_VIDEO_FORMAT_RGB, 64, 48, 0);
  GstElement *e = gst_element_factory_make ("diffusionsr", NULL);
  GParamSpec *ps = g_object_class_find_property (G_OBJECT_GET_CLASS (e),
      "precision");
  GEnumClass *ec = g_type_class_ref (ps->value_type);
  gdouble mean, frac;
  gint max, p = -1;

  g_object_get (e, "precision", &p, NULL);
  fail_unless_equals_string (g_enum_get_value (ec, p)->value_nick, "auto");
  fail_unless (g_enum_get_value_by_nick (ec, "f32") != NULL);
  fail_unless (g_enum_get_value_by_nick (ec, "bf16") != NULL);
  g_type_class_unref (ec);
  gst_object_unref (e);
  fail_unless (memcmp (f32.px, autop.px, (gsize) f32.w * f32.h * 4) == 0);
  img_diff (&f32, &bf16, FALSE, &mean, &max, &frac);
  g_print ("# bf16 vs f32: mean %.3f max %d (%.1f%% differ)\n", mean, max,
      100 * frac);
  fail_unless (mean <= 0.5, "mean difference %.3f", mean);
  fail_unless (max <= 4, "max difference %d", max);
  g_free (f32.px);
  g_free (autop.px);
  g_free (bf16.px);
}

GST_END_TEST;

/* A 64x48 frame whole, and in tiles of 32 input pixels overlapping by 16
 * (3x2 tiles).  The tiles see the same per-pixel noise, so they differ only
 * through the U-Net's receptive field and its group norms, which see a tile
 * instead of the frame.  Measured with this random model: mean 0.43 and max
 * 4 levels (out of 255), against mean 0.84 and max 14 for tiles without
 * overlap; the bounds leave room for rounding across machines. */
#define TILE_MEAN_TOL 0.75
#define TILE_MAX_TOL 8

GST_START_TEST (test_tiled_vs_untiled)
{
  Img whole = run_one ("diffusionsr-x2.safetensors", "tile-size=0",
      GST_VIDEO_FORMAT_RGB, 64, 48, 0);
  Img tiled = run_one ("diffusionsr-x2.safetensors",
      "tile-size=32 tile-overlap=16", GST_VIDEO_FORMAT_RGB, 64, 48, 0);
  Img seams = run_one ("diffusionsr-x2.safetensors",
      "tile-size=32 tile-overlap=0", GST_VIDEO_FORMAT_RGB, 64, 48, 0);
  gdouble mean, frac, mean0, frac0;
  gint max, max0;

  img_diff (&whole, &tiled, FALSE, &mean, &max, &frac);
  img_diff (&whole, &seams, FALSE, &mean0, &max0, &frac0);
  GST_INFO ("tiled vs whole: mean %.3f max %d; without overlap: mean %.3f "
      "max %d", mean, max, mean0, max0);
  g_print ("# tiled vs whole: mean %.3f max %d (%.1f%% differ); without "
      "overlap: mean %.3f max %d\n", mean, max, 100 * frac, mean0, max0);
  fail_unless (mean <= TILE_MEAN_TOL, "mean difference %.3f", mean);
  fail_unless (max <= TILE_MAX_TOL, "max difference %d", max);
  /* and the tiling did happen: overlap-free tiles show their seams */
  fail_unless (max0 > max,
      "tile-size had no effect (%.3f/%d vs %.3f/%d)", mean0, max0, mean, max);

  g_free (whole.px);
  g_free (tiled.px);
  g_free (seams.px);
}

GST_END_TEST;

/* 37x23 (odd, not a multiple of the U-Net's size step) with tight and with
 * padded strides, in several layouts: the same picture must come out. */
GST_START_TEST (test_strides_and_odd_sizes)
{
  Img tight = run_one ("diffusionsr-x2.safetensors", NULL,
      GST_VIDEO_FORMAT_RGB, 37, 23, 0);
  Img padded = run_one ("diffusionsr-x2.safetensors", NULL,
      GST_VIDEO_FORMAT_RGB, 37, 23, 37 * 3 + 29);
  Img bgr = run_one ("diffusionsr-x2.safetensors", NULL,
      GST_VIDEO_FORMAT_BGR, 37, 23, 37 * 3 + 5);
  Img bgrx = run_one ("diffusionsr-x2.safetensors", NULL,
      GST_VIDEO_FORMAT_BGRx, 37, 23, 37 * 4 + 12);
  Img rgbx = run_one ("diffusionsr-x2.safetensors", NULL,
      GST_VIDEO_FORMAT_RGBx, 37, 23, 0);
  gsize n = (gsize) 74 * 46 * 4;

  fail_unless_equals_int (tight.w, 74);
  fail_unless_equals_int (tight.h, 46);
  fail_unless (memcmp (tight.px, padded.px, n) == 0);
  /* make_frame writes the pattern by component (R, G, B), so every layout
   * holds the same picture, and Img reads it back by component. */
  fail_unless (memcmp (tight.px, bgr.px, n) == 0);
  fail_unless (memcmp (tight.px, bgrx.px, n) == 0);
  fail_unless (memcmp (tight.px, rgbx.px, n) == 0);

  g_free (tight.px);
  g_free (padded.px);
  g_free (bgr.px);
  g_free (bgrx.px);
  g_free (rgbx.px);
}

GST_END_TEST;

/* Alpha: left half opaque, right half transparent.  It is upscaled
 * classically: opaque and transparent stay so away from the edge, the edge
 * ramps monotonically, and the colours are those of the alpha-less format. */
GST_START_TEST (test_alpha)
{
  Img rgba = run_one ("diffusionsr-x2.safetensors", NULL,
      GST_VIDEO_FORMAT_RGBA, 32, 16, 0);
  Img bgra = run_one ("diffusionsr-x2.safetensors", NULL,
      GST_VIDEO_FORMAT_BGRA, 32, 16, 0);
  Img rgb = run_one ("diffusionsr-x2.safetensors", NULL,
      GST_VIDEO_FORMAT_RGB, 32, 16, 0);
  gint x, y;

  fail_unless_equals_int (rgba.w, 64);
  for (y = 0; y < rgba.h; y++) {
    for (x = 0; x < rgba.w; x++) {
      guint8 a = rgba.px[((gsize) y * rgba.w + x) * 4 + 3];

      if (x < 28) {
        fail_unless_equals_int (a, 255);
      } else if (x >= 36) {
        fail_unless_equals_int (a, 0);
      } else {
        fail_unless (a <= rgba.px[((gsize) y * rgba.w + x - 1) * 4 + 3]);
      }
    }
  }
  fail_unless (memcmp (rgba.px, bgra.px, (gsize) 64 * 32 * 4) == 0);
  for (y = 0; y < rgba.h * rgba.w; y++)
    fail_unless (memcmp (rgba.px + y * 4, rgb.px + y * 4, 3) == 0,
        "colour of pixel %d depends on alpha", y);

  g_free (rgba.px);
  g_free (bgra.px);
  g_free (rgb.px);
}

GST_END_TEST;

/* Regions of interest follow the pixels: scaled by 2. */
GST_START_TEST (test_meta_scaled)
{
  GstHarness *h = sr_harness ("diffusionsr-x2.safetensors", NULL);
  GstBuffer *in = make_frame (GST_VIDEO_FORMAT_RGB, 20, 16, 0, 0);
  GstBuffer *out;
  GstVideoRegionOfInterestMeta *roi;

  gst_buffer_add_video_region_of_interest_meta (in, "face", 2, 3, 4, 5);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=20,"
      "height=16,framerate=30/1");
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  out = gst_harness_pull (h);
  roi = gst_buffer_get_video_region_of_interest_meta (out);
  fail_unless (roi != NULL);
  fail_unless_equals_int (roi->x, 4);
  fail_unless_equals_int (roi->y, 6);
  fail_unless_equals_int (roi->w, 8);
  fail_unless_equals_int (roi->h, 10);
  fail_unless_equals_string (g_quark_to_string (roi->roi_type), "face");
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* ------------------------------------------------------------------------ */
/* QoS, latency, stats */

static GstStructure *
stats (GstElement * e)
{
  gchar *str = NULL;
  GstStructure *s;

  g_object_get (e, "stats", &str, NULL);
  fail_unless (str != NULL);
  s = gst_structure_from_string (str, NULL);
  fail_unless (s != NULL, "stats not a structure: %s", str);
  g_free (str);
  return s;
}

static guint64
stat_u64 (GstElement * e, const gchar * field)
{
  GstStructure *s = stats (e);
  guint64 v = 0;

  fail_unless (gst_structure_get_uint64 (s, field, &v), "no %s", field);
  gst_structure_free (s);
  return v;
}

static gint
stat_int (GstElement * e, const gchar * field)
{
  GstStructure *s = stats (e);
  gint v = 0;

  fail_unless (gst_structure_get_int (s, field, &v), "no %s", field);
  gst_structure_free (s);
  return v;
}

static void
push_qos (GstHarness * h, gdouble proportion, GstClockTimeDiff diff,
    GstClockTime ts)
{
  fail_unless (gst_harness_push_upstream_event (h,
          gst_event_new_qos (GST_QOS_TYPE_UNDERFLOW, proportion, diff, ts)));
}

GST_START_TEST (test_qos)
{
  GstHarness *h = sr_harness ("diffusionsr-x2.safetensors", NULL);
  GstElement *e = sr_element (h);
  gboolean qos = FALSE;
  guint i;

  g_object_get (e, "qos", &qos, NULL);
  fail_unless (qos);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=16,"
      "height=16,framerate=30/1");
  gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_RGB, 16, 16, 0, 0));
  gst_buffer_unref (gst_harness_pull (h));
  fail_unless_equals_int (stat_int (e, "steps"), 2);    /* the model's */
  fail_unless_equals_uint64 (stat_u64 (e, "frames"), 1);

  /* Downstream reports each frame one second late, three times. */
  for (i = 0; i < 3; i++)
    push_qos (h, 2.0, GST_SECOND, i * GST_SECOND / 30);

  /* A frame before the earliest useful time is dropped... */
  fail_unless_equals_int (gst_harness_push (h,
          make_frame (GST_VIDEO_FORMAT_RGB, 16, 16, 0, GST_SECOND / 2)),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  fail_unless_equals_uint64 (stat_u64 (e, "dropped"), 1);
  fail_unless_equals_uint64 (stat_u64 (e, "frames"), 1);

  /* ...and the next one runs with a single step. */
  fail_unless_equals_int (gst_harness_push (h,
          make_frame (GST_VIDEO_FORMAT_RGB, 16, 16, 0, 10 * GST_SECOND)),
      GST_FLOW_OK);
  gst_buffer_unref (gst_harness_pull (h));
  fail_unless_equals_int (stat_int (e, "steps"), 1);
  fail_unless_equals_uint64 (stat_u64 (e, "qos-reductions"), 1);
  fail_unless_equals_uint64 (stat_u64 (e, "frames"), 2);

  /* Once on time again with room to spare, the full steps come back. */
  for (i = 0; i < 30; i++)
    push_qos (h, 0.1, -GST_MSECOND, 10 * GST_SECOND + i * GST_MSECOND);
  gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_RGB, 16, 16, 0,
          11 * GST_SECOND));
  gst_buffer_unref (gst_harness_pull (h));
  fail_unless_equals_int (stat_int (e, "steps"), 2);
  fail_unless_equals_uint64 (stat_u64 (e, "frames"), 3);

  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_latency)
{
  GstHarness *h = sr_harness ("diffusionsr-x2.safetensors", NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GstClockTime before, after;
  GstStructure *s;
  gdouble mean_ms = 0;

  gst_element_set_bus (h->element, bus);
  gst_harness_set_upstream_latency (h, 10 * GST_MSECOND);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=32,"
      "height=32,framerate=30/1");
  /* answered before any frame: upstream's latency, nothing measured yet */
  before = gst_harness_query_latency (h);
  fail_unless_equals_uint64 (before, 10 * GST_MSECOND);

  gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_RGB, 32, 32, 0, 0));
  gst_buffer_unref (gst_harness_pull (h));
  /* the measured processing time is announced and added */
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_LATENCY);
  fail_unless (msg != NULL, "no LATENCY message");
  gst_message_unref (msg);
  after = gst_harness_query_latency (h);
  s = stats (sr_element (h));
  fail_unless (gst_structure_get_double (s, "mean-ms", &mean_ms));
  gst_structure_free (s);
  fail_unless (after > before, "latency %" GST_TIME_FORMAT,
      GST_TIME_ARGS (after));
  fail_unless (after - before <= (GstClockTime) (mean_ms * GST_MSECOND) + 1,
      "latency %" GST_TIME_FORMAT " for %.2f ms per frame",
      GST_TIME_ARGS (after), mean_ms);

  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_properties)
{
  GstElement *e = gst_element_factory_make ("diffusionsr", NULL);
  GObjectClass *k = G_OBJECT_GET_CLASS (e);
  struct
  {
    const gchar *name;
    GParamFlags want;
  } p[] = {
    {"model-file", G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY},
    {"scale", G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY},
    {"num-steps", G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING},
    {"seed", G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING},
    {"tile-size", G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING},
    {"tile-overlap", G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING},
    {"n-threads", G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING},
    {"precision", G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING},
    {"stats", G_PARAM_READABLE},
  };
  guint i;
  guint64 seed = 1;
  gint steps = -1;
  GstStructure *s;

  for (i = 0; i < G_N_ELEMENTS (p); i++) {
    GParamSpec *ps = g_object_class_find_property (k, p[i].name);
    GParamFlags mask = G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY |
        GST_PARAM_MUTABLE_PAUSED | GST_PARAM_MUTABLE_PLAYING;

    fail_unless (ps != NULL, "no %s", p[i].name);
    fail_unless_equals_int (ps->flags & mask, p[i].want);
  }
  g_object_get (e, "seed", &seed, "num-steps", &steps, NULL);
  fail_unless_equals_uint64 (seed, 0);
  fail_unless_equals_int (steps, 0);
  /* stats parse before any run */
  s = stats (e);
  fail_unless (gst_structure_has_field (s, "frames"));
  fail_unless (gst_structure_has_field (s, "dropped"));
  fail_unless (gst_structure_has_field (s, "load-ms"));
  gst_structure_free (s);
  gst_object_unref (e);
}

GST_END_TEST;

/* ------------------------------------------------------------------------ */
/* errors */

static GstElement *
element_with_model (const gchar * file)
{
  GstElement *e = gst_element_factory_make ("diffusionsr", NULL);
  gchar *path = model (file);

  g_object_set (e, "model-file", path, NULL);
  g_free (path);
  return e;
}

GST_START_TEST (test_error_missing_file)
{
  GstElement *e = element_with_model ("no-such-model.safetensors");

  expect_element_start_error (e, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
      "no-such-model.safetensors");
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_error_not_a_model)
{
  const gchar *files[] = { "not-a-model.safetensors", "truncated.safetensors",
    "wrong-architecture.safetensors", "wrong-scale.safetensors"
  };
  guint i;

  for (i = 0; i < G_N_ELEMENTS (files); i++) {
    GstElement *e = element_with_model (files[i]);

    expect_element_start_error (e, GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE,
        files[i]);
    gst_object_unref (e);
  }
}

GST_END_TEST;

GST_START_TEST (test_error_scale_mismatch)
{
  GstElement *e = element_with_model ("diffusionsr-x2.safetensors");

  g_object_set (e, "scale", 4, NULL);
  expect_element_start_error (e, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
      "diffusionsr-x2.safetensors");
  gst_object_unref (e);

  e = element_with_model ("diffusionsr-x4.safetensors");
  expect_element_start_error (e, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
      "diffusionsr-x4.safetensors");
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_error_frame_too_small)
{
  GstHarness *h = sr_harness ("diffusionsr-x2.safetensors", NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;

  gst_element_set_bus (h->element, bus);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=4,"
      "height=40,framerate=30/1");
  fail_unless_equals_int (gst_harness_push (h,
          make_frame (GST_VIDEO_FORMAT_RGB, 4, 40, 0, 0)),
      GST_FLOW_NOT_NEGOTIATED);
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no ERROR message");
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (err->domain == GST_CORE_ERROR);
  fail_unless_equals_int (err->code, GST_CORE_ERROR_NEGOTIATION);
  fail_unless (strstr (err->message, "4x40") != NULL, "%s", err->message);
  g_clear_error (&err);
  gst_message_unref (msg);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* ------------------------------------------------------------------------ */
/* a real file through a gst-launch-style pipeline */

static guint32
be32 (const guint8 * p)
{
  return ((guint32) p[0] << 24) | ((guint32) p[1] << 16) | ((guint32) p[2] <<
      8) | p[3];
}

GST_START_TEST (test_pipeline_png)
{
  gchar *png = test_path ("GE_TEST_DATA", "smarties-48x36.png");
  gchar *mdl = model ("diffusionsr-x2.safetensors");
  gchar *dir = g_dir_make_tmp ("diffusionsr-XXXXXX", NULL);
  gchar *out = g_build_filename (dir, "out.png", NULL);
  gchar *launch, *contents = NULL;
  gsize len = 0;
  GError *err = NULL;
  GstElement *pipe;
  GstMessage *msg;
  GstBus *bus;

  fail_unless (dir != NULL);
  launch = g_strdup_printf ("filesrc location=\"%s\" ! pngdec ! videoconvert "
      "! diffusionsr model-file=\"%s\" ! videoconvert ! pngenc ! "
      "filesink location=\"%s\"", png, mdl, out);
  pipe = gst_parse_launch (launch, &err);
  fail_unless (pipe != NULL, "%s", err ? err->message : "?");
  bus = gst_element_get_bus (pipe);
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "timeout");
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    fail ("pipeline error: %s (%s)", err->message, dbg);
  }
  gst_message_unref (msg);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipe);

  /* PNG signature, then the IHDR chunk: width and height big-endian */
  fail_unless (g_file_get_contents (out, &contents, &len, NULL));
  fail_unless (len > 33);
  fail_unless (memcmp (contents, "\x89PNG\r\n\x1a\n", 8) == 0);
  fail_unless (memcmp (contents + 12, "IHDR", 4) == 0);
  fail_unless_equals_int (be32 ((guint8 *) contents + 16), 96);
  fail_unless_equals_int (be32 ((guint8 *) contents + 20), 72);

  g_free (contents);
  g_unlink (out);
  g_rmdir (dir);
  g_free (out);
  g_free (dir);
  g_free (launch);
  g_free (mdl);
  g_free (png);
}

GST_END_TEST;

static Suite *
diffusionsr_suite (void)
{
  Suite *s = suite_create ("diffusionsr");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_caps_transform);
  tcase_add_test (tc, test_caps_query_and_refusals);
  tcase_add_test (tc, test_output_size);
  tcase_add_test (tc, test_no_properties);
  tcase_add_test (tc, test_determinism);
  tcase_add_test (tc, test_tiled_vs_untiled);
  tcase_add_test (tc, test_precision);
  tcase_add_test (tc, test_strides_and_odd_sizes);
  tcase_add_test (tc, test_alpha);
  tcase_add_test (tc, test_meta_scaled);
  tcase_add_test (tc, test_qos);
  tcase_add_test (tc, test_latency);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_error_missing_file);
  tcase_add_test (tc, test_error_not_a_model);
  tcase_add_test (tc, test_error_scale_mismatch);
  tcase_add_test (tc, test_error_frame_too_small);
  tcase_add_test (tc, test_pipeline_png);
  return s;
}

GST_CHECK_MAIN (diffusionsr);
