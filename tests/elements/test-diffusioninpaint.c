/* test-diffusioninpaint: the diffusioninpaint element through GstHarness and
 * a real pipeline: each mask source (file PGM and PNG, pad, alpha, ROI
 * metas, auto), pixels away from the mask untouched, a mask pad that starts
 * late and one that stops, masks of another size, determinism, flushing,
 * and the error paths.
 *
 * The model is the tiny random-weight one of make_test_models.py
 * (GE_TEST_MODELS; meson points GST_GENERATIVE_MODEL_DIR there too).
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <glib/gstdio.h>
#include <string.h>

#define W 64
#define H 48
/* The mask rectangle of the tests, and the feather they set. */
#define MX0 20
#define MY0 14
#define MX1 36
#define MY1 26
#define FEATHER 2

static gchar *
test_path (const gchar * env, const gchar * name)
{
  const gchar *dir = g_getenv (env);

  fail_unless (dir != NULL, "%s not set (run through meson test)", env);
  return g_build_filename (dir, name, NULL);
}

static guint8
pattern (gint x, gint y, gint c)
{
  return (guint8) ((x * 7 + y * 3 + c * 70 + (x * y) / 5) & 255);
}

static GstBuffer *
make_frame (GstVideoFormat format, gint w, gint h, GstClockTime pts,
    gboolean alpha_hole)
{
  GstVideoInfo info;
  GstVideoFrame f;
  GstBuffer *buf;

  gst_video_info_set_format (&info, format, w, h);
  buf = gst_buffer_new_allocate (NULL, info.size, NULL);
  fail_unless (gst_video_frame_map (&f, &info, buf, GST_MAP_WRITE));
  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++) {
      guint8 *p = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&f, 0)
          + y * GST_VIDEO_FRAME_PLANE_STRIDE (&f, 0)
          + x * GST_VIDEO_FRAME_COMP_PSTRIDE (&f, 0);
      for (gint c = 0; c < 3; c++)
        p[GST_VIDEO_FRAME_COMP_OFFSET (&f, c)] = pattern (x, y, c);
      if (GST_VIDEO_INFO_HAS_ALPHA (&info)) {
        gboolean in = x >= MX0 && x < MX1 && y >= MY0 && y < MY1;
        p[GST_VIDEO_FRAME_COMP_OFFSET (&f, 3)] = alpha_hole && in ? 0 : 255;
      }
    }
  gst_video_frame_unmap (&f);
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = GST_SECOND / 10;
  return buf;
}

/* A GRAY8 mask of @w x @h with the test rectangle scaled to it. */
static GstBuffer *
make_mask (gint w, gint h, GstClockTime pts)
{
  GstVideoInfo info;
  GstVideoFrame f;
  GstBuffer *buf;

  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_GRAY8, w, h);
  buf = gst_buffer_new_allocate (NULL, info.size, NULL);
  fail_unless (gst_video_frame_map (&f, &info, buf, GST_MAP_WRITE));
  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++) {
      gint fx = x * W / w, fy = y * H / h;
      ((guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&f, 0))[y *
          GST_VIDEO_FRAME_PLANE_STRIDE (&f, 0) + x] =
          fx >= MX0 && fx < MX1 && fy >= MY0 && fy < MY1 ? 255 : 0;
    }
  gst_video_frame_unmap (&f);
  GST_BUFFER_PTS (buf) = pts;
  return buf;
}

static gchar *
caps_string (const gchar * format, gint w, gint h)
{
  return g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=10/1", format, w, h);
}

static GstHarness *
harness (const gchar * extra)
{
  gchar *launch = g_strdup_printf ("diffusioninpaint name=ip mask-feather=%d %s",
      FEATHER, extra ? extra : "");
  GstHarness *h = gst_harness_new_parse (launch);

  g_free (launch);
  return h;
}

static GstElement *
element (GstHarness * h)
{
  GstElement *e = gst_harness_find_element (h, "diffusioninpaint");

  fail_unless (e != NULL);
  gst_object_unref (e);
  return e;
}

/* How many pixels of @out differ from the pattern inside the (feathered)
 * test rectangle and outside it; alpha and other bytes not compared. */
static void
count_changes (GstBuffer * out, GstVideoFormat format, gsize * inside,
    gsize * outside)
{
  GstVideoInfo info;
  GstVideoFrame f;

  *inside = *outside = 0;
  gst_video_info_set_format (&info, format, W, H);
  fail_unless (gst_video_frame_map (&f, &info, out, GST_MAP_READ));
  for (gint y = 0; y < H; y++)
    for (gint x = 0; x < W; x++) {
      const guint8 *p = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&f, 0)
          + y * GST_VIDEO_FRAME_PLANE_STRIDE (&f, 0)
          + x * GST_VIDEO_FRAME_COMP_PSTRIDE (&f, 0);
      gboolean near = x >= MX0 - FEATHER - 1 && x < MX1 + FEATHER + 1
          && y >= MY0 - FEATHER - 1 && y < MY1 + FEATHER + 1;
      gboolean diff = FALSE;
      for (gint c = 0; c < 3; c++)
        diff |= p[GST_VIDEO_FRAME_COMP_OFFSET (&f, c)] != pattern (x, y, c);
      if (diff && near)
        (*inside)++;
      else if (diff)
        (*outside)++;
    }
  gst_video_frame_unmap (&f);
}

/* One frame through @h: changed inside, identical outside. */
static void
check_inpainted (GstHarness * h, GstVideoFormat format, gboolean alpha_hole)
{
  GstBuffer *out;
  gsize inside, outside;

  out = gst_harness_push_and_pull (h, make_frame (format, W, H, 0, alpha_hole));
  fail_unless (out != NULL);
  count_changes (out, format, &inside, &outside);
  fail_unless_equals_int (outside, 0);
  fail_unless (inside > (MX1 - MX0) * (MY1 - MY0) / 2, "only %u pixels changed",
      (guint) inside);
  gst_buffer_unref (out);
}

/* A bus on the harnessed element, so that its messages can be checked. */
static GstBus *
watch (GstHarness * h)
{
  GstBus *bus = gst_bus_new ();

  gst_element_set_bus (element (h), bus);
  return bus;
}

static gint
count_messages (GstBus * bus, GstMessageType type)
{
  GstMessage *msg;
  gint n = 0;

  while ((msg = gst_bus_pop_filtered (bus, type))) {
    n++;
    gst_message_unref (msg);
  }
  return n;
}

/* The test rectangle as a @w x @h PGM or PNG file. */
static gchar *
write_mask_file (const gchar * name, gboolean png, gint w, gint h)
{
  gchar *path = g_build_filename (g_get_tmp_dir (), name, NULL);
  GString *s = g_string_new (NULL);

  if (png) {
    /* made by pngenc, so the test needs no PNG writer of its own */
    GstHarness *enc = gst_harness_new ("pngenc");
    gchar *caps = caps_string ("GRAY8", w, h);
    GstBuffer *png_buf;
    GstMapInfo map;
    gst_harness_set_src_caps_str (enc, caps);
    png_buf = gst_harness_push_and_pull (enc, make_mask (w, h, 0));
    fail_unless (png_buf != NULL);
    fail_unless (gst_buffer_map (png_buf, &map, GST_MAP_READ));
    fail_unless (g_file_set_contents (path, (const gchar *) map.data, map.size, NULL));
    gst_buffer_unmap (png_buf, &map);
    gst_buffer_unref (png_buf);
    gst_harness_teardown (enc);
    g_free (caps);
  } else {
    GstBuffer *m = make_mask (w, h, 0);
    GstMapInfo map;
    g_string_append_printf (s, "P5\n# test mask\n%d %d\n255\n", w, h);
    gst_buffer_map (m, &map, GST_MAP_READ);
    for (gint y = 0; y < h; y++)  /* GRAY8 rows are padded to 4 bytes */
      g_string_append_len (s, (const gchar *) map.data + y * GST_ROUND_UP_4 (w), w);
    gst_buffer_unmap (m, &map);
    gst_buffer_unref (m);
    fail_unless (g_file_set_contents (path, s->str, s->len, NULL));
  }
  g_string_free (s, TRUE);
  return path;
}

static GstHarness *
file_harness (const gchar * path, const gchar * format, const gchar * extra)
{
  gchar *e = g_strdup_printf ("mask-file=\"%s\" %s", path, extra ? extra : "");
  GstHarness *h = harness (e);
  gchar *caps = caps_string (format, W, H);

  gst_harness_set_src_caps_str (h, caps);
  g_free (caps);
  g_free (e);
  return h;
}

GST_START_TEST (test_mask_file_pgm_and_png)
{
  for (gint png = 0; png <= 1; png++) {
    gchar *path = write_mask_file (png ? "ip-mask.png" : "ip-mask.pgm", png, W, H);
    GstHarness *h = file_harness (path, "RGB", NULL);
    check_inpainted (h, GST_VIDEO_FORMAT_RGB, FALSE);
    gst_harness_teardown (h);
    g_unlink (path);
    g_free (path);
  }
}
GST_END_TEST;

/* Same seed, same frame: same bytes; another seed: other bytes; a second
 * frame with the same mask: the same fill (static masks do not flicker). */
GST_START_TEST (test_determinism)
{
  gchar *path = write_mask_file ("ip-det.pgm", FALSE, W, H);
  GstHarness *h = file_harness (path, "BGRx", NULL);
  GstHarness *h2 = file_harness (path, "BGRx", "seed=9");
  GstBuffer *a = gst_harness_push_and_pull (h,
      make_frame (GST_VIDEO_FORMAT_BGRx, W, H, 0, FALSE));
  GstBuffer *b = gst_harness_push_and_pull (h,
      make_frame (GST_VIDEO_FORMAT_BGRx, W, H, GST_SECOND / 10, FALSE));
  GstBuffer *c = gst_harness_push_and_pull (h2,
      make_frame (GST_VIDEO_FORMAT_BGRx, W, H, 0, FALSE));

  {
    GstMapInfo ma, mb, mc;
    gst_buffer_map (a, &ma, GST_MAP_READ);
    gst_buffer_map (b, &mb, GST_MAP_READ);
    gst_buffer_map (c, &mc, GST_MAP_READ);
    fail_unless (ma.size == mb.size && memcmp (ma.data, mb.data, ma.size) == 0);
    fail_unless (memcmp (ma.data, mc.data, ma.size) != 0);
    gst_buffer_unmap (a, &ma);
    gst_buffer_unmap (b, &mb);
    gst_buffer_unmap (c, &mc);
  }
  fail_unless_equals_uint64 (GST_BUFFER_PTS (b), GST_SECOND / 10);
  {
    gchar *stats;
    g_object_get (element (h), "stats", &stats, NULL);
    /* the second frame is the first one again: its box was put back */
    fail_unless (strstr (stats, "reused-boxes=(guint64)1") != NULL, "%s", stats);
    g_free (stats);
  }
  gst_buffer_unref (a);
  gst_buffer_unref (b);
  gst_buffer_unref (c);
  gst_harness_teardown (h);
  gst_harness_teardown (h2);
  g_unlink (path);
  g_free (path);
}
GST_END_TEST;

/* exemplar-guidance=1 (the PatchMatch fill of the frame): changes only
 * pixels near the mask, is the same bytes for the same frame (the second
 * frame's box put back), differs with the seed and from the model alone. */
GST_START_TEST (test_exemplar_guidance)
{
  gchar *path = write_mask_file ("ip-ex.pgm", FALSE, W, H);
  GstHarness *h = file_harness (path, "RGB", "exemplar-guidance=1");
  GstHarness *h2 = file_harness (path, "RGB", "exemplar-guidance=1 seed=9");
  GstHarness *h3 = file_harness (path, "RGB", "exemplar-guidance=0");
  GstBuffer *a = gst_harness_push_and_pull (h,
      make_frame (GST_VIDEO_FORMAT_RGB, W, H, 0, FALSE));
  GstBuffer *b = gst_harness_push_and_pull (h,
      make_frame (GST_VIDEO_FORMAT_RGB, W, H, GST_SECOND / 10, FALSE));
  GstBuffer *c = gst_harness_push_and_pull (h2,
      make_frame (GST_VIDEO_FORMAT_RGB, W, H, 0, FALSE));
  GstBuffer *d = gst_harness_push_and_pull (h3,
      make_frame (GST_VIDEO_FORMAT_RGB, W, H, 0, FALSE));
  gsize inside, outside;
  gdouble g;

  count_changes (a, GST_VIDEO_FORMAT_RGB, &inside, &outside);
  fail_unless_equals_int (outside, 0);
  fail_unless (inside > (MX1 - MX0) * (MY1 - MY0) / 2, "only %u pixels changed",
      (guint) inside);
  {
    GstMapInfo ma, mb, mc, md;
    gst_buffer_map (a, &ma, GST_MAP_READ);
    gst_buffer_map (b, &mb, GST_MAP_READ);
    gst_buffer_map (c, &mc, GST_MAP_READ);
    gst_buffer_map (d, &md, GST_MAP_READ);
    fail_unless (ma.size == mb.size && memcmp (ma.data, mb.data, ma.size) == 0);
    fail_unless (memcmp (ma.data, mc.data, ma.size) != 0);
    fail_unless (memcmp (ma.data, md.data, ma.size) != 0);
    gst_buffer_unmap (a, &ma);
    gst_buffer_unmap (b, &mb);
    gst_buffer_unmap (c, &mc);
    gst_buffer_unmap (d, &md);
  }
  {
    gchar *stats;
    g_object_get (element (h), "stats", &stats, NULL);
    fail_unless (strstr (stats, "reused-boxes=(guint64)1") != NULL, "%s", stats);
    g_free (stats);
  }
  g_object_get (element (h), "exemplar-guidance", &g, NULL);
  fail_unless (g == 1.0);
  gst_buffer_unref (a);
  gst_buffer_unref (b);
  gst_buffer_unref (c);
  gst_buffer_unref (d);
  gst_harness_teardown (h);
  gst_harness_teardown (h2);
  gst_harness_teardown (h3);
  g_unlink (path);
  g_free (path);
}
GST_END_TEST;

GST_START_TEST (test_alpha_source)
{
  GstHarness *h = harness (NULL);       /* auto: RGBA has alpha */
  gchar *caps = caps_string ("RGBA", W, H);
  GstBuffer *out;
  GstMapInfo map;

  gst_harness_set_src_caps_str (h, caps);
  check_inpainted (h, GST_VIDEO_FORMAT_RGBA, TRUE);
  /* alpha itself passes through */
  out = gst_harness_push_and_pull (h, make_frame (GST_VIDEO_FORMAT_RGBA, W, H,
          GST_SECOND / 10, TRUE));
  gst_buffer_map (out, &map, GST_MAP_READ);
  fail_unless_equals_int (map.data[(MY0 * W + MX0) * 4 + 3], 0);
  fail_unless_equals_int (map.data[3], 255);
  gst_buffer_unmap (out, &map);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  g_free (caps);
}
GST_END_TEST;

GST_START_TEST (test_roi_meta_source)
{
  GstHarness *h = harness (NULL);       /* auto: RGB, no file, no pad */
  gchar *caps = caps_string ("RGB", W, H);
  GstBuffer *in, *out;
  gsize inside, outside;

  gst_harness_set_src_caps_str (h, caps);
  /* no meta: nothing to regenerate, the frame passes unchanged */
  out = gst_harness_push_and_pull (h, make_frame (GST_VIDEO_FORMAT_RGB, W, H, 0,
          FALSE));
  count_changes (out, GST_VIDEO_FORMAT_RGB, &inside, &outside);
  fail_unless_equals_int (inside + outside, 0);
  gst_buffer_unref (out);
  in = make_frame (GST_VIDEO_FORMAT_RGB, W, H, GST_SECOND / 10, FALSE);
  gst_buffer_add_video_region_of_interest_meta (in, "logo", MX0, MY0,
      MX1 - MX0, MY1 - MY0);
  out = gst_harness_push_and_pull (h, in);
  count_changes (out, GST_VIDEO_FORMAT_RGB, &inside, &outside);
  fail_unless_equals_int (outside, 0);
  fail_unless (inside > 0);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  g_free (caps);
}
GST_END_TEST;

/* The mask pad: frames before the first mask pass through (one WARNING);
 * then the mask applies, also to frames after the mask stream ended. */
GST_START_TEST (test_mask_pad_late_and_stopped)
{
  GstHarness *h = harness (NULL);
  GstHarness *hm = gst_harness_new_with_element (element (h), "mask", NULL);
  gchar *caps = caps_string ("RGB", W, H), *mcaps = caps_string ("GRAY8", W, H);
  GstBuffer *out;
  gsize inside, outside;
  GstBus *bus = watch (h);
  gchar *stats;

  gst_harness_set_src_caps_str (h, caps);
  gst_harness_set_src_caps_str (hm, mcaps);
  /* the first mask is for t = 0.2 s: frames 0 and 0.1 s come before it */
  fail_unless_equals_int (gst_harness_push (hm, make_mask (W, H,
              GST_SECOND / 5)), GST_FLOW_OK);
  for (gint i = 0; i < 4; i++) {
    out = gst_harness_push_and_pull (h, make_frame (GST_VIDEO_FORMAT_RGB, W, H,
            i * GST_SECOND / 10, FALSE));
    fail_unless (out != NULL);
    count_changes (out, GST_VIDEO_FORMAT_RGB, &inside, &outside);
    fail_unless_equals_int (outside, 0);
    if (i < 2) {
      fail_unless_equals_int (inside, 0);
    } else {
      fail_unless (inside > 0, "frame %d not inpainted", i);
    }
    gst_buffer_unref (out);
    if (i == 2)                 /* the mask stream ends: its mask stays */
      gst_harness_push_event (hm, gst_event_new_eos ());
  }
  fail_unless_equals_int (count_messages (bus, GST_MESSAGE_WARNING), 1);
  gst_object_unref (bus);
  g_object_get (element (h), "stats", &stats, NULL);
  fail_unless (strstr (stats, "passed-through=(guint64)2") != NULL, "%s", stats);
  g_free (stats);
  gst_harness_teardown (hm);
  gst_harness_teardown (h);
  g_free (caps);
  g_free (mcaps);
}
GST_END_TEST;

/* A mask of half the size (same aspect) is scaled; another aspect is an
 * error. */
GST_START_TEST (test_mask_size)
{
  GstHarness *h = harness (NULL);
  GstHarness *hm = gst_harness_new_with_element (element (h), "mask", NULL);
  gchar *caps = caps_string ("RGB", W, H), *mcaps = caps_string ("GRAY8", W / 2, H / 2);
  gchar *bad = caps_string ("GRAY8", W, H / 3);
  GstBus *bus = watch (h);
  GstMessage *msg;
  GError *err = NULL;

  gst_harness_set_src_caps_str (h, caps);
  gst_harness_set_src_caps_str (hm, mcaps);
  fail_unless_equals_int (gst_harness_push (hm, make_mask (W / 2, H / 2, 0)),
      GST_FLOW_OK);
  check_inpainted (h, GST_VIDEO_FORMAT_RGB, FALSE);

  gst_harness_set_src_caps_str (hm, bad);
  fail_unless_equals_int (gst_harness_push (hm, make_mask (W, H / 3,
              GST_SECOND / 10)), GST_FLOW_OK);
  gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_RGB, W, H, GST_SECOND / 10,
          FALSE));
  msg = gst_bus_timed_pop_filtered (bus, 10 * GST_SECOND, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (g_error_matches (err, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT));
  fail_unless (strstr (err->message, "aspect") != NULL, "%s", err->message);
  g_clear_error (&err);
  gst_message_unref (msg);
  gst_object_unref (bus);
  gst_harness_teardown (hm);
  gst_harness_teardown (h);
  g_free (caps);
  g_free (mcaps);
  g_free (bad);
}
GST_END_TEST;

/* Each bad setting fails the start with a message naming the cause. */
static void
expect_start_error (const gchar * launch, GQuark domain, gint code,
    const gchar * words)
{
  GstElement *p = gst_parse_launch (launch, NULL);
  GstBus *bus;
  GstMessage *msg;
  GError *err = NULL;
  gchar *dbg = NULL;

  fail_unless (p != NULL, "%s", launch);
  bus = gst_element_get_bus (p);
  fail_unless_equals_int (gst_element_set_state (p, GST_STATE_PLAYING) ==
      GST_STATE_CHANGE_FAILURE
      || gst_element_get_state (p, NULL, NULL, 5 * GST_SECOND) ==
      GST_STATE_CHANGE_FAILURE, TRUE);
  msg = gst_bus_timed_pop_filtered (bus, 5 * GST_SECOND, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error for %s", launch);
  gst_message_parse_error (msg, &err, &dbg);
  fail_unless (g_error_matches (err, domain, code), "%s: %s (%s)", launch,
      err->message, dbg);
  fail_unless (strstr (err->message, words) != NULL, "\"%s\" lacks \"%s\"",
      err->message, words);
  g_clear_error (&err);
  g_free (dbg);
  gst_message_unref (msg);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (p);
}

GST_START_TEST (test_errors)
{
  gchar *sr = test_path ("GE_TEST_MODELS", "diffusionsr-x2.safetensors");
  gchar *bad_mask = g_build_filename (g_get_tmp_dir (), "ip-bad-mask.pgm", NULL);
  gchar *l;

  fail_unless (g_file_set_contents (bad_mask, "P5\n64 48\n255\nshort", -1, NULL));
#define SRC "videotestsrc num-buffers=1 ! video/x-raw,format=RGB,width=64,height=48 ! "
  expect_start_error (SRC "diffusioninpaint model-file=/nonexistent/m.safetensors "
      "mask-source=roi-meta ! fakesink", GST_RESOURCE_ERROR,
      GST_RESOURCE_ERROR_NOT_FOUND, "/nonexistent/m.safetensors");
  l = g_strdup_printf (SRC "diffusioninpaint model-file=\"%s\" ! fakesink", sr);
  expect_start_error (l, GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE, sr);
  g_free (l);
  expect_start_error (SRC "diffusioninpaint mask-source=file ! fakesink",
      GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS, "mask-file");
  expect_start_error (SRC "diffusioninpaint mask-file=/nonexistent/mask.png ! "
      "fakesink", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
      "/nonexistent/mask.png");
  l = g_strdup_printf (SRC "diffusioninpaint mask-file=\"%s\" ! fakesink",
      bad_mask);
  expect_start_error (l, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE, bad_mask);
  g_free (l);
  /* alpha asked of a format without it: an error at the first frame */
  expect_start_error (SRC "diffusioninpaint mask-source=alpha ! fakesink",
      GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION, "alpha");
#undef SRC
  g_unlink (bad_mask);
  g_free (bad_mask);
  g_free (sr);
}
GST_END_TEST;

/* A real pipeline: a PNG photo and a PNG mask of its size on the mask pad. */
GST_START_TEST (test_pipeline_png)
{
  gchar *photo = test_path ("GE_TEST_SAMPLES", "butterfly.png");
  gchar *mask = write_mask_file ("ip-pipe-mask.png", TRUE, 192, 136);
  gchar *out = g_build_filename (g_get_tmp_dir (), "ip-pipe-out.png", NULL);
  gchar *launch = g_strdup_printf ("filesrc location=\"%s\" ! pngdec ! "
      "videoconvert ! diffusioninpaint name=ip ! videoconvert ! pngenc ! "
      "filesink location=\"%s\"  filesrc location=\"%s\" ! pngdec ! "
      "videoconvert ! video/x-raw,format=GRAY8 ! ip.mask", photo, out, mask);
  GstElement *p = gst_parse_launch (launch, NULL);
  GstElement *ip;
  GstMessage *msg;
  gchar *data = NULL, *stats = NULL;
  gsize len = 0;

  fail_unless (p != NULL);
  ip = gst_bin_get_by_name (GST_BIN (p), "ip");
  gst_element_set_state (p, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (p), 60 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  fail_unless_equals_int (GST_MESSAGE_TYPE (msg), GST_MESSAGE_EOS);
  gst_message_unref (msg);
  g_object_get (ip, "stats", &stats, NULL);
  /* 192x136: the rectangle 20..36 x 14..26 of 64x48 maps to x 60..107
   * (x * 64 / 192 in 20..35) and y 40..73 (y * 48 / 136 in 14..25): 48 x 34 */
  fail_unless (strstr (stats, "frames=(guint64)1") != NULL, "%s", stats);
  fail_unless (strstr (stats, "masked-pixels=(guint64)1632") != NULL, "%s", stats);
  fail_unless (g_file_get_contents (out, &data, &len, NULL) && len > 1000);
  fail_unless (memcmp (data, "\x89PNG", 4) == 0);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (ip);
  gst_object_unref (p);
  g_free (stats);
  g_free (data);
  g_unlink (mask);
  g_unlink (out);
  g_free (mask);
  g_free (out);
  g_free (photo);
  g_free (launch);
}
GST_END_TEST;

/* An unconditional model inpaints with RePaint through the element too. */
GST_START_TEST (test_repaint_model)
{
  gchar *path = write_mask_file ("ip-rp.pgm", FALSE, W, H);
  gchar *m = test_path ("GE_TEST_MODELS", "unconditional-ddpm.safetensors");
  gchar *extra = g_strdup_printf ("model-file=\"%s\" num-steps=6 "
      "repaint-jump-length=2 repaint-jump-n-sample=2", m);
  GstHarness *h = file_harness (path, "RGB", extra);

  check_inpainted (h, GST_VIDEO_FORMAT_RGB, FALSE);
  gst_harness_teardown (h);
  g_unlink (path);
  g_free (path);
  g_free (m);
  g_free (extra);
}
GST_END_TEST;

/* A QoS event for a frame at 0.5 s that was 0.5 s late: frames that end
 * before 0.5 s + 2 * 0.5 s are dropped (GstBaseTransform's rule), later
 * ones inpainted. */
GST_START_TEST (test_qos_drops_late_frames)
{
  gchar *path = write_mask_file ("ip-qos.pgm", FALSE, W, H);
  GstHarness *h = file_harness (path, "RGB", NULL);
  GstBuffer *out;
  gchar *stats;

  check_inpainted (h, GST_VIDEO_FORMAT_RGB, FALSE);
  fail_unless (gst_harness_push_upstream_event (h, gst_event_new_qos
          (GST_QOS_TYPE_UNDERFLOW, 2.0, GST_SECOND / 2, GST_SECOND / 2)));
  for (gint i = 1; i <= 16; i++)
    fail_unless_equals_int (gst_harness_push (h, make_frame (GST_VIDEO_FORMAT_RGB, W, H,
                i * GST_SECOND / 10, FALSE)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 15 * GST_SECOND / 10);
  gst_buffer_unref (out);
  g_object_get (element (h), "stats", &stats, NULL);
  fail_unless (strstr (stats, "dropped=(guint64)14") != NULL, "%s", stats);
  g_free (stats);
  gst_harness_teardown (h);
  g_unlink (path);
  g_free (path);
}
GST_END_TEST;

/* A flush on the mask pad drops its mask (frames pass through again until
 * a new one comes); EOS on the video pad ends the stream; the latency query
 * reports the measured time per frame. */
GST_START_TEST (test_flush_eos_latency)
{
  GstHarness *h = harness (NULL);
  GstHarness *hm = gst_harness_new_with_element (element (h), "mask", NULL);
  gchar *caps = caps_string ("RGB", W, H), *mcaps = caps_string ("GRAY8", W, H);
  GstBuffer *out;
  gsize inside, outside;
  GstClockTime min_lat = 0, max_lat = 0;
  gboolean live;
  GstQuery *q;
  GstEvent *ev;

  gst_harness_set_src_caps_str (h, caps);
  gst_harness_set_src_caps_str (hm, mcaps);
  fail_unless_equals_int (gst_harness_push (hm, make_mask (W, H, 0)), GST_FLOW_OK);
  out = gst_harness_push_and_pull (h, make_frame (GST_VIDEO_FORMAT_RGB, W, H, 0, FALSE));
  count_changes (out, GST_VIDEO_FORMAT_RGB, &inside, &outside);
  fail_unless (inside > 0);
  gst_buffer_unref (out);

  q = gst_query_new_latency ();
  fail_unless (gst_pad_peer_query (h->sinkpad, q));
  gst_query_parse_latency (q, &live, &min_lat, &max_lat);
  fail_unless (min_lat > 0, "latency %" GST_TIME_FORMAT, GST_TIME_ARGS (min_lat));
  gst_query_unref (q);

  fail_unless (gst_harness_push_event (hm, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (hm, gst_event_new_flush_stop (TRUE)));
  {
    GstSegment seg;
    gst_segment_init (&seg, GST_FORMAT_TIME);
    fail_unless (gst_harness_push_event (hm, gst_event_new_segment (&seg)));
  }
  gst_harness_push_event (hm, gst_event_new_eos ());
  out = gst_harness_push_and_pull (h, make_frame (GST_VIDEO_FORMAT_RGB, W, H,
          GST_SECOND / 10, FALSE));
  count_changes (out, GST_VIDEO_FORMAT_RGB, &inside, &outside);
  fail_unless_equals_int (inside + outside, 0);
  gst_buffer_unref (out);

  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  while ((ev = gst_harness_pull_event (h))) {
    gboolean eos = GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
    gst_event_unref (ev);
    if (eos)
      break;
  }
  fail_unless (ev != NULL, "no EOS downstream");
  gst_harness_teardown (hm);
  gst_harness_teardown (h);
  g_free (caps);
  g_free (mcaps);
}
GST_END_TEST;

static Suite *
diffusioninpaint_suite (void)
{
  Suite *s = suite_create ("diffusioninpaint");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_mask_file_pgm_and_png);
  tcase_add_test (tc, test_determinism);
  tcase_add_test (tc, test_exemplar_guidance);
  tcase_add_test (tc, test_alpha_source);
  tcase_add_test (tc, test_roi_meta_source);
  tcase_add_test (tc, test_mask_pad_late_and_stopped);
  tcase_add_test (tc, test_mask_size);
  tcase_add_test (tc, test_errors);
  tcase_add_test (tc, test_pipeline_png);
  tcase_add_test (tc, test_repaint_model);
  tcase_add_test (tc, test_qos_drops_late_frames);
  tcase_add_test (tc, test_flush_eos_latency);
  return s;
}

GST_CHECK_MAIN (diffusioninpaint);
