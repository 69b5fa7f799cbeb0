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
#include "gstgenerativecore.h"
#include "ge-pipeline.h"

GST_DEBUG_CATEGORY_STATIC (gst_vae_base_debug);
#define GST_CAT_DEFAULT gst_vae_base_debug

enum
{
  PROP_0,
  PROP_DOWNSAMPLE_FACTOR,
  PROP_CORE,                    /* the core's from here on */
};

static const GstGenerativeCoreSpec core_spec = {
  .props = GST_GENERATIVE_PROP_MODEL_FILE | GST_GENERATIVE_PROP_N_THREADS
      | GST_GENERATIVE_PROP_TILING | GST_GENERATIVE_PROP_STATS
      | GST_GENERATIVE_PROP_PRECISION,
  .model_name = "vae.safetensors",
  .model_blurb = "VAE: our .safetensors, a diffusers AutoencoderKL, VQModel "
      "or AutoencoderTiny folder, or a pipeline folder (its vae or vqvae "
      "part); default: the installed model",
  .model_kind = "a VAE model (AutoencoderKL, VQModel or AutoencoderTiny)",
  .tile_overlap = 64,
  .tile_max = 65535,
  .tile_blurb = "Side of the square tiles in pixels (0 = whole frames up to "
      "1280x720, tiles of 512 above)",
  /* Tiles bound the work memory: the full-size level's activations take 4
   * bytes per pixel and channel, several live at once. */
  .auto_whole_pixels = 1280 * 720,
  .auto_tile = 512,
  .stats_blurb = "Frames, dropped (late) frames, the precision running, "
      "mean/max ms per frame, load ms",
};

typedef struct
{
  /* model-file, tiling, n-threads, stats, timing and QoS. */
  GstGenerativeCore core;

  /* Between start() and stop(). */
  GeVaeCodec *codec;
  gint factor, channels;        /* object lock: caps queries read them */
  gdouble scaling_factor;

  /* Settings last handed to the engine (streaming thread). */
  gint applied_tile, applied_overlap, applied_n_threads;
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
  return PRIV (self)->core.loaded_path;
}

/* ------------------------------------------------------------------------ */
/* properties */

static void
gst_vae_base_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  if (!gst_generative_core_set_property (&PRIV (object)->core, prop_id, value,
          pspec))
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
gst_vae_base_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstVaeBasePrivate *p = PRIV (object);

  if (gst_generative_core_get_property (&p->core, prop_id, value, pspec))
    return;
  switch (prop_id) {
    case PROP_DOWNSAMPLE_FACTOR:
      GST_OBJECT_LOCK (object);
      g_value_set_int (value, p->factor);
      GST_OBJECT_UNLOCK (object);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

/* ------------------------------------------------------------------------ */
/* model */

static gboolean
gst_vae_base_load (GstElement * element, const gchar * path,
    gpointer user_data, GError ** error)
{
  GstVaeBasePrivate *p = PRIV (element);
  GeVaeCodec *codec;
  gchar *vae_path = NULL;

  if (gst_generative_is_pipeline_folder (path)) {
    /* A pipeline's autoencoder: "vae" (Stable Diffusion, AutoencoderKL or
     * a swapped-in AutoencoderTiny) or "vqvae" (latent diffusion). */
    GePipeline *pl = ge_pipeline_open (path, error);
    const gchar *part;

    if (!pl)
      return FALSE;
    part = ge_pipeline_part_path (pl, "vae");
    if (!part)
      part = ge_pipeline_part_path (pl, "vqvae");
    if (!part) {
      GST_ELEMENT_ERROR (element, RESOURCE, NOT_FOUND,
          ("Pipeline folder \"%s\" has no vae or vqvae part.", path),
          ("%s names no autoencoder in model_index.json",
              ge_pipeline_class_name (pl)));
      ge_pipeline_free (pl);
      return FALSE;
    }
    if (!g_file_test (part, G_FILE_TEST_EXISTS)) {
      GST_ELEMENT_ERROR (element, RESOURCE, NOT_FOUND,
          ("The autoencoder of pipeline folder \"%s\" is missing.", path),
          ("no folder %s", part));
      ge_pipeline_free (pl);
      return FALSE;
    }
    vae_path = g_strdup (part);
    ge_pipeline_free (pl);
  }
  codec = ge_vae_codec_new (vae_path ? vae_path : path, error);
  g_free (vae_path);
  if (!codec)
    return FALSE;
  p->codec = codec;
  GST_OBJECT_LOCK (element);
  p->factor = ge_vae_codec_factor (codec);
  p->channels = ge_vae_codec_latent_channels (codec);
  p->scaling_factor = ge_vae_codec_scaling_factor (codec);
  GST_OBJECT_UNLOCK (element);
  GST_INFO_OBJECT (element, "%s: %s, factor %d, %d latent channels", path,
      ge_vae_codec_model_class (codec), p->factor, p->channels);
  return TRUE;
}

static gboolean
gst_vae_base_start (GstBaseTransform * trans)
{
  GstVaeBasePrivate *p = PRIV (trans);

  p->applied_tile = p->applied_overlap = p->applied_n_threads = -1;
  return gst_generative_core_start (&p->core, gst_vae_base_load, NULL);
}

static gboolean
gst_vae_base_stop (GstBaseTransform * trans)
{
  GstVaeBasePrivate *p = PRIV (trans);

  g_clear_pointer (&p->codec, ge_vae_codec_free);
  gst_generative_core_stop (&p->core);
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
  gint f, c;
  gdouble scaling;

  if (!gst_vae_base_model_dims (self, &f, &c, &scaling))
    f = 0;
  return gst_latent_caps_from_video (caps, f, c, scaling);
}

GstCaps *
gst_vae_base_latent_to_video_caps (GstVaeBase * self, GstCaps * caps)
{
  gint f, c;
  gdouble scaling;

  if (!gst_vae_base_model_dims (self, &f, &c, &scaling))
    f = 0;
  return gst_latent_caps_to_video (caps, f, c);
}

gboolean
gst_vae_base_check_latent_caps (GstVaeBase * self, GstCaps * caps,
    gint w, gint h, gint * lw, gint * lh)
{
  GstVaeBasePrivate *p = PRIV (self);
  gint c, f;

  switch (gst_latent_caps_check (caps, p->factor, p->channels, w, h, lw, lh,
          &c, &f)) {
    case GST_LATENT_CAPS_OK:
      return TRUE;
    case GST_LATENT_CAPS_NOT_TENSOR:
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("Latent caps are not one float32 tensor of dimensions W:H:C:1."),
          ("caps: %" GST_PTR_FORMAT, caps));
      return FALSE;
    case GST_LATENT_CAPS_OTHER_MODEL:
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("Latents of %d channels at downsampling factor %d do not fit model "
              "\"%s\" (%d channels, factor %d).", c, f ? f : p->factor,
              p->core.loaded_path, p->channels, p->factor),
          ("Decode with the VAE that encoded them; caps: %" GST_PTR_FORMAT,
              caps));
      return FALSE;
    case GST_LATENT_CAPS_TOO_LARGE:
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("A %dx%d latent makes %dx%d frames, more than the %d megapixels "
              "vaedecode decodes.", *lw, *lh, w, h,
              GST_LATENT_MAX_PIXELS / (1024 * 1024)), ("caps: %" GST_PTR_FORMAT,
              caps));
      return FALSE;
    case GST_LATENT_CAPS_OTHER_SIZE:
    default:
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("A %dx%d latent does not make %dx%d frames at factor %d.", *lw, *lh,
              w, h, p->factor), ("caps: %" GST_PTR_FORMAT, caps));
      return FALSE;
  }
}

/* ------------------------------------------------------------------------ */
/* processing support */

void
gst_vae_base_apply_settings (GstVaeBase * self, gint width, gint height)
{
  GstVaeBasePrivate *p = PRIV (self);
  gint tile, overlap, n_threads;
  GePrecision precision;

  GST_OBJECT_LOCK (self);
  overlap = p->core.tile_overlap;
  n_threads = p->core.n_threads;
  GST_OBJECT_UNLOCK (self);

  tile = gst_generative_core_tile_for (&p->core, width, height);
  if (tile != p->applied_tile || overlap != p->applied_overlap) {
    ge_vae_codec_set_tiling (p->codec, tile, overlap);
    p->applied_tile = tile;
    p->applied_overlap = overlap;
  }
  if (n_threads != p->applied_n_threads) {
    ge_vae_codec_set_n_threads (p->codec, n_threads);
    p->applied_n_threads = n_threads;
  }
  if (gst_generative_core_precision_changed (&p->core, &precision))
    gst_generative_core_precision_applied (&p->core,
        ge_vae_codec_set_precision (p->codec, precision));
}

void
gst_vae_base_frame_done (GstVaeBase * self, gdouble ms)
{
  gst_generative_core_frame_done (&PRIV (self)->core, ms);
}

static gboolean
gst_vae_base_query (GstBaseTransform * trans, GstPadDirection direction,
    GstQuery * query)
{
  gboolean ret = GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans,
      direction, query);

  if (ret && direction == GST_PAD_SRC
      && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY)
    gst_generative_core_latency_query (&PRIV (trans)->core, query);
  return ret;
}

/* Counts the frames the base class drops for QoS: it skips them inside
 * submit_input_buffer without telling subclasses, leaving nothing queued. */
static GstFlowReturn
gst_vae_base_submit_input_buffer (GstBaseTransform * trans,
    gboolean is_discont, GstBuffer * input)
{
  GstFlowReturn ret = GST_BASE_TRANSFORM_CLASS (parent_class)->
      submit_input_buffer (trans, is_discont, input);

  if (gst_generative_qos_dropped (trans, ret))
    gst_generative_core_count_dropped (&PRIV (trans)->core);
  return ret;
}

/* ------------------------------------------------------------------------ */

static void
gst_vae_base_finalize (GObject * object)
{
  GstVaeBasePrivate *p = PRIV (object);

  g_clear_pointer (&p->codec, ge_vae_codec_free);
  gst_generative_core_finalize (&p->core);
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

  /* model-file, tile-size, tile-overlap, n-threads and stats:
   * gstgenerativecore.h. */
  gst_generative_core_install_properties (gobject_class, PROP_CORE,
      &core_spec);
  g_object_class_install_property (gobject_class, PROP_DOWNSAMPLE_FACTOR,
      g_param_spec_int ("downsample-factor", "Downsampling factor",
          "How much smaller latents are than frames (0 until the model is "
          "loaded, in PAUSED)", 0, 65536, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

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

  gst_generative_core_init (&p->core, GST_ELEMENT (self), PROP_CORE,
      &core_spec);
  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (self), TRUE);
}
