/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:element-vaeencode
 * @title: vaeencode
 * @see_also: vaedecode
 *
 * Encodes video frames into the latent space of a VAE (a diffusers
 * AutoencoderKL, VQModel or AutoencoderTiny; #GstVaeBase:model-file may be
 * the model's folder or a diffusers pipeline folder, whose vae part is
 * used): a frame of W x H pixels becomes a latent of
 * ceil (W / f) x ceil (H / f) x C floats, f being the model's
 * #GstVaeBase:downsample-factor (8 for the installed model, 4 latent
 * channels).  Frames whose sides are not multiples of f are padded by
 * repeating their edges; vaedecode crops them back.
 *
 * With output-mode=latent-stream the latents replace the frames, as
 * NNStreamer-compatible caps `other/tensors, format=static, num_tensors=1,
 * types=float32, dimensions=W:H:C:1` (innermost first: each buffer holds C
 * planes of H rows of W native-endian floats), with the fields vaedecode
 * needs to restore the frames: `video-width`, `video-height`,
 * `downsample-factor` and the model's `scaling-factor`, and
 * `applied-scaling-factor` = 1: the latents are not multiplied by the
 * scaling factor (vaedecode divides latents whose caps say otherwise).  With output-mode=attach the frames pass on unchanged
 * (no pixel is copied) carrying the latent as a #GstLatentMeta (the
 * installed header gstlatentmeta.h reads it); elements that rescale, crop
 * or flip the frames drop the meta.
 *
 * sample-mode=mean gives the distribution's mean (the same frame, the same
 * latent); sample-mode=sample draws from it with noise that depends only on
 * #GstVaeEncode:seed and the latent position, the same for every frame.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=clip.webm ! decodebin ! videoconvert ! vaeencode ! gdppay ! filesink location=clip.latent
 * ]| Stores a clip as latents (vaedecode turns them back into video).
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=10 ! vaeencode output-mode=attach ! fakesink
 * ]| Frames go on with their latents attached.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstvaeencode.h"
#include "gstlatentmeta.h"
#include "gstgenerativeutil.h"

GST_DEBUG_CATEGORY_STATIC (gst_vae_encode_debug);
#define GST_CAT_DEFAULT gst_vae_encode_debug

#define DEFAULT_OUTPUT_MODE GST_VAE_ENCODE_LATENT_STREAM
#define DEFAULT_SAMPLE_MODE GST_VAE_ENCODE_MEAN
#define DEFAULT_SEED 0

enum
{
  PROP_0,
  PROP_OUTPUT_MODE,
  PROP_SAMPLE_MODE,
  PROP_SEED,
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (GST_VAE_VIDEO_CAPS));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VAE_LATENT_CAPS ", framerate = (fraction) [ 0, MAX ]"
        "; " GST_VAE_VIDEO_CAPS));

#define gst_vae_encode_parent_class parent_class
G_DEFINE_TYPE (GstVaeEncode, gst_vae_encode, GST_TYPE_VAE_BASE);
GST_ELEMENT_REGISTER_DEFINE (vaeencode, "vaeencode", GST_RANK_NONE,
    GST_TYPE_VAE_ENCODE);

static GType
gst_vae_encode_output_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_VAE_ENCODE_LATENT_STREAM, "Latents replace the frames "
          "(other/tensors)", "latent-stream"},
    {GST_VAE_ENCODE_ATTACH, "Frames pass on with the latent attached as a "
          "GstLatentMeta", "attach"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstVaeEncodeOutputMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static GType
gst_vae_encode_sample_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_VAE_ENCODE_MEAN, "The latent distribution's mean", "mean"},
    {GST_VAE_ENCODE_SAMPLE, "A draw from the distribution (fixed noise per "
          "seed)", "sample"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstVaeEncodeSampleMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static void
gst_vae_encode_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstVaeEncode *self = GST_VAE_ENCODE (object);

  switch (prop_id) {
    case PROP_OUTPUT_MODE:
      /* The caps depend on it: only between runs. */
      if (gst_generative_is_running (GST_ELEMENT (self))) {
        GST_WARNING_OBJECT (self, "output-mode can only change in the NULL "
            "or READY state; ignored");
        return;
      }
      GST_OBJECT_LOCK (self);
      self->output_mode = g_value_get_enum (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_SAMPLE_MODE:
      GST_OBJECT_LOCK (self);
      self->sample_mode = g_value_get_enum (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_SEED:
      GST_OBJECT_LOCK (self);
      self->seed = g_value_get_uint64 (value);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_vae_encode_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstVaeEncode *self = GST_VAE_ENCODE (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_OUTPUT_MODE:
      g_value_set_enum (value, self->output_mode);
      break;
    case PROP_SAMPLE_MODE:
      g_value_set_enum (value, self->sample_mode);
      break;
    case PROP_SEED:
      g_value_set_uint64 (value, self->seed);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ------------------------------------------------------------------------ */
/* caps */

static GstCaps *
gst_vae_encode_transform_caps (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps, GstCaps * filter)
{
  GstVaeEncode *self = GST_VAE_ENCODE (trans);
  GstVaeBase *base = GST_VAE_BASE (trans);
  GstVaeEncodeOutputMode mode;
  GstCaps *res;

  GST_OBJECT_LOCK (self);
  mode = self->output_mode;
  GST_OBJECT_UNLOCK (self);

  if (mode == GST_VAE_ENCODE_ATTACH) {
    GstCaps *video = gst_static_caps_get (&sink_template.static_caps);

    /* The frames themselves pass: the same caps on both sides. */
    res = gst_caps_intersect (caps, video);
    gst_caps_unref (video);
  } else if (direction == GST_PAD_SINK) {
    res = gst_vae_base_video_to_latent_caps (base, caps);
  } else {
    res = gst_vae_base_latent_to_video_caps (base, caps);
  }

  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, res,
        GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (res);
    res = tmp;
  }
  GST_DEBUG_OBJECT (self, "%s: %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT,
      direction == GST_PAD_SINK ? "downstream" : "upstream", caps, res);
  return res;
}

static gboolean
gst_vae_encode_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstVaeEncode *self = GST_VAE_ENCODE (trans);
  GeVaeCodec *codec = gst_vae_base_codec (GST_VAE_BASE (self));
  GstStructure *s = gst_caps_get_structure (outcaps, 0);

  if (!codec) {
    GST_ERROR_OBJECT (self, "caps set before the model was loaded");
    return FALSE;
  }
  if (!gst_video_info_from_caps (&self->vinfo, incaps))
    return FALSE;
  self->mode = gst_structure_has_name (s, "video/x-raw") ?
      GST_VAE_ENCODE_ATTACH : GST_VAE_ENCODE_LATENT_STREAM;
  ge_vae_codec_latent_size (codec, GST_VIDEO_INFO_WIDTH (&self->vinfo),
      GST_VIDEO_INFO_HEIGHT (&self->vinfo), &self->lw, &self->lh);
  self->scratch = g_renew (gfloat, self->scratch,
      (gsize) self->lw * self->lh * ge_vae_codec_latent_channels (codec));
  GST_INFO_OBJECT (self, "%dx%d %s -> %dx%dx%d latents (%s)",
      GST_VIDEO_INFO_WIDTH (&self->vinfo), GST_VIDEO_INFO_HEIGHT (&self->vinfo),
      GST_VIDEO_INFO_NAME (&self->vinfo), self->lw, self->lh,
      ge_vae_codec_latent_channels (codec),
      self->mode == GST_VAE_ENCODE_ATTACH ? "attached" : "stream");
  return TRUE;
}

static gsize
gst_vae_encode_latent_bytes (GstVaeEncode * self)
{
  GeVaeCodec *codec = gst_vae_base_codec (GST_VAE_BASE (self));

  return (gsize) self->lw * self->lh * ge_vae_codec_latent_channels (codec)
      * sizeof (gfloat);
}

static gboolean
gst_vae_encode_transform_size (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps, gsize size, GstCaps * othercaps,
    gsize * othersize)
{
  GstVaeEncode *self = GST_VAE_ENCODE (trans);

  if (direction != GST_PAD_SINK || !gst_vae_base_codec (GST_VAE_BASE (self)))
    return FALSE;
  *othersize = self->mode == GST_VAE_ENCODE_ATTACH ? size :
      gst_vae_encode_latent_bytes (self);
  return TRUE;
}

/* Latent buffers come from a pool: downstream rarely offers one for
 * tensors, and a fresh allocation per frame is what the pool avoids. */
static gboolean
gst_vae_encode_decide_allocation (GstBaseTransform * trans, GstQuery * query)
{
  GstVaeEncode *self = GST_VAE_ENCODE (trans);

  if (self->mode == GST_VAE_ENCODE_LATENT_STREAM
      && gst_query_get_n_allocation_pools (query) == 0)
    gst_query_add_allocation_pool (query, NULL,
        gst_vae_encode_latent_bytes (self), 2, 0);
  return GST_BASE_TRANSFORM_CLASS (parent_class)->decide_allocation (trans,
      query);
}

static gboolean
remove_latent_meta (GstBuffer * buffer, GstMeta ** meta, gpointer user_data)
{
  if ((*meta)->info->api == gst_latent_meta_api_get_type ())
    *meta = NULL;
  return TRUE;
}

/* Attach mode: a new buffer sharing the frame's memory (no pixel copy),
 * with its metas, minus a latent that an earlier encoder attached. */
static GstFlowReturn
gst_vae_encode_prepare_output_buffer (GstBaseTransform * trans,
    GstBuffer * input, GstBuffer ** outbuf)
{
  GstVaeEncode *self = GST_VAE_ENCODE (trans);

  if (self->mode != GST_VAE_ENCODE_ATTACH)
    return GST_BASE_TRANSFORM_CLASS (parent_class)->prepare_output_buffer
        (trans, input, outbuf);
  *outbuf = gst_buffer_copy (input);
  gst_buffer_foreach_meta (*outbuf, remove_latent_meta, NULL);
  return GST_FLOW_OK;
}

/* ------------------------------------------------------------------------ */
/* processing */

static GstFlowReturn
gst_vae_encode_transform (GstBaseTransform * trans, GstBuffer * inbuf,
    GstBuffer * outbuf)
{
  GstVaeEncode *self = GST_VAE_ENCODE (trans);
  GstVaeBase *base = GST_VAE_BASE (trans);
  GeVaeCodec *codec = gst_vae_base_codec (base);
  GstVideoFrame frame;
  GstMapInfo map = GST_MAP_INFO_INIT;
  GeImageU8 img;
  GError *err = NULL;
  gfloat *latent = self->scratch;
  const gsize bytes = gst_vae_encode_latent_bytes (self);
  GstVaeEncodeSampleMode sample_mode;
  guint64 seed;
  gint64 t0;
  gboolean ok;

  if (!gst_generative_check_frame (GST_ELEMENT (self), &self->vinfo, inbuf))
    return GST_FLOW_ERROR;
  if (!gst_video_frame_map (&frame, &self->vinfo, inbuf, GST_MAP_READ)) {
    GST_ELEMENT_ERROR (self, STREAM, FORMAT, ("Could not map a frame."),
        ("buffer of %" G_GSIZE_FORMAT " bytes for %s %dx%d",
            gst_buffer_get_size (inbuf), GST_VIDEO_INFO_NAME (&self->vinfo),
            GST_VIDEO_INFO_WIDTH (&self->vinfo),
            GST_VIDEO_INFO_HEIGHT (&self->vinfo)));
    return GST_FLOW_ERROR;
  }
  if (self->mode == GST_VAE_ENCODE_LATENT_STREAM) {
    if (!gst_buffer_map (outbuf, &map, GST_MAP_WRITE) || map.size < bytes) {
      if (map.memory)
        gst_buffer_unmap (outbuf, &map);
      gst_video_frame_unmap (&frame);
      GST_ELEMENT_ERROR (self, CORE, FAILED, (NULL),
          ("output buffer too small for %" G_GSIZE_FORMAT " bytes", bytes));
      return GST_FLOW_ERROR;
    }
    /* Straight into the buffer when its memory holds floats aligned. */
    if (((guintptr) map.data) % G_ALIGNOF (gfloat) == 0)
      latent = (gfloat *) map.data;
  }

  GST_OBJECT_LOCK (self);
  sample_mode = self->sample_mode;
  seed = self->seed;
  GST_OBJECT_UNLOCK (self);
  gst_generative_frame_image (&frame, &img);
  gst_vae_base_apply_settings (base, img.width, img.height);
  ge_vae_codec_set_sample_mode (codec, sample_mode == GST_VAE_ENCODE_SAMPLE ?
      GE_VAE_SAMPLE : GE_VAE_MEAN, seed);

  t0 = g_get_monotonic_time ();
  ok = ge_vae_codec_encode (codec, &img, latent, &err);
  gst_video_frame_unmap (&frame);
  if (ok && self->mode == GST_VAE_ENCODE_LATENT_STREAM
      && latent == self->scratch)
    memcpy (map.data, latent, bytes);
  if (map.memory)
    gst_buffer_unmap (outbuf, &map);
  if (!ok) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Encoding a %dx%d frame with \"%s\" failed.", img.width, img.height,
            gst_vae_base_model_path (base)), ("%s", err->message));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
  if (self->mode == GST_VAE_ENCODE_ATTACH)
    gst_buffer_add_latent_meta (outbuf, self->lw, self->lh,
        ge_vae_codec_latent_channels (codec), ge_vae_codec_factor (codec),
        ge_vae_codec_scaling_factor (codec), latent);
  gst_vae_base_frame_done (base, (g_get_monotonic_time () - t0) / 1000.0);
  return GST_FLOW_OK;
}

/* ------------------------------------------------------------------------ */

static void
gst_vae_encode_finalize (GObject * object)
{
  g_free (GST_VAE_ENCODE (object)->scratch);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_vae_encode_class_init (GstVaeEncodeClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_vae_encode_debug, "vaeencode", 0,
      "VAE encoder");

  gobject_class->set_property = gst_vae_encode_set_property;
  gobject_class->get_property = gst_vae_encode_get_property;
  gobject_class->finalize = gst_vae_encode_finalize;

  g_object_class_install_property (gobject_class, PROP_OUTPUT_MODE,
      g_param_spec_enum ("output-mode", "Output mode",
          "Latents as a tensor stream, or attached to the frames as metadata",
          gst_vae_encode_output_mode_get_type (), DEFAULT_OUTPUT_MODE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_SAMPLE_MODE,
      g_param_spec_enum ("sample-mode", "Sample mode",
          "The latent distribution's mean, or a draw from it",
          gst_vae_encode_sample_mode_get_type (), DEFAULT_SAMPLE_MODE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_SEED,
      g_param_spec_uint64 ("seed", "Seed",
          "Seed of the noise of sample-mode=sample (the same noise in every "
          "frame)", 0, G_MAXUINT64, DEFAULT_SEED,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  gst_element_class_set_static_metadata (element_class,
      "VAE encoder", "Filter/Encoder/Video",
      "Encodes video frames into VAE latents, as a tensor stream or as "
      "metadata on the frames", "gst-generative contributors");
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);

  trans_class->transform_caps =
      GST_DEBUG_FUNCPTR (gst_vae_encode_transform_caps);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_vae_encode_set_caps);
  trans_class->transform_size =
      GST_DEBUG_FUNCPTR (gst_vae_encode_transform_size);
  trans_class->decide_allocation =
      GST_DEBUG_FUNCPTR (gst_vae_encode_decide_allocation);
  trans_class->prepare_output_buffer =
      GST_DEBUG_FUNCPTR (gst_vae_encode_prepare_output_buffer);
  trans_class->transform = GST_DEBUG_FUNCPTR (gst_vae_encode_transform);

  gst_type_mark_as_plugin_api (gst_vae_encode_output_mode_get_type (), 0);
  gst_type_mark_as_plugin_api (gst_vae_encode_sample_mode_get_type (), 0);
  /* Registered with the element, so that applications find it by name. */
  gst_latent_meta_get_info ();
}

static void
gst_vae_encode_init (GstVaeEncode * self)
{
  self->output_mode = DEFAULT_OUTPUT_MODE;
  self->sample_mode = DEFAULT_SAMPLE_MODE;
  self->seed = DEFAULT_SEED;
}
