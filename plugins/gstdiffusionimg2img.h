/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */
#ifndef __GST_DIFFUSION_IMG2IMG_H__
#define __GST_DIFFUSION_IMG2IMG_H__

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/video/gstvideofilter.h>

#include "ge-img2img.h"
#include "gstgenerativecore.h"

G_BEGIN_DECLS

#define GST_TYPE_DIFFUSION_IMG2IMG (gst_diffusion_img2img_get_type ())
G_DECLARE_FINAL_TYPE (GstDiffusionImg2Img, gst_diffusion_img2img, GST,
    DIFFUSION_IMG2IMG, GstVideoFilter);

struct _GstDiffusionImg2Img
{
  GstVideoFilter parent;

  /* model-file, num-steps, seed, tiling, n-threads, stats, the prompt and
   * guidance of pipeline folders, QoS and timing. */
  GstGenerativeCore core;

  /* Properties (object lock). */
  gdouble strength;

  /* Between start() and stop(); only the streaming thread uses it.
   * task: our own model; a pipeline folder lives in the core instead. */
  GeImg2Img *task;
  gint applied_n_threads;
};

GST_ELEMENT_REGISTER_DECLARE (diffusionimg2img);

G_END_DECLS

#endif /* __GST_DIFFUSION_IMG2IMG_H__ */
