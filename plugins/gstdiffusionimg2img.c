/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/**
 * SECTION:element-diffusionimg2img
 * @title: diffusionimg2img
 * @see_also: diffusionsr, vaeencode
 *
 * Translates video frames and images into another domain with a
 * conditional diffusion model: the installed model colorizes black and
 * white footage (it keeps each frame's luma and draws the chroma), and
 * models trained with models/img2img/train.py on any folder of paired
 * images translate whatever they were trained for.  The frame size and
 * format stay; alpha passes through.
 *
 * #GstDiffusionImg2Img:strength is SDEdit's: 1 generates the target from
 * noise conditioned on the frame, lower values start from the frame's own
 * colours (or pixels) noised part of the way and keep more of them.  The
 * noise of each position depends only on #GstDiffusionImg2Img:seed, the same
 * in every frame, so static scenes keep steady colours.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=bw.webm ! decodebin ! videoconvert ! diffusionimg2img ! videoconvert ! autovideosink
 * ]| Plays a black and white clip in colour.
 * |[
 * gst-launch-1.0 filesrc location=in.png ! pngdec ! videoconvert ! diffusionimg2img model-file=my-translation.safetensors strength=0.6 ! videoconvert ! pngenc ! filesink location=out.png
 * ]| Runs a user-trained translation, keeping much of the input.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstdiffusionimg2img.h"

GST_DEBUG_CATEGORY_STATIC (gst_diffusion_img2img_debug);
#define GST_CAT_DEFAULT gst_diffusion_img2img_debug

#define MODEL_NAME "diffusionimg2img.safetensors"
#define DEFAULT_STRENGTH 1.0
#define DEFAULT_NUM_STEPS 0
#define DEFAULT_SEED 0
#define DEFAULT_TILE_SIZE 0
#define DEFAULT_TILE_OVERLAP 32
#define DEFAULT_N_THREADS 0
/* tile-size 0: whole frames up to this many pixels, tiles of
 * AUTO_TILE_SIZE above (the U-Net's activations grow with the area). */
#define AUTO_WHOLE_FRAME_PIXELS (1280 * 720)
#define AUTO_TILE_SIZE 512

enum
{
  PROP_0,
  PROP_MODEL_FILE,
  PROP_STRENGTH,
  PROP_NUM_STEPS,
  PROP_SEED,
  PROP_TILE_SIZE,
  PROP_TILE_OVERLAP,
  PROP_N_THREADS,
  PROP_PRECISION,
  PROP_STATS,
};

#define CAPS "video/x-raw, format = (string) { RGB, BGR, RGBx, BGRx, RGBA, BGRA }, " \
  "width = (int) [ 1, 65535 ], height = (int) [ 1, 65535 ], " \
  "framerate = (fraction) [ 0, MAX ], interlace-mode = (string) progressive"

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (CAPS));

#define gst_diffusion_img2img_parent_class parent_class
G_DEFINE_TYPE (GstDiffusionImg2Img, gst_diffusion_img2img,
    GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (diffusionimg2img, "diffusionimg2img",
    GST_RANK_NONE, GST_TYPE_DIFFUSION_IMG2IMG);

static void
gst_diffusion_img2img_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (object);

  if (prop_id == PROP_MODEL_FILE
      && gst_generative_is_running (GST_ELEMENT (self))) {
    GST_WARNING_OBJECT (self, "model-file can only change in the NULL or "
        "READY state; ignored");
    return;
  }
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL_FILE:
      g_free (self->model_file);
      self->model_file = g_value_dup_string (value);
      break;
    case PROP_STRENGTH:
      self->strength = g_value_get_double (value);
      break;
    case PROP_NUM_STEPS:
      self->num_steps = g_value_get_int (value);
      break;
    case PROP_SEED:
      self->seed = g_value_get_uint64 (value);
      break;
    case PROP_TILE_SIZE:
      self->tile_size = g_value_get_int (value);
      break;
    case PROP_TILE_OVERLAP:
      self->tile_overlap = g_value_get_int (value);
      break;
    case PROP_N_THREADS:
      self->n_threads = g_value_get_int (value);
      break;
    case PROP_PRECISION:
      self->precision = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_diffusion_img2img_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL_FILE:
      g_value_take_string (value,
          gst_generative_model_path (self->model_file, MODEL_NAME));
      break;
    case PROP_STRENGTH:
      g_value_set_double (value, self->strength);
      break;
    case PROP_NUM_STEPS:
      g_value_set_int (value, self->num_steps);
      break;
    case PROP_SEED:
      g_value_set_uint64 (value, self->seed);
      break;
    case PROP_TILE_SIZE:
      g_value_set_int (value, self->tile_size);
      break;
    case PROP_TILE_OVERLAP:
      g_value_set_int (value, self->tile_overlap);
      break;
    case PROP_N_THREADS:
      g_value_set_int (value, self->n_threads);
      break;
    case PROP_PRECISION:
      g_value_set_enum (value, self->precision);
      break;
    case PROP_STATS:{
      GstStructure *s = gst_structure_new_empty ("diffusionimg2img-stats");

      gst_generative_timing_to_structure (&self->timing, s);

      g_value_take_string (value, gst_structure_to_string (s));
      gst_structure_free (s);
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static gboolean
gst_diffusion_img2img_start (GstBaseTransform * trans)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (trans);
  GError *err = NULL;
  gchar *path;
  gint64 t0;

  GST_OBJECT_LOCK (self);
  path = gst_generative_model_path (self->model_file, MODEL_NAME);
  GST_OBJECT_UNLOCK (self);

  gst_generative_post_load_progress (GST_ELEMENT (self),
      GST_PROGRESS_TYPE_START, path);
  if (!gst_generative_check_model_file (GST_ELEMENT (self), path,
          "a diffusionimg2img model"))
    goto failed;
  t0 = g_get_monotonic_time ();
  self->task = ge_img2img_new (path, &err);
  if (!self->task) {
    GST_ELEMENT_ERROR (self, STREAM, WRONG_TYPE,
        ("\"%s\" is not a usable diffusionimg2img model.", path),
        ("%s", err->message));
    g_clear_error (&err);
    goto failed;
  }
  GST_OBJECT_LOCK (self);
  memset (&self->timing, 0, sizeof (self->timing));
  self->timing.load_ms = (g_get_monotonic_time () - t0) / 1000.0;
  GST_OBJECT_UNLOCK (self);
  g_free (self->loaded_path);
  self->loaded_path = path;
  self->applied_n_threads = -1;
  self->applied_precision = -1;
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
gst_diffusion_img2img_stop (GstBaseTransform * trans)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (trans);

  g_clear_pointer (&self->task, ge_img2img_free);
  g_clear_pointer (&self->loaded_path, g_free);
  return TRUE;
}

static gboolean
gst_diffusion_img2img_query (GstBaseTransform * trans,
    GstPadDirection direction, GstQuery * query)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (trans);
  gboolean ret = GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans,
      direction, query);

  if (ret && direction == GST_PAD_SRC
      && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    GstClockTime ours;

    GST_OBJECT_LOCK (self);
    ours = self->timing.latency;
    GST_OBJECT_UNLOCK (self);
    gst_generative_latency_add (query, ours);
  }
  return ret;
}

/* Counts the frames the base class drops for QoS (see diffusionsr). */
static GstFlowReturn
gst_diffusion_img2img_submit_input_buffer (GstBaseTransform * trans,
    gboolean is_discont, GstBuffer * input)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (trans);
  GstFlowReturn ret = GST_BASE_TRANSFORM_CLASS (parent_class)->
      submit_input_buffer (trans, is_discont, input);

  if (gst_generative_qos_dropped (trans, ret)) {
    GST_OBJECT_LOCK (self);
    self->timing.dropped++;
    GST_OBJECT_UNLOCK (self);
  }
  return ret;
}

static GstFlowReturn
gst_diffusion_img2img_transform_frame (GstVideoFilter * filter,
    GstVideoFrame * in_frame, GstVideoFrame * out_frame)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (filter);
  GeImageU8 in, out;
  GError *err = NULL;
  gdouble strength, ms;
  gint steps, tile, overlap, n_threads, precision;
  guint64 seed;
  gboolean post;
  gint64 t0;

  if (G_UNLIKELY (!self->task)) {
    GST_ELEMENT_ERROR (self, CORE, FAILED, (NULL), ("no model loaded"));
    return GST_FLOW_ERROR;
  }
  gst_generative_frame_image (in_frame, &in);
  gst_generative_frame_image (out_frame, &out);

  GST_OBJECT_LOCK (self);
  strength = self->strength;
  steps = self->num_steps;
  seed = self->seed;
  tile = self->tile_size;
  overlap = self->tile_overlap;
  n_threads = self->n_threads;
  precision = self->precision;
  GST_OBJECT_UNLOCK (self);
  if (tile == 0)
    tile = (gint64) in.width * in.height <= AUTO_WHOLE_FRAME_PIXELS ?
        0 : AUTO_TILE_SIZE;
  /* Cheap setters: the engine keeps what does not change. */
  ge_img2img_set_strength (self->task, (float) strength);
  ge_img2img_set_num_steps (self->task, steps);
  ge_img2img_set_seed (self->task, seed);
  ge_img2img_set_tiling (self->task, tile, overlap);
  if (n_threads != self->applied_n_threads) {
    ge_img2img_set_n_threads (self->task, n_threads);
    self->applied_n_threads = n_threads;
  }
  if (precision != self->applied_precision) {
    ge_img2img_set_precision (self->task, precision);
    self->applied_precision = precision;
  }

  t0 = g_get_monotonic_time ();
  if (!ge_img2img_process (self->task, &in, &out, &err)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Translating a %dx%d frame with \"%s\" failed.", in.width, in.height,
            self->loaded_path), ("%s", err->message));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
  ms = (g_get_monotonic_time () - t0) / 1000.0;

  GST_OBJECT_LOCK (self);
  post = gst_generative_timing_frame (&self->timing, ms);
  GST_OBJECT_UNLOCK (self);
  if (post)
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_latency (GST_OBJECT (self)));
  return GST_FLOW_OK;
}

static void
gst_diffusion_img2img_finalize (GObject * object)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (object);

  g_clear_pointer (&self->task, ge_img2img_free);
  g_free (self->loaded_path);
  g_free (self->model_file);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_diffusion_img2img_class_init (GstDiffusionImg2ImgClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;

  GST_DEBUG_CATEGORY_INIT (gst_diffusion_img2img_debug, "diffusionimg2img", 0,
      "Diffusion image-to-image translation");

  gobject_class->set_property = gst_diffusion_img2img_set_property;
  gobject_class->get_property = gst_diffusion_img2img_get_property;
  gobject_class->finalize = gst_diffusion_img2img_finalize;

  g_object_class_install_property (gobject_class, PROP_MODEL_FILE,
      g_param_spec_string ("model-file", "Model file",
          "Image-to-image model (.safetensors); default: the installed "
          "colorization model", NULL, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_STRENGTH,
      g_param_spec_double ("strength", "Strength",
          "How far the frame is noised before denoising (SDEdit): 1 = from "
          "noise, lower keeps more of the input", 0.0, 1.0, DEFAULT_STRENGTH,
          rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_NUM_STEPS,
      g_param_spec_int ("num-steps", "Number of steps",
          "Sampling steps at strength 1 (0 = the model's default)", 0, 1000,
          DEFAULT_NUM_STEPS, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_SEED,
      g_param_spec_uint64 ("seed", "Seed",
          "Seed of the noise (the same noise in every frame)", 0, G_MAXUINT64,
          DEFAULT_SEED, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_TILE_SIZE,
      g_param_spec_int ("tile-size", "Tile size",
          "Side of the tiles in pixels (0 = whole frames up to 1280x720, "
          "tiles of 512 above)", 0, 65535, DEFAULT_TILE_SIZE,
          rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_TILE_OVERLAP,
      g_param_spec_int ("tile-overlap", "Tile overlap",
          "Overlap of neighbouring tiles in pixels, blended smoothly", 0,
          65535, DEFAULT_TILE_OVERLAP, rw | GST_PARAM_MUTABLE_PLAYING));
  g_object_class_install_property (gobject_class, PROP_N_THREADS,
      g_param_spec_int ("n-threads", "Number of threads",
          "Worker threads (0 = one per core)", 0, 1024, DEFAULT_N_THREADS,
          rw | GST_PARAM_MUTABLE_PLAYING));
  gst_generative_install_precision (gobject_class, PROP_PRECISION);
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_string ("stats", "Statistics",
          "Frames, dropped (late) frames, mean/max ms per frame, load ms",
          NULL, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_set_static_metadata (element_class,
      "Diffusion image-to-image translation", "Filter/Effect/Video",
      "Translates frames into another domain (colorizes black and white "
      "footage by default) with a conditional diffusion model",
      "gst-generative contributors");
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);

  trans_class->start = GST_DEBUG_FUNCPTR (gst_diffusion_img2img_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_diffusion_img2img_stop);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_diffusion_img2img_query);
  trans_class->submit_input_buffer =
      GST_DEBUG_FUNCPTR (gst_diffusion_img2img_submit_input_buffer);
  /* Never passthrough: even the same caps get translated pixels. */
  trans_class->passthrough_on_same_caps = FALSE;
  trans_class->transform_ip_on_passthrough = FALSE;
  filter_class->transform_frame =
      GST_DEBUG_FUNCPTR (gst_diffusion_img2img_transform_frame);
}

static void
gst_diffusion_img2img_init (GstDiffusionImg2Img * self)
{
  self->strength = DEFAULT_STRENGTH;
  self->num_steps = DEFAULT_NUM_STEPS;
  self->seed = DEFAULT_SEED;
  self->tile_size = DEFAULT_TILE_SIZE;
  self->tile_overlap = DEFAULT_TILE_OVERLAP;
  self->n_threads = DEFAULT_N_THREADS;
  self->precision = GE_PRECISION_AUTO;
  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (self), TRUE);
}
