/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* gstlatentmeta.h: the VAE latent that vaeencode output-mode=attach puts on
 * video frames.  Installed for applications: they need no library, only
 * this header; the meta's API type is registered by the plugin, under the
 * name GST_LATENT_META_API_NAME, once vaeencode has been created.
 *
 *   GstLatentMeta *m = gst_buffer_get_latent_meta (buffer);
 *   if (m)  // m->data[(c * m->height + y) * m->width + x]
 *
 * The meta is tagged "video" and "size" (and "orientation"): elements that
 * change the pixels' geometry (videoscale, videoflip, videocrop ...) drop
 * it instead of carrying a latent that no longer matches; elements that
 * copy or pass frames keep it.
 */
#ifndef __GST_LATENT_META_H__
#define __GST_LATENT_META_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_LATENT_META_API_NAME "GstLatentMetaAPI"

/**
 * GstLatentMeta:
 * @meta: the parent #GstMeta
 * @width: latent width (ceil (frame width / @factor))
 * @height: latent height
 * @channels: latent channels
 * @factor: the VAE's downsampling factor
 * @scaling_factor: the model's scaling_factor (diffusion models use
 *   @data times this); @data itself is not scaled
 * @data: float32 [channels][height][width], owned by the meta
 */
typedef struct
{
  GstMeta meta;
  gint width, height, channels, factor;
  gdouble scaling_factor;
  gfloat *data;
} GstLatentMeta;

/* For applications: NULL when the buffer has none (or the plugin never
 * registered the type in this process). */
static inline GstLatentMeta *
gst_buffer_get_latent_meta (GstBuffer * buffer)
{
  GType api = g_type_from_name (GST_LATENT_META_API_NAME);

  return api ? (GstLatentMeta *) gst_buffer_get_meta (buffer, api) : NULL;
}

/* Inside the plugin. */
GType gst_latent_meta_api_get_type (void);
const GstMetaInfo *gst_latent_meta_get_info (void);
/* Adds a meta holding a copy of @data. */
GstLatentMeta *gst_buffer_add_latent_meta (GstBuffer * buffer, gint width,
    gint height, gint channels, gint factor, gdouble scaling_factor,
    const gfloat * data);

G_END_DECLS

#endif /* __GST_LATENT_META_H__ */
