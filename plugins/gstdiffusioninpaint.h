/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

#ifndef __GST_DIFFUSION_INPAINT_H__
#define __GST_DIFFUSION_INPAINT_H__

#include <gst/gst.h>
#include <gst/base/gstaggregator.h>
#include <gst/video/video.h>

#include "ge-inpaint.h"
#include "gstgenerativecore.h"

G_BEGIN_DECLS

#define GST_TYPE_DIFFUSION_INPAINT (gst_diffusion_inpaint_get_type ())
G_DECLARE_FINAL_TYPE (GstDiffusionInpaint, gst_diffusion_inpaint, GST,
    DIFFUSION_INPAINT, GstAggregator);

typedef enum
{
  GST_DIFFUSION_INPAINT_MASK_AUTO,
  GST_DIFFUSION_INPAINT_MASK_PAD,
  GST_DIFFUSION_INPAINT_MASK_ALPHA,
  GST_DIFFUSION_INPAINT_MASK_ROI_META,
  GST_DIFFUSION_INPAINT_MASK_FILE,
} GstDiffusionInpaintMaskSource;

#define GST_TYPE_DIFFUSION_INPAINT_MASK_SOURCE \
  (gst_diffusion_inpaint_mask_source_get_type ())
GType gst_diffusion_inpaint_mask_source_get_type (void);

struct _GstDiffusionInpaint
{
  GstAggregator parent;

  GstAggregatorPad *sinkpad;
  GstAggregatorPad *maskpad;    /* the request pad, or NULL (object lock) */

  /* model-file, num-steps, seed, n-threads, stats, the prompt and
   * guidance of pipeline folders, QoS and timing. */
  GstGenerativeCore core;

  /* Properties; protected by the object lock. */
  GstDiffusionInpaintMaskSource mask_source;
  gchar *mask_file;
  guint mask_threshold;
  gboolean invert_mask;
  gint feather;
  gint jump_length;
  gint jump_n_sample;
  gdouble exemplar_guidance;

  /* Between start() and stop() (streaming thread).  ip: our own model; a
   * pipeline folder lives in the core instead. */
  GeInpaint *ip;
  guint8 *file_mask;            /* mask-file, 8-bit grey */
  gint file_w, file_h;
  GstVideoInfo vinfo;           /* sink caps */
  gboolean have_vinfo;
  GstVideoInfo minfo;           /* mask pad caps */
  gboolean have_minfo;
  GstBuffer *mask_buf;          /* the mask in force from the pad */
  gint mask_flushed;            /* atomic: the mask pad flushed, drop it */
  GstVideoInfo mask_buf_info;
  guint8 *mask;                 /* the frame's binary mask, width x height */
  gsize mask_len;
  gboolean warned_no_mask;

  /* Statistics (object lock); frames, dropped and times are the core's. */
  guint64 passed_through;
  guint64 masked_pixels;        /* of the last frame */
  guint64 diffused_pixels;      /* of the last frame */
  guint64 reused_boxes;         /* of the last frame */
};

GST_ELEMENT_REGISTER_DECLARE (diffusioninpaint);

G_END_DECLS

#endif /* __GST_DIFFUSION_INPAINT_H__ */
