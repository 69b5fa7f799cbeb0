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

G_BEGIN_DECLS

#define GST_TYPE_VAE_BASE (gst_vae_base_get_type ())
G_DECLARE_DERIVABLE_TYPE (GstVaeBase, gst_vae_base, GST, VAE_BASE,
    GstBaseTransform);

/* The latent stream: NNStreamer's static tensor caps, dimensions
 * innermost first (W:H:C:1: the buffer is C planes of H rows of W
 * floats), plus what a decoder needs to restore the frame. */
#define GST_VAE_LATENT_CAPS "other/tensors, format = (string) static, " \
  "num_tensors = (int) 1, types = (string) float32"

#define GST_VAE_VIDEO_FORMATS "{ RGB, BGR, RGBx, BGRx, RGBA, BGRA }"
#define GST_VAE_VIDEO_CAPS "video/x-raw, format = (string) " \
  GST_VAE_VIDEO_FORMATS ", width = (int) [ 1, 65535 ], " \
  "height = (int) [ 1, 65535 ], framerate = (fraction) [ 0, MAX ], " \
  "interlace-mode = (string) progressive"

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

/* The largest frame vaedecode makes, in pixels (8192x8192, 8K UHD and
 * more): the decoder holds the whole frame in float32 several times over,
 * and latent caps far beyond it are a lie, not a picture. */
#define GST_VAE_MAX_PIXELS (8192 * 8192)

/* Checks latent caps against the loaded model (types, channels, factor,
 * frame size, GST_VAE_MAX_PIXELS); posts CORE/NEGOTIATION naming the model
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
