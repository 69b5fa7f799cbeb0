/* test-vae: vaeencode and vaedecode through GstHarness and real pipelines:
 * caps both ways, a round trip against the PyTorch golden, padding and
 * cropping of odd sizes, strides, determinism of sample mode, the latent
 * meta's tags (dropped by videoscale, kept by identity), mismatched latent
 * caps, bad latent buffers, every start error, and a real file.
 *
 * The models are the tiny random-weight ones of make_test_models.py
 * (GE_TEST_MODELS): vae.safetensors (factor 4, 4 channels), vae-f2 (factor
 * 2) and vae-c3 (3 channels); meson points GST_GENERATIVE_MODEL_DIR there.
 */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <math.h>
#include <string.h>

#include "elementcheck.h"
#include "ge-safetensors.h"
#include "gstlatentmeta.h"

static gchar *
model (const gchar * name)
{
  return test_path ("GE_TEST_MODELS", name);
}

/* The golden of tests/golden/make_vae_golden.py: a 45x30 RGB crop, its
 * mean latent (12x8x4) and the decoded mean (45x30 RGB). */
typedef struct
{
  GeSafetensors *st;
  const guint8 *image, *out;
  gfloat *mean;                 /* an aligned copy: tensors sit at any offset */
} Golden;

static void
golden_load (Golden * g)
{
  gchar *p = test_path ("GE_TEST_GOLDEN", "vae.safetensors");

  g->st = ge_safetensors_open (p, NULL);
  fail_unless (g->st != NULL, "%s", p);
  g->image = ge_safetensors_find (g->st, "image")->data;
  g->out = ge_safetensors_find (g->st, "out")->data;
  {
    const GeStTensor *m = ge_safetensors_find (g->st, "mean");

    g->mean = g_memdup2 (m->data, m->n_bytes);
  }
  g_free (p);
}

#define GW 45
#define GH 30
#define LW 12
#define LH 8
#define LC 4
#define LATENT_BYTES (LW * LH * LC * 4)

/* The golden image as a frame of @format (RGB, BGRx ...), rows padded to
 * the video info's strides. */
static GstBuffer *
golden_frame (const Golden * g, GstVideoFormat format)
{
  GstVideoInfo info;
  GstVideoFrame f;
  GstBuffer *b;

  gst_video_info_set_format (&info, format, GW, GH);
  b = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  gst_buffer_memset (b, 0, 0x55, GST_VIDEO_INFO_SIZE (&info));
  fail_unless (gst_video_frame_map (&f, &info, b, GST_MAP_WRITE));
  for (gint y = 0; y < GH; y++)
    for (gint x = 0; x < GW; x++)
      for (gint c = 0; c < 3; c++)
        ((guint8 *) GST_VIDEO_FRAME_COMP_DATA (&f, c))[y *
            GST_VIDEO_FRAME_COMP_STRIDE (&f, c) +
            x * GST_VIDEO_FRAME_COMP_PSTRIDE (&f, c)] =
            g->image[(y * GW + x) * 3 + c];
  gst_video_frame_unmap (&f);
  GST_BUFFER_PTS (b) = 0;
  GST_BUFFER_DURATION (b) = GST_SECOND / 30;
  return b;
}

static gchar *
video_caps (const gchar * format, gint w, gint h)
{
  return g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,"
      "framerate=30/1", format, w, h);
}

static GstHarness *
harness (const gchar * element, const gchar * file, const gchar * extra)
{
  gchar *path = model (file);
  gchar *launch = g_strdup_printf ("%s model-file=\"%s\" %s", element, path,
      extra ? extra : "");
  GstHarness *h = gst_harness_new_parse (launch);

  g_free (launch);
  g_free (path);
  return h;
}

static gdouble
max_rel_diff (const gfloat * a, const gfloat * ref, gsize n)
{
  gdouble d = 0, m = 0;

  for (gsize i = 0; i < n; i++) {
    d = MAX (d, fabs ((gdouble) a[i] - ref[i]));
    m = MAX (m, fabs ((gdouble) ref[i]));
  }
  return d / m;
}

/* Encodes the golden frame in @format; returns the latent buffer and
 * checks the caps vaeencode set. */
static GstBuffer *
encode_golden (const Golden * g, const gchar * format, const gchar * extra)
{
  GstHarness *h = harness ("vaeencode", "vae.safetensors", extra);
  gchar *caps = video_caps (format, GW, GH);
  GstBuffer *out;
  GstCaps *oc;
  GstStructure *s;
  gint v;

  gst_harness_set_src_caps_str (h, caps);
  fail_unless_equals_int (gst_harness_push (h, golden_frame (g,
              gst_video_format_from_string (format))), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  fail_unless_equals_int (gst_buffer_get_size (out), LATENT_BYTES);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 0);
  oc = gst_pad_get_current_caps (h->sinkpad);
  s = gst_caps_get_structure (oc, 0);
  fail_unless (gst_structure_has_name (s, "other/tensors"));
  fail_unless_equals_string (gst_structure_get_string (s, "dimensions"),
      "12:8:4:1");
  fail_unless_equals_string (gst_structure_get_string (s, "types"),
      "float32");
  fail_unless (gst_structure_get_int (s, "video-width", &v) && v == GW);
  fail_unless (gst_structure_get_int (s, "video-height", &v) && v == GH);
  fail_unless (gst_structure_get_int (s, "downsample-factor", &v) && v == 4);
  gst_caps_unref (oc);
  g_free (caps);
  gst_harness_teardown (h);
  return out;
}

/* The golden image through vaeencode gives the golden mean latent (in any
 * packed RGB layout, strides padded), and that through vaedecode gives the
 * golden pixels, cropped back to 45x30. */
GST_START_TEST (test_round_trip_golden)
{
  const gchar *formats[] = { "RGB", "BGRx", "RGBA" };
  Golden g;

  golden_load (&g);
  for (guint i = 0; i < G_N_ELEMENTS (formats); i++) {
    GstBuffer *lat = encode_golden (&g, formats[i], NULL);
    GstMapInfo map;
    GstHarness *h = harness ("vaedecode", "vae.safetensors", NULL);
    GstBuffer *frame;
    GstVideoFrame f;
    GstVideoInfo info;
    gint maxd = 0;

    fail_unless (gst_buffer_map (lat, &map, GST_MAP_READ));
    fail_unless (max_rel_diff ((const gfloat *) map.data, g.mean,
            LW * LH * LC) < 1e-4);
    gst_buffer_unmap (lat, &map);

    gst_harness_set_src_caps_str (h, "other/tensors,format=static,"
        "num_tensors=1,types=float32,dimensions=12:8:4:1,framerate=30/1,"
        "video-width=45,video-height=30,downsample-factor=4");
    gst_harness_set_sink_caps_str (h, "video/x-raw,format=BGR");
    fail_unless_equals_int (gst_harness_push (h, lat), GST_FLOW_OK);
    frame = gst_harness_pull (h);
    gst_video_info_set_format (&info, GST_VIDEO_FORMAT_BGR, GW, GH);
    fail_unless (gst_video_frame_map (&f, &info, frame, GST_MAP_READ));
    for (gint y = 0; y < GH; y++)
      for (gint x = 0; x < GW; x++)
        for (gint c = 0; c < 3; c++) {
          const guint8 *p = GST_VIDEO_FRAME_COMP_DATA (&f, c);
          gint d = p[y * GST_VIDEO_FRAME_COMP_STRIDE (&f, c) +
              x * GST_VIDEO_FRAME_COMP_PSTRIDE (&f, c)] -
              g.out[(y * GW + x) * 3 + c];
          maxd = MAX (maxd, ABS (d));
        }
    gst_video_frame_unmap (&f);
    fail_unless (maxd <= 1, "%s: decoded pixels %d levels off", formats[i],
        maxd);
    gst_buffer_unref (frame);
    gst_harness_teardown (h);
  }
  g_free (g.mean);
  ge_safetensors_free (g.st);
}

GST_END_TEST;

/* Caps both ways: upstream queries of either element map sizes back
 * through the factor, and a decoder with no size fields makes the padded
 * size. */
GST_START_TEST (test_caps_both_ways)
{
  GstHarness *h = harness ("vaeencode", "vae.safetensors", NULL);
  GstCaps *res;
  GstStructure *s;
  gint w, h2;

  /* Downstream wants latents of a 45x30 frame: upstream must offer 45x30
   * video. */
  gst_harness_play (h);
  gst_harness_set_sink_caps_str (h, "other/tensors,format=static,"
      "num_tensors=1,types=float32,dimensions=12:8:4:1,video-width=45,"
      "video-height=30,framerate=30/1");
  res = gst_pad_peer_query_caps (h->srcpad, NULL);
  fail_if (gst_caps_is_empty (res));
  s = gst_caps_get_structure (res, 0);
  fail_unless (gst_structure_has_name (s, "video/x-raw"));
  fail_unless (gst_structure_get_int (s, "width", &w)
      && gst_structure_get_int (s, "height", &h2));
  fail_unless_equals_int (w, 45);
  fail_unless_equals_int (h2, 30);
  gst_caps_unref (res);
  gst_harness_teardown (h);

  h = harness ("vaedecode", "vae.safetensors", NULL);
  gst_harness_play (h);
  /* Downstream wants 45x30 BGRx: upstream must offer 12x8 latents. */
  gst_harness_set_sink_caps_str (h, "video/x-raw,format=BGRx,width=45,"
      "height=30,framerate=30/1");
  res = gst_pad_peer_query_caps (h->srcpad, NULL);
  fail_if (gst_caps_is_empty (res));
  s = gst_caps_get_structure (res, 0);
  fail_unless (gst_structure_has_name (s, "other/tensors"));
  fail_unless_equals_string (gst_structure_get_string (s, "dimensions"),
      "12:8:4:1");
  gst_caps_unref (res);
  gst_harness_teardown (h);

  /* No video-width: the padded size, 12x8 latents -> 48x32. */
  h = harness ("vaedecode", "vae.safetensors", NULL);
  gst_harness_set_src_caps_str (h, "other/tensors,format=static,"
      "num_tensors=1,types=float32,dimensions=12:8:4,framerate=30/1");
  fail_unless_equals_int (gst_harness_push (h,
          gst_buffer_new_allocate (NULL, LATENT_BYTES, NULL)), GST_FLOW_OK);
  gst_buffer_unref (gst_harness_pull (h));
  res = gst_pad_get_current_caps (h->sinkpad);
  s = gst_caps_get_structure (res, 0);
  fail_unless (gst_structure_get_int (s, "width", &w)
      && gst_structure_get_int (s, "height", &h2));
  fail_unless_equals_int (w, 48);
  fail_unless_equals_int (h2, 32);
  gst_caps_unref (res);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Frames of any size: a 1x1 and a 13x7 frame encode to 1x1 and 4x2
 * latents and decode back to their own size. */
GST_START_TEST (test_odd_sizes)
{
  const gint sizes[][2] = { {1, 1}, {13, 7}, {4, 4} };

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++) {
    gint w = sizes[i][0], hh = sizes[i][1];
    gchar *launch = g_strdup_printf ("vaeencode model-file=\"%s\" ! "
        "vaedecode model-file=\"%s\"", model ("vae.safetensors"),
        model ("vae.safetensors"));
    GstHarness *h = gst_harness_new_parse (launch);
    gchar *caps = video_caps ("RGB", w, hh);
    GstVideoInfo info;
    GstBuffer *in, *out;
    GstStructure *s;
    GstCaps *oc;
    gint ow, oh;

    gst_harness_set_src_caps_str (h, caps);
    gst_video_info_set_format (&info, GST_VIDEO_FORMAT_RGB, w, hh);
    in = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
    gst_buffer_memset (in, 0, 0x80, GST_VIDEO_INFO_SIZE (&info));
    fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
    out = gst_harness_pull (h);
    fail_unless_equals_int (gst_buffer_get_size (out),
        GST_VIDEO_INFO_SIZE (&info));
    oc = gst_pad_get_current_caps (h->sinkpad);
    s = gst_caps_get_structure (oc, 0);
    fail_unless (gst_structure_get_int (s, "width", &ow)
        && gst_structure_get_int (s, "height", &oh));
    fail_unless_equals_int (ow, w);
    fail_unless_equals_int (oh, hh);
    gst_caps_unref (oc);
    gst_buffer_unref (out);
    gst_harness_teardown (h);
    g_free (caps);
    g_free (launch);
  }
}

GST_END_TEST;

/* sample-mode=sample: the same seed gives the same bytes, another seed
 * others; mean mode does not depend on the seed. */
GST_START_TEST (test_determinism)
{
  Golden g;
  GstBuffer *a, *b, *c, *m1, *m2;

  golden_load (&g);
  a = encode_golden (&g, "RGB", "sample-mode=sample seed=5");
  b = encode_golden (&g, "RGB", "sample-mode=sample seed=5");
  c = encode_golden (&g, "RGB", "sample-mode=sample seed=6");
  m1 = encode_golden (&g, "RGB", "seed=5");
  m2 = encode_golden (&g, "RGB", "seed=6");
  {
    GstMapInfo ma, mb, mc, mm1, mm2;

    gst_buffer_map (a, &ma, GST_MAP_READ);
    gst_buffer_map (b, &mb, GST_MAP_READ);
    gst_buffer_map (c, &mc, GST_MAP_READ);
    gst_buffer_map (m1, &mm1, GST_MAP_READ);
    gst_buffer_map (m2, &mm2, GST_MAP_READ);
    fail_unless (memcmp (ma.data, mb.data, LATENT_BYTES) == 0);
    fail_unless (memcmp (ma.data, mc.data, LATENT_BYTES) != 0);
    fail_unless (memcmp (ma.data, mm1.data, LATENT_BYTES) != 0);
    fail_unless (memcmp (mm1.data, mm2.data, LATENT_BYTES) == 0);
    gst_buffer_unmap (a, &ma);
    gst_buffer_unmap (b, &mb);
    gst_buffer_unmap (c, &mc);
    gst_buffer_unmap (m1, &mm1);
    gst_buffer_unmap (m2, &mm2);
  }
  gst_buffer_unref (a);
  gst_buffer_unref (b);
  gst_buffer_unref (c);
  gst_buffer_unref (m1);
  gst_buffer_unref (m2);
  g_free (g.mean);
  ge_safetensors_free (g.st);
}

GST_END_TEST;

/* output-mode=attach: the frame passes with its pixels and a latent meta
 * equal to the latent stream's; identity keeps the meta, videoscale to
 * another size drops it. */
static GstBuffer *
attach_through (const Golden * g, const gchar * after)
{
  gchar *launch = g_strdup_printf ("vaeencode model-file=\"%s\" "
      "output-mode=attach ! %s", model ("vae.safetensors"), after);
  GstHarness *h = gst_harness_new_parse (launch);
  gchar *caps = video_caps ("RGB", GW, GH);
  GstBuffer *out;

  gst_harness_set_src_caps_str (h, caps);
  fail_unless_equals_int (gst_harness_push (h, golden_frame (g,
              GST_VIDEO_FORMAT_RGB)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  gst_harness_teardown (h);
  g_free (caps);
  g_free (launch);
  return out;
}

GST_START_TEST (test_attach_meta_tags)
{
  Golden g;
  GstBuffer *b;
  GstLatentMeta *m;

  golden_load (&g);
  b = attach_through (&g, "identity");
  m = gst_buffer_get_latent_meta (b);
  fail_unless (m != NULL, "identity dropped the latent");
  fail_unless_equals_int (m->width, LW);
  fail_unless_equals_int (m->height, LH);
  fail_unless_equals_int (m->channels, LC);
  fail_unless_equals_int (m->factor, 4);
  fail_unless (m->scaling_factor == 0.5);
  fail_unless (max_rel_diff (m->data, g.mean, LW * LH * LC) < 1e-4);
  {
    GstBuffer *ref = golden_frame (&g, GST_VIDEO_FORMAT_RGB);

    fail_unless_equals_int (gst_buffer_get_size (b),
        gst_buffer_get_size (ref));
    {
      GstMapInfo mr;

      gst_buffer_map (ref, &mr, GST_MAP_READ);
      fail_unless (gst_buffer_memcmp (b, 0, mr.data, mr.size) == 0,
          "attach changed the pixels");
      gst_buffer_unmap (ref, &mr);
    }
    gst_buffer_unref (ref);
  }
  gst_buffer_unref (b);

  b = attach_through (&g,
      "videoscale ! capsfilter caps=video/x-raw,width=90,height=60");
  fail_unless (gst_buffer_get_latent_meta (b) == NULL,
      "videoscale kept a latent of other pixels");
  gst_buffer_unref (b);
  g_free (g.mean);
  ge_safetensors_free (g.st);
}

GST_END_TEST;

/* Latents from a model of another factor or channel count: a negotiation
 * error that names the model, no frame out. */
static void
expect_bus_error (GstHarness * h, GQuark domain, gint code,
    const gchar * needle)
{
  GstBus *bus = GST_ELEMENT_BUS (h->element);
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  GError *err = NULL;

  fail_unless (msg != NULL, "no ERROR message");
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (err->domain == domain, "domain %s",
      g_quark_to_string (err->domain));
  fail_unless_equals_int (err->code, code);
  fail_unless (strstr (err->message, needle) != NULL, "\"%s\" lacks %s",
      err->message, needle);
  g_clear_error (&err);
  gst_message_unref (msg);
}

static GstHarness *
decoder_with_bus (const gchar * file)
{
  GstHarness *h = harness ("vaedecode", file, NULL);
  GstBus *bus = gst_bus_new ();

  gst_element_set_bus (h->element, bus);
  gst_object_unref (bus);
  return h;
}

GST_START_TEST (test_mismatched_latents)
{
  const gchar *files[] = { "vae-f2.safetensors", "vae-c3.safetensors" };

  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    GstHarness *h = decoder_with_bus (files[i]);

    gst_harness_set_src_caps_str (h, "other/tensors,format=static,"
        "num_tensors=1,types=float32,dimensions=12:8:4:1,framerate=30/1,"
        "video-width=45,video-height=30,downsample-factor=4");
    fail_unless_equals_int (gst_harness_push (h,
            gst_buffer_new_allocate (NULL, LATENT_BYTES, NULL)),
        GST_FLOW_NOT_NEGOTIATED);
    fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
    expect_bus_error (h, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        files[i]);
    gst_element_set_bus (h->element, NULL);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* A latent buffer cut short (EOS mid-frame upstream) and one holding a NaN
 * are stream errors, not pictures. */
GST_START_TEST (test_bad_latent_buffers)
{
  GstHarness *h = decoder_with_bus ("vae.safetensors");
  GstBuffer *nan = gst_buffer_new_allocate (NULL, LATENT_BYTES, NULL);
  gfloat v = NAN;

  gst_harness_set_src_caps_str (h, "other/tensors,format=static,"
      "num_tensors=1,types=float32,dimensions=12:8:4:1,framerate=30/1,"
      "video-width=45,video-height=30");
  fail_unless_equals_int (gst_harness_push (h,
          gst_buffer_new_allocate (NULL, LATENT_BYTES - 4, NULL)),
      GST_FLOW_ERROR);
  expect_bus_error (h, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, "bytes");
  gst_buffer_memset (nan, 0, 0, LATENT_BYTES);
  gst_buffer_fill (nan, 100, &v, sizeof (v));
  fail_unless_equals_int (gst_harness_push (h, nan), GST_FLOW_ERROR);
  expect_bus_error (h, GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE,
      "vae.safetensors");
  fail_unless_equals_int (gst_harness_buffers_in_queue (h), 0);
  gst_element_set_bus (h->element, NULL);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Start errors of both elements: each fails the state change with one
 * ERROR naming the file (elementcheck.h). */
GST_START_TEST (test_start_errors)
{
  const gchar *factories[] = { "vaeencode", "vaedecode" };

  for (guint i = 0; i < G_N_ELEMENTS (factories); i++) {
    expect_start_error (factories[i], "no-such.safetensors",
        GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND);
    expect_start_error (factories[i], "truncated.safetensors",
        GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE);
    expect_start_error (factories[i], "not-a-model.safetensors",
        GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE);
    expect_start_error (factories[i], "diffusionsr-x2.safetensors",
        GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE);
  }
}

GST_END_TEST;

/* With no properties the installed model loads (here the test model), and
 * downsample-factor tells its factor once PAUSED. */
GST_START_TEST (test_no_properties)
{
  GstElement *e = gst_element_factory_make ("vaeencode", NULL);
  gint f = -1;

  g_object_get (e, "downsample-factor", &f, NULL);
  fail_unless_equals_int (f, 0);
  fail_unless (gst_element_set_state (e, GST_STATE_PAUSED) !=
      GST_STATE_CHANGE_FAILURE);
  g_object_get (e, "downsample-factor", &f, NULL);
  fail_unless_equals_int (f, 4);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_object_unref (e);
}

GST_END_TEST;

/* After a frame its processing time is the latency (a LATENCY message, the
 * query), and stats counts it. */
GST_START_TEST (test_latency_stats)
{
  Golden g;
  GstHarness *h = harness ("vaeencode", "vae.safetensors", NULL);
  GstBus *bus = gst_bus_new ();
  GstElement *e = gst_harness_find_element (h, "vaeencode");
  GstMessage *msg;
  gchar *caps = video_caps ("RGB", GW, GH), *stats = NULL;

  golden_load (&g);
  gst_element_set_bus (h->element, bus);
  gst_harness_set_src_caps_str (h, caps);
  fail_unless_equals_int (gst_harness_push (h, golden_frame (&g,
              GST_VIDEO_FORMAT_RGB)), GST_FLOW_OK);
  gst_buffer_unref (gst_harness_pull (h));
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_LATENCY);
  fail_unless (msg != NULL, "no LATENCY message");
  gst_message_unref (msg);
  fail_unless (gst_harness_query_latency (h) > 0);
  g_object_get (e, "stats", &stats, NULL);
  fail_unless (strstr (stats, "frames=(guint64)1") != NULL, "%s", stats);
  g_free (stats);
  g_free (caps);
  gst_object_unref (e);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  g_free (g.mean);
  ge_safetensors_free (g.st);
}

GST_END_TEST;

/* A diffusers AutoencoderKL folder (config.json + weights, as converted
 * checkpoints come) decodes in vaedecode as diffusers itself did: the
 * fixture's decode_z.sample, made by the real library, to 8 bits. */
GST_START_TEST (test_diffusers_checkpoint)
{
  gchar *dir = test_path ("GE_TEST_FIXTURES", "vae_kl_small");
  gchar *io = g_build_filename (dir, "io.safetensors", NULL);
  GeSafetensors *st = ge_safetensors_open (io, NULL);
  const GeStTensor *z, *ref;
  GstHarness *h;
  GstBuffer *out;
  GstMapInfo map;
  gchar *launch;
  gint maxd = 0, lw, lh, lc, w, hh;
  gfloat *refv;

  fail_unless (st != NULL, "%s", io);
  z = ge_safetensors_find (st, "input.z");
  ref = ge_safetensors_find (st, "decode_z.sample");
  fail_unless (z && ref && z->dtype == GE_DTYPE_F32);
  refv = g_memdup2 (ref->data, ref->n_bytes);
  lc = (gint) z->shape[1];
  lh = (gint) z->shape[2];
  lw = (gint) z->shape[3];
  hh = (gint) ref->shape[2];
  w = (gint) ref->shape[3];
  launch = g_strdup_printf ("vaedecode model-file=\"%s\"", dir);
  h = gst_harness_new_parse (launch);
  {
    gchar *caps = g_strdup_printf ("other/tensors,format=static,"
        "num_tensors=1,types=float32,dimensions=%d:%d:%d:1,framerate=1/1",
        lw, lh, lc);

    gst_harness_set_src_caps_str (h, caps);
    g_free (caps);
  }
  gst_harness_set_sink_caps_str (h, "video/x-raw,format=RGB");
  /* batch element 0 of input.z */
  fail_unless_equals_int (gst_harness_push (h,
          gst_buffer_new_memdup (z->data, (gsize) lc * lh * lw * 4)),
      GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (gst_buffer_map (out, &map, GST_MAP_READ));
  for (gint y = 0; y < hh; y++)
    for (gint x = 0; x < w; x++)
      for (gint c = 0; c < 3; c++) {
        gfloat v = refv[((gsize) c * hh + y) * w + x];
        gfloat f = (v + 1.0f) * 127.5f + 0.5f;
        gint e = f <= 0 ? 0 : f >= 255 ? 255 : (gint) f;
        gint stride = GST_ROUND_UP_4 (w * 3);

        maxd = MAX (maxd, ABS (map.data[y * stride + x * 3 + c] - e));
      }
  gst_buffer_unmap (out, &map);
  fail_unless (maxd <= 1, "%d levels off diffusers' decode", maxd);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  g_free (refv);
  ge_safetensors_free (st);
  g_free (launch);
  g_free (io);
  g_free (dir);
}

GST_END_TEST;

/* A real clip: decoded, encoded to latents, decoded back and counted. */
GST_START_TEST (test_pipeline_file)
{
  gchar *clip = test_path ("GE_TEST_SAMPLES", "building.webm");
  gchar *mdl = model ("vae.safetensors");
  gchar *launch = g_strdup_printf ("filesrc location=\"%s\" ! decodebin ! "
      "videoconvert ! videoscale ! video/x-raw,width=98,height=54 ! "
      "vaeencode model-file=\"%s\" ! vaedecode model-file=\"%s\" ! "
      "videoconvert ! video/x-raw,format=I420 ! fakesink name=sink "
      "signal-handoffs=false", clip, mdl, mdl);
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch (launch, &err), *sink;
  GstSample *last = NULL;

  fail_unless (pipe != NULL, "%s", err ? err->message : "?");
  sink = gst_bin_get_by_name (GST_BIN (pipe), "sink");
  g_object_set (sink, "enable-last-sample", TRUE, NULL);
  run_to_eos (pipe);
  g_object_get (sink, "last-sample", &last, NULL);
  fail_unless (last != NULL);
  {
    GstStructure *s = gst_caps_get_structure (gst_sample_get_caps (last), 0);
    gint w, h;

    fail_unless (gst_structure_get_int (s, "width", &w)
        && gst_structure_get_int (s, "height", &h));
    fail_unless_equals_int (w, 98);
    fail_unless_equals_int (h, 54);
  }
  gst_sample_unref (last);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  g_free (launch);
  g_free (mdl);
  g_free (clip);
}

GST_END_TEST;

static Suite *
vae_suite (void)
{
  Suite *s = suite_create ("vae");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_round_trip_golden);
  tcase_add_test (tc, test_caps_both_ways);
  tcase_add_test (tc, test_odd_sizes);
  tcase_add_test (tc, test_determinism);
  tcase_add_test (tc, test_attach_meta_tags);
  tcase_add_test (tc, test_mismatched_latents);
  tcase_add_test (tc, test_bad_latent_buffers);
  tcase_add_test (tc, test_start_errors);
  tcase_add_test (tc, test_no_properties);
  tcase_add_test (tc, test_latency_stats);
  tcase_add_test (tc, test_diffusers_checkpoint);
  tcase_add_test (tc, test_pipeline_file);
  return s;
}

GST_CHECK_MAIN (vae);
