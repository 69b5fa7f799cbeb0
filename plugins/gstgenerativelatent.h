/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* gstgenerativelatent.h: the latent meta of gstlatentmeta.h for language
 * bindings.  gstlatentmeta.h's reader is a static inline function and the
 * meta's values a bare pointer, neither of which GObject introspection can
 * describe; these exported functions of the public library
 * libgstgenerative-1.0 (typelib GstGenerative-1.0) can:
 *
 *   from gi.repository import GstGenerative
 *   meta = GstGenerative.buffer_get_latent_meta (buffer)
 *   if meta:
 *       values = meta.get_values ()   # channels * height * width floats
 *
 * C applications keep using gst_buffer_get_latent_meta() of gstlatentmeta.h
 * with no library at all.
 */
#ifndef __GST_GENERATIVE_LATENT_H__
#define __GST_GENERATIVE_LATENT_H__

#include "gstlatentmeta.h"

G_BEGIN_DECLS

/**
 * gst_generative_buffer_get_latent_meta:
 * @buffer: a #GstBuffer
 *
 * The latent vaeencode output-mode=attach put on @buffer.
 *
 * Returns: (transfer none) (nullable): the meta, or %NULL when @buffer
 *   carries none
 */
GstLatentMeta *gst_generative_buffer_get_latent_meta (GstBuffer * buffer);

/**
 * gst_latent_meta_get_values:
 * @meta: a #GstLatentMeta
 * @n_values: (out): the number of values, channels * height * width
 *
 * The latent, float32 [channels][height][width] (innermost: width), not
 * multiplied by the meta's scaling_factor.
 *
 * Returns: (transfer none) (array length=n_values): the meta's own values
 */
const gfloat *gst_latent_meta_get_values (GstLatentMeta * meta,
    gsize * n_values);

/**
 * gst_latent_meta_get_value:
 * @meta: a #GstLatentMeta
 * @channel: 0 to channels - 1
 * @y: latent row, 0 to height - 1
 * @x: latent column, 0 to width - 1
 *
 * Returns: one value of the latent (0 outside it)
 */
gfloat gst_latent_meta_get_value (GstLatentMeta * meta, gint channel, gint y,
    gint x);

G_END_DECLS

#endif /* __GST_GENERATIVE_LATENT_H__ */
