/* test-file-changes: model and mask files changing on disk while an
 * element plays.
 *
 * - A model file replaced by mv (rename()) while diffusionsr plays: the
 *   element keeps the model it loaded (its frames are those of a run on
 *   the untouched file), read or mapped; the next READY->PAUSED loads the
 *   new file (here not a model: a clear error naming it).
 * - A (small, so read into memory) model file truncated in place while
 *   playing: no SIGBUS, the same frames; the next start is a clear error.
 * - diffusioninpaint's mask-file rewritten while playing: ignored until the
 *   next READY->PAUSED, which reads the new mask (as the README says).
 */
#include "elementcheck.h"

#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#define W 32
#define H 24

static gchar *tmpdir;

static void
setup (void)
{
  tmpdir = g_dir_make_tmp ("ge-file-changes-XXXXXX", NULL);
  fail_unless (tmpdir != NULL);
}

static void
teardown (void)
{
  GDir *d = g_dir_open (tmpdir, 0, NULL);
  const gchar *n;

  while (d && (n = g_dir_read_name (d))) {
    gchar *p = g_build_filename (tmpdir, n, NULL);
    g_unlink (p);
    g_free (p);
  }
  if (d)
    g_dir_close (d);
  g_rmdir (tmpdir);
  g_clear_pointer (&tmpdir, g_free);
}

/* A copy of test model @name in the temporary folder, as @as. */
static gchar *
copy_model (const gchar * name, const gchar * as)
{
  gchar *src = test_path ("GE_TEST_MODELS", name), *text = NULL;
  gchar *dst = g_build_filename (tmpdir, as, NULL);
  gsize len;

  fail_unless (g_file_get_contents (src, &text, &len, NULL));
  fail_unless (g_file_set_contents (dst, text, len, NULL));
  g_free (text);
  g_free (src);
  return dst;
}

static GstBuffer *
frame (GstVideoFormat format, gint i)
{
  GstVideoInfo info;
  GstVideoFrame f;
  GstBuffer *buf;

  gst_video_info_set_format (&info, format, W, H);
  buf = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  fail_unless (gst_video_frame_map (&f, &info, buf, GST_MAP_WRITE));
  const gint ps = GST_VIDEO_FRAME_COMP_PSTRIDE (&f, 0);
  for (gint y = 0; y < H; y++) {
    guint8 *row = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&f, 0)
        + y * GST_VIDEO_FRAME_PLANE_STRIDE (&f, 0);
    for (gint x = 0; x < W * ps; x++)
      row[x] = (guint8) ((x * 7 + y * 5 + i * 31) & 255);
  }
  gst_video_frame_unmap (&f);
  GST_BUFFER_PTS (buf) = i * GST_SECOND / 10;
  GST_BUFFER_DURATION (buf) = GST_SECOND / 10;
  return buf;
}

static GstHarness *
sr_harness (const gchar * model)
{
  gchar *launch = g_strdup_printf ("diffusionsr model-file=\"%s\"", model);
  GstHarness *h = gst_harness_new_parse (launch);

  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=32,height=24,"
      "framerate=10/1");
  g_free (launch);
  return h;
}

/* Frame @i through @h, as bytes. */
static GBytes *
through (GstHarness * h, GstVideoFormat format, gint i)
{
  GstBuffer *out = gst_harness_push_and_pull (h, frame (format, i));
  GstMapInfo m;
  GBytes *b;

  fail_unless (out != NULL);
  fail_unless (gst_buffer_map (out, &m, GST_MAP_READ));
  b = g_bytes_new (m.data, m.size);
  gst_buffer_unmap (out, &m);
  gst_buffer_unref (out);
  return b;
}

static void
assert_same (GBytes * a, GBytes * b, const gchar * what)
{
  fail_unless (g_bytes_equal (a, b), "%s: the frames differ", what);
}

/* Frames 0..2 of diffusionsr on the untouched model. */
static GBytes **
reference_frames (void)
{
  gchar *model = test_path ("GE_TEST_MODELS", "diffusionsr-x2.safetensors");
  GstHarness *h = sr_harness (model);
  GBytes **ref = g_new0 (GBytes *, 3);

  for (gint i = 0; i < 3; i++)
    ref[i] = through (h, GST_VIDEO_FORMAT_RGB, i);
  gst_harness_teardown (h);
  g_free (model);
  return ref;
}

static void
free_frames (GBytes ** f)
{
  for (gint i = 0; i < 3; i++)
    g_bytes_unref (f[i]);
  g_free (f);
}

/* The harness's element back to READY and started again: the start fails
 * with an error naming @path. */
static void
restart_fails (GstHarness * h, const gchar * path)
{
  fail_unless (gst_element_set_state (h->element, GST_STATE_READY) !=
      GST_STATE_CHANGE_FAILURE);
  expect_element_start_error (h->element, GST_STREAM_ERROR,
      GST_STREAM_ERROR_WRONG_TYPE, path);
}

static void
check_renamed_over (gboolean mapped)
{
  GBytes **ref = reference_frames ();
  gchar *model = copy_model ("diffusionsr-x2.safetensors", "model.safetensors");
  gchar *other = copy_model ("not-a-model.safetensors", "replacement.safetensors");
  GstHarness *h;
  GBytes *b;

  if (mapped)
    g_setenv ("GE_MODEL_READ_LIMIT", "0", TRUE);
  h = sr_harness (model);
  b = through (h, GST_VIDEO_FORMAT_RGB, 0);
  assert_same (b, ref[0], "before the mv");
  g_bytes_unref (b);

  fail_unless_equals_int (g_rename (other, model), 0);
  for (gint i = 1; i < 3; i++) {
    b = through (h, GST_VIDEO_FORMAT_RGB, i);
    assert_same (b, ref[i], "after the mv");
    g_bytes_unref (b);
  }
  /* The next start reads what is at the path now. */
  restart_fails (h, model);
  gst_harness_teardown (h);
  g_unsetenv ("GE_MODEL_READ_LIMIT");
  free_frames (ref);
  g_free (model);
  g_free (other);
}

GST_START_TEST (test_model_renamed_over)
{
  check_renamed_over (FALSE);
}

GST_END_TEST;

GST_START_TEST (test_model_renamed_over_mapped)
{
  check_renamed_over (TRUE);
}

GST_END_TEST;

/* A mapping would raise SIGBUS at the next frame here (the weights are F32,
 * used in place); the test models are far under the read limit, so the
 * element holds a copy. */
GST_START_TEST (test_model_truncated_in_place)
{
  GBytes **ref = reference_frames ();
  gchar *model = copy_model ("diffusionsr-x2.safetensors", "model.safetensors");
  GstHarness *h = sr_harness (model);
  GBytes *b = through (h, GST_VIDEO_FORMAT_RGB, 0);
  GStatBuf sb;

  assert_same (b, ref[0], "before truncating");
  g_bytes_unref (b);
  fail_unless_equals_int (g_stat (model, &sb), 0);
  fail_unless_equals_int (truncate (model, sb.st_size / 2), 0);
  b = through (h, GST_VIDEO_FORMAT_RGB, 1);
  assert_same (b, ref[1], "truncated to half");
  g_bytes_unref (b);
  fail_unless_equals_int (truncate (model, 0), 0);
  b = through (h, GST_VIDEO_FORMAT_RGB, 2);
  assert_same (b, ref[2], "truncated to nothing");
  g_bytes_unref (b);

  fail_unless_equals_int (truncate (model, sb.st_size / 2), 0);
  restart_fails (h, model);
  gst_harness_teardown (h);
  free_frames (ref);
  g_free (model);
}

GST_END_TEST;

/* ---------------------------------------------------------------------- */
/* mask-file */

/* A P5 mask of the frame's size, 255 (regenerate) inside the rectangle. */
static void
write_mask (const gchar * path, gint x0, gint y0, gint x1, gint y1)
{
  GString *s = g_string_new (NULL);

  g_string_append_printf (s, "P5\n%d %d\n255\n", W, H);
  for (gint y = 0; y < H; y++)
    for (gint x = 0; x < W; x++)
      g_string_append_c (s, x >= x0 && x < x1 && y >= y0 && y < y1 ? 255 : 0);
  fail_unless (g_file_set_contents (path, s->str, s->len, NULL));
  g_string_free (s, TRUE);
}

static GstHarness *
inpaint_harness (const gchar * mask)
{
  gchar *launch = g_strdup_printf ("diffusioninpaint mask-file=\"%s\"", mask);
  GstHarness *h = gst_harness_new_parse (launch);

  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=32,height=24,"
      "framerate=10/1");
  g_free (launch);
  return h;
}

/* Frame @i inpainted alone with the mask at @mask. */
static GBytes *
inpaint_alone (const gchar * mask, gint i)
{
  GstHarness *h = inpaint_harness (mask);
  GBytes *b = through (h, GST_VIDEO_FORMAT_RGB, i);

  gst_harness_teardown (h);
  return b;
}

GST_START_TEST (test_mask_file_rewritten)
{
  gchar *mask = g_build_filename (tmpdir, "mask.pgm", NULL);
  gchar *mask_a = g_build_filename (tmpdir, "mask-a.pgm", NULL);
  gchar *mask_b = g_build_filename (tmpdir, "mask-b.pgm", NULL);
  gchar *mask_b2 = g_build_filename (tmpdir, "mask-b2.pgm", NULL);
  GBytes *ref_a[4], *ref_b, *b;
  GstHarness *h;

  write_mask (mask_a, 12, 8, 28, 20);
  write_mask (mask_b, 2, 2, 14, 10);
  for (gint i = 0; i < 4; i++)
    ref_a[i] = inpaint_alone (mask_a, i);
  ref_b = inpaint_alone (mask_b, 3);
  fail_if (g_bytes_equal (ref_a[3], ref_b), "the masks give the same frame");

  write_mask (mask, 12, 8, 28, 20);
  h = inpaint_harness (mask);
  b = through (h, GST_VIDEO_FORMAT_RGB, 0);
  assert_same (b, ref_a[0], "the first mask");
  g_bytes_unref (b);

  /* Rewritten in place, then replaced by mv: ignored while playing. */
  write_mask (mask, 2, 2, 14, 10);
  b = through (h, GST_VIDEO_FORMAT_RGB, 1);
  assert_same (b, ref_a[1], "mask rewritten in place while playing");
  g_bytes_unref (b);
  write_mask (mask_b2, 2, 2, 14, 10);
  fail_unless_equals_int (g_rename (mask_b2, mask), 0);
  b = through (h, GST_VIDEO_FORMAT_RGB, 2);
  assert_same (b, ref_a[2], "mask replaced by mv while playing");
  g_bytes_unref (b);

  /* The next READY->PAUSED reads it. */
  fail_unless (gst_element_set_state (h->element, GST_STATE_READY) !=
      GST_STATE_CHANGE_FAILURE);
  gst_harness_play (h);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=32,height=24,"
      "framerate=10/1");
  b = through (h, GST_VIDEO_FORMAT_RGB, 3);
  assert_same (b, ref_b, "mask read again at the next start");
  g_bytes_unref (b);
  gst_harness_teardown (h);

  for (gint i = 0; i < 4; i++)
    g_bytes_unref (ref_a[i]);
  g_bytes_unref (ref_b);
  g_free (mask);
  g_free (mask_a);
  g_free (mask_b);
  g_free (mask_b2);
}

GST_END_TEST;

static Suite *
file_changes_suite (void)
{
  Suite *s = suite_create ("file-changes");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_model_renamed_over);
  tcase_add_test (tc, test_model_renamed_over_mapped);
  tcase_add_test (tc, test_model_truncated_in_place);
  tcase_add_test (tc, test_mask_file_rewritten);
  return s;
}

GST_CHECK_MAIN (file_changes);
