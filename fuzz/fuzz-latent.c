/* fuzz-latent.c: libFuzzer target for the latent stream's caps
 * (plugins/gstlatentcaps.c, what vaeencode and vaedecode negotiate with)
 * and the latent meta (plugins/gstlatentmeta.c).
 *
 * The first byte picks the model (downsampling factor and latent
 * channels, or none loaded yet); the rest, up to a NUL, is a caps string,
 * read by gst_caps_from_string() as caps events and queries carry them.
 * Then, as negotiation would:
 *   - latent -> video caps and video -> latent caps: each structure of the
 *     result a subset of the element's template;
 *   - fixed latent caps against the frame size they decode to: a latent
 *     that passes is ceil (frame / factor) of the model's channels, and
 *     round-trips through video -> latent caps;
 *   - a buffer with a meta of that latent (small ones only): a copy keeps
 *     it, values and all; a region copy or a scale drops it; reads outside
 *     it are 0.
 * Never a crash, a leak, undefined behaviour or a critical (what GStreamer's
 * caps parser itself says or leaks about bad input is let through).
 */
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include <sanitizer/lsan_interface.h>

#include <gst/gst.h>
#include <gst/video/video.h>

#include "gstgenerativelatent.h"
#include "gstlatentcaps.h"
#include "gstlatentmeta.h"

#define CHECK(cond) do { if (!(cond)) { \
      g_printerr ("%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      abort (); } } while (0)

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t * data, size_t size);
const char *__asan_default_options (void);
const char *__lsan_default_suppressions (void);

/* GLib leaks its first quark array, made while the library loads, once
 * the quarks outgrow it (gquark.c: so that readers need no lock); with the
 * caps' field names as quarks that happens in every campaign.  The
 * suppression needs the stacks of allocations unwound in full (GLib's
 * frames have no frame pointers), which also makes every other leak
 * report show our own frames. */
const char *
__asan_default_options (void)
{
  return "fast_unwind_on_malloc=0:malloc_context_size=12";
}

const char *
__lsan_default_suppressions (void)
{
  return "leak:_dl_init\n";
}

/* factor, channels, scaling_factor; factor 0: no model loaded yet. */
static const struct
{
  gint factor, channels;
  gdouble scaling;
} models[] = {
  { 8, 4, 0.18215 },            /* Stable Diffusion's AutoencoderKL */
  { 4, 3, 1.0 },                /* a VQModel */
  { 8, 16, 1.5305 },
  { 1, 1, 1.0 },
  { 64, 65535, 2.0 },
  { 0, 0, 0.0 },
};

static GstCaps *latent_template, *video_template;

static void
abort_on_log (const gchar * domain, GLogLevelFlags level, const gchar * message,
    gpointer data)
{
  g_printerr ("%s: %s\n", domain ? domain : "", message);
  abort ();
}

/* Set while GStreamer's caps parser reads the input: its criticals and
 * warnings then are about the input (a structure named "1" ...), a
 * GStreamer matter, not ours. */
static gboolean in_parser;

static void
gst_log (const gchar * domain, GLogLevelFlags level, const gchar * message,
    gpointer data)
{
  if (!in_parser && (level & G_LOG_LEVEL_CRITICAL))
    abort_on_log (domain, level, message, data);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  g_setenv ("G_SLICE", "always-malloc", TRUE);
  /* Caps and metas only: no plugin is loaded, no registry written. */
  g_setenv ("GST_REGISTRY_DISABLE", "yes", TRUE);
  g_setenv ("GST_PLUGIN_SYSTEM_PATH_1_0", "", TRUE);
  g_setenv ("GST_PLUGIN_PATH_1_0", "", TRUE);
  g_setenv ("GST_DEBUG", "0", TRUE);
  gst_init (NULL, NULL);
  g_log_set_default_handler (abort_on_log, NULL);
  g_log_set_handler (NULL, G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING,
      abort_on_log, NULL);
  g_log_set_handler ("GLib", G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING,
      abort_on_log, NULL);
  g_log_set_handler ("GLib-GObject", G_LOG_LEVEL_CRITICAL |
      G_LOG_LEVEL_WARNING, abort_on_log, NULL);
  /* Its warnings (0.10-style caps names ...) are about the input. */
  g_log_set_handler ("GStreamer", G_LOG_LEVEL_MASK, gst_log, NULL);
  g_log_set_handler ("GstGenerative", G_LOG_LEVEL_CRITICAL |
      G_LOG_LEVEL_WARNING, abort_on_log, NULL);
  latent_template = gst_caps_from_string (GST_VAE_LATENT_CAPS
      ", framerate = (fraction) [ 0, MAX ]");
  video_template = gst_caps_from_string (GST_VAE_VIDEO_CAPS);
  CHECK (latent_template && video_template);
  return 0;
}

static void
check_subset (GstCaps * caps, GstCaps * template)
{
  for (guint i = 0; i < gst_caps_get_size (caps); i++) {
    GstCaps *one = gst_caps_copy_nth (caps, i);
    CHECK (gst_caps_is_subset (one, template));
    gst_caps_unref (one);
  }
}

/* A buffer carrying a meta of @w x @h x @c values (from the input), copied
 * and transformed as elements downstream would. */
static void
check_meta (gint w, gint h, gint c, gint factor, gdouble scaling,
    const guint8 * bytes, gsize size)
{
  const gsize n = (gsize) w * h * c;
  gfloat *values = g_new (gfloat, n);
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 64, NULL), *copy, *part;
  GstLatentMeta *m, *m2;
  gsize got;

  for (gsize i = 0; i < n; i++)
    values[i] = size ? (gfloat) bytes[i % size] - 128.0f : 0.0f;
  m = gst_buffer_add_latent_meta (buf, w, h, c, factor, scaling, values);
  CHECK (m != NULL);
  CHECK (gst_generative_buffer_get_latent_meta (buf) == m);
  CHECK (gst_buffer_get_latent_meta (buf) == m);
  CHECK (gst_latent_meta_get_values (m, &got) != NULL && got == n);

  copy = gst_buffer_copy (buf);
  m2 = gst_buffer_get_latent_meta (copy);
  CHECK (m2 != NULL && m2 != m);
  CHECK (m2->width == w && m2->height == h && m2->channels == c
      && m2->factor == factor && m2->scaling_factor == scaling);
  CHECK (m2->data != m->data && memcmp (m2->data, values, n * 4) == 0);
  /* Reads: inside as stored, outside 0. */
  CHECK (gst_latent_meta_get_value (m2, c - 1, h - 1, w - 1) == values[n - 1]);
  CHECK (gst_latent_meta_get_value (m2, 0, 0, 0) == values[0]);
  CHECK (gst_latent_meta_get_value (m2, c, 0, 0) == 0.0f);
  CHECK (gst_latent_meta_get_value (m2, 0, h, 0) == 0.0f);
  CHECK (gst_latent_meta_get_value (m2, 0, 0, w) == 0.0f);
  CHECK (gst_latent_meta_get_value (m2, -1, 0, 0) == 0.0f);
  CHECK (gst_latent_meta_get_value (m2, 0, G_MININT, G_MAXINT) == 0.0f);
  gst_buffer_unref (copy);

  /* Part of the buffer: the latent no longer describes it. */
  part = gst_buffer_copy_region (buf, GST_BUFFER_COPY_ALL, 16, 16);
  CHECK (gst_buffer_get_latent_meta (part) == NULL);
  gst_buffer_unref (part);

  /* A scale (videoscale's transform): dropped as well. */
  {
    GstVideoMetaTransform scale = { 0 };
    GstVideoInfo in, out;
    GstBuffer *dest = gst_buffer_new ();

    gst_video_info_set_format (&in, GST_VIDEO_FORMAT_RGB, 16, 16);
    gst_video_info_set_format (&out, GST_VIDEO_FORMAT_RGB, 8, 8);
    scale.in_info = &in;
    scale.out_info = &out;
    CHECK (!m->meta.info->transform_func (dest, &m->meta, buf,
            gst_video_meta_transform_scale_get_quark (), &scale));
    CHECK (gst_buffer_get_latent_meta (dest) == NULL);
    gst_buffer_unref (dest);
  }
  gst_buffer_unref (buf);
  g_free (values);
}

int
LLVMFuzzerTestOneInput (const uint8_t * data, size_t size)
{
  if (size < 1)
    return 0;
  const gint f = models[data[0] % G_N_ELEMENTS (models)].factor;
  const gint c = models[data[0] % G_N_ELEMENTS (models)].channels;
  const gdouble sc = models[data[0] % G_N_ELEMENTS (models)].scaling;
  gchar *str = g_strndup ((const gchar *) data + 1, size - 1);
  /* GStreamer 1.22's parser leaks the values it had read of a list it
   * fails to finish ("{ RGB (int)[ ..."): its allocations are not ours to
   * account for.  What our code allocates is. */
  __lsan_disable ();
  in_parser = TRUE;
  GstCaps *caps = gst_caps_from_string (str);
  in_parser = FALSE;
  __lsan_enable ();

  g_free (str);
  if (!caps)
    return 0;

  /* Both directions of transform_caps, whatever the caps are. */
  GstCaps *video = gst_latent_caps_to_video (caps, f, c);
  GstCaps *latent = gst_latent_caps_from_video (caps, f, c, sc);
  check_subset (video, video_template);
  check_subset (latent, latent_template);
  gst_caps_unref (latent);

  /* set_caps of vaedecode: fixed latent caps, the frames they make. */
  if (f > 0 && !gst_caps_is_empty (caps) && gst_caps_is_fixed (caps)
      && !gst_caps_is_empty (video)) {
    GstCaps *fixed = gst_caps_fixate (gst_caps_copy (video));
    GstVideoInfo vinfo;
    gint lw, lh, lc, lf;

    if (gst_video_info_from_caps (&vinfo, fixed)) {
      const gint vw = GST_VIDEO_INFO_WIDTH (&vinfo),
          vh = GST_VIDEO_INFO_HEIGHT (&vinfo);
      GstLatentCapsCheck r = gst_latent_caps_check (caps, f, c, vw, vh, &lw,
          &lh, &lc, &lf);
      gdouble applied;

      if (gst_latent_caps_applied_scaling (caps, &applied))
        CHECK (applied > 0.0 && isfinite ((gfloat) (1.0 / applied)));
      if (r == GST_LATENT_CAPS_OK) {
        CHECK (lw == (vw + f - 1) / f && lh == (vh + f - 1) / f && lc == c);
        CHECK (lf == 0 || lf == f);
        /* What vaeencode would say for these frames checks the same. */
        GstCaps *again = gst_latent_caps_from_video (fixed, f, c, sc);
        gint lw2, lh2, lc2, lf2;
        CHECK (gst_caps_get_size (again) == 1);
        CHECK (gst_latent_caps_check (again, f, c, vw, vh, &lw2, &lh2, &lc2,
                &lf2) == GST_LATENT_CAPS_OK);
        CHECK (lw2 == lw && lh2 == lh && lc2 == c && lf2 == f);
        gst_caps_unref (again);
        if ((gsize) lw * lh * lc <= 4096)
          check_meta (lw, lh, lc, f, sc, data, size);
      }
    }
    gst_caps_unref (fixed);
  }
  gst_caps_unref (video);
  gst_caps_unref (caps);
  return 0;
}
