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
 * #GstDiffusionImg2Img:model-file may also be a diffusers pipeline folder
 * (model_index.json): StableDiffusionImg2ImgPipeline or
 * StableDiffusionPipeline (any SD 1.x/2.x checkpoint: SDEdit with the
 * prompt, #GstDiffusionImg2Img:strength picking the timesteps as diffusers
 * does) or StableDiffusionInstructPix2PixPipeline (timbrooks/instruct-pix2pix,
 * with #GstDiffusionImg2Img:image-guidance-scale).  DDIMPipeline and
 * DDPMPipeline folders (google/ddpm-*, unconditional pixel-space U-Nets)
 * run as SDEdit priors: the frame noised to the timestep
 * #GstDiffusionImg2Img:strength picks and denoised with the folder's
 * scheduler (or #GstDiffusionImg2Img:scheduler); they take no prompt, so
 * the prompt and guidance properties are ignored for them.  Other classes
 * are an error that lists the supported ones.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 filesrc location=bw.webm ! decodebin ! videoconvert ! diffusionimg2img ! videoconvert ! autovideosink
 * ]| Plays a black and white clip in colour.
 * |[
 * gst-launch-1.0 filesrc location=in.png ! pngdec ! videoconvert ! diffusionimg2img model-file=my-translation.safetensors strength=0.6 ! videoconvert ! pngenc ! filesink location=out.png
 * ]| Runs a user-trained translation, keeping much of the input.
 * |[
 * gst-launch-1.0 filesrc location=in.png ! pngdec ! videoconvert ! diffusionimg2img model-file=stable-diffusion-v1-5 prompt="a watercolour painting" strength=0.5 num-steps=30 ! videoconvert ! pngenc ! filesink location=out.png
 * ]| Repaints an image after a prompt with a Stable Diffusion checkpoint.
 */

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstdiffusionimg2img.h"

GST_DEBUG_CATEGORY_STATIC (gst_diffusion_img2img_debug);
#define GST_CAT_DEFAULT gst_diffusion_img2img_debug

#define DEFAULT_STRENGTH 1.0

enum
{
  PROP_0,
  PROP_STRENGTH,
  PROP_CORE,                    /* the core's from here on */
};

static const GstGenerativeCoreSpec core_spec = {
  .props = GST_GENERATIVE_PROP_MODEL_FILE | GST_GENERATIVE_PROP_N_THREADS
      | GST_GENERATIVE_PROP_SEED | GST_GENERATIVE_PROP_NUM_STEPS
      | GST_GENERATIVE_PROP_TILING | GST_GENERATIVE_PROP_STATS
      | GST_GENERATIVE_PROP_TEXT | GST_GENERATIVE_PROP_IMAGE_GUIDANCE
      | GST_GENERATIVE_PROP_PRECISION,
  .model_name = "diffusionimg2img.safetensors",
  .model_blurb = "Image-to-image model (.safetensors) or diffusers pipeline "
      "folder (StableDiffusionImg2ImgPipeline, StableDiffusionPipeline, "
      "StableDiffusionInstructPix2PixPipeline); default: the installed "
      "colorization model",
  .model_kind = "a diffusionimg2img model",
  .tile_overlap = 32,
  .tile_max = 65535,
  .tile_blurb = "Side of the tiles in pixels (0 = whole frames up to "
      "1280x720, tiles of 512 above)",
  /* The U-Net's activations grow with the area. */
  .auto_whole_pixels = 1280 * 720,
  .auto_tile = 512,
  .steps_blurb = "Sampling steps at strength 1 (0 = the model's default)",
  .seed_blurb = "Seed of the noise (the same noise in every frame)",
  .guidance_scale = 7.5,
  .stats_name = "diffusionimg2img-stats",
  .stats_blurb = "Frames, dropped (late) frames, the precision running, "
      "mean/max ms per frame, load ms",
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

  if (gst_generative_core_set_property (&self->core, prop_id, value, pspec))
    return;
  switch (prop_id) {
    case PROP_STRENGTH:
      GST_OBJECT_LOCK (self);
      self->strength = g_value_get_double (value);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static void
gst_diffusion_img2img_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (object);

  if (gst_generative_core_get_property (&self->core, prop_id, value, pspec))
    return;
  switch (prop_id) {
    case PROP_STRENGTH:
      GST_OBJECT_LOCK (self);
      g_value_set_double (value, self->strength);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
}

static gboolean
gst_diffusion_img2img_load (GstElement * element, const gchar * path,
    gpointer user_data, GError ** error)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (element);

  if (gst_generative_is_pipeline_folder (path))
    /* The classes of ge_sd_supported_classes (GE_SD_IMG2IMG), and
     * DDIMPipeline / DDPMPipeline U-Nets as SDEdit priors. */
    return gst_generative_core_open_pipeline (&self->core, path,
        GE_SD_IMG2IMG, "our diffusionimg2img models", NULL);
  self->task = ge_img2img_new (path, error);
  return self->task != NULL;
}

static gboolean
gst_diffusion_img2img_start (GstBaseTransform * trans)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (trans);

  self->applied_n_threads = -1;
  return gst_generative_core_start (&self->core, gst_diffusion_img2img_load,
      NULL);
}

static gboolean
gst_diffusion_img2img_stop (GstBaseTransform * trans)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (trans);

  g_clear_pointer (&self->task, ge_img2img_free);
  gst_generative_core_stop (&self->core);
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
      && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY)
    gst_generative_core_latency_query (&self->core, query);
  return ret;
}

static gboolean
gst_diffusion_img2img_src_event (GstBaseTransform * trans, GstEvent * event)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (trans);

  gst_generative_core_qos_event (&self->core, event);
  return GST_BASE_TRANSFORM_CLASS (parent_class)->src_event (trans, event);
}

/* Counts the frames the base class drops for QoS (see diffusionsr). */
static GstFlowReturn
gst_diffusion_img2img_submit_input_buffer (GstBaseTransform * trans,
    gboolean is_discont, GstBuffer * input)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (trans);
  GstFlowReturn ret = GST_BASE_TRANSFORM_CLASS (parent_class)->
      submit_input_buffer (trans, is_discont, input);

  if (gst_generative_qos_dropped (trans, ret))
    gst_generative_core_count_dropped (&self->core);
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
  gint steps, tile, overlap, n_threads;
  GePrecision precision;
  guint64 seed;
  gint64 t0;

  gst_generative_frame_image (in_frame, &in);
  gst_generative_frame_image (out_frame, &out);
  if (gst_generative_core_has_pipeline (&self->core)) {
    gst_generative_core_sync_values (&self->core,
        &GST_BASE_TRANSFORM (self)->segment, GST_BUFFER_PTS (in_frame->buffer));
    GST_OBJECT_LOCK (self);
    strength = self->strength;
    GST_OBJECT_UNLOCK (self);
    gst_generative_core_sd_set_strength (&self->core, strength);
    t0 = g_get_monotonic_time ();
    if (!gst_generative_core_sd_process (&self->core, &in, NULL, 0, &out))
      return GST_FLOW_ERROR;
    gst_generative_core_frame_done (&self->core,
        (g_get_monotonic_time () - t0) / 1000.0);
    return GST_FLOW_OK;
  }
  if (G_UNLIKELY (!self->task)) {
    GST_ELEMENT_ERROR (self, CORE, FAILED, (NULL), ("no model loaded"));
    return GST_FLOW_ERROR;
  }

  GST_OBJECT_LOCK (self);
  strength = self->strength;
  steps = self->core.num_steps;
  seed = self->core.seed;
  overlap = self->core.tile_overlap;
  n_threads = self->core.n_threads;
  GST_OBJECT_UNLOCK (self);
  tile = gst_generative_core_tile_for (&self->core, in.width, in.height);
  /* Cheap setters: the engine keeps what does not change. */
  ge_img2img_set_strength (self->task, (float) strength);
  ge_img2img_set_num_steps (self->task, steps);
  ge_img2img_set_seed (self->task, seed);
  ge_img2img_set_tiling (self->task, tile, overlap);
  if (n_threads != self->applied_n_threads) {
    ge_img2img_set_n_threads (self->task, n_threads);
    self->applied_n_threads = n_threads;
  }
  if (gst_generative_core_precision_changed (&self->core, &precision))
    gst_generative_core_precision_applied (&self->core,
        ge_img2img_set_precision (self->task, precision));

  t0 = g_get_monotonic_time ();
  if (!ge_img2img_process (self->task, &in, &out, &err)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
        ("Translating a %dx%d frame with \"%s\" failed.", in.width, in.height,
            self->core.loaded_path), ("%s", err->message));
    g_clear_error (&err);
    return GST_FLOW_ERROR;
  }
  ms = (g_get_monotonic_time () - t0) / 1000.0;
  gst_generative_core_frame_done (&self->core, ms);
  return GST_FLOW_OK;
}

static void
gst_diffusion_img2img_finalize (GObject * object)
{
  GstDiffusionImg2Img *self = GST_DIFFUSION_IMG2IMG (object);

  g_clear_pointer (&self->task, ge_img2img_free);
  gst_generative_core_finalize (&self->core);
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

  g_object_class_install_property (gobject_class, PROP_STRENGTH,
      g_param_spec_double ("strength", "Strength",
          "How far the frame is noised before denoising (SDEdit): 1 = from "
          "noise, lower keeps more of the input", 0.0, 1.0, DEFAULT_STRENGTH,
          rw | GST_PARAM_MUTABLE_PLAYING));
  /* model-file, num-steps, seed, tile-size, tile-overlap, n-threads and
   * stats: gstgenerativecore.h. */
  gst_generative_core_install_properties (gobject_class, PROP_CORE,
      &core_spec);

  gst_element_class_set_static_metadata (element_class,
      "Diffusion image-to-image translation", "Filter/Effect/Video",
      "Translates frames into another domain (colorizes black and white "
      "footage by default) with a conditional diffusion model",
      "gst-generative contributors");
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);

  trans_class->start = GST_DEBUG_FUNCPTR (gst_diffusion_img2img_start);
  trans_class->transform = GST_DEBUG_FUNCPTR (gst_generative_checked_transform);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_diffusion_img2img_stop);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_diffusion_img2img_query);
  trans_class->src_event = GST_DEBUG_FUNCPTR (gst_diffusion_img2img_src_event);
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
  gst_generative_core_init (&self->core, GST_ELEMENT (self), PROP_CORE,
      &core_spec);
  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (self), TRUE);
}
