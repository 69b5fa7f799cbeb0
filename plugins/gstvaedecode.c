/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:element-vaedecode
 * @title: vaedecode
 * @see_also: vaeencode
 *
 * Decodes VAE latents (the tensor stream of vaeencode
 * output-mode=latent-stream, or any `other/tensors` stream of one float32
 * tensor of dimensions W:H:C:1) back into video frames.  The frame size is
 * the caps' `video-width` and `video-height` when present (vaeencode's
 * padding is cropped off), else the latent size times the model's
 * downsampling factor.
 *
 * Latents must come from a model with the same number of channels and, when
 * the caps say it, the same downsampling factor: anything else is a
 * negotiation error that names the model, never a garbled picture.  A
 * latent buffer of the wrong size or holding NaNs or infinities is a stream
 * error, and so are latents whose values are so large that the decoder
 * overflows (no frame of whatever 8-bit value NaN turns into).  Latents
 * that decode to more than 8192x8192 pixels (GST_LATENT_MAX_PIXELS) are
 * refused at negotiation.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=clip.latent ! gdpdepay ! vaedecode ! videoconvert ! autovideosink
 * ]| Plays latents stored by vaeencode.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <float.h>
#include <math.h>
#include <string.h>

#include "gstvaedecode.h"
#include "gstgenerativeutil.h"

GST_DEBUG_CATEGORY_STATIC (gst_vae_decode_debug);
#define GST_CAT_DEFAULT gst_vae_decode_debug

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VAE_LATENT_CAPS ", framerate = (fraction) [ 0, MAX ]"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (GST_VAE_VIDEO_CAPS));

#define gst_vae_decode_parent_class parent_class
G_DEFINE_TYPE (GstVaeDecode, gst_vae_decode, GST_TYPE_VAE_BASE);
GST_ELEMENT_REGISTER_DEFINE (vaedecode, "vaedecode", GST_RANK_NONE,
    GST_TYPE_VAE_DECODE);

static GstCaps *
gst_vae_decode_transform_caps (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps, GstCaps * filter)
{
  GstVaeBase *base = GST_VAE_BASE (trans);
  GstCaps *res = direction == GST_PAD_SINK ?
      gst_vae_base_latent_to_video_caps (base, caps) :
      gst_vae_base_video_to_latent_caps (base, caps);

  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, res,
        GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (res);
    res = tmp;
  }
  GST_DEBUG_OBJECT (trans, "%s: %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT,
      direction == GST_PAD_SINK ? "downstream" : "upstream", caps, res);
  return res;
}

static gboolean
gst_vae_decode_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstVaeDecode *self = GST_VAE_DECODE (trans);
  GstVaeBase *base = GST_VAE_BASE (trans);
  GeVaeCodec *codec = gst_vae_base_codec (base);

  if (!codec) {
    GST_ERROR_OBJECT (self, "caps set before the model was loaded");
    return FALSE;
  }
  {
    GstStructure *vs = gst_caps_get_structure (outcaps, 0);
    gint w = 0, h = 0;

    /* The latent's size first: caps that lie about it can ask for frames
     * too large for a GstVideoInfo, which would fail without a word. */
    if (!gst_structure_get_int (vs, "width", &w)
        || !gst_structure_get_int (vs, "height", &h)
        || !gst_vae_base_check_latent_caps (base, incaps, w, h, &self->lw,
            &self->lh))
      return FALSE;
    if (!gst_video_info_from_caps (&self->vinfo, outcaps)) {
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("Cannot make %dx%d frames.", w, h), ("caps: %" GST_PTR_FORMAT,
              outcaps));
      return FALSE;
    }
  }
  self->channels = ge_vae_codec_latent_channels (codec);
  /* Latents a pipeline scaled (applied-scaling-factor) are unscaled before
   * decoding, as diffusers decodes latents / scaling_factor.  A factor that
   * cannot be undone is refused, never taken as 1. */
  if (!gst_latent_caps_applied_scaling (incaps, &self->applied_scaling)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Latent caps give applied-scaling-factor %g, which cannot be "
            "undone.", self->applied_scaling), ("caps: %" GST_PTR_FORMAT,
            incaps));
    return FALSE;
  }
  self->aligned = g_renew (gfloat, self->aligned,
      (gsize) self->lw * self->lh * self->channels);
  GST_INFO_OBJECT (self, "%dx%dx%d latents -> %dx%d %s", self->lw, self->lh,
      self->channels, GST_VIDEO_INFO_WIDTH (&self->vinfo),
      GST_VIDEO_INFO_HEIGHT (&self->vinfo), GST_VIDEO_INFO_NAME (&self->vinfo));
  return TRUE;
}

static gboolean
gst_vae_decode_transform_size (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps, gsize size, GstCaps * othercaps,
    gsize * othersize)
{
  GstVideoInfo info;

  if (direction != GST_PAD_SINK || !gst_video_info_from_caps (&info,
          othercaps))
    return FALSE;
  *othersize = GST_VIDEO_INFO_SIZE (&info);
  return TRUE;
}

static GstFlowReturn
gst_vae_decode_transform (GstBaseTransform * trans, GstBuffer * inbuf,
    GstBuffer * outbuf)
{
  GstVaeDecode *self = GST_VAE_DECODE (trans);
  GstVaeBase *base = GST_VAE_BASE (trans);
  GeVaeCodec *codec = gst_vae_base_codec (base);
  const gsize bytes = (gsize) self->lw * self->lh * self->channels *
      sizeof (gfloat);
  GstVideoFrame frame;
  GstMapInfo map;
  GeImageU8 img;
  GError *err = NULL;
  const gfloat *latent;
  gint64 t0;
  gboolean ok;

  if (!gst_buffer_map (inbuf, &map, GST_MAP_READ))
    return GST_FLOW_ERROR;
  if (map.size != bytes) {
    gst_buffer_unmap (inbuf, &map);
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("A latent buffer of %" G_GSIZE_FORMAT " bytes, %" G_GSIZE_FORMAT
            " expected for %dx%dx%d float32.", map.size, bytes, self->lw,
            self->lh, self->channels), (NULL));
    return GST_FLOW_ERROR;
  }
  latent = (const gfloat *) map.data;
  if (self->applied_scaling != 1.0) {
    const gsize n = bytes / sizeof (gfloat);
    const gfloat inv = (gfloat) (1.0 / self->applied_scaling);

    memcpy (self->aligned, map.data, bytes);
    for (gsize i = 0; i < n; i++)
      self->aligned[i] *= inv;
    latent = self->aligned;
  } else if (((guintptr) map.data) % G_ALIGNOF (gfloat) != 0) {
    memcpy (self->aligned, map.data, bytes);
    latent = self->aligned;
  }
  if (!gst_video_frame_map (&frame, &self->vinfo, outbuf, GST_MAP_WRITE)) {
    gst_buffer_unmap (inbuf, &map);
    GST_ELEMENT_ERROR (self, CORE, FAILED, (NULL), ("could not map output"));
    return GST_FLOW_ERROR;
  }
  gst_generative_frame_image (&frame, &img);
  gst_vae_base_apply_settings (base, img.width, img.height);

  t0 = g_get_monotonic_time ();
  ok = ge_vae_codec_decode (codec, latent, self->lw, self->lh, &img, &err);
  gst_video_frame_unmap (&frame);
  gst_buffer_unmap (inbuf, &map);
  if (!ok) {
    GST_ELEMENT_ERROR (self, STREAM, DECODE,
        ("Decoding a %dx%d latent with \"%s\" failed.", self->lw, self->lh,
            gst_vae_base_model_path (base)), ("%s", err->message));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
  gst_vae_base_frame_done (base, (g_get_monotonic_time () - t0) / 1000.0);
  return GST_FLOW_OK;
}

static void
gst_vae_decode_finalize (GObject * object)
{
  g_free (GST_VAE_DECODE (object)->aligned);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_vae_decode_class_init (GstVaeDecodeClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_vae_decode_debug, "vaedecode", 0,
      "VAE decoder");

  gobject_class->finalize = gst_vae_decode_finalize;

  gst_element_class_set_static_metadata (element_class,
      "VAE decoder", "Filter/Decoder/Video",
      "Decodes VAE latents (a tensor stream) into video frames",
      "gst-generative contributors");
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);

  trans_class->transform_caps =
      GST_DEBUG_FUNCPTR (gst_vae_decode_transform_caps);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_vae_decode_set_caps);
  trans_class->transform_size =
      GST_DEBUG_FUNCPTR (gst_vae_decode_transform_size);
  trans_class->transform = GST_DEBUG_FUNCPTR (gst_vae_decode_transform);
}

static void
gst_vae_decode_init (GstVaeDecode * self)
{
}
