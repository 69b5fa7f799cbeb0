/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */
#ifndef __GST_VAE_DECODE_H__
#define __GST_VAE_DECODE_H__

#include "gstvaebase.h"

G_BEGIN_DECLS

#define GST_TYPE_VAE_DECODE (gst_vae_decode_get_type ())
G_DECLARE_FINAL_TYPE (GstVaeDecode, gst_vae_decode, GST, VAE_DECODE,
    GstVaeBase);

struct _GstVaeDecode
{
  GstVaeBase parent;

  /* Streaming thread. */
  GstVideoInfo vinfo;
  gint lw, lh, channels;
  gfloat *aligned;              /* for latents that are not float-aligned */
  gdouble applied_scaling;      /* what the latents were multiplied by */
};

GST_ELEMENT_REGISTER_DECLARE (vaedecode);

G_END_DECLS

#endif /* __GST_VAE_DECODE_H__ */
