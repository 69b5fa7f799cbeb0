/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */
#ifndef __GST_VAE_ENCODE_H__
#define __GST_VAE_ENCODE_H__

#include "gstvaebase.h"

G_BEGIN_DECLS

/**
 * GstVaeEncodeOutputMode:
 * @GST_VAE_ENCODE_LATENT_STREAM: latents replace the frames (other/tensors)
 * @GST_VAE_ENCODE_ATTACH: frames pass on with the latent as a #GstLatentMeta
 */
typedef enum
{
  GST_VAE_ENCODE_LATENT_STREAM,
  GST_VAE_ENCODE_ATTACH,
} GstVaeEncodeOutputMode;

/**
 * GstVaeEncodeSampleMode:
 * @GST_VAE_ENCODE_MEAN: the latent distribution's mean
 * @GST_VAE_ENCODE_SAMPLE: a draw from it, with the seed's fixed noise
 */
typedef enum
{
  GST_VAE_ENCODE_MEAN,
  GST_VAE_ENCODE_SAMPLE,
} GstVaeEncodeSampleMode;

#define GST_TYPE_VAE_ENCODE (gst_vae_encode_get_type ())
G_DECLARE_FINAL_TYPE (GstVaeEncode, gst_vae_encode, GST, VAE_ENCODE,
    GstVaeBase);

struct _GstVaeEncode
{
  GstVaeBase parent;

  /* Properties (object lock). */
  GstVaeEncodeOutputMode output_mode;
  GstVaeEncodeSampleMode sample_mode;
  guint64 seed;

  /* Streaming thread. */
  GstVideoInfo vinfo;
  GstVaeEncodeOutputMode mode;  /* as negotiated */
  gint lw, lh;
  gfloat *scratch;              /* attach mode: the latent before the meta */
};

GST_ELEMENT_REGISTER_DECLARE (vaeencode);

G_END_DECLS

#endif /* __GST_VAE_ENCODE_H__ */
