/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* gstgenerativecore.c: see gstgenerativecore.h.  The pipeline folders'
 * part is in gstgenerativesd.c. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <string.h>

#include "gstgenerativecore.h"

GST_DEBUG_CATEGORY_STATIC (gst_generative_core_debug);
#define GST_CAT_DEFAULT gst_generative_core_debug

/* QoS: this many QoS events in a row reporting lateness (and a proportion
 * above 1: slower than real time) lower the steps to one; this many in a
 * row on time, with room for the full step count at the reported
 * proportion, bring them back. */
#define QOS_LATE_EVENTS 3
#define QOS_ONTIME_EVENTS 25

#define DEFAULT_N_THREADS 0
#define DEFAULT_SEED 0
#define DEFAULT_NUM_STEPS 0
#define DEFAULT_TILE_SIZE 0
#define DEFAULT_IMAGE_GUIDANCE 1.5
#define DEFAULT_NOISE_LEVEL 20
#define DEFAULT_SCHEDULER GST_GENERATIVE_SCHEDULER_AUTO
#define DEFAULT_PRECISION GST_GENERATIVE_PRECISION_AUTO

/* The core's properties, as offsets from the element's first_prop_id. */
enum
{
  CORE_PROP_MODEL_FILE,
  CORE_PROP_N_THREADS,
  CORE_PROP_SEED,
  CORE_PROP_NUM_STEPS,
  CORE_PROP_TILE_SIZE,
  CORE_PROP_TILE_OVERLAP,
  CORE_PROP_PROMPT,
  CORE_PROP_NEGATIVE_PROMPT,
  CORE_PROP_GUIDANCE_SCALE,
  CORE_PROP_IMAGE_GUIDANCE_SCALE,
  CORE_PROP_NOISE_LEVEL,
  CORE_PROP_SCHEDULER,
  CORE_PROP_PRECISION,
  CORE_PROP_STATS,
  CORE_N_PROPS
};

static void
debug_init (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    GST_DEBUG_CATEGORY_INIT (gst_generative_core_debug, "generativecore", 0,
        "what the generative elements share");
    g_once_init_leave (&done, 1);
  }
}

static const GEnumValue scheduler_values[] = {
  {GST_GENERATIVE_SCHEDULER_AUTO, "The pipeline folder's scheduler config",
      "auto"},
  {GST_GENERATIVE_SCHEDULER_DDIM, "DDIM", "ddim"},
  {GST_GENERATIVE_SCHEDULER_DDPM, "DDPM (ancestral)", "ddpm"},
  {GST_GENERATIVE_SCHEDULER_PNDM, "PNDM (PLMS)", "pndm"},
  {GST_GENERATIVE_SCHEDULER_EULER, "Euler", "euler"},
  {GST_GENERATIVE_SCHEDULER_EULER_ANCESTRAL, "Euler ancestral",
      "euler-ancestral"},
  {GST_GENERATIVE_SCHEDULER_DPMPP_2M, "DPM-Solver++ 2M", "dpmpp-2m"},
  {GST_GENERATIVE_SCHEDULER_DPMPP_2M_KARRAS,
      "DPM-Solver++ 2M with Karras sigmas", "dpmpp-2m-karras"},
  {GST_GENERATIVE_SCHEDULER_LMS, "LMS", "lms"},
  {0, NULL, NULL},
};

GType
gst_generative_scheduler_get_type (void)
{
  static GType type = 0;

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstGenerativeScheduler",
        scheduler_values);
    g_once_init_leave (&type, t);
  }
  return type;
}

const gchar *
gst_generative_scheduler_name (GstGenerativeScheduler s)
{
  /* The engine's sampler names are the enum's nicks. */
  if (s == GST_GENERATIVE_SCHEDULER_AUTO || s < 0
      || s >= G_N_ELEMENTS (scheduler_values) - 1)
    return NULL;
  return scheduler_values[s].value_nick;
}

static const GEnumValue precision_values[] = {
  {GST_GENERATIVE_PRECISION_F32, "f32 (the reference)", "f32"},
  {GST_GENERATIVE_PRECISION_BF16, "bf16 multiply-adds with f32 sums where "
        "the CPU has AVX512-BF16, else f32", "bf16"},
  {GST_GENERATIVE_PRECISION_AUTO, "int8 or bf16 where the model was validated "
        "in it and the CPU has it, else f32", "auto"},
  {GST_GENERATIVE_PRECISION_INT8, "8-bit integers where the CPU has "
        "AVX512-VNNI: the resnet blocks' convolutions, the rest as bf16 (f32 "
        "without AVX512-BF16); gansynth: its weights, the rest as f32", "int8"},
  {0, NULL, NULL},
};

GType
gst_generative_precision_get_type (void)
{
  static GType type = 0;

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstGenerativePrecision",
        precision_values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* ------------------------------------------------------------------------ */
/* properties */

void
gst_generative_core_install_properties (GObjectClass * klass,
    guint first, const GstGenerativeCoreSpec * spec)
{
  const GstGenerativeProps p = spec->props;
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
  gchar *model_default = NULL;

  debug_init ();
  if (p & GST_GENERATIVE_PROP_MODEL_FILE) {
    if (spec->model_name)
      model_default = g_build_filename (GST_GENERATIVE_MODEL_DIR,
          spec->model_name, NULL);
    /**
     * model-file:
     *
     * The model: one of our .safetensors files, a diffusers model folder
     * (config.json) or a diffusers pipeline folder (model_index.json;
     * which classes each element runs is in its documentation).  Unset,
     * the model installed with the plugin.  Read when the element goes
     * from READY to PAUSED.
     */
    g_object_class_install_property (klass, first + CORE_PROP_MODEL_FILE,
        g_param_spec_string ("model-file", "Model file", spec->model_blurb,
            model_default, rw | GST_PARAM_MUTABLE_READY));
    g_free (model_default);
  }
  if (p & GST_GENERATIVE_PROP_N_THREADS)
    g_object_class_install_property (klass, first + CORE_PROP_N_THREADS,
        g_param_spec_int ("n-threads", "Number of threads",
            "Worker threads (0 = one per core)", 0, 1024, DEFAULT_N_THREADS,
            rw | GST_PARAM_MUTABLE_PLAYING));
  /**
   * seed:
   *
   * Seed of the noise.  The noise of a position depends only on the seed
   * and the position, the same in every frame, so that static scenes do
   * not shimmer and the same input always gives the same bytes.
   */
  if (p & GST_GENERATIVE_PROP_SEED)
    g_object_class_install_property (klass, first + CORE_PROP_SEED,
        g_param_spec_uint64 ("seed", "Seed", spec->seed_blurb ?
            spec->seed_blurb :
            "Seed of the noise (the same noise in every frame)", 0,
            G_MAXUINT64, DEFAULT_SEED, rw | GST_PARAM_MUTABLE_PLAYING));
  if (p & GST_GENERATIVE_PROP_NUM_STEPS)
    g_object_class_install_property (klass, first + CORE_PROP_NUM_STEPS,
        g_param_spec_int ("num-steps", "Number of steps", spec->steps_blurb ?
            spec->steps_blurb :
            "Sampling steps per frame (0 = the model's default)", 0, 1000,
            DEFAULT_NUM_STEPS, rw | GST_PARAM_MUTABLE_PLAYING));
  if (p & GST_GENERATIVE_PROP_TILING) {
    g_object_class_install_property (klass, first + CORE_PROP_TILE_SIZE,
        g_param_spec_int ("tile-size", "Tile size", spec->tile_blurb, 0,
            spec->tile_max, DEFAULT_TILE_SIZE,
            rw | GST_PARAM_MUTABLE_PLAYING));
    g_object_class_install_property (klass, first + CORE_PROP_TILE_OVERLAP,
        g_param_spec_int ("tile-overlap", "Tile overlap",
            "Overlap of neighbouring tiles in pixels, blended smoothly", 0,
            spec->tile_max, spec->tile_overlap,
            rw | GST_PARAM_MUTABLE_PLAYING));
  }
  if (p & GST_GENERATIVE_PROP_TEXT) {
    /**
     * prompt:
     *
     * What the text-conditioned pipelines (Stable Diffusion) are asked for.
     * Encoded once per change, never per frame; a change in PLAYING takes
     * effect on the next frame.  Longer than the tokenizer's 77 tokens, it
     * is cut there with one warning, as diffusers does.  Models without a
     * text encoder ignore it.
     */
    g_object_class_install_property (klass, first + CORE_PROP_PROMPT,
        g_param_spec_string ("prompt", "Prompt",
            "Text prompt of the pipeline (Stable Diffusion folders); takes "
            "effect on the next frame", "",
            rw | GST_PARAM_MUTABLE_PLAYING | GST_PARAM_CONTROLLABLE));
    g_object_class_install_property (klass, first + CORE_PROP_NEGATIVE_PROMPT,
        g_param_spec_string ("negative-prompt", "Negative prompt",
            "What classifier-free guidance steers away from", "",
            rw | GST_PARAM_MUTABLE_PLAYING | GST_PARAM_CONTROLLABLE));
    /**
     * guidance-scale:
     *
     * Classifier-free guidance: u + g (c - u) of the unconditional and the
     * prompt's predictions; 1 or less runs the prompt's pass alone (half
     * the work).
     */
    g_object_class_install_property (klass, first + CORE_PROP_GUIDANCE_SCALE,
        g_param_spec_double ("guidance-scale", "Guidance scale",
            "Classifier-free guidance scale (<= 1: no guidance, half the "
            "work)", 0.0, 100.0, spec->guidance_scale,
            rw | GST_PARAM_MUTABLE_PLAYING | GST_PARAM_CONTROLLABLE));
    /**
     * scheduler:
     *
     * The sampler of a pipeline folder: auto is the folder's own scheduler
     * config; the others are built from that config, as diffusers'
     * from_config does.
     */
    g_object_class_install_property (klass, first + CORE_PROP_SCHEDULER,
        g_param_spec_enum ("scheduler", "Scheduler",
            "Sampler of a pipeline folder (auto: its scheduler config)",
            GST_TYPE_GENERATIVE_SCHEDULER, DEFAULT_SCHEDULER,
            rw | GST_PARAM_MUTABLE_PLAYING));
    gst_type_mark_as_plugin_api (GST_TYPE_GENERATIVE_SCHEDULER, 0);
  }
  if (p & GST_GENERATIVE_PROP_IMAGE_GUIDANCE)
    g_object_class_install_property (klass,
        first + CORE_PROP_IMAGE_GUIDANCE_SCALE,
        g_param_spec_double ("image-guidance-scale", "Image guidance scale",
            "InstructPix2Pix: how closely to keep to the input frame (>= 1 "
            "with guidance-scale > 1 guides on both)", 0.0, 100.0,
            DEFAULT_IMAGE_GUIDANCE,
            rw | GST_PARAM_MUTABLE_PLAYING | GST_PARAM_CONTROLLABLE));
  if (p & GST_GENERATIVE_PROP_NOISE_LEVEL)
    g_object_class_install_property (klass, first + CORE_PROP_NOISE_LEVEL,
        g_param_spec_int ("noise-level", "Noise level",
            "StableDiffusionUpscalePipeline: noise added to the low-resolution "
            "frame (a timestep of its low_res_scheduler; more lets the model "
            "invent more)", 0, 1000, DEFAULT_NOISE_LEVEL,
            rw | GST_PARAM_MUTABLE_PLAYING));
  /**
   * precision:
   *
   * The arithmetic of the model's convolutions and attention.  bf16 rounds
   * their inputs and weights to bf16 and sums in f32 (AVX512-BF16's
   * vdpbf16ps), about twice as fast as f32, within the accuracy budget the
   * model card reports; normalisations, the softmax, the sampler and
   * everything else stay f32.  Where the CPU lacks AVX512-BF16 (or the
   * environment sets GE_NO_BF16) bf16 runs f32.  int8 runs the resnet
   * blocks' convolutions in 8-bit integers (AVX512-VNNI's vpdpbusd: weights
   * per output channel, each input per call), the rest as bf16, or as f32
   * on CPUs with VNNI but without AVX512-BF16; bf16 where the CPU lacks
   * VNNI (or GE_NO_INT8 is set).  auto is int8 or bf16 for
   * model files marked as validated in it ("precision_auto" metadata: the
   * shipped models whose card metric stays within 0.05 dB of f32), f32
   * for every other model and for diffusers folders.  The stats say which
   * one runs.  A change in PLAYING takes effect on the next frame.
   */
  if (p & GST_GENERATIVE_PROP_PRECISION) {
    g_object_class_install_property (klass, first + CORE_PROP_PRECISION,
        g_param_spec_enum ("precision", "Precision",
            "Arithmetic of the model's convolutions and attention: bf16 is "
            "about twice as fast on CPUs with AVX512-BF16, int8 faster again "
            "on CPUs with AVX512-VNNI, within the accuracy budget of the model "
            "card (auto: what the model was validated in, f32 otherwise)",
            GST_TYPE_GENERATIVE_PRECISION, DEFAULT_PRECISION,
            rw | GST_PARAM_MUTABLE_PLAYING));
    gst_type_mark_as_plugin_api (GST_TYPE_GENERATIVE_PRECISION, 0);
  }
  if (p & GST_GENERATIVE_PROP_STATS)
    g_object_class_install_property (klass, first + CORE_PROP_STATS,
        g_param_spec_string ("stats", "Statistics", spec->stats_blurb, NULL,
            G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
}

void
gst_generative_core_init (GstGenerativeCore * core, GstElement * element,
    guint first_prop_id, const GstGenerativeCoreSpec * spec)
{
  debug_init ();
  memset (core, 0, sizeof (*core));
  core->spec = spec;
  core->element = element;
  core->first_prop_id = first_prop_id;
  core->n_threads = DEFAULT_N_THREADS;
  core->seed = DEFAULT_SEED;
  core->num_steps = DEFAULT_NUM_STEPS;
  core->tile_size = DEFAULT_TILE_SIZE;
  core->tile_overlap = spec->tile_overlap;
  core->prompt = g_strdup ("");
  core->negative_prompt = g_strdup ("");
  core->guidance_scale = spec->guidance_scale;
  core->image_guidance_scale = DEFAULT_IMAGE_GUIDANCE;
  core->noise_level = DEFAULT_NOISE_LEVEL;
  core->scheduler = DEFAULT_SCHEDULER;
  gst_generative_precision_init (&core->precision);
  core->earliest_time = GST_CLOCK_TIME_NONE;
}

void
gst_generative_core_finalize (GstGenerativeCore * core)
{
  gst_generative_core_stop (core);
  g_clear_pointer (&core->model_file, g_free);
  g_clear_pointer (&core->prompt, g_free);
  g_clear_pointer (&core->negative_prompt, g_free);
}

gboolean
gst_generative_core_set_property (GstGenerativeCore * core, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstElement *e = core->element;

  if (prop_id < core->first_prop_id
      || prop_id >= core->first_prop_id + CORE_N_PROPS)
    return FALSE;
  switch (prop_id - core->first_prop_id) {
    case CORE_PROP_MODEL_FILE:
      /* Loaded in start(): only between runs. */
      if (gst_generative_is_running (e)) {
        GST_WARNING_OBJECT (e, "%s can only change in the NULL or READY "
            "state; ignored", pspec->name);
        return TRUE;
      }
      GST_OBJECT_LOCK (e);
      g_free (core->model_file);
      core->model_file = g_value_dup_string (value);
      GST_OBJECT_UNLOCK (e);
      return TRUE;
    case CORE_PROP_STATS:
      return FALSE;
  }
  GST_OBJECT_LOCK (e);
  switch (prop_id - core->first_prop_id) {
    case CORE_PROP_N_THREADS:
      core->n_threads = g_value_get_int (value);
      break;
    case CORE_PROP_SEED:
      core->seed = g_value_get_uint64 (value);
      break;
    case CORE_PROP_NUM_STEPS:
      core->num_steps = g_value_get_int (value);
      break;
    case CORE_PROP_TILE_SIZE:
      core->tile_size = g_value_get_int (value);
      break;
    case CORE_PROP_TILE_OVERLAP:
      core->tile_overlap = g_value_get_int (value);
      break;
    case CORE_PROP_PROMPT:
      g_free (core->prompt);
      core->prompt = g_strdup (g_value_get_string (value) ?
          g_value_get_string (value) : "");
      break;
    case CORE_PROP_NEGATIVE_PROMPT:
      g_free (core->negative_prompt);
      core->negative_prompt = g_strdup (g_value_get_string (value) ?
          g_value_get_string (value) : "");
      break;
    case CORE_PROP_GUIDANCE_SCALE:
      core->guidance_scale = g_value_get_double (value);
      break;
    case CORE_PROP_IMAGE_GUIDANCE_SCALE:
      core->image_guidance_scale = g_value_get_double (value);
      break;
    case CORE_PROP_NOISE_LEVEL:
      core->noise_level = g_value_get_int (value);
      break;
    case CORE_PROP_SCHEDULER:
      core->scheduler = g_value_get_enum (value);
      break;
    case CORE_PROP_PRECISION:
      core->precision.value = g_value_get_enum (value);
      break;
  }
  GST_OBJECT_UNLOCK (e);
  return TRUE;
}

gboolean
gst_generative_core_get_property (GstGenerativeCore * core, guint prop_id,
    GValue * value, GParamSpec * pspec)
{
  GstElement *e = core->element;

  if (prop_id < core->first_prop_id
      || prop_id >= core->first_prop_id + CORE_N_PROPS)
    return FALSE;
  if (prop_id - core->first_prop_id == CORE_PROP_STATS) {
    g_value_take_string (value, gst_generative_core_stats_string (core));
    return TRUE;
  }
  if (prop_id - core->first_prop_id == CORE_PROP_MODEL_FILE) {
    g_value_take_string (value, gst_generative_core_model_path (core));
    return TRUE;
  }
  GST_OBJECT_LOCK (e);
  switch (prop_id - core->first_prop_id) {
    case CORE_PROP_N_THREADS:
      g_value_set_int (value, core->n_threads);
      break;
    case CORE_PROP_SEED:
      g_value_set_uint64 (value, core->seed);
      break;
    case CORE_PROP_NUM_STEPS:
      g_value_set_int (value, core->num_steps);
      break;
    case CORE_PROP_TILE_SIZE:
      g_value_set_int (value, core->tile_size);
      break;
    case CORE_PROP_TILE_OVERLAP:
      g_value_set_int (value, core->tile_overlap);
      break;
    case CORE_PROP_PROMPT:
      g_value_set_string (value, core->prompt);
      break;
    case CORE_PROP_NEGATIVE_PROMPT:
      g_value_set_string (value, core->negative_prompt);
      break;
    case CORE_PROP_GUIDANCE_SCALE:
      g_value_set_double (value, core->guidance_scale);
      break;
    case CORE_PROP_IMAGE_GUIDANCE_SCALE:
      g_value_set_double (value, core->image_guidance_scale);
      break;
    case CORE_PROP_NOISE_LEVEL:
      g_value_set_int (value, core->noise_level);
      break;
    case CORE_PROP_SCHEDULER:
      g_value_set_enum (value, core->scheduler);
      break;
    case CORE_PROP_PRECISION:
      g_value_set_enum (value, core->precision.value);
      break;
  }
  GST_OBJECT_UNLOCK (e);
  return TRUE;
}

static gchar *
model_path_locked (GstGenerativeCore * core)
{
  gchar *name, *path;

  if (core->model_file && core->model_file[0])
    return g_strdup (core->model_file);
  name = core->spec->default_model ?
      core->spec->default_model (core->element) :
      g_strdup (core->spec->model_name);
  path = gst_generative_model_path (NULL, name);
  g_free (name);
  return path;
}

gchar *
gst_generative_core_model_path (GstGenerativeCore * core)
{
  gchar *path;

  GST_OBJECT_LOCK (core->element);
  path = model_path_locked (core);
  GST_OBJECT_UNLOCK (core->element);
  return path;
}

void
gst_generative_precision_init (GstGenerativePrecisionState * s)
{
  s->value = DEFAULT_PRECISION;
  s->applied = -1;
  s->in_use = GE_PRECISION_F32;
}

gboolean
gst_generative_precision_changed (GstElement * element,
    GstGenerativePrecisionState * s, GePrecision * want)
{
  GstGenerativePrecision p;

  GST_OBJECT_LOCK (element);
  p = s->value;
  GST_OBJECT_UNLOCK (element);
  if ((gint) p == s->applied)
    return FALSE;
  s->applied = p;
  *want = (GePrecision) p;
  return TRUE;
}

void
gst_generative_precision_applied (GstElement * element,
    GstGenerativePrecisionState * s, GePrecision in_use)
{
  GST_INFO_OBJECT (element, "precision %s: %s runs",
      ge_precision_name ((GePrecision) s->applied), ge_precision_name (in_use));
  GST_OBJECT_LOCK (element);
  s->in_use = in_use;
  GST_OBJECT_UNLOCK (element);
}

gboolean
gst_generative_core_precision_changed (GstGenerativeCore * core,
    GePrecision * precision)
{
  return gst_generative_precision_changed (core->element, &core->precision,
      precision);
}

void
gst_generative_core_precision_applied (GstGenerativeCore * core,
    GePrecision in_use)
{
  gst_generative_precision_applied (core->element, &core->precision, in_use);
}

gint
gst_generative_core_tile_for (GstGenerativeCore * core, gint width,
    gint height)
{
  gint tile;

  GST_OBJECT_LOCK (core->element);
  tile = core->tile_size;
  GST_OBJECT_UNLOCK (core->element);
  if (tile == 0)
    tile = (gint64) width *height <= core->spec->auto_whole_pixels ?
        0 : core->spec->auto_tile;
  return tile;
}

/* ------------------------------------------------------------------------ */
/* loading */

gboolean
gst_generative_core_start (GstGenerativeCore * core,
    GstGenerativeLoadFunc load, gpointer user_data)
{
  GstElement *e = core->element;
  GError *err = NULL;
  gchar *path = gst_generative_core_model_path (core);
  gint64 t0;

  gst_generative_post_load_progress (e, GST_PROGRESS_TYPE_START, path);
  if (!gst_generative_check_model_file (e, path, core->spec->model_kind))
    goto failed;

  t0 = g_get_monotonic_time ();
  if (!load (e, path, user_data, &err)) {
    if (err) {
      /* The file is there and readable, so every engine error (corrupt,
       * truncated, another architecture, inconsistent task, a tensor
       * missing) means it is not a model this element can run. */
      GST_ELEMENT_ERROR (e, STREAM, WRONG_TYPE,
          ("\"%s\" is not a usable %s.", path, core->spec->model_kind + 2),
          ("%s", err->message));
      g_clear_error (&err);
    }
    goto failed;
  }

  GST_OBJECT_LOCK (e);
  memset (&core->timing, 0, sizeof (core->timing));
  core->timing.load_ms = (g_get_monotonic_time () - t0) / 1000.0;
  core->qos_reductions = 0;
  core->late_events = core->ontime_events = 0;
  core->qos_reduced = FALSE;
  core->steps_in_use = 0;
  core->earliest_time = GST_CLOCK_TIME_NONE;
  core->text_encodes = 0;
  core->precision.in_use = GE_PRECISION_F32;
  GST_OBJECT_UNLOCK (e);
  /* A new engine object: hand it the precision on the first frame. */
  core->precision.applied = -1;
  g_free (core->loaded_path);
  core->loaded_path = path;
  GST_INFO_OBJECT (e, "loaded %s in %.1f ms", path, core->timing.load_ms);
  gst_generative_post_load_progress (e, GST_PROGRESS_TYPE_COMPLETE, path);
  return TRUE;

failed:
  gst_generative_post_load_progress (e, GST_PROGRESS_TYPE_ERROR, path);
  g_free (path);
  return FALSE;
}

/* ------------------------------------------------------------------------ */
/* frames, latency, QoS */

gboolean
gst_generative_core_frame_done (GstGenerativeCore * core, gdouble ms)
{
  gboolean post;
  GstClockTime latency;

  GST_OBJECT_LOCK (core->element);
  post = gst_generative_timing_frame (&core->timing, ms);
  latency = core->timing.latency;
  GST_OBJECT_UNLOCK (core->element);
  if (post) {
    GST_DEBUG_OBJECT (core->element, "processing latency now %"
        GST_TIME_FORMAT, GST_TIME_ARGS (latency));
    if (core->spec->latency_changed)
      core->spec->latency_changed (core->element, latency);
    gst_element_post_message (core->element,
        gst_message_new_latency (GST_OBJECT (core->element)));
  }
  return post;
}

void
gst_generative_core_count_dropped (GstGenerativeCore * core)
{
  GST_OBJECT_LOCK (core->element);
  core->timing.dropped++;
  GST_OBJECT_UNLOCK (core->element);
}

GstClockTime
gst_generative_core_latency (GstGenerativeCore * core)
{
  GstClockTime ours;

  GST_OBJECT_LOCK (core->element);
  ours = core->timing.latency;
  GST_OBJECT_UNLOCK (core->element);
  return ours;
}

void
gst_generative_core_latency_query (GstGenerativeCore * core, GstQuery * query)
{
  GstClockTime ours = gst_generative_core_latency (core);

  GST_DEBUG_OBJECT (core->element, "latency: ours %" GST_TIME_FORMAT,
      GST_TIME_ARGS (ours));
  gst_generative_latency_add (query, ours);
}

void
gst_generative_core_qos_event (GstGenerativeCore * core, GstEvent * event)
{
  GstElement *e = core->element;
  GstQOSType type;
  gdouble proportion;
  GstClockTimeDiff diff;
  GstClockTime timestamp;

  if (GST_EVENT_TYPE (event) != GST_EVENT_QOS)
    return;
  gst_event_parse_qos (event, &type, &proportion, &diff, &timestamp);
  GST_OBJECT_LOCK (e);
  /* As GstBaseTransform: a frame before the event's timestamp + twice the
   * jitter (when late) is already too late to show. */
  if (type == GST_QOS_TYPE_THROTTLE || !GST_CLOCK_TIME_IS_VALID (timestamp))
    core->earliest_time = GST_CLOCK_TIME_NONE;
  else if (diff > 0)
    core->earliest_time = timestamp + 2 * diff;
  else
    core->earliest_time = timestamp + diff;
  /* THROTTLE is a rate limit asked for, not lateness. */
  if (core->spec->qos_steps && type != GST_QOS_TYPE_THROTTLE) {
    /* Late and slower than real time: a frame merely late by jitter,
     * with the stream keeping pace, is no reason to lose quality. */
    if (diff > 0 && proportion > 1.0) {
      core->ontime_events = 0;
      if (++core->late_events >= QOS_LATE_EVENTS && !core->qos_reduced) {
        core->qos_reduced = TRUE;
        core->qos_reductions++;
        GST_INFO_OBJECT (e, "downstream keeps reporting lateness (%"
            GST_STIME_FORMAT ", proportion %.2f): one step per frame",
            GST_STIME_ARGS (diff), proportion);
      }
    } else {
      core->late_events = 0;
      /* Back to the full step count only when it would fit: at one step
       * the frame time is about 1/steps of the full one. */
      if (++core->ontime_events >= QOS_ONTIME_EVENTS && core->qos_reduced
          && proportion * MAX (core->full_steps, 1) < 1.0) {
        core->qos_reduced = FALSE;
        GST_INFO_OBJECT (e, "on time again (proportion %.2f): back to %d "
            "steps", proportion, core->full_steps);
      }
    }
  }
  GST_OBJECT_UNLOCK (e);
}

gboolean
gst_generative_core_qos_too_late (GstGenerativeCore * core, GstClockTime end)
{
  gboolean late;

  GST_OBJECT_LOCK (core->element);
  late = GST_CLOCK_TIME_IS_VALID (end)
      && GST_CLOCK_TIME_IS_VALID (core->earliest_time)
      && end <= core->earliest_time;
  if (late)
    core->timing.dropped++;
  GST_OBJECT_UNLOCK (core->element);
  return late;
}

gint
gst_generative_core_qos_steps (GstGenerativeCore * core, gint requested,
    gint model_default)
{
  gint steps;

  GST_OBJECT_LOCK (core->element);
  core->full_steps = requested > 0 ? requested : model_default;
  steps = core->qos_reduced ? 1 : requested;
  core->steps_in_use = core->qos_reduced ? 1 : core->full_steps;
  GST_OBJECT_UNLOCK (core->element);
  return steps;
}

gchar *
gst_generative_core_stats_string (GstGenerativeCore * core)
{
  GstElement *e = core->element;
  const GstGenerativeCoreSpec *spec = core->spec;
  GstStructure *s;
  gchar *str;

  if (spec->stats_name) {
    s = gst_structure_new_empty (spec->stats_name);
  } else {
    GstElementFactory *f = gst_element_get_factory (e);
    gchar *name = g_strdup_printf ("%s-stats",
        f ? GST_OBJECT_NAME (f) : "generative");

    s = gst_structure_new_empty (name);
    g_free (name);
  }
  GST_OBJECT_LOCK (e);
  if (spec->qos_steps)
    gst_structure_set (s, "steps", G_TYPE_INT, core->steps_in_use,
        "qos-reduced", G_TYPE_BOOLEAN, core->qos_reduced,
        "qos-reductions", G_TYPE_UINT64, core->qos_reductions, NULL);
  if (spec->props & GST_GENERATIVE_PROP_PRECISION)
    gst_structure_set (s, "precision", G_TYPE_STRING,
        ge_precision_name (core->precision.in_use), NULL);
  if (spec->add_stats)
    spec->add_stats (e, s);
  gst_generative_timing_to_structure (&core->timing, s);
  if (core->pipeline_class)
    gst_structure_set (s, "pipeline", G_TYPE_STRING, core->pipeline_class,
        "text-encodes", G_TYPE_UINT, core->text_encodes, NULL);
  GST_OBJECT_UNLOCK (e);
  str = gst_structure_to_string (s);
  gst_structure_free (s);
  return str;
}

void
gst_generative_core_sync_values (GstGenerativeCore * core,
    const GstSegment * segment, GstClockTime pts)
{
  GstClockTime st;

  if (!GST_CLOCK_TIME_IS_VALID (pts) || segment->format != GST_FORMAT_TIME)
    return;
  st = gst_segment_to_stream_time (segment, GST_FORMAT_TIME, pts);
  if (GST_CLOCK_TIME_IS_VALID (st))
    gst_object_sync_values (GST_OBJECT (core->element), st);
}
