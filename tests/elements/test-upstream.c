/* test-upstream: what a careless or broken upstream feeds the elements.
 * Each case gets a clear error (the right domain and code, a message that
 * names the cause) or correct output; never a crash, and never garbage
 * passed on as if it were a frame or audio.
 *
 * - vaedecode: latent buffers of the wrong size, NaN and infinite values,
 *   finite values so large that the decoder overflows, caps that lie about
 *   the dimensions, the channels or the scaling, absurd sizes, a GDP stream
 *   cut anywhere (gdpdepay) and a raw latent file cut mid-frame.
 * - diffusionsr and diffusioninpaint: caps renegotiated mid-stream to other
 *   and odd sizes (each output equal to a fresh element's on the same
 *   frame), zero-size caps, padded and lying strides, frames shorter than
 *   their caps (and the latter in vaeencode and diffusionimg2img too).
 * - gansynth: NaN, infinities, huge and denormal samples, GAP buffers and
 *   events, DISCONT flags and timestamps going back, rate and channel
 *   changes mid-stream (every input sample comes out once), a rate the
 *   model cannot do.
 *
 * The models are the tiny ones of GE_TEST_MODELS and GE_TEST_GOLDEN_SPEECH.
 */
#include "elementcheck.h"

#include <gst/audio/audio.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <float.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static gchar *
model (const gchar * name)
{
  return test_path ("GE_TEST_MODELS", name);
}

static GstHarness *
harness_parse (const gchar * element, const gchar * file, const gchar * extra)
{
  gchar *path = file ? model (file) : NULL;
  gchar *launch = path ? g_strdup_printf ("%s model-file=\"%s\" %s", element,
      path, extra ? extra : "") : g_strdup_printf ("%s %s", element,
      extra ? extra : "");
  GstHarness *h = gst_harness_new_parse (launch);

  g_free (launch);
  g_free (path);
  return h;
}

/* A bus on the harnessed element (the harness has none). */
static GstBus *
watch (GstHarness * h)
{
  GstBus *bus = gst_bus_new ();

  gst_element_set_bus (h->element, bus);
  return bus;
}

static void
unwatch (GstHarness * h, GstBus * bus)
{
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
}

/* The next ERROR on @bus: @domain/@code, and @needle in its message or its
 * debug text (what the cause is may sit in either). */
static void
expect_error (GstBus * bus, GQuark domain, gint code, const gchar * needle)
{
  /* timed: diffusioninpaint (a GstAggregator) fails on its own thread */
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, 20 * GST_SECOND,
      GST_MESSAGE_ERROR);
  GError *err = NULL;
  gchar *debug = NULL, *all;

  fail_unless (msg != NULL, "no ERROR message (expected one about %s)",
      needle);
  gst_message_parse_error (msg, &err, &debug);
  all = g_strdup_printf ("%s // %s", err->message, debug ? debug : "");
  GST_INFO ("error: %s", all);
  fail_unless (err->domain == domain, "domain %s, expected %s: %s",
      g_quark_to_string (err->domain), g_quark_to_string (domain), all);
  fail_unless (err->code == code, "code %d, expected %d: %s", err->code, code,
      all);
  fail_unless (strstr (all, needle) != NULL, "\"%s\" does not say %s", all,
      needle);
  g_free (all);
  g_free (debug);
  g_clear_error (&err);
  gst_message_unref (msg);
}

static void
expect_no_error (GstBus * bus)
{
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);

  if (msg) {
    GError *err = NULL;
    gchar *debug = NULL;

    gst_message_parse_error (msg, &err, &debug);
    fail ("unexpected error: %s (%s)", err->message, debug);
  }
}

/* ======================================================================== */
/* vaedecode */

#define LW 12
#define LH 8
#define LC 4
#define LATENT_BYTES (LW * LH * LC * 4)
#define LATENT_CAPS "other/tensors,format=static,num_tensors=1," \
  "types=float32,framerate=30/1"
#define GOOD_CAPS LATENT_CAPS ",dimensions=(string)12:8:4:1,video-width=45," \
  "video-height=30"

static GstBuffer *
latent_buffer (gsize bytes, gfloat special, gsize at)
{
  GstBuffer *b = gst_buffer_new_allocate (NULL, bytes, NULL);
  GstMapInfo m;

  gst_buffer_map (b, &m, GST_MAP_WRITE);
  for (gsize i = 0; i < bytes / 4; i++)
    ((gfloat *) m.data)[i] = 0.8f * (gfloat) sin (0.37 * i);
  if (at < bytes / 4)
    ((gfloat *) m.data)[at] = special;
  gst_buffer_unmap (b, &m);
  GST_BUFFER_PTS (b) = 0;
  GST_BUFFER_DURATION (b) = GST_SECOND / 30;
  return b;
}

static GstBuffer *
good_latent (void)
{
  return latent_buffer (LATENT_BYTES, 0.0f, G_MAXSIZE);
}

static GstHarness *
decoder (const gchar * caps)
{
  GstHarness *h = harness_parse ("vaedecode", "vae.safetensors", NULL);

  gst_harness_set_sink_caps_str (h, "video/x-raw,format=RGB");
  if (caps)
    gst_harness_set_src_caps_str (h, caps);
  return h;
}

/* The reference: a fresh decoder's frame of good_latent(). */
static GstBuffer *
reference_frame (void)
{
  GstHarness *h = decoder (GOOD_CAPS);
  GstBuffer *out;

  fail_unless_equals_int (gst_harness_push (h, good_latent ()), GST_FLOW_OK);
  out = gst_harness_pull (h);
  gst_harness_teardown (h);
  return out;
}

static void
assert_same_bytes (GstBuffer * a, GstBuffer * b, const gchar * what)
{
  GstMapInfo ma, mb;

  fail_unless (gst_buffer_map (a, &ma, GST_MAP_READ));
  fail_unless (gst_buffer_map (b, &mb, GST_MAP_READ));
  fail_unless_equals_int (ma.size, mb.size);
  fail_unless (memcmp (ma.data, mb.data, ma.size) == 0, "%s differs", what);
  gst_buffer_unmap (a, &ma);
  gst_buffer_unmap (b, &mb);
}

/* Buffers longer than the caps say, empty ones, two frames in one, sizes
 * that are no whole number of floats: each a STREAM/FORMAT error that
 * gives both sizes, no frame out; the next good buffer decodes as a fresh
 * element decodes it (no state left behind).  (One 4 bytes short:
 * test-vae.) */
GST_START_TEST (test_vae_buffer_sizes)
{
  const gsize sizes[] = { LATENT_BYTES + 4, 0, 2 * LATENT_BYTES,
    LATENT_BYTES + 1, LATENT_BYTES - 3, 4
  };
  GstHarness *h = decoder (GOOD_CAPS);
  GstBus *bus = watch (h);
  GstBuffer *ref = reference_frame (), *out;

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
    gchar *needle = g_strdup_printf ("%" G_GSIZE_FORMAT " bytes", sizes[i]);

    fail_unless_equals_int (gst_harness_push (h, latent_buffer (sizes[i],
                0.0f, G_MAXSIZE)), GST_FLOW_ERROR);
    expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, needle);
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
    g_free (needle);
  }
  fail_unless_equals_int (gst_harness_push (h, good_latent ()), GST_FLOW_OK);
  out = gst_harness_pull (h);
  assert_same_bytes (out, ref, "the frame after the bad buffers");
  gst_buffer_unref (out);
  gst_buffer_unref (ref);
  unwatch (h, bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* NaN, +Inf and -Inf anywhere (first, middle, last value): a STREAM/DECODE
 * error saying so.  Finite values so large that the decoder overflows
 * (+-FLT_MAX) are a STREAM/DECODE error too, not a frame of whatever the
 * conversion of NaN to 8 bits happens to give; values that are merely
 * large (1e30 of one sign, 1e4) give that error or a frame (the model's
 * finite answer), never a NaN pixel. */
GST_START_TEST (test_vae_nonfinite)
{
  const gfloat bad[] = { NAN, INFINITY, -INFINITY };
  const gsize at[] = { 0, LW * LH * LC / 2 + 3, LW * LH * LC - 1 };
  const gfloat huge[] = { FLT_MAX, -FLT_MAX };
  GstHarness *h = decoder (GOOD_CAPS);
  GstBus *bus = watch (h);
  GstBuffer *out;

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    for (guint k = 0; k < G_N_ELEMENTS (at); k++) {
      fail_unless_equals_int (gst_harness_push (h, latent_buffer
              (LATENT_BYTES, bad[i], at[k])), GST_FLOW_ERROR);
      expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE,
          "NaN or infinity");
      fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
    }
  for (guint i = 0; i < G_N_ELEMENTS (huge); i++) {
    GstBuffer *b = gst_buffer_new_allocate (NULL, LATENT_BYTES, NULL);
    GstMapInfo m;

    gst_buffer_map (b, &m, GST_MAP_WRITE);
    for (gsize j = 0; j < LW * LH * LC; j++)
      ((gfloat *) m.data)[j] = j % 3 ? huge[i] : -huge[i];
    gst_buffer_unmap (b, &m);
    fail_unless (gst_harness_push (h, b) == GST_FLOW_ERROR,
        "%g decoded into a frame", huge[i]);
    expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE, "overflow");
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  }
  {
    GstBuffer *b = latent_buffer (LATENT_BYTES, 0.0f, G_MAXSIZE);

    gst_buffer_memset (b, 0, 0, LATENT_BYTES);
    for (gsize j = 0; j < LW * LH * LC; j++) {
      const gfloat v = 1e30f;

      gst_buffer_fill (b, j * 4, &v, 4);
    }
    if (gst_harness_push (h, b) == GST_FLOW_OK)
      gst_buffer_unref (gst_harness_pull (h));
    else
      expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE,
          "overflow");
  }
  fail_unless_equals_int (gst_harness_push (h, latent_buffer (LATENT_BYTES,
              1e4f, 17)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  gst_buffer_unref (out);
  expect_no_error (bus);
  unwatch (h, bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Caps that lie: each is refused when set, a CORE/NEGOTIATION error naming
 * what does not fit, and the buffer after them is not decoded. */
GST_START_TEST (test_vae_lying_caps)
{
  const struct
  {
    const gchar *caps, *needle;
  } cases[] = {
    /* the frame size does not match the latent's */
    {LATENT_CAPS ",dimensions=(string)12:8:4:1,video-width=100,video-height=30",
        "100x30"},
    {LATENT_CAPS ",dimensions=(string)12:8:4:1,video-width=45,video-height=1",
        "45x1"},
    /* channels of another model */
    {LATENT_CAPS ",dimensions=(string)12:8:3:1", "3 channels"},
    {LATENT_CAPS ",dimensions=(string)12:8:16:1,video-width=45,video-height=30",
        "16 channels"},
    /* a batch, zero, negative or absurd dimensions */
    {LATENT_CAPS ",dimensions=(string)12:8:4:2", "W:H:C:1"},
    {LATENT_CAPS ",dimensions=(string)0:8:4:1", "W:H:C:1"},
    {LATENT_CAPS ",dimensions=(string)-12:8:4:1", "W:H:C:1"},
    {LATENT_CAPS ",dimensions=(string)12:8:4:1:1", "W:H:C:1"},
    {LATENT_CAPS ",dimensions=(string)99999999999:8:4:1", "W:H:C:1"},
    {LATENT_CAPS ",dimensions=(string)12:8", "W:H:C:1"},
    {LATENT_CAPS, "W:H:C:1"},
    /* w * h * c * 4 far beyond memory: refused, not allocated */
    {LATENT_CAPS ",dimensions=(string)65535:65535:4:1", "65535x65535"},
    {LATENT_CAPS ",dimensions=(string)16383:16383:4:1", "65532x65532"},
    {LATENT_CAPS ",dimensions=(string)16384:16384:4:1,video-width=65535,"
          "video-height=65535", "65535x65535"},
    {LATENT_CAPS ",dimensions=(string)65535:2:4:1,video-width=65535,"
          "video-height=5", "65535x2"},
    /* scaling the decoder would have to undo: none, or overflowing */
    {GOOD_CAPS ",applied-scaling-factor=0.0", "applied-scaling-factor"},
    {GOOD_CAPS ",applied-scaling-factor=-0.18215", "applied-scaling-factor"},
    {GOOD_CAPS ",applied-scaling-factor=1e-300", "applied-scaling-factor"},
    {GOOD_CAPS ",applied-scaling-factor=1e300", "applied-scaling-factor"},
    /* another downsampling factor */
    {GOOD_CAPS ",downsample-factor=8", "factor 8"},
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    GstHarness *h = decoder (NULL);
    GstBus *bus = watch (h);

    GST_INFO ("caps %s", cases[i].caps);
    gst_harness_set_src_caps_str (h, cases[i].caps);
    fail_unless (gst_harness_push (h, good_latent ()) ==
        GST_FLOW_NOT_NEGOTIATED, "%s was accepted", cases[i].caps);
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
    expect_error (bus, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        cases[i].needle);
    unwatch (h, bus);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* Caps that change mid-stream to other true dimensions: the next latents
 * decode at the new size, as a fresh element decodes them. */
GST_START_TEST (test_vae_renegotiate)
{
  GstHarness *h = decoder (GOOD_CAPS);
  GstBuffer *ref = reference_frame (), *out;
  GstCaps *caps;
  gint w = 0;

  fail_unless_equals_int (gst_harness_push (h, good_latent ()), GST_FLOW_OK);
  gst_buffer_unref (gst_harness_pull (h));
  gst_harness_set_src_caps_str (h, LATENT_CAPS ",dimensions=(string)3:2:4:1");
  fail_unless_equals_int (gst_harness_push (h, latent_buffer (3 * 2 * 4 * 4,
              0.0f, G_MAXSIZE)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  caps = gst_pad_get_current_caps (h->sinkpad);
  fail_unless (gst_structure_get_int (gst_caps_get_structure (caps, 0),
          "width", &w));
  fail_unless_equals_int (w, 12);
  gst_caps_unref (caps);
  gst_buffer_unref (out);
  gst_harness_set_src_caps_str (h, GOOD_CAPS);
  fail_unless_equals_int (gst_harness_push (h, good_latent ()), GST_FLOW_OK);
  out = gst_harness_pull (h);
  assert_same_bytes (out, ref, "the frame after two renegotiations");
  gst_buffer_unref (out);
  gst_buffer_unref (ref);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A pipeline's frames, collected by the sink. */
typedef struct
{
  GPtrArray *frames;
} Collect;

static void
on_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad, Collect * c)
{
  g_ptr_array_add (c->frames, gst_buffer_ref (buf));
}

/* Runs @launch (its sink named "sink") to EOS or ERROR; returns the frames
 * and, when @error is not NULL, the ERROR message's GError. */
static GPtrArray *
run_pipeline (const gchar * launch, GError ** error, gchar ** debug)
{
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch (launch, &err), *sink;
  Collect c = { g_ptr_array_new_with_free_func ((GDestroyNotify)
        gst_buffer_unref)
  };
  GstBus *bus;
  GstMessage *msg;

  fail_unless (pipe != NULL, "%s: %s", launch, err ? err->message : "?");
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  g_object_set (sink, "signal-handoffs", TRUE, NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (on_handoff), &c);
  bus = gst_element_get_bus (pipe);
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  msg = gst_bus_timed_pop_filtered (bus, 60 * GST_SECOND,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "timeout: %s", launch);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *e = NULL;
    gchar *d = NULL;

    gst_message_parse_error (msg, &e, &d);
    fail_unless (error != NULL, "%s: error %s (%s)", launch, e->message, d);
    *error = e;
    *debug = d;
  } else if (error) {
    *error = NULL;
    *debug = NULL;
  }
  gst_message_unref (msg);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  return c.frames;
}

static gchar *
write_temp (const gchar * name, const guint8 * data, gsize len)
{
  gchar *path = g_build_filename (g_get_tmp_dir (), name, NULL);

  fail_unless (g_file_set_contents (path, (const gchar *) data, len, NULL));
  return path;
}

/* The packets of a GDP 1.0 stream: a 62-byte header (payload type at 4,
 * big-endian payload length at 6), then the payload.  Returns the offsets
 * of the buffer packets (type 1). */
static GArray *
gdp_buffer_packets (const guint8 * d, gsize len)
{
  GArray *offs = g_array_new (FALSE, FALSE, sizeof (gsize));
  gsize pos = 0;

  while (pos + 62 <= len) {
    guint type = GST_READ_UINT16_BE (d + pos + 4);
    guint32 plen = GST_READ_UINT32_BE (d + pos + 6);

    if (type == 1)
      g_array_append_val (offs, pos);
    pos += 62 + plen;
  }
  fail_unless_equals_int (pos, len);
  return offs;
}

/* A GDP stream of 3 latents (vaeencode ! gdppay), decoded whole, then cut
 * inside the header and inside the payload of each buffer packet: gdpdepay
 * drops the incomplete last packet at EOS, so the complete frames decode,
 * equal to the whole stream's, and nothing else comes out.  A payload
 * overwritten with NaNs is a decode error; a raw latent file cut mid-frame
 * decodes its whole frames, then a STREAM/FORMAT error. */
GST_START_TEST (test_vae_gdp_stream)
{
  gchar *mdl = model ("vae.safetensors");
  gchar *gdp = g_build_filename (g_get_tmp_dir (), "upstream-latents.gdp",
      NULL), *launch, *data, *debug;
  gsize len;
  GPtrArray *whole;
  GArray *packets;
  GError *err = NULL;
  GstElement *probe = gst_element_factory_make ("gdpdepay", NULL);

  if (!probe) {
    /* gst-plugins-bad's gdp plugin is missing: only the raw file below */
    GST_WARNING ("gdpdepay not installed: GDP cases skipped");
  } else {
    gst_object_unref (probe);
    launch = g_strdup_printf ("videotestsrc num-buffers=3 pattern=ball ! "
        "video/x-raw,format=RGB,width=45,height=30,framerate=30/1 ! "
        "vaeencode model-file=\"%s\" ! gdppay ! filesink location=\"%s\"",
        mdl, gdp);
    {
      GstElement *pipe = gst_parse_launch (launch, NULL);

      fail_unless (pipe != NULL);
      run_to_eos (pipe);
      gst_element_set_state (pipe, GST_STATE_NULL);
      gst_object_unref (pipe);
    }
    g_free (launch);
    fail_unless (g_file_get_contents (gdp, &data, &len, NULL));
    packets = gdp_buffer_packets ((const guint8 *) data, len);
    fail_unless_equals_int (packets->len, 3);

#define DECODE_GDP "filesrc location=\"%s\" ! gdpdepay ! vaedecode " \
    "model-file=\"%s\" ! video/x-raw,format=RGB ! fakesink name=sink sync=false"
    launch = g_strdup_printf (DECODE_GDP, gdp, mdl);
    whole = run_pipeline (launch, NULL, NULL);
    g_free (launch);
    fail_unless_equals_int (whole->len, 3);

    for (guint k = 0; k < packets->len; k++) {
      const gsize at = g_array_index (packets, gsize, k);
      /* inside the header, just after it, inside the payload, one short */
      const gsize cuts[] = { at + 10, at + 62, at + 62 + LATENT_BYTES / 2,
        at + 62 + LATENT_BYTES - 1
      };

      for (guint c = 0; c < G_N_ELEMENTS (cuts); c++) {
        gchar *cut = write_temp ("upstream-cut.gdp", (const guint8 *) data,
            cuts[c]);
        GPtrArray *got;

        launch = g_strdup_printf (DECODE_GDP, cut, mdl);
        got = run_pipeline (launch, &err, &debug);
        if (err) {
          /* a cut before any caps: not negotiated, said so by the source */
          fail_unless (k == 0, "cut at %" G_GSIZE_FORMAT ": %s (%s)", cuts[c],
              err->message, debug);
          g_clear_error (&err);
          g_free (debug);
        }
        fail_unless_equals_int (got->len, k);
        for (guint f = 0; f < got->len; f++)
          assert_same_bytes (g_ptr_array_index (got, f),
              g_ptr_array_index (whole, f), "a frame of the cut stream");
        g_ptr_array_unref (got);
        g_free (launch);
        g_unlink (cut);
        g_free (cut);
      }
    }

    /* NaNs written over the second latent's payload */
    {
      const gsize at = g_array_index (packets, gsize, 1) + 62;
      GPtrArray *got;
      gchar *bad;

      memset (data + at + 40, 0xff, 16);
      bad = write_temp ("upstream-nan.gdp", (const guint8 *) data, len);
      launch = g_strdup_printf (DECODE_GDP, bad, mdl);
      got = run_pipeline (launch, &err, &debug);
      fail_unless (err != NULL, "NaN latents decoded");
      fail_unless (err->domain == GST_STREAM_ERROR
          && err->code == GST_STREAM_ERROR_DECODE, "%s", err->message);
      fail_unless (strstr (debug, "NaN or infinity") != NULL, "%s", debug);
      fail_unless (got->len <= 1);
      g_clear_error (&err);
      g_free (debug);
      g_ptr_array_unref (got);
      g_free (launch);
      g_unlink (bad);
      g_free (bad);
    }
    g_ptr_array_unref (whole);
    g_array_unref (packets);
    g_free (data);
    g_unlink (gdp);
  }

  /* a raw latent file of 2.5 frames */
  {
    GstBuffer *b = latent_buffer (LATENT_BYTES * 5 / 2, 0.0f, G_MAXSIZE);
    GstBuffer *ref = reference_frame ();
    GstMapInfo m;
    GPtrArray *got;
    gchar *raw;

    gst_buffer_map (b, &m, GST_MAP_READ);
    /* the pattern continues across frames: the first frame is good_latent */
    raw = write_temp ("upstream-cut.latent", m.data, m.size);
    gst_buffer_unmap (b, &m);
    gst_buffer_unref (b);
    launch = g_strdup_printf ("filesrc location=\"%s\" blocksize=%d ! "
        GOOD_CAPS " ! vaedecode model-file=\"%s\" ! video/x-raw,format=RGB ! "
        "fakesink name=sink sync=false", raw, LATENT_BYTES, mdl);
    got = run_pipeline (launch, &err, &debug);
    fail_unless (err != NULL, "a half latent passed");
    fail_unless (err->domain == GST_STREAM_ERROR
        && err->code == GST_STREAM_ERROR_FORMAT, "%s", err->message);
    fail_unless (strstr (err->message, "768 bytes") != NULL, "%s",
        err->message);
    fail_unless_equals_int (got->len, 2);
    assert_same_bytes (g_ptr_array_index (got, 0), ref, "the first frame");
    gst_buffer_unref (ref);
    g_clear_error (&err);
    g_free (debug);
    g_ptr_array_unref (got);
    g_free (launch);
    g_unlink (raw);
    g_free (raw);
  }
  g_free (gdp);
  g_free (mdl);
}

GST_END_TEST;

/* ======================================================================== */
/* diffusionsr and diffusioninpaint: video */

static guint8
pattern (gint x, gint y, gint c)
{
  gint dx = x - 13, dy = y - 9;
  gint v = (x * 5 + y * 3 + c * 60 + (x * y) / 7) & 255;

  if (dx * dx + dy * dy < 49)
    v = 255 - v / 2;
  return (guint8) v;
}

/* A @w x @h frame of @format with @stride bytes per row (0: GStreamer's
 * default), the padding filled with junk; a GstVideoMeta describes a
 * stride other than the default (and @offset bytes before the picture).
 * With alpha, the alpha is transparent in a box (the inpainting mask). */
static GstBuffer *
make_frame (GstVideoFormat format, gint w, gint h, gint stride, gsize offset,
    GstClockTime pts)
{
  GstVideoInfo info;
  const GstVideoFormatInfo *fi;
  GstBuffer *buf;
  GstMapInfo map;
  gint ps;

  gst_video_info_set_format (&info, format, w, h);
  fi = info.finfo;
  ps = GST_VIDEO_FORMAT_INFO_PSTRIDE (fi, 0);
  if (stride == 0)
    stride = GST_VIDEO_INFO_PLANE_STRIDE (&info, 0);
  buf = gst_buffer_new_allocate (NULL, offset + (gsize) stride * h, NULL);
  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  memset (map.data, 0xA5, map.size);
  for (gint y = 0; y < h; y++)
    for (gint x = 0; x < w; x++) {
      guint8 *p = map.data + offset + (gsize) y * stride + x * ps;

      for (gint c = 0; c < 3; c++)
        p[GST_VIDEO_FORMAT_INFO_POFFSET (fi, c)] = pattern (x, y, c);
      if (GST_VIDEO_FORMAT_INFO_HAS_ALPHA (fi)) {
        gboolean hole = x >= w / 3 && x < w / 3 + MAX (w / 4, 2)
            && y >= h / 3 && y < h / 3 + MAX (h / 4, 2);
        p[GST_VIDEO_FORMAT_INFO_POFFSET (fi, 3)] = hole ? 0 : 255;
      }
    }
  gst_buffer_unmap (buf, &map);
  if (stride != GST_VIDEO_INFO_PLANE_STRIDE (&info, 0) || offset) {
    gsize offsets[GST_VIDEO_MAX_PLANES] = { offset };
    gint strides[GST_VIDEO_MAX_PLANES] = { stride };

    gst_buffer_add_video_meta_full (buf, GST_VIDEO_FRAME_FLAG_NONE, format,
        w, h, 1, offsets, strides);
  }
  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = GST_SECOND / 30;
  return buf;
}

static gchar *
video_caps (GstVideoFormat format, gint w, gint h)
{
  return g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=30/1", gst_video_format_to_string (format), w, h);
}

/* The picture of @buf (@caps) as tight RGBA rows, read through the frame
 * (so strides and metas are honoured). */
static guint8 *
picture (GstBuffer * buf, GstCaps * caps, gint * w, gint * h)
{
  GstVideoInfo info;
  GstVideoFrame f;
  guint8 *px;

  fail_unless (gst_video_info_from_caps (&info, caps));
  fail_unless (gst_video_frame_map (&f, &info, buf, GST_MAP_READ));
  *w = GST_VIDEO_FRAME_WIDTH (&f);
  *h = GST_VIDEO_FRAME_HEIGHT (&f);
  px = g_malloc ((gsize) *w * *h * 4);
  for (gint y = 0; y < *h; y++)
    for (gint x = 0; x < *w; x++)
      for (gint c = 0; c < 4; c++) {
        guint8 v = 255;

        if (c < 3 || GST_VIDEO_INFO_HAS_ALPHA (&info))
          v = ((guint8 *) GST_VIDEO_FRAME_COMP_DATA (&f, c))[(gsize) y *
              GST_VIDEO_FRAME_COMP_STRIDE (&f, c) +
              (gsize) x * GST_VIDEO_FRAME_COMP_PSTRIDE (&f, c)];
        px[((gsize) y * *w + x) * 4 + c] = v;
      }
  gst_video_frame_unmap (&f);
  return px;
}

/* Pushes @in (already with caps set) and returns the output's picture. */
static guint8 *
push_pull_picture (GstHarness * h, GstBuffer * in, gint * w, gint * hh)
{
  GstBuffer *out;
  GstCaps *caps;
  guint8 *px;

  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  caps = gst_pad_get_current_caps (h->sinkpad);
  px = picture (out, caps, w, hh);
  gst_caps_unref (caps);
  gst_buffer_unref (out);
  return px;
}

typedef struct
{
  const gchar *element, *file, *props;
  gint scale;
} VideoElement;

static const VideoElement sr = { "diffusionsr", "diffusionsr-x2.safetensors",
  NULL, 2
};

/* the default inpainting model, the mask from alpha */
static const VideoElement inpaint = { "diffusioninpaint", NULL,
  "mask-feather=2", 1
};

static GstHarness *
video_harness (const VideoElement * ve)
{
  return harness_parse (ve->element, ve->file, ve->props);
}

/* One frame through a fresh element. */
static guint8 *
fresh_picture (const VideoElement * ve, GstVideoFormat format, gint w, gint h,
    gint stride, gsize offset)
{
  GstHarness *hr = video_harness (ve);
  gchar *caps = video_caps (format, w, h);
  gint ow, oh;
  guint8 *px;

  gst_harness_set_src_caps_str (hr, caps);
  g_free (caps);
  px = push_pull_picture (hr, make_frame (format, w, h, stride, offset, 0),
      &ow, &oh);
  fail_unless_equals_int (ow, w * ve->scale);
  fail_unless_equals_int (oh, h * ve->scale);
  gst_harness_teardown (hr);
  return px;
}

/* Caps renegotiated mid-stream to smaller, odd, other-format and padded
 * frames and back: each output is a fresh element's on the same frame. */
static void
check_renegotiation (const VideoElement * ve, GstVideoFormat format)
{
  const struct
  {
    gint w, h, stride;
    gsize offset;
    GstVideoFormat format;
  } steps[] = {
    {640, 360, 0, 0, format},
    {320, 180, 0, 0, format},
    {33, 17, 0, 0, format},
    {33, 17, 33 * 4 + 13, 7, GST_VIDEO_FORMAT_BGRA},
    {17, 33, 0, 0, format},
    {640, 360, 0, 0, format},
  };
  GstHarness *h = video_harness (ve);
  GstBus *bus = watch (h);

  for (guint i = 0; i < G_N_ELEMENTS (steps); i++) {
    GstVideoFormat f = ve->scale == 1 ? steps[i].format :
        steps[i].format == GST_VIDEO_FORMAT_BGRA ? GST_VIDEO_FORMAT_BGRx :
        steps[i].format;
    gchar *caps = video_caps (f, steps[i].w, steps[i].h);
    guint8 *got, *ref;
    gint w, hh;

    gst_harness_set_src_caps_str (h, caps);
    got = push_pull_picture (h, make_frame (f, steps[i].w, steps[i].h,
            steps[i].stride, steps[i].offset, i * GST_SECOND / 30), &w, &hh);
    fail_unless_equals_int (w, steps[i].w * ve->scale);
    fail_unless_equals_int (hh, steps[i].h * ve->scale);
    ref = fresh_picture (ve, f, steps[i].w, steps[i].h, 0, 0);
    fail_unless (memcmp (got, ref, (gsize) w * hh * 4) == 0,
        "%s: step %u (%s %dx%d) differs from a fresh element's output",
        ve->element, i, caps, steps[i].w, steps[i].h);
    g_free (got);
    g_free (ref);
    g_free (caps);
  }
  expect_no_error (bus);
  unwatch (h, bus);
  gst_harness_teardown (h);
}

GST_START_TEST (test_sr_renegotiate)
{
  check_renegotiation (&sr, GST_VIDEO_FORMAT_RGB);
}

GST_END_TEST;

GST_START_TEST (test_inpaint_renegotiate)
{
  check_renegotiation (&inpaint, GST_VIDEO_FORMAT_RGBA);
}

GST_END_TEST;

/* Zero-size caps are refused when they come (outside the pad templates):
 * not negotiated, no frame, and good caps after them work. */
static void
check_zero_size (const VideoElement * ve, GstVideoFormat format)
{
  const gchar *sizes[] = { "width=0,height=30", "width=40,height=0",
    "width=0,height=0"
  };

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
    GstHarness *h = video_harness (ve);
    gchar *caps = g_strdup_printf ("video/x-raw,format=%s,%s,framerate=30/1",
        gst_video_format_to_string (format), sizes[i]);
    GstCaps *c = gst_caps_from_string (caps);
    gint w, hh;
    guint8 *px;

    gst_harness_play (h);
    fail_if (gst_pad_peer_query_accept_caps (h->srcpad, c), "%s accepted",
        caps);
    gst_harness_set_src_caps (h, c);
    fail_if (gst_harness_push (h, gst_buffer_new_allocate (NULL, 64, NULL))
        == GST_FLOW_OK);
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
    g_free (caps);
    caps = video_caps (format, 40, 30);
    gst_harness_set_src_caps_str (h, caps);
    px = push_pull_picture (h, make_frame (format, 40, 30, 0, 0, 0), &w, &hh);
    fail_unless_equals_int (w, 40 * ve->scale);
    g_free (px);
    g_free (caps);
    gst_harness_teardown (h);
  }
}

GST_START_TEST (test_zero_size)
{
  check_zero_size (&sr, GST_VIDEO_FORMAT_RGB);
  check_zero_size (&inpaint, GST_VIDEO_FORMAT_RGBA);
}

GST_END_TEST;

/* Strides: odd paddings and a plane offset give the packed frame's
 * output; frames shorter than their caps (or a GstVideoMeta) say, and a
 * meta whose stride is less than a row, are a STREAM/FORMAT error naming
 * the sizes, never a frame of uninitialised memory. */
static void
check_strides (const VideoElement * ve, GstVideoFormat format)
{
  const gint w = 37, hh = 23, ps = format == GST_VIDEO_FORMAT_RGB ? 3 : 4;
  const gint strides[] = { w * ps + 1, w * ps + 3, w * ps + 29, w * ps + 64 };
  guint8 *ref = fresh_picture (ve, format, w, hh, 0, 0);
  gchar *caps = video_caps (format, w, hh);
  GstHarness *h;
  GstBus *bus;
  GstVideoInfo info;

  for (guint i = 0; i < G_N_ELEMENTS (strides); i++) {
    guint8 *got = fresh_picture (ve, format, w, hh, strides[i], i * 5);

    fail_unless (memcmp (got, ref, (gsize) w * hh * 4 * ve->scale *
            ve->scale) == 0, "%s: stride %d differs from packed rows",
        ve->element, strides[i]);
    g_free (got);
  }

  gst_video_info_set_format (&info, format, w, hh);
  for (gint k = 0; k < 4; k++) {
    GstBuffer *b;
    const gchar *needle = "bytes";

    if (k == 0) {
      /* a frame cut short */
      b = make_frame (format, w, hh, 0, 0, 0);
      gst_buffer_resize (b, 0, GST_VIDEO_INFO_SIZE (&info) - 100);
    } else if (k == 1) {
      /* a meta whose rows run past the end of the buffer */
      b = make_frame (format, w, hh, w * ps + 16, 0, 0);
      gst_buffer_resize (b, 0, (gsize) (w * ps + 16) * (hh - 2));
    } else {
      /* a meta whose stride is less than a row (rows would overlap), or
       * whose size is not the caps' */
      gsize offsets[GST_VIDEO_MAX_PLANES] = { 0 };
      gint st[GST_VIDEO_MAX_PLANES] = { k == 2 ? w * ps / 2 : w * ps * 2 };

      b = make_frame (format, w, hh, 0, 0, 0);
      fail_unless (gst_buffer_add_video_meta_full (b,
              GST_VIDEO_FRAME_FLAG_NONE, format, k == 2 ? w : w * 2, hh, 1,
              offsets, st) != NULL);
      needle = k == 2 ? "stride" : "does not match";
    }
    /* a GstAggregator's error stops it: a fresh element for each */
    h = video_harness (ve);
    bus = watch (h);
    gst_harness_set_src_caps_str (h, caps);
    gst_harness_push (h, b);
    expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, needle);
    fail_unless (gst_harness_try_pull (h) == NULL, "case %d: a frame came "
        "out", k);
    if (ve->scale != 1) {
      /* GstBaseTransform goes on: a good frame after the bad one */
      gint ow, oh;
      guint8 *got = push_pull_picture (h, make_frame (format, w, hh, 0, 0,
              0), &ow, &oh);

      fail_unless (memcmp (got, ref, (gsize) ow * oh * 4) == 0);
      g_free (got);
    }
    unwatch (h, bus);
    gst_harness_teardown (h);
  }
  g_free (caps);
  g_free (ref);
}

GST_START_TEST (test_sr_strides)
{
  check_strides (&sr, GST_VIDEO_FORMAT_RGB);
}

GST_END_TEST;

GST_START_TEST (test_inpaint_strides)
{
  check_strides (&inpaint, GST_VIDEO_FORMAT_RGBA);
}

GST_END_TEST;

/* vaeencode and diffusionimg2img read frames the same way: a frame cut
 * short and a meta whose rows run past the buffer are STREAM/FORMAT errors
 * there too. */
GST_START_TEST (test_other_video_elements)
{
  const VideoElement others[] = {
    {"vaeencode", "vae.safetensors", NULL, 0},
    {"diffusionimg2img", NULL, NULL, 1},
  };
  const gint w = 37, hh = 23;
  gchar *caps = video_caps (GST_VIDEO_FORMAT_RGB, w, hh);
  GstVideoInfo info;

  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, w, hh);
  for (guint i = 0; i < G_N_ELEMENTS (others); i++)
    for (gint k = 0; k < 2; k++) {
      GstHarness *h = video_harness (&others[i]);
      GstBus *bus = watch (h);
      GstBuffer *b;

      if (k == 0) {
        b = make_frame (GST_VIDEO_FORMAT_RGB, w, hh, 0, 0, 0);
        gst_buffer_resize (b, 0, GST_VIDEO_INFO_SIZE (&info) - 100);
      } else {
        b = make_frame (GST_VIDEO_FORMAT_RGB, w, hh, w * 3 + 16, 0, 0);
        gst_buffer_resize (b, 0, (gsize) (w * 3 + 16) * (hh - 2));
      }
      gst_harness_set_src_caps_str (h, caps);
      fail_unless_equals_int (gst_harness_push (h, b), GST_FLOW_ERROR);
      expect_error (bus, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "bytes");
      fail_unless (gst_harness_try_pull (h) == NULL);
      unwatch (h, bus);
      gst_harness_teardown (h);
    }
  g_free (caps);
}

GST_END_TEST;

/* ======================================================================== */
/* gansynth: audio */

#define AUDIO_CAPS "audio/x-raw,format=F32LE,layout=interleaved,rate=%d," \
  "channels=%d,channel-mask=(bitmask)0"

static GstHarness *
gansynth (gdouble strength, gint rate, gint channels)
{
  GstElement *e = gst_element_factory_make ("gansynth", NULL);
  gchar *mdl = test_path ("GE_TEST_GOLDEN_SPEECH", "model.safetensors");
  gchar *caps = g_strdup_printf (AUDIO_CAPS, rate, channels);
  GstHarness *h;

  fail_unless (e != NULL);
  g_object_set (e, "model-file", mdl, "strength", strength, NULL);
  h = gst_harness_new_with_element (e, "sink", "src");
  gst_object_unref (e);
  gst_harness_set_caps_str (h, caps, caps);
  g_free (caps);
  g_free (mdl);
  return h;
}

static void
set_audio_caps (GstHarness * h, gint rate, gint channels)
{
  gchar *caps = g_strdup_printf (AUDIO_CAPS, rate, channels);

  gst_harness_set_caps_str (h, caps, caps);
  g_free (caps);
}

static gfloat
voice (guint64 i, gint c)
{
  return 0.4f * (gfloat) sin (0.011 * i * (c + 1)) + 0.05f * (gfloat) sin (1.7
      * i + c);
}

/* @n frames of voice() from sample @first, at @ts (@rate). */
static GstBuffer *
audio (gint rate, gint channels, guint64 first, guint n, GstClockTime ts)
{
  GstBuffer *b = gst_buffer_new_allocate (NULL, (gsize) n * channels * 4,
      NULL);
  GstMapInfo m;

  gst_buffer_map (b, &m, GST_MAP_WRITE);
  for (guint i = 0; i < n; i++)
    for (gint c = 0; c < channels; c++)
      ((gfloat *) m.data)[i * channels + c] = voice (first + i, c);
  gst_buffer_unmap (b, &m);
  GST_BUFFER_PTS (b) = ts;
  GST_BUFFER_DURATION (b) = gst_util_uint64_scale_int (n, GST_SECOND, rate);
  return b;
}

/* What leaves the element, in order, seen by a probe on the harness's sink
 * pad: the audio with the caps in force for each buffer, and GAP events. */
typedef struct
{
  gint rate, channels;
  GstClockTime pts;
  guint64 n, at;                /* frames, and where in samples they start */
} Chunk;

typedef struct
{
  GArray *chunks;               /* Chunk */
  GArray *samples;              /* gfloat, all chunks one after another */
  GArray *gaps;                 /* guint64: samples out when a GAP came */
  guint next;                   /* the first chunk not checked yet */
} Log;

static GstPadProbeReturn
log_probe (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  Log *log = data;

  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER (info);
    GstCaps *caps = gst_pad_get_current_caps (pad);
    GstAudioInfo ai;
    GstMapInfo m;
    Chunk c;

    fail_unless (caps && gst_audio_info_from_caps (&ai, caps));
    gst_caps_unref (caps);
    gst_buffer_map (b, &m, GST_MAP_READ);
    c.rate = GST_AUDIO_INFO_RATE (&ai);
    c.channels = GST_AUDIO_INFO_CHANNELS (&ai);
    c.pts = GST_BUFFER_PTS (b);
    c.n = m.size / GST_AUDIO_INFO_BPF (&ai);
    c.at = log->samples->len;
    fail_unless (m.size % GST_AUDIO_INFO_BPF (&ai) == 0);
    g_array_append_vals (log->samples, m.data, m.size / 4);
    gst_buffer_unmap (b, &m);
    g_array_append_val (log->chunks, c);
  } else if (GST_EVENT_TYPE (GST_PAD_PROBE_INFO_EVENT (info)) ==
      GST_EVENT_GAP) {
    guint64 at = log->samples->len;

    g_array_append_val (log->gaps, at);
  }
  return GST_PAD_PROBE_OK;
}

static Log *
log_output (GstHarness * h)
{
  Log *log = g_new0 (Log, 1);

  log->chunks = g_array_new (FALSE, FALSE, sizeof (Chunk));
  log->samples = g_array_new (FALSE, FALSE, sizeof (gfloat));
  log->gaps = g_array_new (FALSE, FALSE, sizeof (guint64));
  gst_pad_add_probe (h->sinkpad, GST_PAD_PROBE_TYPE_BUFFER |
      GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, log_probe, log, NULL);
  return log;
}

static void
log_free (Log * log)
{
  g_array_unref (log->chunks);
  g_array_unref (log->samples);
  g_array_unref (log->gaps);
  g_free (log);
}

/* The next @n frames of output: at @rate and @channels, following one
 * another from @ts on, and (strength 0 is the identity, test-gansynth)
 * voice() from sample @from, but silence from @silent_from to @silent_to
 * (relative to @from). */
static void
check_run (Log * log, gint rate, gint channels, GstClockTime ts,
    guint64 from, guint64 n, guint64 silent_from, guint64 silent_to)
{
  guint64 done = 0;

  while (done < n) {
    const Chunk *c;

    fail_unless (log->next < log->chunks->len, "%" G_GUINT64_FORMAT
        " frames of %" G_GUINT64_FORMAT " came out", done, n);
    c = &g_array_index (log->chunks, Chunk, log->next);
    fail_unless_equals_int (c->rate, rate);
    fail_unless_equals_int (c->channels, channels);
    fail_unless_equals_uint64 (c->pts, ts +
        gst_util_uint64_scale_int (done, GST_SECOND, rate));
    fail_unless (done + c->n <= n, "a buffer runs past the run's end");
    for (guint64 i = 0; i < c->n; i++)
      for (gint ch = 0; ch < channels; ch++) {
        const guint64 t = done + i;
        const gfloat v = g_array_index (log->samples, gfloat,
            c->at + i * channels + ch);
        const gfloat want = t >= silent_from && t < silent_to ? 0.0f :
            voice (from + t, ch);

        fail_unless (fabsf (v - want) < 2e-5, "sample %" G_GUINT64_FORMAT
            " channel %d: %g, expected %g", t, ch, v, want);
      }
    done += c->n;
    log->next++;
  }
}

static guint64
log_frames_left (Log * log)
{
  guint64 n = 0;

  for (guint i = log->next; i < log->chunks->len; i++)
    n += g_array_index (log->chunks, Chunk, i).n;
  return n;
}

/* NaN and infinities become silence, samples beyond +-8 are clipped to it
 * (ge-speech.h), at strength 0 exactly so; at strength 1 the output is
 * finite and bounded.  Every sample comes out once. */
GST_START_TEST (test_gansynth_nonfinite)
{
  const gint rate = 16000, n = 3200;
  const gfloat specials[] = { NAN, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX,
    1e30f, 9.0f, -100.0f, FLT_MIN / 4, -FLT_MIN / 1024
  };

  for (gint s = 0; s <= 1; s++) {
    GstHarness *h = gansynth (s, rate, 1);
    Log *log = log_output (h);
    GstBuffer *b = audio (rate, 1, 0, n, 0);
    GstMapInfo m;

    gst_buffer_map (b, &m, GST_MAP_WRITE);
    for (gint i = 0; i < n; i += 7)
      ((gfloat *) m.data)[i] = specials[(i / 7) % G_N_ELEMENTS (specials)];
    gst_buffer_unmap (b, &m);
    fail_unless_equals_int (gst_harness_push (h, gst_buffer_copy (b)),
        GST_FLOW_OK);
    fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
    fail_unless_equals_int (log->samples->len, n);
    gst_buffer_map (b, &m, GST_MAP_READ);
    for (gint i = 0; i < n; i++) {
      gfloat v = g_array_index (log->samples, gfloat, i);
      gfloat x = ((gfloat *) m.data)[i];
      gfloat want = isfinite (x) ? CLAMP (x, -8.0f, 8.0f) : 0.0f;

      fail_unless (isfinite (v) && fabsf (v) <= 16.0f, "sample %d: %g", i, v);
      if (s == 0)
        fail_unless (fabsf (v - want) < 1e-4f * MAX (1.0f, fabsf (want)),
            "sample %d: %g in, %g out, expected %g", i, x, v, want);
    }
    gst_buffer_unmap (b, &m);
    gst_buffer_unref (b);
    gst_harness_teardown (h);
    log_free (log);
  }
}

GST_END_TEST;

/* Seconds to clean 4 s of 48 kHz noise of @amplitude (times FLT_MIN / 2,
 * all denormal, when @denormal). */
static gdouble
time_run (gfloat amplitude, gboolean denormal)
{
  const gint rate = 48000, n = 4 * rate;
  GstHarness *h = gansynth (1.0, rate, 1);
  Log *log = log_output (h);
  GstBuffer *b = gst_buffer_new_allocate (NULL, n * 4, NULL);
  GstMapInfo m;
  gint64 t0;
  guint32 r = 12345;

  gst_buffer_map (b, &m, GST_MAP_WRITE);
  for (gint i = 0; i < n; i++) {
    gfloat v;

    r = r * 1664525u + 1013904223u;
    v = amplitude * ((gfloat) (r >> 8) / (1 << 24) - 0.5f);
    ((gfloat *) m.data)[i] = denormal ? v * (FLT_MIN / 2) : v;
  }
  gst_buffer_unmap (b, &m);
  t0 = g_get_monotonic_time ();
  fail_unless_equals_int (gst_harness_push (h, b), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  t0 = g_get_monotonic_time () - t0;
  fail_unless_equals_int (log->samples->len, n);
  for (guint i = 0; i < log->samples->len; i++)
    fail_unless (isfinite (g_array_index (log->samples, gfloat, i)));
  gst_harness_teardown (h);
  log_free (log);
  return t0 / 1e6;
}

/* Denormal input (and the near-silence it decays into) costs about what
 * normal input costs, not the many times more of microcode assists. */
GST_START_TEST (test_gansynth_denormals)
{
  gdouble normal = time_run (1e-3f, FALSE);
  gdouble denormal = time_run (1.0f, TRUE);
  gdouble normal2 = time_run (1e-3f, FALSE);

  normal = MIN (normal, normal2);
  g_print ("gansynth, 4 s at 48 kHz: normal input %.3f s, denormal input "
      "%.3f s (%.2fx)\n", normal, denormal, denormal / normal);
  fail_unless (denormal < 3.0 * normal + 0.05, "denormals: %.3f s vs %.3f s",
      denormal, normal);
}

GST_END_TEST;

static GstClockTime
at16k (guint64 sample)
{
  return gst_util_uint64_scale_int (sample, GST_SECOND, 16000);
}

/* GAP buffers hold "media neutral data" that elements may ignore: their
 * bytes, whatever they are, count as silence (junk in them never comes
 * out), and every sample comes out once, on time.  An empty GAP buffer
 * followed by a timestamp jump, and a GAP event, end the run: what is held
 * comes out first (before the GAP event), at its own timestamps. */
GST_START_TEST (test_gansynth_gaps)
{
  const gint rate = 16000;
  GstHarness *h = gansynth (0.0, rate, 1);
  Log *log = log_output (h);
  GstBuffer *gap = audio (rate, 1, 1000, 800, at16k (1000)), *empty;

  gst_buffer_memset (gap, 0, 0x7f, gst_buffer_get_size (gap));
  GST_BUFFER_FLAG_SET (gap, GST_BUFFER_FLAG_GAP);
  fail_unless_equals_int (gst_harness_push (h, audio (rate, 1, 0, 1000, 0)),
      GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, gap), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, audio (rate, 1, 1800, 1000,
              at16k (1800))), GST_FLOW_OK);
  empty = gst_buffer_new ();
  GST_BUFFER_PTS (empty) = at16k (2800);
  GST_BUFFER_DURATION (empty) = 50 * GST_MSECOND;
  GST_BUFFER_FLAG_SET (empty, GST_BUFFER_FLAG_GAP);
  fail_unless_equals_int (gst_harness_push (h, empty), GST_FLOW_OK);
  fail_unless_equals_int (gst_harness_push (h, audio (rate, 1, 3600, 800,
              at16k (3600))), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_gap (at16k (4400),
              100 * GST_MSECOND)));
  fail_unless_equals_int (gst_harness_push (h, audio (rate, 1, 6000, 500,
              at16k (6000))), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));

  check_run (log, rate, 1, 0, 0, 2800, 1000, 1800);
  check_run (log, rate, 1, at16k (3600), 3600, 800, 0, 0);
  check_run (log, rate, 1, at16k (6000), 6000, 500, 0, 0);
  fail_unless_equals_uint64 (log_frames_left (log), 0);
  fail_unless_equals_int (log->gaps->len, 1);
  fail_unless_equals_uint64 (g_array_index (log->gaps, guint64, 0),
      2800 + 800);
  gst_harness_teardown (h);
  log_free (log);
}

GST_END_TEST;

/* A DISCONT flag on contiguous timestamps, and timestamps going back: each
 * run is drained at its own timestamps, nothing lost or doubled. */
GST_START_TEST (test_gansynth_discont)
{
  const gint rate = 16000;
  GstHarness *h = gansynth (0.0, rate, 2);
  Log *log = log_output (h);
  GstBuffer *b;

  fail_unless_equals_int (gst_harness_push (h, audio (rate, 2, 0, 1234, 0)),
      GST_FLOW_OK);
  b = audio (rate, 2, 5000, 1000, at16k (1234));
  GST_BUFFER_FLAG_SET (b, GST_BUFFER_FLAG_DISCONT);
  fail_unless_equals_int (gst_harness_push (h, b), GST_FLOW_OK);
  /* back to 0 */
  fail_unless_equals_int (gst_harness_push (h, audio (rate, 2, 9000, 700,
              0)), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  check_run (log, rate, 2, 0, 0, 1234, 0, 0);
  check_run (log, rate, 2, at16k (1234), 5000, 1000, 0, 0);
  check_run (log, rate, 2, 0, 9000, 700, 0, 0);
  fail_unless_equals_uint64 (log_frames_left (log), 0);
  gst_harness_teardown (h);
  log_free (log);
}

GST_END_TEST;

/* The rate and the channels change mid-stream (48 kHz mono, 16 kHz
 * stereo, 48 kHz mono): what was held at the old caps comes out at the old
 * caps, before the new ones, every sample once.  A rate the model cannot
 * do is refused by the pad's caps, not negotiated (a pipeline's source
 * posts the error; test-gansynth). */
GST_START_TEST (test_gansynth_caps_change)
{
  GstHarness *h = gansynth (0.0, 48000, 1);
  GstBus *bus = watch (h);
  Log *log = log_output (h);

  fail_unless_equals_int (gst_harness_push (h, audio (48000, 1, 0, 4801, 0)),
      GST_FLOW_OK);
  set_audio_caps (h, 16000, 2);
  fail_unless_equals_int (gst_harness_push (h, audio (16000, 2, 100, 1601,
              GST_SECOND / 10)), GST_FLOW_OK);
  set_audio_caps (h, 48000, 1);
  fail_unless_equals_int (gst_harness_push (h, audio (48000, 1, 200, 999,
              GST_SECOND / 5)), GST_FLOW_OK);
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  check_run (log, 48000, 1, 0, 0, 4801, 0, 0);
  check_run (log, 16000, 2, GST_SECOND / 10, 100, 1601, 0, 0);
  check_run (log, 48000, 1, GST_SECOND / 5, 200, 999, 0, 0);
  fail_unless_equals_uint64 (log_frames_left (log), 0);
  expect_no_error (bus);
  unwatch (h, bus);
  gst_harness_teardown (h);
  log_free (log);

  /* 44.1 kHz mid-stream */
  h = gansynth (0.0, 48000, 1);
  bus = watch (h);
  fail_unless_equals_int (gst_harness_push (h, audio (48000, 1, 0, 4801, 0)),
      GST_FLOW_OK);
  gst_harness_set_src_caps_str (h, "audio/x-raw,format=F32LE,"
      "layout=interleaved,rate=44100,channels=1");
  fail_unless_equals_int (gst_harness_push (h, audio (44100, 1, 0, 441, 0)),
      GST_FLOW_NOT_NEGOTIATED);
  unwatch (h, bus);
  gst_harness_teardown (h);
}

GST_END_TEST;

static Suite *
upstream_suite (void)
{
  Suite *s = suite_create ("upstream");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_vae_buffer_sizes);
  tcase_add_test (tc, test_vae_nonfinite);
  tcase_add_test (tc, test_vae_lying_caps);
  tcase_add_test (tc, test_vae_renegotiate);
  tcase_add_test (tc, test_vae_gdp_stream);
  tcase_add_test (tc, test_sr_renegotiate);
  tcase_add_test (tc, test_inpaint_renegotiate);
  tcase_add_test (tc, test_zero_size);
  tcase_add_test (tc, test_sr_strides);
  tcase_add_test (tc, test_inpaint_strides);
  tcase_add_test (tc, test_other_video_elements);
  tcase_add_test (tc, test_gansynth_nonfinite);
  tcase_add_test (tc, test_gansynth_denormals);
  tcase_add_test (tc, test_gansynth_gaps);
  tcase_add_test (tc, test_gansynth_discont);
  tcase_add_test (tc, test_gansynth_caps_change);
  return s;
}

GST_CHECK_MAIN (upstream);
