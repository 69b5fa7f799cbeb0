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
#include "gstgenerativeutil.h"

G_BEGIN_DECLS

#define GST_TYPE_DIFFUSION_IMG2IMG (gst_diffusion_img2img_get_type ())
G_DECLARE_FINAL_TYPE (GstDiffusionImg2Img, gst_diffusion_img2img, GST,
    DIFFUSION_IMG2IMG, GstVideoFilter);

struct _GstDiffusionImg2Img
{
  GstVideoFilter parent;

  /* Properties (object lock); model_file NULL = the installed model. */
  gchar *model_file;
  gdouble strength;
  gint num_steps;
  guint64 seed;
  gint tile_size;
  gint tile_overlap;
  gint n_threads;
  gint precision;               /* GePrecision */

  /* Between start() and stop(); only the streaming thread uses it. */
  GeImg2Img *task;
  gchar *loaded_path;
  gint applied_n_threads;
  gint applied_precision;

  GstGenerativeTiming timing;   /* object lock */
};

GST_ELEMENT_REGISTER_DECLARE (diffusionimg2img);

G_END_DECLS

#endif /* __GST_DIFFUSION_IMG2IMG_H__ */
