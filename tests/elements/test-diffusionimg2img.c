/* test-diffusionimg2img: the element through GstHarness and a real file:
 * the golden of the engine task through the element (any packed RGB
 * layout, strength), determinism, alpha, latency, every start error.
 *
 * Models: the tiny random-weight ones of make_test_models.py
 * (GE_TEST_MODELS); meson points GST_GENERATIVE_MODEL_DIR there too.
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <string.h>

#include "elementcheck.h"
#include "ge-safetensors.h"

typedef struct
{
  GeSafetensors *st;
  const guint8 *image, *out, *out_sdedit;
  gint w, h;
} Golden;

static void
golden_load (Golden * g, const gchar * name)
{
  gchar *p = test_path ("GE_TEST_GOLDEN_IMG2IMG", name);
  const GeStTensor *im;

  g->st = ge_safetensors_open (p, NULL);
  fail_unless (g->st != NULL, "%s", p);
  im = ge_safetensors_find (g->st, "image");
  g->h = (gint) im->shape[0];
  g->w = (gint) im->shape[1];
  g->image = im->data;
  g->out = ge_safetensors_find (g->st, "out")->data;
  g->out_sdedit = ge_safetensors_find (g->st, "out_sdedit")->data;
  g_free (p);
}

static GstHarness *
harness (const gchar * file, const gchar * extra)
{
  gchar *path = test_path ("GE_TEST_MODELS", file);
  gchar *launch = g_strdup_printf ("diffusionimg2img model-file=\"%s\" %s",
      path, extra ? extra : "");
  GstHarness *h = gst_harness_new_parse (launch);

  g_free (launch);
  g_free (path);
  return h;
}

/* The golden image as a frame of @format; alpha (when there) = x + y. */
static GstBuffer *
frame_of (const Golden * g, GstVideoFormat format, GstVideoInfo * info)
{
  GstVideoFrame f;
  GstBuffer *b;

  gst_video_info_set_format (info, format, g->w, g->h);
  b = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (info), NULL);
  fail_unless (gst_video_frame_map (&f, info, b, GST_MAP_WRITE));
  for (gint y = 0; y < g->h; y++)
    for (gint x = 0; x < g->w; x++) {
      for (gint c = 0; c < 3; c++)
        ((guint8 *) GST_VIDEO_FRAME_COMP_DATA (&f, c))[y *
            GST_VIDEO_FRAME_COMP_STRIDE (&f, c) +
            x * GST_VIDEO_FRAME_COMP_PSTRIDE (&f, c)] =
            g->image[(y * g->w + x) * 3 + c];
      if (GST_VIDEO_INFO_HAS_ALPHA (info))
        ((guint8 *) GST_VIDEO_FRAME_COMP_DATA (&f, 3))[y *
            GST_VIDEO_FRAME_COMP_STRIDE (&f, 3) +
            x * GST_VIDEO_FRAME_COMP_PSTRIDE (&f, 3)] = (guint8) (x + y);
    }
  gst_video_frame_unmap (&f);
  GST_BUFFER_PTS (b) = 0;
  GST_BUFFER_DURATION (b) = GST_SECOND / 25;
  return b;
}

/* Runs the golden frame through; max byte difference to @ref. */
static gint
run_golden (const Golden * g, const gchar * file, const gchar * extra,
    GstVideoFormat format, const guint8 * ref, GstBuffer ** keep)
{
  GstHarness *h = harness (file, extra);
  GstVideoInfo info;
  GstBuffer *in = frame_of (g, format, &info), *out;
  GstVideoFrame f;
  gchar *caps = g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=25/1", gst_video_format_to_string (format), g->w, g->h);
  gint maxd = 0;

  gst_harness_set_src_caps_str (h, caps);
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 0);
  fail_unless (gst_video_frame_map (&f, &info, out, GST_MAP_READ));
  for (gint y = 0; y < g->h; y++)
    for (gint x = 0; x < g->w; x++) {
      for (gint c = 0; c < 3; c++) {
        gint d = ((const guint8 *) GST_VIDEO_FRAME_COMP_DATA (&f, c))[y *
            GST_VIDEO_FRAME_COMP_STRIDE (&f, c) +
            x * GST_VIDEO_FRAME_COMP_PSTRIDE (&f, c)] -
            ref[(y * g->w + x) * 3 + c];
        maxd = MAX (maxd, ABS (d));
      }
      if (GST_VIDEO_INFO_HAS_ALPHA (&info))
        fail_unless_equals_int (((const guint8 *)
                GST_VIDEO_FRAME_COMP_DATA (&f, 3))[y *
                GST_VIDEO_FRAME_COMP_STRIDE (&f, 3) +
                x * GST_VIDEO_FRAME_COMP_PSTRIDE (&f, 3)], (guint8) (x + y));
    }
  gst_video_frame_unmap (&f);
  if (keep)
    *keep = out;
  else
    gst_buffer_unref (out);
  gst_harness_teardown (h);
  g_free (caps);
  return maxd;
}

GST_START_TEST (test_golden_through_element)
{
  const GstVideoFormat formats[] = { GST_VIDEO_FORMAT_RGB,
    GST_VIDEO_FORMAT_BGRx, GST_VIDEO_FORMAT_RGBA, GST_VIDEO_FORMAT_BGRA
  };
  Golden g;

  golden_load (&g, "diffusionimg2img.safetensors");
  for (guint i = 0; i < G_N_ELEMENTS (formats); i++)
    fail_unless (run_golden (&g, "diffusionimg2img.safetensors", "seed=7",
            formats[i], g.out, NULL) <= 1, "%s",
        gst_video_format_to_string (formats[i]));
  fail_unless (run_golden (&g, "diffusionimg2img.safetensors",
          "seed=7 strength=0.7", GST_VIDEO_FORMAT_RGB, g.out_sdedit,
          NULL) <= 1);
  ge_safetensors_free (g.st);

  golden_load (&g, "img2img-rgb.safetensors");
  fail_unless (run_golden (&g, "img2img-rgb.safetensors", "seed=7",
          GST_VIDEO_FORMAT_BGR, g.out, NULL) <= 1);
  ge_safetensors_free (g.st);
}

GST_END_TEST;

/* Same seed, same bytes; another seed, other bytes; no properties: the
 * installed model. */
GST_START_TEST (test_determinism_and_default)
{
  Golden g;
  GstBuffer *a, *b, *c;
  GstMapInfo ma, mb, mc;

  golden_load (&g, "diffusionimg2img.safetensors");
  run_golden (&g, "diffusionimg2img.safetensors", "seed=3",
      GST_VIDEO_FORMAT_RGB, g.out, &a);
  run_golden (&g, "diffusionimg2img.safetensors", "seed=3",
      GST_VIDEO_FORMAT_RGB, g.out, &b);
  run_golden (&g, "diffusionimg2img.safetensors", "seed=4",
      GST_VIDEO_FORMAT_RGB, g.out, &c);
  gst_buffer_map (a, &ma, GST_MAP_READ);
  gst_buffer_map (b, &mb, GST_MAP_READ);
  gst_buffer_map (c, &mc, GST_MAP_READ);
  fail_unless (ma.size == mb.size && memcmp (ma.data, mb.data, ma.size) == 0);
  fail_unless (memcmp (ma.data, mc.data, ma.size) != 0);
  gst_buffer_unmap (a, &ma);
  gst_buffer_unmap (b, &mb);
  gst_buffer_unmap (c, &mc);
  gst_buffer_unref (a);
  gst_buffer_unref (b);
  gst_buffer_unref (c);

  {
    GstElement *e = gst_element_factory_make ("diffusionimg2img", NULL);

    fail_unless (gst_element_set_state (e, GST_STATE_PAUSED) !=
        GST_STATE_CHANGE_FAILURE);
    gst_element_set_state (e, GST_STATE_NULL);
    gst_object_unref (e);
  }
  ge_safetensors_free (g.st);
}

GST_END_TEST;

/* After a frame the processing time is the latency (LATENCY message). */
GST_START_TEST (test_latency)
{
  Golden g;
  GstHarness *h = harness ("diffusionimg2img.safetensors", NULL);
  GstBus *bus = gst_bus_new ();
  GstVideoInfo info;
  GstClockTime min;
  GstMessage *msg;
  gchar *stats = NULL;

  golden_load (&g, "diffusionimg2img.safetensors");
  gst_element_set_bus (h->element, bus);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=37,"
      "height=29,framerate=25/1");
  fail_unless_equals_int (gst_harness_push (h, frame_of (&g,
              GST_VIDEO_FORMAT_RGB, &info)), GST_FLOW_OK);
  gst_buffer_unref (gst_harness_pull (h));
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_LATENCY);
  fail_unless (msg != NULL);
  gst_message_unref (msg);
  min = gst_harness_query_latency (h);
  fail_unless (min > 0);
  {
    GstElement *e = gst_harness_find_element (h, "diffusionimg2img");

    g_object_get (e, "stats", &stats, NULL);
    gst_object_unref (e);
  }
  fail_unless (strstr (stats, "frames=(guint64)1") != NULL, "%s", stats);
  g_free (stats);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  ge_safetensors_free (g.st);
}

GST_END_TEST;

GST_START_TEST (test_start_errors)
{
  expect_start_error ("diffusionimg2img", "no-such.safetensors",
      GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
  expect_start_error ("diffusionimg2img", "truncated.safetensors",
      GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE);
  expect_start_error ("diffusionimg2img", "not-a-model.safetensors",
      GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE);
  expect_start_error ("diffusionimg2img", "diffusionsr-x2.safetensors",
      GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE);
  expect_start_error ("diffusionimg2img", "vae.safetensors",
      GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE);
}

GST_END_TEST;

/* A real clip, turned gray first, colorized, counted. */
GST_START_TEST (test_pipeline_file)
{
  gchar *clip = test_path ("GE_TEST_SAMPLES", "building.webm");
  gchar *mdl = test_path ("GE_TEST_MODELS", "diffusionimg2img.safetensors");
  gchar *launch = g_strdup_printf ("filesrc location=\"%s\" ! decodebin ! "
      "videoconvert ! videoscale ! video/x-raw,format=GRAY8,width=96,height=54 "
      "! videoconvert ! diffusionimg2img model-file=\"%s\" name=c ! "
      "videoconvert ! fakesink", clip, mdl);
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch (launch, &err), *c;
  gchar *stats = NULL;

  fail_unless (pipe != NULL, "%s", err ? err->message : "?");
  run_to_eos (pipe);
  c = gst_bin_get_by_name (GST_BIN (pipe), "c");
  g_object_get (c, "stats", &stats, NULL);
  fail_unless (strstr (stats, "frames=(guint64)0") == NULL, "%s", stats);
  g_free (stats);
  gst_object_unref (c);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);
  g_free (launch);
  g_free (mdl);
  g_free (clip);
}

GST_END_TEST;

static Suite *
img2img_suite (void)
{
  Suite *s = suite_create ("diffusionimg2img");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_golden_through_element);
  tcase_add_test (tc, test_determinism_and_default);
  tcase_add_test (tc, test_latency);
  tcase_add_test (tc, test_start_errors);
  tcase_add_test (tc, test_pipeline_file);
  return s;
}

GST_CHECK_MAIN (img2img);
