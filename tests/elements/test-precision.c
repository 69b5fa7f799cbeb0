/* test-precision: the "precision" property (auto, f32, bf16, int8) of the model
 * elements, which the shared element core declares and hands to the
 * engine.
 *
 * For diffusionsr, diffusionimg2img, diffusioninpaint (the U-Net running:
 * exemplar-guidance 0), vaeencode ! vaedecode and a diffusers pipeline
 * folder (StableDiffusionImg2ImgPipeline in diffusionimg2img: U-Net and
 * VAE of GeSd), one frame with each setting:
 *  - auto gives the bytes of f32: the test models' files carry no
 *    "precision_auto" mark, and diffusers folders never do;
 *  - bf16 gives other bytes, within a few levels of f32 (a mean of at most
 *    half a level for the own models, more for the random VAE and the
 *    random pipeline parts, which amplify rounding more than trained
 *    weights do), where the CPU has AVX512-BF16
 *    (ge_precision_bf16_available ()), and the bytes of f32 where it does
 *    not (the f32 path runs);
 *  - int8 gives other bytes again, within its own bounds (8-bit inputs:
 *    about four times bf16's differences on the random pipeline parts),
 *    where the CPU has AVX512-VNNI, and bf16's bytes where it does not;
 *  - the stats say which precision runs.
 * Besides: a change in PLAYING takes effect on the next frame (an
 * identical inpainting frame is not served from the last frame's cache
 * when the arithmetic changed), the property's type, default, flags and
 * documentation, also gansynth's (8-bit weights for its matrix-vector
 * products; test-gansynth checks what it runs).
 *
 * The models are the tiny random-weight ones of make_test_models.py
 * (GE_TEST_MODELS) and the diffusers fixture parts (GE_TEST_FIXTURES).
 */
#include "elementcheck.h"

#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <glib/gstdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ge-precision.h"

#define W 64
#define H 48

static guint8
pattern (gint x, gint y, gint c)
{
  gint dx = x - 23, dy = y - 19;
  gint v = (x * 5 + y * 3 + c * 60 + (x * y) / 7) & 255;

  if (dx * dx + dy * dy < 81)
    v = 255 - v / 2;
  return (guint8) v;
}

static GstBuffer *
make_frame (gint w, gint h, GstClockTime pts)
{
  GstVideoInfo info;
  GstVideoFrame f;
  GstBuffer *buf;

  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, w, h);
  buf = gst_buffer_new_allocate (NULL, info.size, NULL);
  fail_unless (gst_video_frame_map (&f, &info, buf, GST_MAP_WRITE));
  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++)
      for (gint c = 0; c < 3; c++)
        ((guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&f, 0))[y *
            GST_VIDEO_FRAME_PLANE_STRIDE (&f, 0) + x * 3 + c] =
            pattern (x, y, c);
  gst_video_frame_unmap (&f);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = GST_SECOND / 10;
  return buf;
}

/* A PGM mask file of W x H with a rectangle to regenerate. */
static gchar *
write_mask (void)
{
  gchar *path = g_build_filename (g_get_tmp_dir (), "precision-mask.pgm",
      NULL);
  GString *s = g_string_new (NULL);

  g_string_append_printf (s, "P5\n%d %d\n255\n", W, H);
  for (gint y = 0; y < H; y++)
    for (gint x = 0; x < W; x++)
      g_string_append_c (s, x >= 20 && x < 40 && y >= 14 && y < 30 ? 255 : 0);
  fail_unless (g_file_set_contents (path, s->str, s->len, NULL));
  g_string_free (s, TRUE);
  return path;
}

/* ---- a diffusers pipeline folder of fixture parts ---------------------- */

#define FIX "GE_TEST_FIXTURES"

static gchar *
make_sd_folder (void)
{
  static const PipelinePart parts[] = {
    {"unet", "diffusers", "UNet2DConditionModel", FIX, "unet_cond_sd_small"},
    {"vae", "diffusers", "AutoencoderKL", FIX, "vae_kl_small"},
    {"text_encoder", "transformers", "CLIPTextModel", FIX, "clip_text_small"},
    {"tokenizer", "transformers", "CLIPTokenizer", FIX, "clip_tokenizer_small"},
    {"scheduler", "diffusers", "DDIMScheduler", FIX,
        "sched_ddim_sd15_eps_offset1"},
  };
  const PipelinePart *list[] = { &parts[0], &parts[1], &parts[2], &parts[3],
    &parts[4], NULL
  };

  return make_pipeline_folder ("StableDiffusionImg2ImgPipeline", list);
}

/* ---- running frames ------------------------------------------------------ */

typedef struct
{
  guint8 *data;
  gsize size;
  gchar *stats;                 /* of @factory, after the frames */
} Out;

/* "<launch> precision=<precision>" (no precision: the default) in a
 * harness; W x H RGB frames in, the output of the last one back. */
static Out
run (const gchar * launch, const gchar * factory, const gchar * precision,
    gint n_frames)
{
  gchar *full = g_strdup_printf ("%s%s%s", launch,
      precision ? " precision=" : "", precision ? precision : "");
  GstHarness *h = gst_harness_new_parse (full);
  GstElement *e = gst_harness_find_element (h, factory);
  GstBuffer *buf = NULL;
  GstMapInfo map;
  Out o;

  fail_unless (e != NULL);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=64,"
      "height=48,framerate=10/1");
  for (gint i = 0; i < n_frames; i++) {
    if (buf)
      gst_buffer_unref (buf);
    buf = gst_harness_push_and_pull (h, make_frame (W, H, i * GST_SECOND / 10));
    fail_unless (buf != NULL, "%s: no output", full);
  }
  fail_unless (gst_buffer_map (buf, &map, GST_MAP_READ));
  o.data = g_memdup2 (map.data, map.size);
  o.size = map.size;
  gst_buffer_unmap (buf, &map);
  gst_buffer_unref (buf);
  g_object_get (e, "stats", &o.stats, NULL);
  gst_object_unref (e);
  gst_harness_teardown (h);
  g_free (full);
  return o;
}

static void
out_clear (Out * o)
{
  g_free (o->data);
  g_free (o->stats);
}

/* Mean and largest difference of two outputs, in 8-bit levels. */
static void
diff (const Out * a, const Out * b, gdouble * mean, gint * max)
{
  gdouble sum = 0;

  fail_unless_equals_int (a->size, b->size);
  *max = 0;
  for (gsize i = 0; i < a->size; i++) {
    gint d = abs ((gint) a->data[i] - (gint) b->data[i]);
    sum += d;
    *max = MAX (*max, d);
  }
  *mean = sum / a->size;
}

static void
assert_stats_precision (const Out * o, const gchar * want)
{
  gchar *field = g_strdup_printf ("precision=(string)%s", want);

  fail_unless (strstr (o->stats, field) != NULL, "stats \"%s\" lack %s",
      o->stats, field);
  g_free (field);
}

/* auto == f32 bit for bit; bf16 within @max_levels (mean @max_mean) of f32
 * and different where it runs, f32's bytes where it does not; int8 within
 * @int8_levels (mean @int8_mean) and not bf16's bytes where it runs, bf16's
 * where it does not. */
static void
check_element (const gchar * launch, const gchar * factory,
    gdouble max_mean, gint max_levels, gdouble int8_mean, gint int8_levels)
{
  const gboolean avail = ge_precision_bf16_available ();
  Out f32 = run (launch, factory, "f32", 1);
  Out autop = run (launch, factory, NULL, 1);
  Out bf16 = run (launch, factory, "bf16", 1);
  gdouble mean;
  gint max;

  fail_unless_equals_int (f32.size, autop.size);
  fail_unless (memcmp (f32.data, autop.data, f32.size) == 0,
      "%s: auto is not f32 for an unmarked model", factory);
  assert_stats_precision (&f32, "f32");
  assert_stats_precision (&autop, "f32");
  assert_stats_precision (&bf16, avail ? "bf16" : "f32");
  diff (&f32, &bf16, &mean, &max);
  g_print ("# %s: bf16 vs f32 mean %.3f max %d levels (bf16 %s)\n", factory,
      mean, max, avail ? "available" : "not available: f32 runs");
  if (avail) {
    fail_unless (max > 0, "%s: bf16 gave f32's bytes", factory);
    fail_unless (mean <= max_mean, "%s: mean difference %.3f", factory, mean);
    fail_unless (max <= max_levels, "%s: max difference %d", factory, max);
  } else {
    fail_unless_equals_int (max, 0);
  }
  /* int8: the resnets' convs in 8 bits where VNNI is, bf16's bytes (and
   * name) where it is not */
  Out int8 = run (launch, factory, "int8", 1);
  if (ge_precision_int8_available ()) {
    assert_stats_precision (&int8, "int8");
    diff (&bf16, &int8, &mean, &max);
    fail_unless (max > 0, "%s: int8 gave bf16's bytes", factory);
    diff (&f32, &int8, &mean, &max);
    g_print ("# %s: int8 vs f32 mean %.3f max %d levels\n", factory, mean, max);
    fail_unless (mean <= int8_mean, "%s: int8 mean difference %.3f", factory, mean);
    fail_unless (max <= int8_levels, "%s: int8 max difference %d", factory, max);
  } else {
    assert_stats_precision (&int8, avail ? "bf16" : "f32");
    diff (&bf16, &int8, &mean, &max);
    fail_unless_equals_int (max, 0);
  }
  out_clear (&f32);
  out_clear (&autop);
  out_clear (&bf16);
  out_clear (&int8);
}

static gchar *
launch_of (const gchar * factory, const gchar * file, const gchar * extra)
{
  gchar *path = test_path ("GE_TEST_MODELS", file);
  gchar *l = g_strdup_printf ("%s model-file=\"%s\" %s", factory, path,
      extra ? extra : "");

  g_free (path);
  return l;
}

/* ---- tests -------------------------------------------------------------- */

GST_START_TEST (test_diffusionsr)
{
  gchar *l = launch_of ("diffusionsr", "diffusionsr-x2.safetensors", NULL);

  check_element (l, "diffusionsr", 0.5, 4, 1.0, 8);
  g_free (l);
}

GST_END_TEST;

GST_START_TEST (test_diffusionimg2img)
{
  gchar *l = launch_of ("diffusionimg2img", "diffusionimg2img.safetensors",
      NULL);

  check_element (l, "diffusionimg2img", 0.5, 4, 1.0, 8);
  g_free (l);
}

GST_END_TEST;

GST_START_TEST (test_diffusioninpaint)
{
  gchar *mask = write_mask ();
  gchar *extra = g_strdup_printf ("mask-file=\"%s\" exemplar-guidance=0",
      mask);
  gchar *l = launch_of ("diffusioninpaint", "diffusioninpaint.safetensors",
      extra);

  check_element (l, "diffusioninpaint", 0.5, 4, 1.0, 8);
  g_free (l);
  g_free (extra);
  g_unlink (mask);
  g_free (mask);
}

GST_END_TEST;

GST_START_TEST (test_vae)
{
  gchar *path = test_path ("GE_TEST_MODELS", "vae.safetensors");
  const gchar *precisions[] = { NULL, "f32", "bf16" };
  Out o[3];

  /* Both elements with the same setting: encode, then decode. */
  for (gint i = 0; i < 3; i++) {
    const gchar *p = precisions[i];
    gchar *l = g_strdup_printf ("vaeencode model-file=\"%s\"%s%s ! "
        "vaedecode model-file=\"%s\"", path, p ? " precision=" : "",
        p ? p : "", path);

    o[i] = run (l, "vaedecode", p, 1);
    g_free (l);
  }
  fail_unless (memcmp (o[0].data, o[1].data, o[0].size) == 0);
  assert_stats_precision (&o[0], "f32");
  assert_stats_precision (&o[2], ge_precision_bf16_available ()? "bf16" :
      "f32");
  {
    gdouble mean;
    gint max;

    diff (&o[1], &o[2], &mean, &max);
    g_print ("# vaeencode ! vaedecode: bf16 vs f32 mean %.3f max %d\n", mean,
        max);
    /* The random test VAE amplifies rounding more than a trained one
     * (the shipped VAE: its card's budget). */
    if (ge_precision_bf16_available ()) {
      fail_unless (max > 0 && max <= 10 && mean <= 1.0, "mean %.3f max %d",
          mean, max);
    } else {
      fail_unless_equals_int (max, 0);
    }
  }
  for (gint i = 0; i < 3; i++)
    out_clear (&o[i]);
  g_free (path);
}

GST_END_TEST;

GST_START_TEST (test_pipeline_folder)
{
  gchar *dir = make_sd_folder ();
  gchar *l = g_strdup_printf ("diffusionimg2img model-file=\"%s\" "
      "num-steps=2 strength=0.6 prompt=\"a red house\" seed=3", dir);

  /* Random U-Net and VAE fixtures, one after the other: the largest gain
   * of rounding of these tests. */
  check_element (l, "diffusionimg2img", 2.0, 16, 8.0, 64);
  g_free (l);
  remove_folder (dir);
}

GST_END_TEST;

/* Set in PLAYING, precision takes effect on the next frame; the same
 * inpainting frame again is served from the cache only while the
 * arithmetic stays. */
GST_START_TEST (test_change_in_playing)
{
  const gboolean avail = ge_precision_bf16_available ();
  gchar *mask = write_mask ();
  gchar *extra = g_strdup_printf ("mask-file=\"%s\" exemplar-guidance=0",
      mask);
  gchar *l = launch_of ("diffusioninpaint", "diffusioninpaint.safetensors",
      extra);
  GstHarness *h = gst_harness_new_parse (l);
  GstElement *e = gst_harness_find_element (h, "diffusioninpaint");
  GstBuffer *a, *b, *c;
  GstMapInfo ma, mb, mc;
  gchar *stats;
  Out bf16 = run (l, "diffusioninpaint", "bf16", 1);

  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=64,"
      "height=48,framerate=10/1");
  g_object_set (e, "precision", GE_PRECISION_F32, NULL);
  a = gst_harness_push_and_pull (h, make_frame (W, H, 0));
  gst_util_set_object_arg (G_OBJECT (e), "precision", "bf16");
  b = gst_harness_push_and_pull (h, make_frame (W, H, GST_SECOND / 10));
  g_object_get (e, "stats", &stats, NULL);
  fail_unless (strstr (stats, avail ? "reused-boxes=(guint64)0" :
          "reused-boxes=(guint64)1") != NULL, "%s", stats);
  g_free (stats);
  c = gst_harness_push_and_pull (h, make_frame (W, H, 2 * GST_SECOND / 10));
  g_object_get (e, "stats", &stats, NULL);
  fail_unless (strstr (stats, "reused-boxes=(guint64)1") != NULL, "%s", stats);
  g_free (stats);
  fail_unless (gst_buffer_map (a, &ma, GST_MAP_READ));
  fail_unless (gst_buffer_map (b, &mb, GST_MAP_READ));
  fail_unless (gst_buffer_map (c, &mc, GST_MAP_READ));
  /* b is what a fresh element in bf16 gives; c is b again */
  fail_unless (mb.size == bf16.size && memcmp (mb.data, bf16.data,
          mb.size) == 0);
  fail_unless (memcmp (mb.data, mc.data, mb.size) == 0);
  fail_unless ((memcmp (ma.data, mb.data, ma.size) != 0) == avail);
  gst_buffer_unmap (a, &ma);
  gst_buffer_unmap (b, &mb);
  gst_buffer_unmap (c, &mc);
  gst_buffer_unref (a);
  gst_buffer_unref (b);
  gst_buffer_unref (c);
  out_clear (&bf16);
  gst_object_unref (e);
  gst_harness_teardown (h);
  g_free (l);
  g_free (extra);
  g_unlink (mask);
  g_free (mask);
}

GST_END_TEST;

GST_START_TEST (test_property)
{
  const gchar *with[] = { "diffusionsr", "diffusionimg2img",
    "diffusioninpaint", "vaeencode", "vaedecode"
  };

  for (guint i = 0; i < G_N_ELEMENTS (with); i++) {
    GstElement *e = gst_element_factory_make (with[i], NULL);
    GParamSpec *ps;
    GEnumClass *ec;
    gint v = -1;

    fail_unless (e != NULL, "%s", with[i]);
    ps = g_object_class_find_property (G_OBJECT_GET_CLASS (e), "precision");
    fail_unless (ps != NULL, "%s has no precision property", with[i]);
    fail_unless (G_IS_PARAM_SPEC_ENUM (ps));
    fail_unless_equals_string (g_type_name (ps->value_type),
        "GstGenerativePrecision");
    fail_unless ((ps->flags & G_PARAM_READWRITE) == G_PARAM_READWRITE);
    fail_unless (ps->flags & GST_PARAM_MUTABLE_PLAYING);
    /* what gst-inspect prints */
    fail_unless (strstr (g_param_spec_get_blurb (ps), "bf16") != NULL);
    fail_unless (strstr (g_param_spec_get_blurb (ps), "AVX512-BF16") != NULL);
    ec = g_type_class_ref (ps->value_type);
    fail_unless_equals_int (g_enum_get_value_by_nick (ec, "f32")->value,
        GE_PRECISION_F32);
    fail_unless_equals_int (g_enum_get_value_by_nick (ec, "bf16")->value,
        GE_PRECISION_BF16);
    fail_unless_equals_int (g_enum_get_value_by_nick (ec, "auto")->value,
        GE_PRECISION_AUTO);
    fail_unless_equals_int (G_PARAM_SPEC_ENUM (ps)->default_value,
        GE_PRECISION_AUTO);
    g_object_get (e, "precision", &v, NULL);
    fail_unless_equals_int (v, GE_PRECISION_AUTO);
    gst_util_set_object_arg (G_OBJECT (e), "precision", "bf16");
    g_object_get (e, "precision", &v, NULL);
    fail_unless_equals_int (v, GE_PRECISION_BF16);
    g_object_set (e, "precision", GE_PRECISION_F32, NULL);
    g_object_get (e, "precision", &v, NULL);
    fail_unless_equals_int (v, GE_PRECISION_F32);
    g_type_class_unref (ec);
    gst_object_unref (e);
  }
  {
    /* gansynth's: the same type and default, its own blurb (int8 weights
     * for its products, bf16 runs f32); what it runs is test-gansynth's */
    GstElement *g = gst_element_factory_make ("gansynth", NULL);
    GParamSpec *ps;

    fail_unless (g != NULL);
    ps = g_object_class_find_property (G_OBJECT_GET_CLASS (g), "precision");
    fail_unless (ps != NULL);
    fail_unless_equals_string (g_type_name (ps->value_type),
        "GstGenerativePrecision");
    fail_unless (ps->flags & GST_PARAM_MUTABLE_PLAYING);
    fail_unless_equals_int (G_PARAM_SPEC_ENUM (ps)->default_value,
        GE_PRECISION_AUTO);
    fail_unless (strstr (g_param_spec_get_blurb (ps), "int8") != NULL);
    fail_unless (strstr (g_param_spec_get_blurb (ps), "bf16 runs f32") != NULL);
    gst_object_unref (g);
  }
}

GST_END_TEST;

static Suite *
precision_suite (void)
{
  Suite *s = suite_create ("precision");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_property);
  tcase_add_test (tc, test_diffusionsr);
  tcase_add_test (tc, test_diffusionimg2img);
  tcase_add_test (tc, test_diffusioninpaint);
  tcase_add_test (tc, test_vae);
  tcase_add_test (tc, test_pipeline_folder);
  tcase_add_test (tc, test_change_in_playing);
  return s;
}

GST_CHECK_MAIN (precision);
