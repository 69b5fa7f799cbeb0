/* test-concurrency: several pipelines in one process running the same
 * element on the same model file at once.
 *
 * For each element (diffusionsr, diffusioninpaint, vaeencode ! vaedecode,
 * diffusionimg2img, gansynth), one, two and four pipelines, each in its own
 * thread, all started before any of them gets data and then fed together,
 * give exactly the bytes one pipeline alone gives; at n-threads' default
 * and at 2.  While they all play the model file is held once by the
 * process: one entry of the engine's file registry with one holder per
 * element, and, with the file mapped (GE_MODEL_READ_LIMIT=0), one mapping
 * in /proc/self/maps.
 *
 * OpenBLAS's thread count is process-global: it must be one once any
 * element is up, including gansynth on one channel, which runs without a
 * pool of its own.
 */
#include "elementcheck.h"

#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ge-safetensors.h"

#define W 64
#define H 48
#define N_FRAMES 6
#define RATE 16000
#define CHANNELS 2
#define AUDIO_HOP 160
#define N_HOPS 40

typedef enum
{
  SR,
  INPAINT,
  VAE,
  IMG2IMG,
  GANSYNTH,
} Kind;

typedef struct
{
  const gchar *name;
  Kind kind;
  const gchar *env, *file;      /* the model */
  gint holders;                 /* elements holding the file in a pipeline */
} Case;

static const Case cases[] = {
  {"diffusionsr", SR, "GE_TEST_MODELS", "diffusionsr-x2.safetensors", 1},
  {"diffusioninpaint", INPAINT, "GE_TEST_MODELS", "diffusioninpaint.safetensors", 1},
  {"vaeencode ! vaedecode", VAE, "GE_TEST_MODELS", "vae.safetensors", 2},
  {"diffusionimg2img", IMG2IMG, "GE_TEST_MODELS", "diffusionimg2img.safetensors", 1},
  {"gansynth", GANSYNTH, "GE_TEST_GOLDEN_SPEECH", "model.safetensors", 1},
};

static gchar *
launch_line (Kind kind, const gchar * model, gint n_threads)
{
  gchar nt[32] = "";

  if (n_threads >= 0)
    g_snprintf (nt, sizeof (nt), "n-threads=%d", n_threads);
  switch (kind) {
    case SR:
      return g_strdup_printf ("diffusionsr model-file=\"%s\" %s", model, nt);
    case INPAINT:
      return g_strdup_printf ("diffusioninpaint model-file=\"%s\" %s", model, nt);
    case VAE:
      return g_strdup_printf ("vaeencode model-file=\"%s\" %s ! "
          "vaedecode model-file=\"%s\" %s", model, nt, model, nt);
    case IMG2IMG:
      return g_strdup_printf ("diffusionimg2img model-file=\"%s\" %s", model, nt);
    case GANSYNTH:
      return g_strdup_printf ("gansynth model-file=\"%s\" %s", model, nt);
  }
  g_assert_not_reached ();
}

static gchar *
caps_for (Kind kind)
{
  if (kind == GANSYNTH)
    return g_strdup_printf ("audio/x-raw,format=F32LE,layout=interleaved,"
        "rate=%d,channels=%d,channel-mask=(bitmask)0", RATE, CHANNELS);
  return g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=10/1", kind == INPAINT ? "RGBA" : "RGB", W, H);
}

/* Frame @i: gradients and a disc that move with @i; RGBA's alpha is
 * transparent (regenerated) in a rectangle. */
static GstBuffer *
video_frame (Kind kind, gint i)
{
  GstVideoInfo info;
  GstVideoFrame f;
  const GstVideoFormat format = kind == INPAINT ? GST_VIDEO_FORMAT_RGBA
      : GST_VIDEO_FORMAT_RGB;
  GstBuffer *buf;

  gst_video_info_set_format (&info, format, W, H);
  buf = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  fail_unless (gst_video_frame_map (&f, &info, buf, GST_MAP_WRITE));
  const gint ps = GST_VIDEO_FRAME_COMP_PSTRIDE (&f, 0);
  for (gint y = 0; y < H; y++) {
    guint8 *row = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&f, 0)
        + y * GST_VIDEO_FRAME_PLANE_STRIDE (&f, 0);
    for (gint x = 0; x < W; x++) {
      gint dx = x - 11 - 3 * i, dy = y - 9;
      for (gint c = 0; c < 3; c++) {
        gint v = (x * 5 + y * 3 + c * 60 + i * 40) & 255;
        if (dx * dx + dy * dy < 36)
          v = 255 - v / 2;
        row[x * ps + c] = (guint8) v;
      }
      if (ps == 4)
        row[x * ps + 3] = x >= 8 && x < 20 && y >= 6 && y < 16 ? 0 : 255;
    }
  }
  gst_video_frame_unmap (&f);
  GST_BUFFER_PTS (buf) = i * GST_SECOND / 10;
  GST_BUFFER_DURATION (buf) = GST_SECOND / 10;
  return buf;
}

static GstBuffer *
audio_buffer (gint hop)
{
  const guint64 offset = (guint64) hop * AUDIO_HOP;
  GstBuffer *b = gst_buffer_new_allocate (NULL, AUDIO_HOP * CHANNELS * 4, NULL);
  GstMapInfo m;

  gst_buffer_map (b, &m, GST_MAP_WRITE);
  gfloat *d = (gfloat *) m.data;
  for (guint i = 0; i < AUDIO_HOP; i++)
    for (int c = 0; c < CHANNELS; c++) {
      const guint64 t = offset + i;
      d[i * CHANNELS + c] = 0.4f * (gfloat) sin (0.011 * t * (c + 1))
          + 0.05f * (gfloat) sin (1.7 * t + c) + 0.02f * (gfloat) ((t * 2654435761u >> 7) % 200 - 100) / 100;
    }
  gst_buffer_unmap (b, &m);
  GST_BUFFER_PTS (b) = gst_util_uint64_scale_int (offset, GST_SECOND, RATE);
  GST_BUFFER_DURATION (b) = gst_util_uint64_scale_int (offset + AUDIO_HOP,
      GST_SECOND, RATE) - GST_BUFFER_PTS (b);
  GST_BUFFER_OFFSET (b) = offset;
  return b;
}

static void
append (GByteArray * out, GstBuffer * b)
{
  GstMapInfo m;

  fail_unless (b != NULL);
  fail_unless (gst_buffer_map (b, &m, GST_MAP_READ));
  g_byte_array_append (out, m.data, (guint) m.size);
  gst_buffer_unmap (b, &m);
  gst_buffer_unref (b);
}

/* ---------------------------------------------------------------------- */
/* pipelines in threads, started together */

typedef struct
{
  GMutex lock;
  GCond cond;
  gint ready, failed;
  gboolean go;
} Start;

typedef struct
{
  const Case *c;
  gint n_threads;
  Start *start;
  GByteArray *out;
} Run;

static gpointer
run_pipeline (gpointer data)
{
  Run *r = data;
  gchar *model = test_path (r->c->env, r->c->file);
  gchar *launch = launch_line (r->c->kind, model, r->n_threads);
  gchar *caps = caps_for (r->c->kind);
  GstHarness *h = gst_harness_new_parse (launch);

  if (r->c->kind == GANSYNTH)
    gst_harness_set_caps_str (h, caps, caps);
  else
    gst_harness_set_src_caps_str (h, caps);
  /* Every pipeline up (model loaded) before any gets data. */
  gst_harness_play (h);
  g_mutex_lock (&r->start->lock);
  r->start->ready++;
  g_cond_broadcast (&r->start->cond);
  while (!r->start->go)
    g_cond_wait (&r->start->cond, &r->start->lock);
  g_mutex_unlock (&r->start->lock);

  r->out = g_byte_array_new ();
  if (r->c->kind == GANSYNTH) {
    GstBuffer *b;
    for (gint i = 0; i < N_HOPS; i++)
      if (gst_harness_push (h, audio_buffer (i)) != GST_FLOW_OK)
        g_atomic_int_inc (&r->start->failed);
    gst_harness_push_event (h, gst_event_new_eos ());
    while ((b = gst_harness_try_pull (h)))
      append (r->out, b);
  } else {
    for (gint i = 0; i < N_FRAMES; i++)
      append (r->out, gst_harness_push_and_pull (h, video_frame (r->c->kind, i)));
  }
  gst_harness_teardown (h);
  g_free (caps);
  g_free (launch);
  g_free (model);
  return NULL;
}

/* @n pipelines of @c at once; their outputs.  While they all play, the
 * model file has one holder per element, in one registry entry; mapped,
 * one mapping. */
static GByteArray **
run_together (const Case * c, gint n, gint n_threads, gboolean mapped)
{
  Start start;
  Run *runs = g_new0 (Run, n);
  GThread **threads = g_new0 (GThread *, n);
  GByteArray **outs = g_new0 (GByteArray *, n);
  gchar *model = test_path (c->env, c->file);

  if (mapped)
    g_setenv ("GE_MODEL_READ_LIMIT", "0", TRUE);
  else
    g_unsetenv ("GE_MODEL_READ_LIMIT");
  memset (&start, 0, sizeof (start));
  g_mutex_init (&start.lock);
  g_cond_init (&start.cond);
  for (gint i = 0; i < n; i++) {
    runs[i].c = c;
    runs[i].n_threads = n_threads;
    runs[i].start = &start;
    threads[i] = g_thread_new ("pipeline", run_pipeline, &runs[i]);
  }
  g_mutex_lock (&start.lock);
  while (start.ready < n)
    g_cond_wait (&start.cond, &start.lock);
  g_mutex_unlock (&start.lock);

  fail_unless_equals_int (ge_safetensors_shared_holders (model), n * c->holders);
  fail_unless_equals_int (ge_safetensors_n_shared_files (), 1);
  if (mapped) {
    gchar *maps = NULL, *real = realpath (model, NULL);
    gint n_maps = 0;
    fail_unless (real != NULL);
    fail_unless (g_file_get_contents ("/proc/self/maps", &maps, NULL, NULL));
    gchar **lines = g_strsplit (maps, "\n", -1);
    for (gchar ** l = lines; *l; l++)
      n_maps += g_str_has_suffix (*l, real);
    g_strfreev (lines);
    g_free (maps);
    free (real);
    fail_unless_equals_int (n_maps, 1);
  }
  /* OpenBLAS is process-global: one thread once any element is up. */
  fail_unless_equals_int (openblas_get_num_threads (), 1);

  g_mutex_lock (&start.lock);
  start.go = TRUE;
  g_cond_broadcast (&start.cond);
  g_mutex_unlock (&start.lock);
  for (gint i = 0; i < n; i++) {
    g_thread_join (threads[i]);
    outs[i] = runs[i].out;
  }
  fail_unless_equals_int (start.failed, 0);
  fail_unless_equals_int (ge_safetensors_n_shared_files (), 0);
  g_unsetenv ("GE_MODEL_READ_LIMIT");
  g_mutex_clear (&start.lock);
  g_cond_clear (&start.cond);
  g_free (model);
  g_free (threads);
  g_free (runs);
  return outs;
}

static void
free_outs (GByteArray ** outs, gint n)
{
  for (gint i = 0; i < n; i++)
    g_byte_array_unref (outs[i]);
  g_free (outs);
}

static void
check_case (const Case * c)
{
  /* -1: n-threads left at its default */
  const gint thread_settings[] = { -1, 2 };

  for (guint t = 0; t < G_N_ELEMENTS (thread_settings); t++) {
    const gint nt = thread_settings[t];
    GByteArray **alone = run_together (c, 1, nt, FALSE);
    GByteArray *ref = alone[0];

    fail_unless (ref->len > 0, "%s: no output", c->name);
    for (gint n = 2; n <= 4; n += 2) {
      for (gint mapped = 0; mapped <= (n == 4); mapped++) {
        GByteArray **outs = run_together (c, n, nt, mapped);
        for (gint i = 0; i < n; i++) {
          fail_unless_equals_int (outs[i]->len, ref->len);
          fail_unless (memcmp (outs[i]->data, ref->data, ref->len) == 0,
              "%s, n-threads %d: pipeline %d of %d%s differs from one alone",
              c->name, nt, i, n, mapped ? " (mapped)" : "");
        }
        g_print ("%s, n-threads %d: %d pipelines%s give the bytes of one "
            "(%u bytes)\n", c->name, nt, n, mapped ? " (file mapped)" : "", ref->len);
        free_outs (outs, n);
      }
    }
    free_outs (alone, 1);
  }
}

GST_START_TEST (test_diffusionsr)
{
  check_case (&cases[SR]);
}

GST_END_TEST;

GST_START_TEST (test_diffusioninpaint)
{
  check_case (&cases[INPAINT]);
}

GST_END_TEST;

GST_START_TEST (test_vae)
{
  check_case (&cases[VAE]);
}

GST_END_TEST;

GST_START_TEST (test_diffusionimg2img)
{
  check_case (&cases[IMG2IMG]);
}

GST_END_TEST;

GST_START_TEST (test_gansynth)
{
  check_case (&cases[GANSYNTH]);
}

GST_END_TEST;

/* gansynth on one channel at n-threads=1 has no pool, and called sgemv at
 * OpenBLAS's default thread count (all cores), until some other element's
 * pool set it to one under it. */
GST_START_TEST (test_gansynth_mono_blas_threads)
{
  gchar *model = test_path ("GE_TEST_GOLDEN_SPEECH", "model.safetensors");
  gchar *launch = g_strdup_printf ("gansynth model-file=\"%s\" n-threads=1", model);
  gchar *caps = g_strdup_printf ("audio/x-raw,format=F32LE,layout=interleaved,"
      "rate=%d,channels=1,channel-mask=(bitmask)0", RATE);
  GstHarness *h;

  /* meson sets OPENBLAS_NUM_THREADS=2, so that this means something on a
   * one-core machine too. */
  fail_unless (openblas_get_num_threads () > 1);
  h = gst_harness_new_parse (launch);
  gst_harness_set_caps_str (h, caps, caps);
  gst_harness_play (h);
  fail_unless_equals_int (openblas_get_num_threads (), 1);
  gst_harness_teardown (h);
  g_free (caps);
  g_free (launch);
  g_free (model);
}

GST_END_TEST;

static Suite *
concurrency_suite (void)
{
  Suite *s = suite_create ("concurrency");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_gansynth_mono_blas_threads);
  tcase_add_test (tc, test_diffusionsr);
  tcase_add_test (tc, test_diffusioninpaint);
  tcase_add_test (tc, test_vae);
  tcase_add_test (tc, test_diffusionimg2img);
  tcase_add_test (tc, test_gansynth);
  return s;
}

GST_CHECK_MAIN (concurrency);
