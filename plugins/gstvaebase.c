/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* gstvaebase.c: see gstvaebase.h. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>

#include "gstvaebase.h"
#include "gstgenerativeutil.h"

GST_DEBUG_CATEGORY_STATIC (gst_vae_base_debug);
#define GST_CAT_DEFAULT gst_vae_base_debug

#define MODEL_NAME "vae.safetensors"
#define DEFAULT_TILE_SIZE 0
#define DEFAULT_TILE_OVERLAP 64
#define DEFAULT_N_THREADS 0

/* tile-size 0: frames up to this many pixels run whole; larger ones in
 * tiles of AUTO_TILE_SIZE, which bounds the work memory (the full-size
 * level's activations take 4 bytes per pixel and channel, several live at
 * once). */
#define AUTO_WHOLE_FRAME_PIXELS (1280 * 720)
#define AUTO_TILE_SIZE 512

enum
{
  PROP_0,
  PROP_MODEL_FILE,
  PROP_TILE_SIZE,
  PROP_TILE_OVERLAP,
  PROP_N_THREADS,
  PROP_PRECISION,
  PROP_DOWNSAMPLE_FACTOR,
  PROP_STATS,
};

typedef struct
{
  /* Properties (object lock). */
  gchar *model_file;
  gint tile_size, tile_overlap, n_threads;
  gint precision;               /* GePrecision */

  /* Between start() and stop(). */
  GeVaeCodec *codec;
  gchar *loaded_path;
  gint factor, channels;        /* object lock: caps queries read them */
  gdouble scaling_factor;

  /* Settings last handed to the engine (streaming thread). */
  gint applied_tile, applied_overlap, applied_n_threads, applied_precision;

  GstGenerativeTiming timing;   /* object lock */
} GstVaeBasePrivate;

#define gst_vae_base_parent_class parent_class
G_DEFINE_ABSTRACT_TYPE_WITH_PRIVATE (GstVaeBase, gst_vae_base,
    GST_TYPE_BASE_TRANSFORM);

#define PRIV(self) ((GstVaeBasePrivate *) \
    gst_vae_base_get_instance_private (GST_VAE_BASE (self)))

GeVaeCodec *
gst_vae_base_codec (GstVaeBase * self)
{
  return PRIV (self)->codec;
}

const gchar *
gst_vae_base_model_path (GstVaeBase * self)
{
  return PRIV (self)->loaded_path;
}

/* ------------------------------------------------------------------------ */
/* properties */

static void
gst_vae_base_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstVaeBasePrivate *p = PRIV (object);

  switch (prop_id) {
    case PROP_MODEL_FILE:
      if (gst_generative_is_running (GST_ELEMENT (object))) {
        GST_WARNING_OBJECT (object, "model-file can only change in the NULL "
            "or READY state; ignored");
        return;
      }
      GST_OBJECT_LOCK (object);
      g_free (p->model_file);
      p->model_file = g_value_dup_string (value);
      GST_OBJECT_UNLOCK (object);
      break;
    case PROP_TILE_SIZE:
      GST_OBJECT_LOCK (object);
      p->tile_size = g_value_get_int (value);
      GST_OBJECT_UNLOCK (object);
      break;
    case PROP_TILE_OVERLAP:
      GST_OBJECT_LOCK (object);
      p->tile_overlap = g_value_get_int (value);
      GST_OBJECT_UNLOCK (object);
      break;
    case PROP_N_THREADS:
      GST_OBJECT_LOCK (object);
      p->n_threads = g_value_get_int (value);
      GST_OBJECT_UNLOCK (object);
      break;
    case PROP_PRECISION:
      GST_OBJECT_LOCK (object);
      p->precision = g_value_get_enum (value);
      GST_OBJECT_UNLOCK (object);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static gchar *
gst_vae_base_stats_string (GstVaeBase * self)
{
  GstVaeBasePrivate *p = PRIV (self);
  gchar *name = g_strdup_printf ("%s-stats",
      GST_OBJECT_NAME (gst_element_get_factory (GST_ELEMENT (self))));
  GstStructure *s = gst_structure_new_empty (name);
  gchar *str;

  g_free (name);
  GST_OBJECT_LOCK (self);
  gst_generative_timing_to_structure (&p->timing, s);
  GST_OBJECT_UNLOCK (self);
  str = gst_structure_to_string (s);
  gst_structure_free (s);
  return str;
}

static void
gst_vae_base_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstVaeBasePrivate *p = PRIV (object);

  switch (prop_id) {
    case PROP_MODEL_FILE:
      GST_OBJECT_LOCK (object);
      g_value_take_string (value,
          gst_generative_model_path (p->model_file, MODEL_NAME));
      GST_OBJECT_UNLOCK (object);
      break;
    case PROP_TILE_SIZE:
      GST_OBJECT_LOCK (object);
      g_value_set_int (value, p->tile_size);
      GST_OBJECT_UNLOCK (object);
      break;
    case PROP_TILE_OVERLAP:
      GST_OBJECT_LOCK (object);
      g_value_set_int (value, p->tile_overlap);
      GST_OBJECT_UNLOCK (object);
      break;
    case PROP_N_THREADS:
      GST_OBJECT_LOCK (object);
      g_value_set_int (value, p->n_threads);
      GST_OBJECT_UNLOCK (object);
      break;
    case PROP_PRECISION:
      GST_OBJECT_LOCK (object);
      g_value_set_enum (value, p->precision);
      GST_OBJECT_UNLOCK (object);
      break;
    case PROP_DOWNSAMPLE_FACTOR:
      GST_OBJECT_LOCK (object);
      g_value_set_int (value, p->factor);
      GST_OBJECT_UNLOCK (object);
      break;
    case PROP_STATS:
      g_value_take_string (value, gst_vae_base_stats_string (GST_VAE_BASE
              (object)));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

/* ------------------------------------------------------------------------ */
/* model */

static gboolean
gst_vae_base_start (GstBaseTransform * trans)
{
  GstVaeBase *self = GST_VAE_BASE (trans);
  GstVaeBasePrivate *p = PRIV (self);
  GError *err = NULL;
  GeVaeCodec *codec;
  gchar *path, *kind;
  gint64 t0;

  GST_OBJECT_LOCK (self);
  path = gst_generative_model_path (p->model_file, MODEL_NAME);
  GST_OBJECT_UNLOCK (self);
  kind = g_strdup_printf ("a %s model (a VAE)",
      GST_ELEMENT_NAME (gst_element_get_factory (GST_ELEMENT (self))));

  gst_generative_post_load_progress (GST_ELEMENT (self),
      GST_PROGRESS_TYPE_START, path);
  if (!gst_generative_check_model_file (GST_ELEMENT (self), path, kind))
    goto failed;
  t0 = g_get_monotonic_time ();
  codec = ge_vae_codec_new (path, &err);
  if (!codec) {
    GST_ELEMENT_ERROR (self, STREAM, WRONG_TYPE,
        ("\"%s\" is not a usable VAE (AutoencoderKL or VQModel).", path),
        ("%s", err->message));
    g_clear_error (&err);
    goto failed;
  }

  p->codec = codec;
  g_free (p->loaded_path);
  p->loaded_path = path;
  p->applied_tile = p->applied_overlap = p->applied_n_threads = -1;
  p->applied_precision = -1;
  GST_OBJECT_LOCK (self);
  p->factor = ge_vae_codec_factor (codec);
  p->channels = ge_vae_codec_latent_channels (codec);
  p->scaling_factor = ge_vae_codec_scaling_factor (codec);
  memset (&p->timing, 0, sizeof (p->timing));
  p->timing.load_ms = (g_get_monotonic_time () - t0) / 1000.0;
  GST_OBJECT_UNLOCK (self);
  GST_INFO_OBJECT (self, "loaded %s (%s, factor %d, %d latent channels) in "
      "%.1f ms", path, ge_vae_codec_model_class (codec), p->factor,
      p->channels, p->timing.load_ms);
  gst_generative_post_load_progress (GST_ELEMENT (self),
      GST_PROGRESS_TYPE_COMPLETE, path);
  g_free (kind);
  return TRUE;

failed:
  gst_generative_post_load_progress (GST_ELEMENT (self),
      GST_PROGRESS_TYPE_ERROR, path);
  g_free (path);
  g_free (kind);
  return FALSE;
}

static gboolean
gst_vae_base_stop (GstBaseTransform * trans)
{
  GstVaeBasePrivate *p = PRIV (trans);

  g_clear_pointer (&p->codec, ge_vae_codec_free);
  g_clear_pointer (&p->loaded_path, g_free);
  GST_OBJECT_LOCK (trans);
  p->factor = p->channels = 0;
  GST_OBJECT_UNLOCK (trans);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* caps */

static gboolean
gst_vae_base_model_dims (GstVaeBase * self, gint * factor, gint * channels,
    gdouble * scaling)
{
  GstVaeBasePrivate *p = PRIV (self);

  GST_OBJECT_LOCK (self);
  *factor = p->factor;
  *channels = p->channels;
  *scaling = p->scaling_factor;
  GST_OBJECT_UNLOCK (self);
  return *factor > 0;
}

GstCaps *
gst_vae_base_video_to_latent_caps (GstVaeBase * self, GstCaps * caps)
{
  GstCaps *res = gst_caps_new_empty ();
  gint f, c, i, n = gst_caps_get_size (caps);
  gdouble scaling;
  gboolean loaded = gst_vae_base_model_dims (self, &f, &c, &scaling);

  for (i = 0; i < n; i++) {
    GstStructure *in = gst_caps_get_structure (caps, i);
    GstStructure *out = gst_structure_from_string (GST_VAE_LATENT_CAPS, NULL);
    const GValue *fr = gst_structure_get_value (in, "framerate");
    gint w, h;

    if (fr)
      gst_structure_set_value (out, "framerate", fr);
    if (loaded) {
      gst_structure_set (out, "downsample-factor", G_TYPE_INT, f,
          "scaling-factor", G_TYPE_DOUBLE, scaling, NULL);
      if (gst_structure_get_int (in, "width", &w)
          && gst_structure_get_int (in, "height", &h)) {
        gchar *dims = g_strdup_printf ("%d:%d:%d:1", (w + f - 1) / f,
            (h + f - 1) / f, c);

        gst_structure_set (out, "dimensions", G_TYPE_STRING, dims,
            "video-width", G_TYPE_INT, w, "video-height", G_TYPE_INT, h, NULL);
        g_free (dims);
      }
    }
    res = gst_caps_merge_structure (res, out);
  }
  return res;
}

/* "W:H:C[:1]" (NNStreamer leaves trailing 1s out at times). */
static gboolean
parse_dims (const gchar * dims, gint * w, gint * h, gint * c)
{
  gchar **parts;
  gint v[4] = { 1, 1, 1, 1 }, n, k;
  gboolean ok = TRUE;

  if (!dims)
    return FALSE;
  parts = g_strsplit (dims, ":", -1);
  n = g_strv_length (parts);
  ok = n >= 3 && n <= 4;
  for (k = 0; ok && k < n; k++) {
    gchar *end;
    gint64 x = g_ascii_strtoll (parts[k], &end, 10);

    ok = end != parts[k] && *end == '\0' && x >= 1 && x <= 65535;
    v[k] = (gint) x;
  }
  g_strfreev (parts);
  if (!ok || v[3] != 1)
    return FALSE;
  *w = v[0];
  *h = v[1];
  *c = v[2];
  return TRUE;
}

GstCaps *
gst_vae_base_latent_to_video_caps (GstVaeBase * self, GstCaps * caps)
{
  GstCaps *res = gst_caps_new_empty ();
  gint f, c, i, n = gst_caps_get_size (caps);
  gdouble scaling;
  gboolean loaded = gst_vae_base_model_dims (self, &f, &c, &scaling);

  for (i = 0; i < n; i++) {
    GstStructure *in = gst_caps_get_structure (caps, i);
    GstStructure *out = gst_structure_from_string (GST_VAE_VIDEO_CAPS, NULL);
    const GValue *fr = gst_structure_get_value (in, "framerate");
    gint w, h, lw, lh, lc;

    if (fr)
      gst_structure_set_value (out, "framerate", fr);
    if (gst_structure_get_int (in, "video-width", &w)
        && gst_structure_get_int (in, "video-height", &h))
      gst_structure_set (out, "width", G_TYPE_INT, w, "height", G_TYPE_INT, h,
          NULL);
    else if (loaded && parse_dims (gst_structure_get_string (in,
                "dimensions"), &lw, &lh, &lc)
        && lw * (gint64) f <= 65535 && lh * (gint64) f <= 65535)
      gst_structure_set (out, "width", G_TYPE_INT, lw * f, "height",
          G_TYPE_INT, lh * f, NULL);
    res = gst_caps_merge_structure (res, out);
  }
  return res;
}

gboolean
gst_vae_base_check_latent_caps (GstVaeBase * self, GstCaps * caps,
    const GstVideoInfo * video, gint * lw, gint * lh)
{
  GstVaeBasePrivate *p = PRIV (self);
  GstStructure *s = gst_caps_get_structure (caps, 0);
  const gchar *types = gst_structure_get_string (s, "types");
  gint c, f = 0, nt = 0, w = GST_VIDEO_INFO_WIDTH (video),
      h = GST_VIDEO_INFO_HEIGHT (video);

  if (!gst_structure_get_int (s, "num_tensors", &nt) || nt != 1
      || g_strcmp0 (types, "float32") != 0
      || !parse_dims (gst_structure_get_string (s, "dimensions"), lw, lh,
          &c)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Latent caps are not one float32 tensor of dimensions W:H:C:1."),
        ("caps: %" GST_PTR_FORMAT, caps));
    return FALSE;
  }
  if (c != p->channels || (gst_structure_get_int (s, "downsample-factor", &f)
          && f != p->factor)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Latents of %d channels at downsampling factor %d do not fit model "
            "\"%s\" (%d channels, factor %d).", c, f ? f : p->factor,
            p->loaded_path, p->channels, p->factor),
        ("Decode with the VAE that encoded them; caps: %" GST_PTR_FORMAT,
            caps));
    return FALSE;
  }
  if ((w + p->factor - 1) / p->factor != *lw
      || (h + p->factor - 1) / p->factor != *lh) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("A %dx%d latent does not make %dx%d frames at factor %d.", *lw, *lh,
            w, h, p->factor), ("caps: %" GST_PTR_FORMAT, caps));
    return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* processing support */

void
gst_vae_base_apply_settings (GstVaeBase * self, gint width, gint height)
{
  GstVaeBasePrivate *p = PRIV (self);
  gint tile, overlap, n_threads, precision;

  GST_OBJECT_LOCK (self);
  tile = p->tile_size;
  overlap = p->tile_overlap;
  n_threads = p->n_threads;
  precision = p->precision;
  GST_OBJECT_UNLOCK (self);

  if (tile == 0)
    tile = (gint64) width *height <= AUTO_WHOLE_FRAME_PIXELS ?
        0 : AUTO_TILE_SIZE;
  if (tile != p->applied_tile || overlap != p->applied_overlap) {
    ge_vae_codec_set_tiling (p->codec, tile, overlap);
    p->applied_tile = tile;
    p->applied_overlap = overlap;
  }
  if (n_threads != p->applied_n_threads) {
    ge_vae_codec_set_n_threads (p->codec, n_threads);
    p->applied_n_threads = n_threads;
  }
  if (precision != p->applied_precision) {
    ge_vae_codec_set_precision (p->codec, precision);
    p->applied_precision = precision;
  }
}

void
gst_vae_base_frame_done (GstVaeBase * self, gdouble ms)
{
  gboolean post;

  GST_OBJECT_LOCK (self);
  post = gst_generative_timing_frame (&PRIV (self)->timing, ms);
  GST_OBJECT_UNLOCK (self);
  if (post)
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_latency (GST_OBJECT (self)));
}

static gboolean
gst_vae_base_query (GstBaseTransform * trans, GstPadDirection direction,
    GstQuery * query)
{
  gboolean ret = GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans,
      direction, query);

  if (ret && direction == GST_PAD_SRC
      && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    GstClockTime ours;

    GST_OBJECT_LOCK (trans);
    ours = PRIV (trans)->timing.latency;
    GST_OBJECT_UNLOCK (trans);
    gst_generative_latency_add (query, ours);
  }
  return ret;
}

/* Counts the frames the base class drops for QoS: it skips them inside
 * submit_input_buffer without telling subclasses, leaving nothing queued. */
static GstFlowReturn
gst_vae_base_submit_input_buffer (GstBaseTransform * trans,
    gboolean is_discont, GstBuffer * input)
{
  GstVaeBasePrivate *p = PRIV (trans);
  GstFlowReturn ret = GST_BASE_TRANSFORM_CLASS (parent_class)->
      submit_input_buffer (trans, is_discont, input);

  if (gst_generative_qos_dropped (trans, ret)) {
    GST_OBJECT_LOCK (trans);
    p->timing.dropped++;
    GST_OBJECT_UNLOCK (trans);
  }
  return ret;
}

/* ------------------------------------------------------------------------ */

static void
gst_vae_base_finalize (GObject * object)
{
  GstVaeBasePrivate *p = PRIV (object);

  g_clear_pointer (&p->codec, ge_vae_codec_free);
  g_free (p->loaded_path);
  g_free (p->model_file);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_vae_base_class_init (GstVaeBaseClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_vae_base_debug, "vaebase", 0,
      "VAE elements");

  gobject_class->set_property = gst_vae_base_set_property;
  gobject_class->get_property = gst_vae_base_get_property;
  gobject_class->finalize = gst_vae_base_finalize;

  g_object_class_install_property (gobject_class, PROP_MODEL_FILE,
      g_param_spec_string ("model-file", "Model file",
          "VAE (diffusers AutoencoderKL or VQModel, .safetensors); default: "
          "the installed model", NULL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_TILE_SIZE,
      g_param_spec_int ("tile-size", "Tile size",
          "Side of the square tiles in pixels (0 = whole frames up to "
          "1280x720, tiles of 512 above)", 0, 65535, DEFAULT_TILE_SIZE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_TILE_OVERLAP,
      g_param_spec_int ("tile-overlap", "Tile overlap",
          "Overlap of neighbouring tiles in pixels, blended smoothly", 0,
          65535, DEFAULT_TILE_OVERLAP,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_N_THREADS,
      g_param_spec_int ("n-threads", "Number of threads",
          "Worker threads (0 = one per core)", 0, 1024, DEFAULT_N_THREADS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  gst_generative_install_precision (gobject_class, PROP_PRECISION);
  g_object_class_install_property (gobject_class, PROP_DOWNSAMPLE_FACTOR,
      g_param_spec_int ("downsample-factor", "Downsampling factor",
          "How much smaller latents are than frames (0 until the model is "
          "loaded, in PAUSED)", 0, 65536, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_string ("stats", "Statistics",
          "Frames, dropped (late) frames, mean/max ms per frame, load ms",
          NULL, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  trans_class->start = GST_DEBUG_FUNCPTR (gst_vae_base_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_vae_base_stop);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_vae_base_query);
  trans_class->submit_input_buffer =
      GST_DEBUG_FUNCPTR (gst_vae_base_submit_input_buffer);
  trans_class->passthrough_on_same_caps = FALSE;
  trans_class->transform_ip_on_passthrough = FALSE;

  gst_type_mark_as_plugin_api (GST_TYPE_VAE_BASE, 0);
}

static void
gst_vae_base_init (GstVaeBase * self)
{
  GstVaeBasePrivate *p = PRIV (self);

  p->tile_size = DEFAULT_TILE_SIZE;
  p->tile_overlap = DEFAULT_TILE_OVERLAP;
  p->n_threads = DEFAULT_N_THREADS;
  p->precision = GE_PRECISION_AUTO;
  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (self), TRUE);
}
