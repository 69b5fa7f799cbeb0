/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* gstvaebase.h: what vaeencode and vaedecode share: the VAE model and its
 * properties (model-file, tile-size, tile-overlap, n-threads, stats,
 * downsample-factor), the latent caps on either side, statistics, QoS drop
 * counting and the latency query. */
#ifndef __GST_VAE_BASE_H__
#define __GST_VAE_BASE_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>

#include "ge-vae-codec.h"
#include "gstlatentcaps.h"

G_BEGIN_DECLS

#define GST_TYPE_VAE_BASE (gst_vae_base_get_type ())
G_DECLARE_DERIVABLE_TYPE (GstVaeBase, gst_vae_base, GST, VAE_BASE,
    GstBaseTransform);

struct _GstVaeBaseClass
{
  GstBaseTransformClass parent_class;
};

/* Between start() and stop(); only the streaming thread uses it. */
GeVaeCodec *gst_vae_base_codec (GstVaeBase * self);
const gchar *gst_vae_base_model_path (GstVaeBase * self);

/* Video caps -> latent caps and back, with the sizes when the model is
 * loaded and the caps fix them. */
GstCaps *gst_vae_base_video_to_latent_caps (GstVaeBase * self, GstCaps * caps);
GstCaps *gst_vae_base_latent_to_video_caps (GstVaeBase * self, GstCaps * caps);

/* Checks latent caps against the loaded model (types, channels, factor,
 * frame size, GST_LATENT_MAX_PIXELS); posts CORE/NEGOTIATION naming the model
 * when they do not fit.  @width x @height: the frame size the latent
 * decodes to. */
gboolean gst_vae_base_check_latent_caps (GstVaeBase * self, GstCaps * caps,
    gint width, gint height, gint * lw, gint * lh);

/* Hands changed properties to the engine; call before each frame (of
 * @width x @height pixels: automatic tiling depends on it). */
void gst_vae_base_apply_settings (GstVaeBase * self, gint width, gint height);
/* Counts a processed frame of @ms and updates the latency. */
void gst_vae_base_frame_done (GstVaeBase * self, gdouble ms);

G_END_DECLS

#endif /* __GST_VAE_BASE_H__ */
