/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 *
 * This library is distributed in the hope that it will be useful,
 * but WITHOUT ANY WARRANTY; without even the implied warranty of
 * MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU
 * Library General Public License for more details.
 *
 * You should have received a copy of the GNU Library General Public
 * License along with this library; if not, write to the
 * Free Software Foundation, Inc., 51 Franklin St, Fifth Floor,
 * Boston, MA 02110-1301, USA.
 */

#ifndef __GST_DIFFUSION_SR_H__
#define __GST_DIFFUSION_SR_H__

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/video/gstvideofilter.h>

#include "ge-sr.h"
#include "gstgenerativeutil.h"

G_BEGIN_DECLS

#define GST_TYPE_DIFFUSION_SR (gst_diffusion_sr_get_type ())
G_DECLARE_FINAL_TYPE (GstDiffusionSr, gst_diffusion_sr, GST, DIFFUSION_SR,
    GstVideoFilter);

/**
 * GstDiffusionSrScale:
 * @GST_DIFFUSION_SR_SCALE_X2: twice the width and height
 * @GST_DIFFUSION_SR_SCALE_X4: four times the width and height
 *
 * The upscaling factors the super-resolution models are trained for.
 */
typedef enum
{
  GST_DIFFUSION_SR_SCALE_X2 = 2,
  GST_DIFFUSION_SR_SCALE_X4 = 4,
} GstDiffusionSrScale;

#define GST_TYPE_DIFFUSION_SR_SCALE (gst_diffusion_sr_scale_get_type ())
GType gst_diffusion_sr_scale_get_type (void);

struct _GstDiffusionSr
{
  GstVideoFilter parent;

  /* Properties; protected by the object lock.  model_file NULL = the
   * installed model of the chosen scale. */
  gchar *model_file;
  gint scale;
  gint num_steps;
  guint64 seed;
  gint tile_size;
  gint tile_overlap;
  gint n_threads;
  gint precision;               /* GePrecision */

  /* Between start() and stop(); only the streaming thread uses it. */
  GeSr *sr;
  gchar *loaded_path;
  gint active_scale;            /* the model's scale once loaded (lock) */

  /* Settings last handed to the engine (streaming thread). */
  gint applied_steps;
  gint applied_tile;
  gint applied_overlap;
  gint applied_n_threads;
  gint applied_precision;
  guint64 applied_seed;
  gboolean applied_seed_valid;

  /* QoS state, from the QoS events (object lock). */
  guint late_events;
  guint ontime_events;
  gboolean qos_reduced;
  gint full_steps;              /* the steps without QoS reduction */

  /* Statistics (object lock). */
  GstGenerativeTiming timing;
  guint64 qos_reductions;
  gint steps_in_use;
};

GST_ELEMENT_REGISTER_DECLARE (diffusionsr);

G_END_DECLS

#endif /* __GST_DIFFUSION_SR_H__ */
