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

/**
 * SECTION:element-diffusionsr
 * @title: diffusionsr
 * @see_also: videoconvertscale, videoscale
 *
 * Upscales video frames and images two or four times with a conditional
 * diffusion model: a small U-Net, run at the input resolution for a few
 * DDIM steps, adds to a bicubic upscale the detail that the low-resolution
 * frame implies.  Alpha, when the format has it, is upscaled bilinearly.
 *
 * With no properties set the element uses the x2 model installed with the
 * plugin; `scale=4` picks the installed x4 model, and `model-file` loads any
 * other diffusionsr model (a .safetensors file; see models/sr/MODEL.md).
 * The model is loaded when the element goes from READY to PAUSED; a missing
 * or broken model, or one whose scale differs from #GstDiffusionSr:scale,
 * is an error that fails that state change.
 *
 * The noise of each output pixel depends only on #GstDiffusionSr:seed and
 * the pixel's position, so a static scene gives the same output in every
 * frame (no shimmer) and the same input always gives the same bytes.
 * Large frames are processed in overlapping tiles blended with smooth
 * weights; the result matches the untiled one up to small differences in
 * the overlaps.
 *
 * The element does QoS: frames that are already late are dropped, and when
 * downstream keeps reporting lateness the number of sampling steps falls to
 * one until the stream catches up again (#GstDiffusionSr:stats tells).  Its
 * measured time per frame is added to the latency.
 *
 * #GstDiffusionSr:model-file may also be a diffusers pipeline folder
 * (model_index.json): LDMSuperResolutionPipeline
 * (CompVis/ldm-super-resolution-4x-openimages) or
 * StableDiffusionUpscalePipeline (stabilityai/stable-diffusion-x4-upscaler,
 * with prompt, guidance-scale and noise-level); both upscale x4, so set
 * `scale=4`.  Frames of any size are padded to the U-Net's multiple and
 * cropped back, large ones tiled (gstgenerativecore.h).  Another pipeline
 * class is an error that lists these.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=in.png ! pngdec ! videoconvert ! diffusionsr ! videoconvert ! pngenc ! filesink location=out.png
 * ]| Upscales an image twice with the installed model.
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! videoconvert ! diffusionsr scale=4 num-steps=2 ! videoconvert ! autovideosink
 * ]| Plays a video four times larger, with two sampling steps per frame.
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! videoconvert ! diffusionsr model-file=ldm-super-resolution-4x-openimages scale=4 num-steps=50 ! videoconvert ! autovideosink
 * ]| Upscales with the LDM x4 pipeline folder.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstdiffusionsr.h"

GST_DEBUG_CATEGORY_STATIC (gst_diffusion_sr_debug);
#define GST_CAT_DEFAULT gst_diffusion_sr_debug

#define DEFAULT_SCALE GST_DIFFUSION_SR_SCALE_X2

enum
{
  PROP_0,
  PROP_SCALE,
  PROP_CORE,                    /* the core's from here on */
};

#define FORMATS "{ RGB, BGR, RGBx, BGRx, RGBA, BGRA }"

/* Interlaced frames would be upscaled across fields: refused. */
static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-raw, format = (string) " FORMATS ", "
        "width = (int) [ 1, 536870911 ], height = (int) [ 1, 536870911 ], "
        "framerate = (fraction) [ 0, MAX ], "
        "interlace-mode = (string) progressive"));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/x-raw, format = (string) " FORMATS ", "
        "width = (int) [ 2, MAX ], height = (int) [ 2, MAX ], "
        "framerate = (fraction) [ 0, MAX ], "
        "interlace-mode = (string) progressive"));

#define gst_diffusion_sr_parent_class parent_class
G_DEFINE_TYPE (GstDiffusionSr, gst_diffusion_sr, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (diffusionsr, "diffusionsr", GST_RANK_NONE,
    GST_TYPE_DIFFUSION_SR);

GType
gst_diffusion_sr_scale_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_DIFFUSION_SR_SCALE_X2, "Twice the width and height", "2"},
    {GST_DIFFUSION_SR_SCALE_X4, "Four times the width and height", "4"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstDiffusionSrScale", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* The installed model of the chosen scale; object lock held. */
static gchar *
gst_diffusion_sr_default_model (GstElement * element)
{
  return g_strdup_printf ("diffusionsr-x%d.safetensors",
      GST_DIFFUSION_SR (element)->scale);
}

static const GstGenerativeCoreSpec core_spec = {
  .props = GST_GENERATIVE_PROP_MODEL_FILE | GST_GENERATIVE_PROP_N_THREADS
      | GST_GENERATIVE_PROP_SEED | GST_GENERATIVE_PROP_NUM_STEPS
      | GST_GENERATIVE_PROP_TILING | GST_GENERATIVE_PROP_STATS
      | GST_GENERATIVE_PROP_TEXT | GST_GENERATIVE_PROP_NOISE_LEVEL
      | GST_GENERATIVE_PROP_PRECISION,
  .model_name = "diffusionsr-x2.safetensors",
  .model_blurb = "Super-resolution model (.safetensors) or diffusers "
      "pipeline folder (LDMSuperResolutionPipeline, "
      "StableDiffusionUpscalePipeline); default: the installed model for "
      "the scale",
  .default_model = gst_diffusion_sr_default_model,
  .model_kind = "a diffusionsr model",
  .tile_overlap = 16,
  .tile_max = G_MAXINT,
  .tile_blurb = "Side of the tiles in input pixels (0 = automatic: whole "
      "frames up to 512x512, tiles of 256 above)",
  /* The U-Net's activations grow with the area: tiles bound the work
   * memory at a cost of about 25% more compute. */
  .auto_whole_pixels = 512 * 512,
  .auto_tile = 256,
  .steps_blurb = "Sampling steps per frame (0 = the model's default); fewer "
      "are faster",
  .seed_blurb = "Seed of the sampling noise (the same noise in every frame)",
  .guidance_scale = 9.0,
  .qos_steps = TRUE,
  .stats_name = "diffusionsr-stats",
  .stats_blurb = "Frames, dropped frames, steps in use, QoS reductions, "
      "the precision running, mean/max ms per frame, load ms",
};

/* ------------------------------------------------------------------------ */
/* properties */

static void
gst_diffusion_sr_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (object);

  if (gst_generative_core_set_property (&self->core, prop_id, value, pspec))
    return;
  switch (prop_id) {
    case PROP_SCALE:
      /* The model and the caps depend on it: only between runs. */
      if (gst_generative_is_running (GST_ELEMENT (self))) {
        GST_WARNING_OBJECT (self, "%s can only change in the NULL or READY "
            "state; ignored", pspec->name);
        return;
      }
      GST_OBJECT_LOCK (self);
      self->scale = g_value_get_enum (value);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_diffusion_sr_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (object);

  if (gst_generative_core_get_property (&self->core, prop_id, value, pspec))
    return;
  switch (prop_id) {
    case PROP_SCALE:
      GST_OBJECT_LOCK (self);
      g_value_set_enum (value, self->scale);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

/* ------------------------------------------------------------------------ */
/* model loading */

static gboolean
gst_diffusion_sr_load (GstElement * element, const gchar * path,
    gpointer user_data, GError ** error)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (element);
  gint scale, model_scale;
  GeSr *sr;

  GST_OBJECT_LOCK (self);
  scale = self->scale;
  GST_OBJECT_UNLOCK (self);

  if (gst_generative_is_pipeline_folder (path)) {
    gint w, h;

    /* Pipeline classes this element runs: ge_sd_supported_classes
     * (GE_SD_SUPER_RESOLUTION). */
    if (!gst_generative_core_open_pipeline (&self->core, path,
            GE_SD_SUPER_RESOLUTION, "our x2 and x4 diffusionsr models", NULL))
      return FALSE;
    gst_generative_core_sd_output_size (&self->core, 1, 1, &w, &h);
    model_scale = w;
    if (model_scale != scale) {
      GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
          ("Pipeline \"%s\" upscales x%d, but scale is %d.", path,
              model_scale, scale), ("Set scale=%d.", model_scale));
      gst_generative_core_stop (&self->core);
      return FALSE;
    }
    GST_OBJECT_LOCK (self);
    self->active_scale = scale;
    GST_OBJECT_UNLOCK (self);
    return TRUE;
  }

  sr = ge_sr_new (path, error);
  if (!sr)
    return FALSE;
  model_scale = ge_sr_scale (sr);
  if (model_scale != scale) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Model \"%s\" upscales x%d, but scale is %d.", path, model_scale,
            scale), ("Set scale=%d, or pick a model made for x%d.",
            model_scale, scale));
    ge_sr_free (sr);
    return FALSE;
  }
  self->sr = sr;
  GST_OBJECT_LOCK (self);
  self->core.steps_in_use = ge_sr_default_steps (sr);
  self->active_scale = scale;
  GST_OBJECT_UNLOCK (self);
  GST_INFO_OBJECT (self, "%s: x%d, %d steps, min size %d", path, scale,
      ge_sr_default_steps (sr), ge_sr_min_size (sr));
  return TRUE;
}

static gboolean
gst_diffusion_sr_start (GstBaseTransform * trans)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (trans);

  if (!gst_generative_core_start (&self->core, gst_diffusion_sr_load, NULL))
    return FALSE;
  /* Force every engine setting to be applied before the first frame. */
  self->applied_steps = -1;
  self->applied_tile = -1;
  self->applied_overlap = -1;
  self->applied_n_threads = -1;
  self->applied_seed_valid = FALSE;
  return TRUE;
}

static gboolean
gst_diffusion_sr_stop (GstBaseTransform * trans)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (trans);

  g_clear_pointer (&self->sr, ge_sr_free);
  gst_generative_core_stop (&self->core);
  GST_OBJECT_LOCK (self);
  self->active_scale = 0;
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* caps */

/* The scale caps are computed with: the loaded model's once started, the
 * property's before (caps queries come in READY too). */
static gint
gst_diffusion_sr_caps_scale (GstDiffusionSr * self)
{
  gint s;

  GST_OBJECT_LOCK (self);
  s = self->active_scale ? self->active_scale : self->scale;
  GST_OBJECT_UNLOCK (self);
  return s;
}

static gint
gcd_int (gint a, gint b)
{
  while (b) {
    gint t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/* Maps one width or height value (int, int range, or list of those) from
 * the @direction side to the other: times @s towards src, divided by @s
 * towards sink (only the sizes divisible by @s have a sink size).  Int
 * ranges keep their exact value set, as a range with a step.  FALSE when
 * no value maps. */
static gboolean
gst_diffusion_sr_map_size (const GValue * in, gint s,
    GstPadDirection direction, GValue * out)
{
  if (G_VALUE_HOLDS_INT (in)) {
    gint v = g_value_get_int (in);

    if (direction == GST_PAD_SINK) {
      if (v > G_MAXINT / s)
        return FALSE;
      v *= s;
    } else {
      if (v % s)
        return FALSE;
      v /= s;
    }
    g_value_init (out, G_TYPE_INT);
    g_value_set_int (out, v);
    return TRUE;
  }

  if (GST_VALUE_HOLDS_INT_RANGE (in)) {
    gint64 min = gst_value_get_int_range_min (in);
    gint64 max = gst_value_get_int_range_max (in);
    gint64 step = gst_value_get_int_range_step (in);
    gint64 lo, hi, nstep;

    if (direction == GST_PAD_SINK) {
      nstep = step * s;
      lo = min * s;
      /* the largest multiple of the new step that fits in an int */
      hi = MIN (max * s, (G_MAXINT / nstep) * nstep);
    } else {
      /* values in the range that are multiples of both step and s */
      gint64 l = step / gcd_int (step, s) * s;

      lo = (min + l - 1) / l * l / s;
      hi = max / l * l / s;
      nstep = l / s;
    }
    if (lo < 1)
      lo = nstep;
    if (lo > hi || nstep > G_MAXINT)
      return FALSE;
    if (lo == hi) {
      g_value_init (out, G_TYPE_INT);
      g_value_set_int (out, lo);
    } else {
      g_value_init (out, GST_TYPE_INT_RANGE);
      gst_value_set_int_range_step (out, lo, hi, nstep);
    }
    return TRUE;
  }

  if (GST_VALUE_HOLDS_LIST (in)) {
    guint i, n = gst_value_list_get_size (in);
    GValue list = G_VALUE_INIT;

    g_value_init (&list, GST_TYPE_LIST);
    for (i = 0; i < n; i++) {
      GValue v = G_VALUE_INIT;

      if (gst_diffusion_sr_map_size (gst_value_list_get_value (in, i), s,
              direction, &v))
        gst_value_list_append_and_take_value (&list, &v);
    }
    n = gst_value_list_get_size (&list);
    if (n == 0) {
      g_value_unset (&list);
      return FALSE;
    }
    if (n == 1) {
      g_value_init (out, G_VALUE_TYPE (gst_value_list_get_value (&list, 0)));
      g_value_copy (gst_value_list_get_value (&list, 0), out);
      g_value_unset (&list);
    } else {
      *out = list;
    }
    return TRUE;
  }

  return FALSE;
}

static GstCaps *
gst_diffusion_sr_transform_caps (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps, GstCaps * filter)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (trans);
  gint s = gst_diffusion_sr_caps_scale (self);
  GstCaps *res = gst_caps_new_empty ();
  guint i, n = gst_caps_get_size (caps);

  /* Only width and height change; format, framerate, pixel-aspect-ratio
   * and colorimetry stay as they are (the pixels keep their shape). */
  for (i = 0; i < n; i++) {
    GstStructure *st = gst_caps_get_structure (caps, i);
    GstCapsFeatures *f = gst_caps_get_features (caps, i);
    const gchar *fields[] = { "width", "height" };
    gboolean ok = TRUE;
    guint k;

    st = gst_structure_copy (st);
    for (k = 0; k < G_N_ELEMENTS (fields) && ok; k++) {
      const GValue *v = gst_structure_get_value (st, fields[k]);
      GValue mapped = G_VALUE_INIT;

      if (!v)
        continue;
      ok = gst_diffusion_sr_map_size (v, s, direction, &mapped);
      if (ok)
        gst_structure_take_value (st, fields[k], &mapped);
    }
    if (!ok) {
      gst_structure_free (st);
      continue;
    }
    res = gst_caps_merge_structure_full (res, st,
        f ? gst_caps_features_copy (f) : NULL);
  }

  if (filter) {
    GstCaps *tmp = gst_caps_intersect_full (filter, res,
        GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (res);
    res = tmp;
  }

  GST_DEBUG_OBJECT (self, "x%d %s: %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT,
      s, direction == GST_PAD_SINK ? "up" : "down", caps, res);
  return res;
}

static GstCaps *
gst_diffusion_sr_fixate_caps (GstBaseTransform * trans,
    GstPadDirection direction, GstCaps * caps, GstCaps * othercaps)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (trans);
  gint s = gst_diffusion_sr_caps_scale (self);
  GstStructure *ins, *outs;
  const gchar *format;
  gint w, h, n, d;

  othercaps = gst_caps_truncate (othercaps);
  othercaps = gst_caps_make_writable (othercaps);
  ins = gst_caps_get_structure (caps, 0);
  outs = gst_caps_get_structure (othercaps, 0);

  if (gst_structure_get_int (ins, "width", &w)
      && gst_structure_get_int (ins, "height", &h)) {
    if (direction == GST_PAD_SINK) {
      w = w > G_MAXINT / s ? G_MAXINT : w * s;
      h = h > G_MAXINT / s ? G_MAXINT : h * s;
    } else {
      w /= s;
      h /= s;
    }
    gst_structure_fixate_field_nearest_int (outs, "width", w);
    gst_structure_fixate_field_nearest_int (outs, "height", h);
  }
  if (gst_structure_get_fraction (ins, "pixel-aspect-ratio", &n, &d))
    gst_structure_fixate_field_nearest_fraction (outs, "pixel-aspect-ratio",
        n, d);
  format = gst_structure_get_string (ins, "format");
  if (format)
    gst_structure_fixate_field_string (outs, "format", format);

  othercaps = gst_caps_fixate (othercaps);
  GST_DEBUG_OBJECT (self, "fixated to %" GST_PTR_FORMAT, othercaps);
  return othercaps;
}

static gboolean
gst_diffusion_sr_set_info (GstVideoFilter * filter, GstCaps * incaps,
    GstVideoInfo * in_info, GstCaps * outcaps, GstVideoInfo * out_info)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (filter);
  gint s, min_size;

  if (gst_generative_core_has_pipeline (&self->core)) {
    /* Frames of any size: padded to the U-Net's multiple. */
    gst_generative_core_sd_output_size (&self->core, 1, 1, &s, &min_size);
    min_size = 1;
  } else if (!self->sr) {
    GST_ERROR_OBJECT (self, "caps set before the model was loaded");
    return FALSE;
  } else {
    s = ge_sr_scale (self->sr);
    min_size = ge_sr_min_size (self->sr);
  }

  if (GST_VIDEO_INFO_FORMAT (in_info) != GST_VIDEO_INFO_FORMAT (out_info)) {
    GST_ERROR_OBJECT (self, "input format %s and output format %s differ",
        GST_VIDEO_INFO_NAME (in_info), GST_VIDEO_INFO_NAME (out_info));
    return FALSE;
  }
  if (GST_VIDEO_INFO_IS_INTERLACED (in_info)) {
    GST_ERROR_OBJECT (self, "interlaced video is not supported");
    return FALSE;
  }
  if ((gint64) GST_VIDEO_INFO_WIDTH (in_info) * s !=
      GST_VIDEO_INFO_WIDTH (out_info)
      || (gint64) GST_VIDEO_INFO_HEIGHT (in_info) * s !=
      GST_VIDEO_INFO_HEIGHT (out_info)) {
    GST_ERROR_OBJECT (self, "output %dx%d is not %d x the input %dx%d",
        GST_VIDEO_INFO_WIDTH (out_info), GST_VIDEO_INFO_HEIGHT (out_info), s,
        GST_VIDEO_INFO_WIDTH (in_info), GST_VIDEO_INFO_HEIGHT (in_info));
    return FALSE;
  }
  if (GST_VIDEO_INFO_WIDTH (in_info) < min_size
      || GST_VIDEO_INFO_HEIGHT (in_info) < min_size) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Frames of %dx%d are too small for model \"%s\".",
            GST_VIDEO_INFO_WIDTH (in_info), GST_VIDEO_INFO_HEIGHT (in_info),
            self->core.loaded_path),
        ("The model needs at least %d pixels in width and height.",
            min_size));
    return FALSE;
  }

  GST_INFO_OBJECT (self, "%s %dx%d -> %dx%d", GST_VIDEO_INFO_NAME (in_info),
      GST_VIDEO_INFO_WIDTH (in_info), GST_VIDEO_INFO_HEIGHT (in_info),
      GST_VIDEO_INFO_WIDTH (out_info), GST_VIDEO_INFO_HEIGHT (out_info));
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* metas */

static gboolean
gst_diffusion_sr_transform_meta (GstBaseTransform * trans, GstBuffer * outbuf,
    GstMeta * meta, GstBuffer * inbuf)
{
  GstVideoFilter *filter = GST_VIDEO_FILTER (trans);
  const GstMetaInfo *info = meta->info;
  const gchar *const *tags = gst_meta_api_type_get_tags (info->api);
  /* The pixels change size only: their colours and orientation stay. */
  const gchar *const handled[] = { GST_META_TAG_VIDEO_STR,
    GST_META_TAG_VIDEO_SIZE_STR, GST_META_TAG_VIDEO_ORIENTATION_STR,
    GST_META_TAG_VIDEO_COLORSPACE_STR, NULL
  };
  const gchar *const *t;

  if (!tags || !tags[0])
    return TRUE;

  for (t = tags; *t; t++) {
    if (!g_strv_contains (handled, *t))
      return GST_BASE_TRANSFORM_CLASS (parent_class)->transform_meta (trans,
          outbuf, meta, inbuf);
  }

  /* Size-dependent metas (regions of interest ...) are scaled the way
   * videoscale does; those that cannot be scaled are dropped. */
  if (gst_meta_api_type_has_tag (info->api,
          g_quark_from_string (GST_META_TAG_VIDEO_SIZE_STR))) {
    GstVideoMetaTransform vt = { &filter->in_info, &filter->out_info };

    if (info->transform_func)
      info->transform_func (outbuf, meta, inbuf,
          gst_video_meta_transform_scale_get_quark (), &vt);
    return FALSE;
  }

  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* QoS and latency */

static gboolean
gst_diffusion_sr_src_event (GstBaseTransform * trans, GstEvent * event)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (trans);

  gst_generative_core_qos_event (&self->core, event);
  return GST_BASE_TRANSFORM_CLASS (parent_class)->src_event (trans, event);
}

static gboolean
gst_diffusion_sr_query (GstBaseTransform * trans, GstPadDirection direction,
    GstQuery * query)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (trans);
  gboolean ret;

  ret = GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans, direction,
      query);
  if (ret && direction == GST_PAD_SRC
      && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY)
    gst_generative_core_latency_query (&self->core, query);
  return ret;
}

/* Counts the frames the base class drops for QoS: it skips them inside
 * submit_input_buffer without telling subclasses, leaving nothing queued. */
static GstFlowReturn
gst_diffusion_sr_submit_input_buffer (GstBaseTransform * trans,
    gboolean is_discont, GstBuffer * input)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (trans);
  GstFlowReturn ret;

  ret = GST_BASE_TRANSFORM_CLASS (parent_class)->submit_input_buffer (trans,
      is_discont, input);
  if (gst_generative_qos_dropped (trans, ret)) {
    gst_generative_core_count_dropped (&self->core);
    GST_DEBUG_OBJECT (self, "late frame dropped");
  }
  return ret;
}

/* ------------------------------------------------------------------------ */
/* processing */

/* Hands changed properties and the QoS decision to the engine.  Only the
 * streaming thread touches the engine, so setters never race a frame. */
static void
gst_diffusion_sr_apply_settings (GstDiffusionSr * self, gint width,
    gint height)
{
  GstGenerativeCore *core = &self->core;
  gint num_steps, tile, overlap, n_threads, steps;
  guint64 seed;
  GePrecision precision;

  GST_OBJECT_LOCK (self);
  num_steps = core->num_steps;
  seed = core->seed;
  overlap = core->tile_overlap;
  n_threads = core->n_threads;
  GST_OBJECT_UNLOCK (self);

  steps = gst_generative_core_qos_steps (core, num_steps,
      ge_sr_default_steps (self->sr));
  if (steps != self->applied_steps) {
    ge_sr_set_num_steps (self->sr, steps);
    self->applied_steps = steps;
  }
  if (!self->applied_seed_valid || seed != self->applied_seed) {
    ge_sr_set_seed (self->sr, seed);
    self->applied_seed = seed;
    self->applied_seed_valid = TRUE;
  }
  tile = gst_generative_core_tile_for (core, width, height);
  if (tile != self->applied_tile || overlap != self->applied_overlap) {
    ge_sr_set_tiling (self->sr, tile, overlap);
    self->applied_tile = tile;
    self->applied_overlap = overlap;
  }
  if (n_threads != self->applied_n_threads) {
    ge_sr_set_n_threads (self->sr, n_threads);
    self->applied_n_threads = n_threads;
  }
  if (gst_generative_core_precision_changed (core, &precision))
    gst_generative_core_precision_applied (core,
        ge_sr_set_precision (self->sr, precision));
}

static GstFlowReturn
gst_diffusion_sr_transform_frame (GstVideoFilter * filter,
    GstVideoFrame * in_frame, GstVideoFrame * out_frame)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (filter);
  GeImageU8 in, out;
  GError *err = NULL;
  gint64 t0;

  gst_generative_frame_image (in_frame, &in);
  gst_generative_frame_image (out_frame, &out);
  if (gst_generative_core_has_pipeline (&self->core)) {
    gst_generative_core_sync_values (&self->core,
        &GST_BASE_TRANSFORM (self)->segment, GST_BUFFER_PTS (in_frame->buffer));
    t0 = g_get_monotonic_time ();
    if (!gst_generative_core_sd_process (&self->core, &in, NULL, 0, &out))
      return GST_FLOW_ERROR;
    gst_generative_core_frame_done (&self->core,
        (g_get_monotonic_time () - t0) / 1000.0);
    return GST_FLOW_OK;
  }
  if (G_UNLIKELY (!self->sr)) {
    GST_ELEMENT_ERROR (self, CORE, FAILED, (NULL), ("no model loaded"));
    return GST_FLOW_ERROR;
  }
  gst_diffusion_sr_apply_settings (self, in.width, in.height);

  t0 = g_get_monotonic_time ();
  if (!ge_sr_process (self->sr, &in, &out, &err)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Super-resolution of a %dx%d frame failed.", in.width, in.height),
        ("%s", err->message));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
  gst_generative_core_frame_done (&self->core,
      (g_get_monotonic_time () - t0) / 1000.0);

  return GST_FLOW_OK;
}

/* ------------------------------------------------------------------------ */

static void
gst_diffusion_sr_finalize (GObject * object)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (object);

  g_clear_pointer (&self->sr, ge_sr_free);
  gst_generative_core_finalize (&self->core);

  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_diffusion_sr_class_init (GstDiffusionSrClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_diffusion_sr_debug, "diffusionsr", 0,
      "Diffusion super-resolution");

  gobject_class->set_property = gst_diffusion_sr_set_property;
  gobject_class->get_property = gst_diffusion_sr_get_property;
  gobject_class->finalize = gst_diffusion_sr_finalize;

  /**
   * GstDiffusionSr:scale:
   *
   * The upscaling factor; it must be the model's (checked at start).
   */
  g_object_class_install_property (gobject_class, PROP_SCALE,
      g_param_spec_enum ("scale", "Scale",
          "Upscaling factor (must match the model's)",
          GST_TYPE_DIFFUSION_SR_SCALE, DEFAULT_SCALE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

  /* model-file, num-steps, seed, tile-size, tile-overlap, n-threads and
   * stats (frames, dropped: late frames this element skipped for QoS,
   * steps in use, qos-reduced while lateness holds the steps at one,
   * qos-reductions, mean-ms, max-ms, load-ms): gstgenerativecore.h. */
  gst_generative_core_install_properties (gobject_class, PROP_CORE,
      &core_spec);

  gst_element_class_set_static_metadata (element_class,
      "Diffusion super-resolution", "Filter/Effect/Converter/Video/Scaler",
      "Upscales video 2x or 4x with a conditional diffusion model",
      "gst-generative contributors");
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);

  trans_class->start = GST_DEBUG_FUNCPTR (gst_diffusion_sr_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_diffusion_sr_stop);
  trans_class->transform_caps =
      GST_DEBUG_FUNCPTR (gst_diffusion_sr_transform_caps);
  trans_class->fixate_caps = GST_DEBUG_FUNCPTR (gst_diffusion_sr_fixate_caps);
  trans_class->transform_meta =
      GST_DEBUG_FUNCPTR (gst_diffusion_sr_transform_meta);
  trans_class->src_event = GST_DEBUG_FUNCPTR (gst_diffusion_sr_src_event);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_diffusion_sr_query);
  trans_class->submit_input_buffer =
      GST_DEBUG_FUNCPTR (gst_diffusion_sr_submit_input_buffer);
  /* Never in place, never passthrough: the output is another size. */
  trans_class->passthrough_on_same_caps = FALSE;
  trans_class->transform_ip_on_passthrough = FALSE;

  trans_class->transform = GST_DEBUG_FUNCPTR (gst_generative_checked_transform);
  filter_class->set_info = GST_DEBUG_FUNCPTR (gst_diffusion_sr_set_info);
  filter_class->transform_frame =
      GST_DEBUG_FUNCPTR (gst_diffusion_sr_transform_frame);

  gst_type_mark_as_plugin_api (GST_TYPE_DIFFUSION_SR_SCALE, 0);
}

static void
gst_diffusion_sr_init (GstDiffusionSr * self)
{
  self->scale = DEFAULT_SCALE;
  gst_generative_core_init (&self->core, GST_ELEMENT (self), PROP_CORE,
      &core_spec);

  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (self), TRUE);
}
