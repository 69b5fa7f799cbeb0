/* test-gansynth: the speech enhancement element.
 *
 * Timing is checked at strength 0, where the element must give back its
 * input sample for sample, bit for bit (the engine's identity): any
 * latency, alignment, drain or reset mistake shows as a shifted, missing
 * or extra sample.  The channels are checked against the engine run on
 * each channel alone (the engine is checked against PyTorch).  The small
 * models are tests/golden/speech/model.safetensors (20 ms frames),
 * model40.safetensors (40 ms) and modelahead.safetensors (20 ms frames, two
 * 10 ms hops of lookahead), the last two for latency and continuity; the
 * real-file test runs the installed default model. */
#include "elementcheck.h"

#include <gst/audio/audio.h>
#include <gst/check/gstharness.h>
#include <math.h>

#include "ge-speech.h"
#include "gemv.h"

/* channel-mask 0: unpositioned channels, any count */
#define CAPS_FMT "audio/x-raw,format=F32LE,layout=interleaved,rate=%d,channels=%d,channel-mask=(bitmask)0"

/* The small models: 20 ms frames (the default here), 40 ms ones, and 20 ms
 * ones that look two hops ahead; their latency: a frame and the hops ahead. */
static const struct
{
  const char *file;
  int latency_ms;
} small_models[] = { {"model.safetensors", 20}, {"model40.safetensors", 40},
{"modelahead.safetensors", 40}
};

static gchar *
small_model (void)
{
  return test_path ("GE_TEST_GOLDEN_SPEECH", small_models[0].file);
}

/* The element with @file (under GE_TEST_GOLDEN_SPEECH) as its model: set
 * before the harness, which takes the element past READY, where model-file
 * can no longer change. */
static GstElement *
gansynth_with (const char *file, gdouble strength)
{
  GstElement *e = gst_element_factory_make ("gansynth", NULL);
  gchar *model = test_path ("GE_TEST_GOLDEN_SPEECH", file);

  fail_unless (e != NULL);
  g_object_set (e, "model-file", model, "strength", strength, NULL);
  g_free (model);
  return e;
}

static GstHarness *
harness_of (GstElement * e, int rate, int channels)
{
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  gchar *caps = g_strdup_printf (CAPS_FMT, rate, channels);

  gst_object_unref (e);
  gst_harness_set_caps_str (h, caps, caps);
  g_free (caps);
  return h;
}

static GstHarness *
harness_with (const char *file, int rate, int channels, gdouble strength)
{
  return harness_of (gansynth_with (file, strength), rate, channels);
}

static GstHarness *
harness (int rate, int channels, gdouble strength)
{
  return harness_with (small_models[0].file, rate, channels, strength);
}

static gfloat
signal_at (guint64 i, int c)
{
  return 0.4f * (gfloat) sin (0.011 * i * (c + 1)) + 0.05f * (gfloat) sin (1.7 * i + c);
}

static GstBuffer *
make_buffer (int rate, int channels, guint64 offset, guint n)
{
  GstBuffer *b = gst_buffer_new_allocate (NULL, (gsize) n * channels * 4, NULL);
  GstMapInfo m;

  gst_buffer_map (b, &m, GST_MAP_WRITE);
  gfloat *d = (gfloat *) m.data;
  for (guint i = 0; i < n; i++)
    for (int c = 0; c < channels; c++)
      d[i * channels + c] = signal_at (offset + i, c);
  gst_buffer_unmap (b, &m);
  GST_BUFFER_PTS (b) = gst_util_uint64_scale_int (offset, GST_SECOND, rate);
  GST_BUFFER_DURATION (b) = gst_util_uint64_scale_int (offset + n, GST_SECOND,
      rate) - GST_BUFFER_PTS (b);
  GST_BUFFER_OFFSET (b) = offset;
  return b;
}

/* Pulls everything out, checking that the buffers follow each other
 * without gap or overlap from sample @first on; returns the samples. */
static gfloat *
pull_all (GstHarness * h, int rate, int channels, guint64 start, guint64 * n_out)
{
  GArray *all = g_array_new (FALSE, FALSE, sizeof (gfloat));
  guint64 pos = start;
  GstBuffer *b;

  while ((b = gst_harness_try_pull (h))) {
    const gsize n = gst_buffer_get_size (b) / (4 * channels);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b),
        gst_util_uint64_scale_int (pos, GST_SECOND, rate));
    fail_unless_equals_uint64 (GST_BUFFER_PTS (b) + GST_BUFFER_DURATION (b),
        gst_util_uint64_scale_int (pos + n, GST_SECOND, rate));
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET (b), pos);
    GstMapInfo m;
    gst_buffer_map (b, &m, GST_MAP_READ);
    g_array_append_vals (all, m.data, n * channels);
    gst_buffer_unmap (b, &m);
    gst_buffer_unref (b);
    pos += n;
  }
  *n_out = pos - start;
  return (gfloat *) g_array_free (all, FALSE);
}

static void
check_identity (const gfloat * out, int channels, guint64 first, guint64 n)
{
  for (guint64 i = 0; i < n; i++)
    for (int c = 0; c < channels; c++)
      fail_unless (out[i * channels + c] == signal_at (first + i, c),
          "sample %" G_GUINT64_FORMAT " channel %d: %f, expected %f", first + i,
          c, out[i * channels + c], signal_at (first + i, c));
}

GST_START_TEST (test_latency)
{
  const int rates[] = { 16000, 48000 };
  for (guint k = 0; k < G_N_ELEMENTS (small_models); k++)
    for (int r = 0; r < 2; r++) {
      const int ms = small_models[k].latency_ms;
      GstHarness *h = harness_with (small_models[k].file, rates[r], 1, 1.0);
      gst_harness_play (h);
      /* a frame and the hops ahead, exactly */
      fail_unless_equals_uint64 (gst_harness_query_latency (h),
          gst_util_uint64_scale_round (rates[r] * ms / 1000, GST_SECOND, rates[r]));
      fail_unless_equals_uint64 (gst_harness_query_latency (h), ms * GST_MSECOND);
      gst_harness_teardown (h);
    }
}

GST_END_TEST;

/* Buffers of 1 sample to 2 s: every input sample comes out once, at its
 * own timestamp, the tail drained at EOS. */
static void
check_continuity (const char *file)
{
  const guint sizes[] = { 1, 7, 479, 480, 481, 1000, 96000 };
  const int rate = 48000;
  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    const guint64 total = sizes[s] == 1 ? 3001 : 62413;
    GstHarness *h = harness_with (file, rate, 2, 0.0);
    guint64 n_out, pos = 0;

    while (pos < total) {
      const guint n = (guint) MIN (sizes[s], total - pos);
      fail_unless_equals_int (gst_harness_push (h, make_buffer (rate, 2, pos, n)),
          GST_FLOW_OK);
      pos += n;
    }
    fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
    gfloat *out = pull_all (h, rate, 2, 0, &n_out);
    fail_unless_equals_uint64 (n_out, total);
    check_identity (out, 2, 0, n_out);
    g_free (out);
    gst_harness_teardown (h);
  }
}

GST_START_TEST (test_continuity)
{
  for (guint k = 0; k < G_N_ELEMENTS (small_models); k++)
    check_continuity (small_models[k].file);
}

GST_END_TEST;

/* A flush drops what is held; the next run starts clean at its own
 * timestamps (a leftover of the old run would show in the identity). */
GST_START_TEST (test_flush)
{
  const int rate = 16000;
  GstHarness *h = harness (rate, 1, 0.0);
  guint64 n_out;
  GstSegment seg;

  gst_harness_push (h, make_buffer (rate, 1, 0, 1234));
  gst_buffer_unref (gst_harness_pull (h));     /* the complete hops */
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  gst_segment_init (&seg, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&seg)));
  while (gst_harness_try_pull (h))
    ;                           /* nothing else of the old run may come */
  GstBuffer *b = make_buffer (rate, 1, 8000, 4000);
  GST_BUFFER_FLAG_SET (b, GST_BUFFER_FLAG_DISCONT);
  gst_harness_push (h, b);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  gfloat *out = pull_all (h, rate, 1, 8000, &n_out);
  fail_unless_equals_uint64 (n_out, 4000);
  check_identity (out, 1, 8000, n_out);
  g_free (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A timestamp jump is a discontinuity: the first run is drained at its
 * timestamps, the second starts afresh at its own. */
GST_START_TEST (test_discont)
{
  const int rate = 16000;
  GstHarness *h = harness (rate, 1, 0.0);
  guint64 n1, n2;

  gst_harness_push (h, make_buffer (rate, 1, 0, 1000));
  gst_harness_push (h, make_buffer (rate, 1, 1000, 555));
  gfloat *a = pull_all (h, rate, 1, 0, &n1);
  gst_harness_push (h, make_buffer (rate, 1, 16000, 2000));   /* 1 s later */
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  /* the drain of the first run */
  GstBuffer *b = gst_harness_pull (h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (b),
      gst_util_uint64_scale_int (n1, GST_SECOND, rate));
  fail_unless_equals_uint64 (n1 + gst_buffer_get_size (b) / 4, 1555);
  gst_buffer_unref (b);
  gfloat *c = pull_all (h, rate, 1, 16000, &n2);
  fail_unless_equals_uint64 (n2, 2000);
  check_identity (a, 1, 0, n1);
  check_identity (c, 1, 16000, n2);
  g_free (a);
  g_free (c);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Each of three channels is cleaned on its own, with 1 or 3 threads. */
GST_START_TEST (test_multichannel)
{
  const int rate = 16000, ch = 3, n = 16000;
  gchar *model = small_model ();
  GeSpeechModel *m = ge_speech_model_new (model, NULL);
  fail_unless (m != NULL);
  const int delay = ge_speech_model_frame (m, rate) - ge_speech_model_hop (m, rate);
  const int hops = (n + delay + 159) / 160;
  gfloat *ref = g_new0 (gfloat, (gsize) hops * 160 * ch);

  for (int c = 0; c < ch; c++) {
    GeSpeechStream *s = ge_speech_stream_new (m, rate, NULL);
    gfloat *x = g_new0 (gfloat, hops * 160), *y = g_new (gfloat, hops * 160);
    for (int i = 0; i < n; i++)
      x[i] = signal_at (i, c);
    ge_speech_stream_process (s, x, 1, y, 1, hops, 1.0f);
    for (int i = 0; i < n; i++)
      ref[i * ch + c] = y[i + delay];
    g_free (x);
    g_free (y);
    ge_speech_stream_free (s);
  }
  for (int threads = 1; threads <= 3; threads += 2) {
    GstElement *e = gansynth_with (small_models[0].file, 1.0);
    g_object_set (e, "n-threads", threads, NULL);
    GstHarness *h = harness_of (e, rate, ch);
    guint64 n_out;
    gst_harness_push (h, make_buffer (rate, ch, 0, 7777));
    gst_harness_push (h, make_buffer (rate, ch, 7777, n - 7777));
    gst_harness_push_event (h, gst_event_new_eos ());
    gfloat *out = pull_all (h, rate, ch, 0, &n_out);
    fail_unless_equals_uint64 (n_out, n);
    for (int i = 0; i < n * ch; i++)
      fail_unless (out[i] == ref[i], "%d threads, sample %d channel %d: %f vs %f",
          threads, i / ch, i % ch, out[i], ref[i]);
    g_free (out);
    gst_harness_teardown (h);
  }
  g_free (ref);
  ge_speech_model_free (m);
  g_free (model);
}

GST_END_TEST;

/* precision: the element runs what the engine runs for the request (int8
 * where the CPU has it; auto is f32 for a file not validated in int8; bf16
 * is f32), bit for bit the engine's output at that precision, and its stats
 * name it; a change while playing takes effect on the next buffer. */
GST_START_TEST (test_precision)
{
  const int rate = 16000, n = 8000;
  const char *names[] = { "int8", "auto", "bf16" };
  gchar *model = small_model ();
  GeSpeechModel *m = ge_speech_model_new (model, NULL);
  fail_unless (m != NULL);
  const int delay = ge_speech_model_frame (m, rate) - ge_speech_model_hop (m, rate);
  const int hops = (n + delay + 159) / 160;

  for (guint k = 0; k < G_N_ELEMENTS (names); k++) {
    GePrecision want;
    fail_unless (ge_precision_from_name (names[k], &want));
    /* int8 from the second hop on: the element gets its first hop at f32 */
    GeSpeechStream *s = ge_speech_stream_new (m, rate, NULL);
    gfloat *x = g_new0 (gfloat, hops * 160), *y = g_new (gfloat, hops * 160);
    for (int i = 0; i < n; i++)
      x[i] = signal_at (i, 0);
    const int lead = k == 0 ? 1 : 0;
    ge_speech_stream_process (s, x, 1, y, 1, lead, 1.0f);
    const GePrecision runs = ge_speech_stream_set_precision (s, want);
    ge_speech_stream_process (s, x + lead * 160, 1, y + lead * 160, 1, hops - lead, 1.0f);
    ge_speech_stream_free (s);

    GstElement *e = gansynth_with (small_models[0].file, 1.0);
    if (k == 0)
      g_object_set (e, "precision", 0, NULL);   /* f32 first, int8 once playing */
    else
      gst_util_set_object_arg (G_OBJECT (e), "precision", names[k]);
    GstHarness *h = harness_of (e, rate, 1);
    GstStructure *st;
    if (k == 0) {
      gst_harness_push (h, make_buffer (rate, 1, 0, 160));
      g_object_get (h->element, "stats", &st, NULL);
      fail_unless_equals_string (gst_structure_get_string (st, "precision"), "f32");
      gst_structure_free (st);
      gst_util_set_object_arg (G_OBJECT (h->element), "precision", names[k]);
    }
    guint64 n_out;
    const int pushed = k == 0 ? 160 : 0;
    gst_harness_push (h, make_buffer (rate, 1, pushed, n - pushed));
    gst_harness_push_event (h, gst_event_new_eos ());
    gfloat *out = pull_all (h, rate, 1, 0, &n_out);
    fail_unless_equals_uint64 (n_out, n);
    for (int i = 0; i < n; i++)
      fail_unless (out[i] == y[i + delay], "precision %s, sample %d: %f vs %f", names[k], i,
          out[i], y[i + delay]);
    g_object_get (h->element, "stats", &st, NULL);
    fail_unless_equals_string (gst_structure_get_string (st, "precision"),
        ge_precision_name (runs));
    gst_structure_free (st);
    fail_unless (k == 0 ? runs == (ge_gemv_i8_available () ? GE_PRECISION_INT8 :
            GE_PRECISION_F32) : runs == GE_PRECISION_F32);
    g_free (out), g_free (x), g_free (y);
    gst_harness_teardown (h);
  }
  ge_speech_model_free (m);
  g_free (model);
}

GST_END_TEST;

/* Silence in, silence out; NaNs, infinities and clipped input give finite
 * output and leave no trace: silence after them is silence again. */
GST_START_TEST (test_silence_clipping_nan)
{
  const int rate = 48000, n = 4800;
  GstHarness *h = harness (rate, 1, 1.0);
  GstBuffer *b = gst_buffer_new_allocate (NULL, n * 4, NULL);
  GstMapInfo m;
  guint64 n_out;

  gst_buffer_memset (b, 0, 0, n * 4);
  GST_BUFFER_PTS (b) = 0;
  gst_harness_push (h, gst_buffer_copy (b));
  gfloat *out = pull_all (h, rate, 1, 0, &n_out);
  for (guint64 i = 0; i < n_out; i++)
    fail_unless (out[i] == 0.0f);
  g_free (out);

  gst_buffer_map (b, &m, GST_MAP_WRITE);
  gfloat *d = (gfloat *) m.data;
  for (int i = 0; i < n; i++)
    d[i] = i % 50 == 0 ? NAN : i % 77 == 0 ? INFINITY : (i / 40) % 2 ? 1.0f : -1.0f;
  gst_buffer_unmap (b, &m);
  GstBuffer *bad = gst_buffer_copy (b);
  GST_BUFFER_PTS (bad) = gst_util_uint64_scale_int (n, GST_SECOND, rate);
  gst_harness_push (h, bad);
  guint64 done = n_out;
  out = pull_all (h, rate, 1, done, &n_out);
  done += n_out;
  for (guint64 i = 0; i < n_out; i++)
    fail_unless (isfinite (out[i]) && fabsf (out[i]) < 16.0f);
  g_free (out);

  gst_buffer_memset (b, 0, 0, n * 4);
  for (int k = 2; k < 6; k++) {
    GstBuffer *z = gst_buffer_copy (b);
    GST_BUFFER_PTS (z) = gst_util_uint64_scale_int ((guint64) k * n, GST_SECOND, rate);
    gst_harness_push (h, z);
  }
  out = pull_all (h, rate, 1, done, &n_out);
  for (guint64 i = n_out - n; i < n_out; i++)
    fail_unless (out[i] == 0.0f, "sample %" G_GUINT64_FORMAT ": %g", i, out[i]);
  g_free (out);
  gst_buffer_unref (b);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A rate the model does not run at is refused at negotiation. */
GST_START_TEST (test_wrong_rate)
{
  GstElement *e = gansynth_with (small_models[0].file, 1.0);
  GstHarness *h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_set_src_caps_str (h, "audio/x-raw,format=F32LE,layout=interleaved,"
      "rate=44100,channels=1");
  fail_unless_equals_int (gst_harness_push (h, make_buffer (44100, 1, 0, 441)),
      GST_FLOW_NOT_NEGOTIATED);
  gst_harness_teardown (h);

  GstElement *pipe = gst_parse_launch ("audiotestsrc num-buffers=2 ! "
      "audio/x-raw,format=F32LE,rate=44100 ! gansynth ! fakesink", NULL);
  GstBus *bus = gst_element_get_bus (pipe);
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, 20 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR);
  gst_message_unref (msg);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipe);
}

GST_END_TEST;

GST_START_TEST (test_bad_models)
{
  expect_start_error ("gansynth", "no-such-model.safetensors",
      GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
  expect_start_error ("gansynth", "not-a-model.safetensors",
      GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE);
  expect_start_error ("gansynth", "truncated.safetensors",
      GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE);
  /* a VAE is not a speech model */
  expect_start_error ("gansynth", "vae.safetensors",
      GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE);
}

GST_END_TEST;

/* The real model on a real recording: decoded, resampled, cleaned and
 * encoded by a pipeline as the README's recipe; speech is reported and
 * the noise-only start is quieter than it came in. */
GST_START_TEST (test_real_file)
{
  gchar *in = test_path ("GE_TEST_SAMPLES", "noisy-speech.ogg");
  gchar *model = test_path ("GE_TEST_GANSYNTH", "gansynth.safetensors");
  gchar *desc = g_strdup_printf ("filesrc location=\"%s\" ! decodebin ! "
      "audioconvert ! audioresample ! tee name=t "
      "t. ! queue ! level name=before interval=100000000 ! fakesink sync=false "
      "t. ! queue ! gansynth model-file=\"%s\" post-vad-messages=true ! "
      "level name=after interval=100000000 ! audioconvert ! "
      "vorbisenc ! oggmux ! fakesink sync=false", in, model);
  GstElement *pipe = gst_parse_launch (desc, NULL);
  GstBus *bus = gst_element_get_bus (pipe);
  gboolean speech = FALSE;
  gdouble rms_before = 0.0, rms_after = 0.0;
  GstMessage *msg;

  fail_unless (pipe != NULL);
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING) !=
      GST_STATE_CHANGE_FAILURE);
  while ((msg = gst_bus_timed_pop (bus, 120 * GST_SECOND))) {
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      GError *err;
      gst_message_parse_error (msg, &err, NULL);
      fail ("%s", err->message);
    }
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS) {
      gst_message_unref (msg);
      break;
    }
    const GstStructure *s = gst_message_get_structure (msg);
    if (s && gst_structure_has_name (s, "gansynth-vad")) {
      gboolean sp;
      gst_structure_get_boolean (s, "speech", &sp);
      speech |= sp;
    }
    if (s && gst_structure_has_name (s, "level")) {
      GstClockTime ts;
      gst_structure_get_clock_time (s, "stream-time", &ts);
      if (ts < 500 * GST_MSECOND) {
        /* the first half second: noise only in the sample */
        const GValue *v = gst_structure_get_value (s, "rms");
        G_GNUC_BEGIN_IGNORE_DEPRECATIONS;     /* level posts a GValueArray */
        GValueArray *a = g_value_get_boxed (v);
        gdouble db = g_value_get_double (g_value_array_get_nth (a, 0));
        G_GNUC_END_IGNORE_DEPRECATIONS;
        if (g_strcmp0 (GST_MESSAGE_SRC_NAME (msg), "before") == 0)
          rms_before += pow (10.0, db / 10.0);
        else
          rms_after += pow (10.0, db / 10.0);
      }
    }
    gst_message_unref (msg);
  }
  fail_unless (speech, "no speech reported");
  GST_INFO ("noise-only start: %.1f dB before, %.1f dB after",
      10 * log10 (rms_before), 10 * log10 (rms_after));
  /* the shipped model takes 4.6 dB off this rain (models/gansynth/MODEL.md):
   * a passthrough or a broken alignment would take none */
  fail_unless (10 * log10 (rms_after) < 10 * log10 (rms_before) - 1.0,
      "noise %.1f dB before, %.1f dB after", 10 * log10 (rms_before),
      10 * log10 (rms_after));
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_free (desc);
  g_free (model);
  g_free (in);
}

GST_END_TEST;

static Suite *
gansynth_suite (void)
{
  Suite *s = suite_create ("gansynth");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_latency);
  tcase_add_test (tc, test_continuity);
  tcase_add_test (tc, test_flush);
  tcase_add_test (tc, test_discont);
  tcase_add_test (tc, test_multichannel);
  tcase_add_test (tc, test_silence_clipping_nan);
  tcase_add_test (tc, test_wrong_rate);
  tcase_add_test (tc, test_precision);
  tcase_add_test (tc, test_bad_models);
  tcase_add_test (tc, test_real_file);
  return s;
}

GST_CHECK_MAIN (gansynth);
