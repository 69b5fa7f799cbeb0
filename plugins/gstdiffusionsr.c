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
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=in.png ! pngdec ! videoconvert ! diffusionsr ! videoconvert ! pngenc ! filesink location=out.png
 * ]| Upscales an image twice with the installed model.
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! videoconvert ! diffusionsr scale=4 num-steps=2 ! videoconvert ! autovideosink
 * ]| Plays a video four times larger, with two sampling steps per frame.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstdiffusionsr.h"
#include "gstgenerativeutil.h"

GST_DEBUG_CATEGORY_STATIC (gst_diffusion_sr_debug);
#define GST_CAT_DEFAULT gst_diffusion_sr_debug

#define DEFAULT_MODEL_X2 \
  GST_GENERATIVE_MODEL_DIR G_DIR_SEPARATOR_S "diffusionsr-x2.safetensors"

#define DEFAULT_SCALE GST_DIFFUSION_SR_SCALE_X2
#define DEFAULT_NUM_STEPS 0
#define DEFAULT_SEED 0
#define DEFAULT_TILE_SIZE 0
#define DEFAULT_TILE_OVERLAP 16
#define DEFAULT_N_THREADS 0

/* tile-size 0: frames up to this many input pixels run whole; larger ones
 * in tiles of AUTO_TILE_SIZE, which bounds the work memory (the U-Net's
 * activations grow with the area) at a cost of about 25% more compute. */
#define AUTO_WHOLE_FRAME_PIXELS (512 * 512)
#define AUTO_TILE_SIZE 256

/* QoS: this many QoS events in a row reporting lateness (and a proportion
 * above 1: slower than real time) lower the steps to one; this many in a row on time, with room for the full step count at
 * the reported proportion, bring them back. */
#define QOS_LATE_EVENTS 3
#define QOS_ONTIME_EVENTS 25

enum
{
  PROP_0,
  PROP_MODEL_FILE,
  PROP_SCALE,
  PROP_NUM_STEPS,
  PROP_SEED,
  PROP_TILE_SIZE,
  PROP_TILE_OVERLAP,
  PROP_N_THREADS,
  PROP_PRECISION,
  PROP_STATS,
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

/* The model file start() loads; object lock held.  NULL/empty model-file
 * means the installed model of the chosen scale. */
static gchar *
gst_diffusion_sr_model_path_locked (GstDiffusionSr * self)
{
  gchar name[32];

  g_snprintf (name, sizeof (name), "diffusionsr-x%d.safetensors", self->scale);
  return gst_generative_model_path (self->model_file, name);
}

/* ------------------------------------------------------------------------ */
/* properties */

static void
gst_diffusion_sr_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (object);

  switch (prop_id) {
    case PROP_MODEL_FILE:
    case PROP_SCALE:
      /* The model and the caps depend on these: only between runs. */
      if (gst_generative_is_running (GST_ELEMENT (self))) {
        GST_WARNING_OBJECT (self, "%s can only change in the NULL or READY "
            "state; ignored", pspec->name);
        return;
      }
      GST_OBJECT_LOCK (self);
      if (prop_id == PROP_MODEL_FILE) {
        g_free (self->model_file);
        self->model_file = g_value_dup_string (value);
      } else {
        self->scale = g_value_get_enum (value);
      }
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_NUM_STEPS:
      GST_OBJECT_LOCK (self);
      self->num_steps = g_value_get_int (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_SEED:
      GST_OBJECT_LOCK (self);
      self->seed = g_value_get_uint64 (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_TILE_SIZE:
      GST_OBJECT_LOCK (self);
      self->tile_size = g_value_get_int (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_TILE_OVERLAP:
      GST_OBJECT_LOCK (self);
      self->tile_overlap = g_value_get_int (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_N_THREADS:
      GST_OBJECT_LOCK (self);
      self->n_threads = g_value_get_int (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_PRECISION:
      GST_OBJECT_LOCK (self);
      self->precision = g_value_get_enum (value);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static gchar *
gst_diffusion_sr_stats_string (GstDiffusionSr * self)
{
  GstStructure *s;
  gchar *str;

  GST_OBJECT_LOCK (self);
  s = gst_structure_new ("diffusionsr-stats",
      "steps", G_TYPE_INT, self->steps_in_use,
      "qos-reduced", G_TYPE_BOOLEAN, self->qos_reduced,
      "qos-reductions", G_TYPE_UINT64, self->qos_reductions, NULL);
  gst_generative_timing_to_structure (&self->timing, s);
  GST_OBJECT_UNLOCK (self);
  str = gst_structure_to_string (s);
  gst_structure_free (s);
  return str;
}

static void
gst_diffusion_sr_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (object);

  switch (prop_id) {
    case PROP_MODEL_FILE:
      GST_OBJECT_LOCK (self);
      g_value_take_string (value, gst_diffusion_sr_model_path_locked (self));
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_SCALE:
      GST_OBJECT_LOCK (self);
      g_value_set_enum (value, self->scale);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_NUM_STEPS:
      GST_OBJECT_LOCK (self);
      g_value_set_int (value, self->num_steps);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_SEED:
      GST_OBJECT_LOCK (self);
      g_value_set_uint64 (value, self->seed);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_TILE_SIZE:
      GST_OBJECT_LOCK (self);
      g_value_set_int (value, self->tile_size);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_TILE_OVERLAP:
      GST_OBJECT_LOCK (self);
      g_value_set_int (value, self->tile_overlap);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_N_THREADS:
      GST_OBJECT_LOCK (self);
      g_value_set_int (value, self->n_threads);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_PRECISION:
      GST_OBJECT_LOCK (self);
      g_value_set_enum (value, self->precision);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_STATS:
      g_value_take_string (value, gst_diffusion_sr_stats_string (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

/* ------------------------------------------------------------------------ */
/* model loading */

static void
gst_diffusion_sr_reset_stats (GstDiffusionSr * self)
{
  GST_OBJECT_LOCK (self);
  memset (&self->timing, 0, sizeof (self->timing));
  self->qos_reductions = 0;
  self->late_events = 0;
  self->ontime_events = 0;
  self->qos_reduced = FALSE;
  self->steps_in_use = 0;
  GST_OBJECT_UNLOCK (self);
}

static gboolean
gst_diffusion_sr_start (GstBaseTransform * trans)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (trans);
  GError *err = NULL;
  gchar *path;
  gint scale;
  gint64 t0;
  GeSr *sr;

  GST_OBJECT_LOCK (self);
  path = gst_diffusion_sr_model_path_locked (self);
  scale = self->scale;
  GST_OBJECT_UNLOCK (self);

  gst_generative_post_load_progress (GST_ELEMENT (self),
      GST_PROGRESS_TYPE_START, path);

  if (!gst_generative_check_model_file (GST_ELEMENT (self), path,
          "a diffusionsr model"))
    goto failed;

  t0 = g_get_monotonic_time ();
  sr = ge_sr_new (path, &err);
  if (!sr) {
    /* The file is there and readable, so every engine error (corrupt,
     * truncated, another architecture, inconsistent task, a tensor
     * missing) means it is not a model this element can run. */
    GST_ELEMENT_ERROR (self, STREAM, WRONG_TYPE,
        ("\"%s\" is not a usable diffusionsr model.", path),
        ("%s", err->message));
    g_clear_error (&err);
    goto failed;
  }
  if (ge_sr_scale (sr) != scale) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Model \"%s\" upscales x%d, but scale is %d.", path,
            ge_sr_scale (sr), scale),
        ("Set scale=%d, or pick a model made for x%d.", ge_sr_scale (sr),
            scale));
    ge_sr_free (sr);
    goto failed;
  }

  gst_diffusion_sr_reset_stats (self);
  self->sr = sr;
  g_free (self->loaded_path);
  self->loaded_path = path;
  /* Force every engine setting to be applied before the first frame. */
  self->applied_steps = -1;
  self->applied_tile = -1;
  self->applied_overlap = -1;
  self->applied_n_threads = -1;
  self->applied_precision = -1;
  self->applied_seed_valid = FALSE;

  GST_OBJECT_LOCK (self);
  self->timing.load_ms = (g_get_monotonic_time () - t0) / 1000.0;
  self->steps_in_use = ge_sr_default_steps (sr);
  self->active_scale = scale;
  GST_OBJECT_UNLOCK (self);

  GST_INFO_OBJECT (self, "loaded %s (x%d, %d steps, min size %d) in %.1f ms",
      path, scale, ge_sr_default_steps (sr), ge_sr_min_size (sr),
      self->timing.load_ms);
  gst_generative_post_load_progress (GST_ELEMENT (self),
      GST_PROGRESS_TYPE_COMPLETE, path);
  return TRUE;

failed:
  gst_generative_post_load_progress (GST_ELEMENT (self),
      GST_PROGRESS_TYPE_ERROR, path);
  g_free (path);
  return FALSE;
}

static gboolean
gst_diffusion_sr_stop (GstBaseTransform * trans)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (trans);

  g_clear_pointer (&self->sr, ge_sr_free);
  g_clear_pointer (&self->loaded_path, g_free);
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

  if (!self->sr) {
    GST_ERROR_OBJECT (self, "caps set before the model was loaded");
    return FALSE;
  }
  s = ge_sr_scale (self->sr);
  min_size = ge_sr_min_size (self->sr);

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
            self->loaded_path),
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

  if (GST_EVENT_TYPE (event) == GST_EVENT_QOS) {
    GstQOSType type;
    gdouble proportion;
    GstClockTimeDiff diff;
    GstClockTime timestamp;

    gst_event_parse_qos (event, &type, &proportion, &diff, &timestamp);
    /* THROTTLE is a rate limit asked for, not lateness. */
    if (type != GST_QOS_TYPE_THROTTLE) {
      GST_OBJECT_LOCK (self);
      /* Late and slower than real time: a frame merely late by jitter,
       * with the stream keeping pace, is no reason to lose quality. */
      if (diff > 0 && proportion > 1.0) {
        self->ontime_events = 0;
        if (++self->late_events >= QOS_LATE_EVENTS && !self->qos_reduced) {
          self->qos_reduced = TRUE;
          self->qos_reductions++;
          GST_INFO_OBJECT (self, "downstream keeps reporting lateness "
              "(%" GST_STIME_FORMAT ", proportion %.2f): one step per frame",
              GST_STIME_ARGS (diff), proportion);
        }
      } else {
        self->late_events = 0;
        /* Back to the full step count only when it would fit: at one step
         * the frame time is about 1/steps of the full one. */
        if (++self->ontime_events >= QOS_ONTIME_EVENTS && self->qos_reduced
            && proportion * MAX (self->full_steps, 1) < 1.0) {
          self->qos_reduced = FALSE;
          GST_INFO_OBJECT (self, "on time again (proportion %.2f): back to "
              "%d steps", proportion, self->full_steps);
        }
      }
      GST_OBJECT_UNLOCK (self);
    }
  }

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
      && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    GstClockTime ours;

    GST_OBJECT_LOCK (self);
    ours = self->timing.latency;
    GST_OBJECT_UNLOCK (self);
    GST_DEBUG_OBJECT (self, "latency: ours %" GST_TIME_FORMAT,
        GST_TIME_ARGS (ours));
    gst_generative_latency_add (query, ours);
  }
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
    GST_OBJECT_LOCK (self);
    self->timing.dropped++;
    GST_OBJECT_UNLOCK (self);
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
  gint num_steps, tile, overlap, n_threads, steps, full, precision;
  guint64 seed;
  gboolean reduced;

  GST_OBJECT_LOCK (self);
  num_steps = self->num_steps;
  seed = self->seed;
  tile = self->tile_size;
  overlap = self->tile_overlap;
  n_threads = self->n_threads;
  precision = self->precision;
  reduced = self->qos_reduced;
  GST_OBJECT_UNLOCK (self);

  full = num_steps > 0 ? num_steps : ge_sr_default_steps (self->sr);
  steps = reduced ? 1 : num_steps;
  if (steps != self->applied_steps) {
    ge_sr_set_num_steps (self->sr, steps);
    self->applied_steps = steps;
  }
  if (!self->applied_seed_valid || seed != self->applied_seed) {
    ge_sr_set_seed (self->sr, seed);
    self->applied_seed = seed;
    self->applied_seed_valid = TRUE;
  }
  if (tile == 0)
    tile = (gint64) width *height <= AUTO_WHOLE_FRAME_PIXELS ?
        0 : AUTO_TILE_SIZE;
  if (tile != self->applied_tile || overlap != self->applied_overlap) {
    ge_sr_set_tiling (self->sr, tile, overlap);
    self->applied_tile = tile;
    self->applied_overlap = overlap;
  }
  if (n_threads != self->applied_n_threads) {
    ge_sr_set_n_threads (self->sr, n_threads);
    self->applied_n_threads = n_threads;
  }
  if (precision != self->applied_precision) {
    ge_sr_set_precision (self->sr, precision);
    self->applied_precision = precision;
  }

  GST_OBJECT_LOCK (self);
  self->full_steps = full;
  self->steps_in_use = reduced ? 1 : full;
  GST_OBJECT_UNLOCK (self);
}

static void
gst_diffusion_sr_update_timing (GstDiffusionSr * self, gdouble ms)
{
  gboolean post;

  GST_OBJECT_LOCK (self);
  post = gst_generative_timing_frame (&self->timing, ms);
  GST_OBJECT_UNLOCK (self);
  if (post) {
    GST_DEBUG_OBJECT (self, "processing latency now %" GST_TIME_FORMAT,
        GST_TIME_ARGS (self->timing.latency));
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_latency (GST_OBJECT (self)));
  }
}

static GstFlowReturn
gst_diffusion_sr_transform_frame (GstVideoFilter * filter,
    GstVideoFrame * in_frame, GstVideoFrame * out_frame)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (filter);
  GeImageU8 in, out;
  GError *err = NULL;
  gint64 t0;

  if (G_UNLIKELY (!self->sr)) {
    GST_ELEMENT_ERROR (self, CORE, FAILED, (NULL), ("no model loaded"));
    return GST_FLOW_ERROR;
  }

  gst_generative_frame_image (in_frame, &in);
  gst_generative_frame_image (out_frame, &out);
  gst_diffusion_sr_apply_settings (self, in.width, in.height);

  t0 = g_get_monotonic_time ();
  if (!ge_sr_process (self->sr, &in, &out, &err)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Super-resolution of a %dx%d frame failed.", in.width, in.height),
        ("%s", err->message));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
  gst_diffusion_sr_update_timing (self,
      (g_get_monotonic_time () - t0) / 1000.0);

  return GST_FLOW_OK;
}

/* ------------------------------------------------------------------------ */

static void
gst_diffusion_sr_finalize (GObject * object)
{
  GstDiffusionSr *self = GST_DIFFUSION_SR (object);

  g_clear_pointer (&self->sr, ge_sr_free);
  g_free (self->loaded_path);
  g_free (self->model_file);

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
   * GstDiffusionSr:model-file:
   *
   * The diffusionsr model (.safetensors).  Unset, the model installed with
   * the plugin for #GstDiffusionSr:scale (diffusionsr-x2 or -x4).
   */
  g_object_class_install_property (gobject_class, PROP_MODEL_FILE,
      g_param_spec_string ("model-file", "Model file",
          "Super-resolution model (.safetensors); default: the installed "
          "model for the scale", DEFAULT_MODEL_X2,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));

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

  g_object_class_install_property (gobject_class, PROP_NUM_STEPS,
      g_param_spec_int ("num-steps", "Number of steps",
          "Sampling steps per frame (0 = the model's default); fewer are "
          "faster", 0, 1000, DEFAULT_NUM_STEPS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstDiffusionSr:seed:
   *
   * Seed of the sampling noise.  The noise of an output pixel depends only
   * on the seed and the pixel's position, the same in every frame, so that
   * static scenes do not shimmer.
   */
  g_object_class_install_property (gobject_class, PROP_SEED,
      g_param_spec_uint64 ("seed", "Seed",
          "Seed of the sampling noise (the same noise in every frame)",
          0, G_MAXUINT64, DEFAULT_SEED,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  g_object_class_install_property (gobject_class, PROP_TILE_SIZE,
      g_param_spec_int ("tile-size", "Tile size",
          "Side of the tiles in input pixels (0 = automatic: whole frames up "
          "to 512x512, tiles of 256 above)", 0, G_MAXINT, DEFAULT_TILE_SIZE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  g_object_class_install_property (gobject_class, PROP_TILE_OVERLAP,
      g_param_spec_int ("tile-overlap", "Tile overlap",
          "Overlap of neighbouring tiles in input pixels, blended smoothly",
          0, G_MAXINT, DEFAULT_TILE_OVERLAP,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));

  g_object_class_install_property (gobject_class, PROP_N_THREADS,
      g_param_spec_int ("n-threads", "Number of threads",
          "Worker threads (0 = one per core)", 0, 1024, DEFAULT_N_THREADS,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  gst_generative_install_precision (gobject_class, PROP_PRECISION);

  /**
   * GstDiffusionSr:stats:
   *
   * A #GstStructure as a string: frames (processed), dropped (late frames
   * this element skipped for QoS; upstream filters with QoS on may drop
   * others before they arrive), steps (sampling steps in use), qos-reduced (TRUE
   * while lateness holds the steps at one), qos-reductions (how often that
   * started), mean-ms and max-ms (time per frame), load-ms (model load).
   */
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_string ("stats", "Statistics",
          "Frames, dropped frames, steps in use, QoS reductions, mean/max ms "
          "per frame, load ms", NULL,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

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

  filter_class->set_info = GST_DEBUG_FUNCPTR (gst_diffusion_sr_set_info);
  filter_class->transform_frame =
      GST_DEBUG_FUNCPTR (gst_diffusion_sr_transform_frame);

  gst_type_mark_as_plugin_api (GST_TYPE_DIFFUSION_SR_SCALE, 0);
}

static void
gst_diffusion_sr_init (GstDiffusionSr * self)
{
  self->scale = DEFAULT_SCALE;
  self->num_steps = DEFAULT_NUM_STEPS;
  self->seed = DEFAULT_SEED;
  self->tile_size = DEFAULT_TILE_SIZE;
  self->tile_overlap = DEFAULT_TILE_OVERLAP;
  self->n_threads = DEFAULT_N_THREADS;
  self->precision = GE_PRECISION_AUTO;

  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (self), TRUE);
}
