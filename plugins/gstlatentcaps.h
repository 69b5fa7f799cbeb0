/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* gstlatentcaps.h: the latent stream's caps of vaeencode and vaedecode,
 * read and made by pure functions of the caps and the model's numbers (no
 * element), so that the fuzzer (fuzz/fuzz-latent.c) runs the very code the
 * elements negotiate with. */
#ifndef __GST_LATENT_CAPS_H__
#define __GST_LATENT_CAPS_H__

#include <gst/gst.h>

G_BEGIN_DECLS

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

/* "W:H:C[:1]" (NNStreamer leaves trailing 1s out at times), each 1 to
 * 65535; FALSE for anything else (or NULL). */
gboolean gst_latent_caps_parse_dims (const gchar * dims, gint * w, gint * h,
    gint * c);

/* Video caps -> latent caps and back.  @factor, @channels, @scaling: the
 * loaded model's; @factor 0 when no model is loaded yet (the result then
 * leaves the sizes open).  Every structure of the result is a subset of
 * GST_VAE_LATENT_CAPS (resp. GST_VAE_VIDEO_CAPS): a field out of range
 * leaves its structure out. */
GstCaps *gst_latent_caps_from_video (GstCaps * caps, gint factor,
    gint channels, gdouble scaling);
GstCaps *gst_latent_caps_to_video (GstCaps * caps, gint factor,
    gint channels);

typedef enum
{
  GST_LATENT_CAPS_OK,
  GST_LATENT_CAPS_NOT_TENSOR,   /* not one float32 tensor of W:H:C:1 */
  GST_LATENT_CAPS_OTHER_MODEL,  /* channels or factor of another model */
  GST_LATENT_CAPS_OTHER_SIZE,   /* not the latent of @video_w x @video_h */
  GST_LATENT_CAPS_TOO_LARGE,    /* decodes to more than GST_LATENT_MAX_PIXELS */
} GstLatentCapsCheck;

/* The largest frame vaedecode decodes (the padded frame, before any crop):
 * latent caps can claim sizes whose frame no memory holds. */
#define GST_LATENT_MAX_PIXELS (8192 * 8192)

/* Checks the first structure of fixed latent caps @caps against a model of
 * @factor (>= 1) and @channels, decoding to @video_w x @video_h frames.
 * Sets *@lw, *@lh, *@c (from the dimensions) and *@f (the caps'
 * downsample-factor, 0 when they have none) as far as it got. */
GstLatentCapsCheck gst_latent_caps_check (GstCaps * caps, gint factor,
    gint channels, gint video_w, gint video_h, gint * lw, gint * lh, gint * c,
    gint * f);

/* What the latents of @caps were multiplied by (applied-scaling-factor),
 * 1 when the caps do not say.  FALSE (and *@scaling the value found, NaN
 * for a field that is not a double) when it cannot be undone: not a
 * positive number whose inverse is a normal float, which would turn every
 * value into 0, infinity or NaN. */
gboolean gst_latent_caps_applied_scaling (GstCaps * caps, gdouble * scaling);

G_END_DECLS

#endif /* __GST_LATENT_CAPS_H__ */
