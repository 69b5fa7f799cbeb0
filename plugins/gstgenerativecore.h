/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* gstgenerativecore.h: the machinery every model-running element of the
 * plugin shares, held by each element as a plain struct (diffusioninpaint
 * is a GstAggregator, the others GstBaseTransforms, so it cannot be a base
 * class):
 *
 *  - the common properties, declared and documented once here: model-file,
 *    n-threads, seed, num-steps, tile-size / tile-overlap, precision, stats,
 *    and for
 *    the elements that run text-conditioned pipelines prompt,
 *    negative-prompt, guidance-scale, image-guidance-scale, noise-level and
 *    scheduler.  An element picks the ones it has (GstGenerativeCoreSpec),
 *    installs them after its own and forwards set/get_property;
 *  - model path resolution (model-file or the installed model) and the
 *    load in start() with PROGRESS messages and element errors;
 *  - per-frame timing, the latency it implies, the stats structure;
 *  - QoS: the count of frames dropped late and, where the element lowers
 *    its steps under sustained lateness, that decision;
 *  - diffusers pipeline folders (gstgenerativesd.c): GeSd with the
 *    properties applied, frames padded to the U-Net's multiple, tiled, and
 *    converted to and from 8 bits.
 *
 * Locking: properties, statistics and QoS state are guarded by the
 * element's object lock; the loaded engine objects by the streaming thread
 * (start/stop and the frames).
 */
#ifndef __GST_GENERATIVE_CORE_H__
#define __GST_GENERATIVE_CORE_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>

#include "gstgenerativeutil.h"
#include "ge-precision.h"
#include "ge-sd.h"

G_BEGIN_DECLS

/* Which common properties an element has. */
typedef enum
{
  GST_GENERATIVE_PROP_MODEL_FILE = 1 << 0,
  GST_GENERATIVE_PROP_N_THREADS = 1 << 1,
  GST_GENERATIVE_PROP_SEED = 1 << 2,
  GST_GENERATIVE_PROP_NUM_STEPS = 1 << 3,
  GST_GENERATIVE_PROP_TILING = 1 << 4,  /* tile-size, tile-overlap */
  GST_GENERATIVE_PROP_STATS = 1 << 5,
  /* prompt, negative-prompt, guidance-scale, scheduler */
  GST_GENERATIVE_PROP_TEXT = 1 << 6,
  GST_GENERATIVE_PROP_IMAGE_GUIDANCE = 1 << 7,  /* instruct-pix2pix */
  GST_GENERATIVE_PROP_NOISE_LEVEL = 1 << 8,     /* the x4 upscaler */
  GST_GENERATIVE_PROP_PRECISION = 1 << 9,       /* auto, f32, bf16 */
} GstGenerativeProps;

/**
 * GstGenerativeScheduler:
 * @GST_GENERATIVE_SCHEDULER_AUTO: the pipeline folder's scheduler config
 * @GST_GENERATIVE_SCHEDULER_DDIM: DDIM
 * @GST_GENERATIVE_SCHEDULER_DDPM: DDPM (ancestral)
 * @GST_GENERATIVE_SCHEDULER_PNDM: PNDM (PLMS)
 * @GST_GENERATIVE_SCHEDULER_EULER: Euler
 * @GST_GENERATIVE_SCHEDULER_EULER_ANCESTRAL: Euler ancestral
 * @GST_GENERATIVE_SCHEDULER_DPMPP_2M: DPM-Solver++ (2M)
 * @GST_GENERATIVE_SCHEDULER_DPMPP_2M_KARRAS: DPM-Solver++ (2M), Karras sigmas
 * @GST_GENERATIVE_SCHEDULER_LMS: LMS
 *
 * The sampler a pipeline folder runs with; every one but auto is built
 * from the folder's scheduler config, as diffusers' from_config does.
 */
typedef enum
{
  GST_GENERATIVE_SCHEDULER_AUTO,
  GST_GENERATIVE_SCHEDULER_DDIM,
  GST_GENERATIVE_SCHEDULER_DDPM,
  GST_GENERATIVE_SCHEDULER_PNDM,
  GST_GENERATIVE_SCHEDULER_EULER,
  GST_GENERATIVE_SCHEDULER_EULER_ANCESTRAL,
  GST_GENERATIVE_SCHEDULER_DPMPP_2M,
  GST_GENERATIVE_SCHEDULER_DPMPP_2M_KARRAS,
  GST_GENERATIVE_SCHEDULER_LMS,
} GstGenerativeScheduler;

/**
 * GstGenerativePrecision:
 * @GST_GENERATIVE_PRECISION_F32: f32, the reference
 * @GST_GENERATIVE_PRECISION_BF16: the convolutions' and attention's
 *   multiply-adds on bf16-rounded inputs with f32 sums, where the CPU has
 *   AVX512-BF16 (f32 elsewhere)
 * @GST_GENERATIVE_PRECISION_AUTO: int8 or bf16 where the model file says
 *   that output was validated against f32 ("precision_auto" metadata) and
 *   the CPU has the instructions, f32 otherwise
 * @GST_GENERATIVE_PRECISION_INT8: the resnet blocks' convolutions in 8-bit
 *   integers (AVX512-VNNI), everything else as bf16; bf16 where the CPU
 *   lacks VNNI
 *
 * The engine's GePrecision (ge-precision.h), value for value.
 */
typedef enum
{
  GST_GENERATIVE_PRECISION_F32 = GE_PRECISION_F32,
  GST_GENERATIVE_PRECISION_BF16 = GE_PRECISION_BF16,
  GST_GENERATIVE_PRECISION_AUTO = GE_PRECISION_AUTO,
  GST_GENERATIVE_PRECISION_INT8 = GE_PRECISION_INT8,
} GstGenerativePrecision;

#define GST_TYPE_GENERATIVE_PRECISION (gst_generative_precision_get_type ())
GType gst_generative_precision_get_type (void);

/* A precision property's hand-over to an engine object, the same in every
 * element that has one (the core's and gansynth). */
typedef struct
{
  GstGenerativePrecision value; /* the property (object lock) */
  gint applied;                 /* last handed to the engine, -1: none yet
                                 * (streaming thread) */
  GePrecision in_use;           /* what the engine said runs (object lock;
                                 * for stats) */
} GstGenerativePrecisionState;

/* auto, nothing handed over yet, f32 running. */
void gst_generative_precision_init (GstGenerativePrecisionState * s);
/* TRUE when @s's value changed since the engine last got it (or it never
 * did): the element then hands *@want to its engine object's
 * set_precision and reports what that returned with
 * gst_generative_precision_applied ().  Streaming thread; @element's
 * object lock guards the value and in_use. */
gboolean gst_generative_precision_changed (GstElement * element,
    GstGenerativePrecisionState * s, GePrecision * want);
void gst_generative_precision_applied (GstElement * element,
    GstGenerativePrecisionState * s, GePrecision in_use);

#define GST_TYPE_GENERATIVE_SCHEDULER (gst_generative_scheduler_get_type ())
GType gst_generative_scheduler_get_type (void);
/* The engine's name of @s (NULL for auto). */
const gchar *gst_generative_scheduler_name (GstGenerativeScheduler s);

/* What differs between the elements: static, one per element class. */
typedef struct
{
  GstGenerativeProps props;
  /* model-file: the installed default's file name, and the blurb. */
  const gchar *model_name;
  const gchar *model_blurb;
  /* The installed model when it depends on other properties (diffusionsr's
   * scale); object lock held.  NULL: model_name. */
  gchar *(*default_model) (GstElement * element);
  /* "a diffusionsr model": what the errors tell the user to give. */
  const gchar *model_kind;
  /* Defaults of the common properties. */
  gint tile_overlap;
  gint tile_max;                /* largest tile-size / tile-overlap */
  const gchar *tile_blurb;
  /* tile-size 0: whole frames up to this many pixels, tiles of auto_tile
   * above (the U-Net's and the VAE's activations grow with the area). */
  gint64 auto_whole_pixels;
  gint auto_tile;
  const gchar *steps_blurb;
  const gchar *seed_blurb;
  gdouble guidance_scale;
  /* Lower num-steps to one under sustained QoS lateness (stats say so). */
  gboolean qos_steps;
  /* Name of the stats structure; NULL: "<factory>-stats". */
  const gchar *stats_name;
  const gchar *stats_blurb;
  /* Adds the element's own fields to the stats (object lock held). */
  void (*add_stats) (GstElement * element, GstStructure * s);
  /* Called with a new processing-time estimate before the LATENCY message
   * is posted (an aggregator sets its latency there). */
  void (*latency_changed) (GstElement * element, GstClockTime latency);
} GstGenerativeCoreSpec;

typedef struct _GstGenerativeSd GstGenerativeSd;

typedef struct
{
  const GstGenerativeCoreSpec *spec;
  GstElement *element;
  guint first_prop_id;

  /* Properties (object lock).  model_file NULL = the installed model. */
  gchar *model_file;
  gint n_threads;
  guint64 seed;
  gint num_steps;
  gint tile_size, tile_overlap;
  gchar *prompt, *negative_prompt;
  gdouble guidance_scale, image_guidance_scale;
  gint noise_level;
  GstGenerativeScheduler scheduler;
  /* precision.value is the property; applied and in_use are reset when a
   * new engine object loads (see GstGenerativePrecisionState) */
  GstGenerativePrecisionState precision;

  /* Between start() and stop(). */
  gchar *loaded_path;
  GstGenerativeSd *sd;          /* a pipeline folder, or NULL */
  /* Statistics (object lock). */
  GstGenerativeTiming timing;
  gint steps_in_use;
  guint64 qos_reductions;
  guint text_encodes;           /* a pipeline's prompt encodes so far */
  const gchar *pipeline_class;  /* the pipeline class running, or NULL */

  /* QoS (object lock): filters' step reduction from QoS events, the
   * aggregator's earliest running time worth processing. */
  guint late_events, ontime_events;
  gboolean qos_reduced;
  gint full_steps;
  GstClockTime earliest_time;
} GstGenerativeCore;

/* ---- properties ---------------------------------------------------------- */

/* Installs @spec's properties on @klass with ids from @first_prop_id up
 * (the element's own ids stay below it). */
void gst_generative_core_install_properties (GObjectClass * klass,
    guint first_prop_id, const GstGenerativeCoreSpec * spec);
void gst_generative_core_init (GstGenerativeCore * core, GstElement * element,
    guint first_prop_id, const GstGenerativeCoreSpec * spec);
void gst_generative_core_finalize (GstGenerativeCore * core);
/* FALSE when @prop_id is not one of the core's. */
gboolean gst_generative_core_set_property (GstGenerativeCore * core,
    guint prop_id, const GValue * value, GParamSpec * pspec);
gboolean gst_generative_core_get_property (GstGenerativeCore * core,
    guint prop_id, GValue * value, GParamSpec * pspec);

/* The model start() loads: model-file, else the installed one. */
gchar *gst_generative_core_model_path (GstGenerativeCore * core);

/* TRUE when the precision property changed since the engine last got it
 * (and on the first frame after start()): the element then hands
 * *@precision to its engine object's set_precision and reports what that
 * returned with gst_generative_core_precision_applied ().  Streaming
 * thread.  Pipeline folders get it in gst_generative_core_sd_process (). */
gboolean gst_generative_core_precision_changed (GstGenerativeCore * core,
    GePrecision * precision);
/* What runs (F32 or BF16), for the stats. */
void gst_generative_core_precision_applied (GstGenerativeCore * core,
    GePrecision in_use);

/* The tile side for a @width x @height frame: tile-size, or automatic. */
gint gst_generative_core_tile_for (GstGenerativeCore * core, gint width,
    gint height);

/* ---- loading --------------------------------------------------------------- */

/* What an element's loader gets: the path to load (a file, or a folder).
 * It returns FALSE with @error set (the core posts STREAM/WRONG_TYPE naming
 * the path, with the engine's message as details), or FALSE with @error
 * unset when it posted an element error itself. */
typedef gboolean (*GstGenerativeLoadFunc) (GstElement * element,
    const gchar * path, gpointer user_data, GError ** error);

/* start(): resolves the path, posts PROGRESS START, checks the file or
 * folder is there and readable (RESOURCE errors), times @load, resets the
 * statistics, posts PROGRESS COMPLETE (or ERROR).  FALSE on failure: the
 * state change fails. */
gboolean gst_generative_core_start (GstGenerativeCore * core,
    GstGenerativeLoadFunc load, gpointer user_data);
/* stop(): frees a pipeline folder's objects and the loaded path. */
void gst_generative_core_stop (GstGenerativeCore * core);

/* ---- frames, latency, QoS ------------------------------------------------- */

/* Counts a frame that took @ms; posts a LATENCY message when the estimate
 * moved.  TRUE when it did (an aggregator then sets its latency). */
gboolean gst_generative_core_frame_done (GstGenerativeCore * core,
    gdouble ms);
void gst_generative_core_count_dropped (GstGenerativeCore * core);
GstClockTime gst_generative_core_latency (GstGenerativeCore * core);
/* Answers a LATENCY query after the parent did (filters' src pad). */
void gst_generative_core_latency_query (GstGenerativeCore * core,
    GstQuery * query);
/* A QoS event arriving on the src pad: step reduction (spec->qos_steps)
 * and the earliest running time worth processing. */
void gst_generative_core_qos_event (GstGenerativeCore * core,
    GstEvent * event);
/* TRUE when a frame ending at running time @end is too late to show (for
 * elements that drop themselves, as the aggregator does). */
gboolean gst_generative_core_qos_too_late (GstGenerativeCore * core,
    GstClockTime end);
/* The steps to run now: @requested, or 1 while QoS holds them down;
 * @model_default is what 0 means (for stats).  Updates the stats. */
gint gst_generative_core_qos_steps (GstGenerativeCore * core,
    gint requested, gint model_default);

/* The stats property's string. */
gchar *gst_generative_core_stats_string (GstGenerativeCore * core);

/* ---- pipeline folders (gstgenerativesd.c) -------------------------------- */

/* TRUE when @path is a diffusers pipeline folder (model_index.json). */
gboolean gst_generative_is_pipeline_folder (const gchar * path);

/* Loads the pipeline folder @path for @task (from a load func).  A class
 * the element does not run is STREAM/WRONG_TYPE naming the class and
 * listing the ones it does (@ours: the element's own models, for the
 * message; @not_yet: classes coming soon, listed as such, or NULL); a
 * missing part is RESOURCE/NOT_FOUND naming it.  Posts its errors itself.
 * GE_SD_INPAINT also runs RePaintPipeline (and DDPMPipeline / DDIMPipeline
 * folders as RePaint), GE_SD_IMG2IMG DDIMPipeline / DDPMPipeline folders
 * as SDEdit priors, through GePixelDiffusion: no text, no guidance (the
 * prompt properties are ignored for them). */
gboolean gst_generative_core_open_pipeline (GstGenerativeCore * core,
    const gchar * path, GeSdTask task, const gchar * ours,
    const gchar * not_yet);
/* TRUE when a pipeline folder is loaded (FALSE: our own model). */
gboolean gst_generative_core_has_pipeline (GstGenerativeCore * core);
/* The loaded latent pipeline, or NULL (our own model, or a pixel-space
 * pipeline: test gst_generative_core_has_pipeline () for "a folder"). */
GeSd *gst_generative_core_sd (GstGenerativeCore * core);
/* SDEdit strength for the next frames (img2img). */
void gst_generative_core_sd_set_strength (GstGenerativeCore * core,
    gdouble strength);
/* RePaint's jumps for the next frames (inpaint on a pixel-space pipeline;
 * ignored otherwise). */
void gst_generative_core_sd_set_jumps (GstGenerativeCore * core,
    gint jump_length, gint jump_n_sample);
/* The output size of a @width x @height frame. */
void gst_generative_core_sd_output_size (GstGenerativeCore * core,
    gint width, gint height, gint * out_width, gint * out_height);
/* Runs one frame: the properties applied (a changed prompt is encoded
 * once, a truncated one warned about once), the frame padded to the
 * multiple by edge replication and tiled when larger than the tile size,
 * the output cropped and converted to @out's format (alpha: @in's,
 * scaled nearest, or opaque).  Posts its errors.
 *
 * GE_SD_INPAINT: @mask is width x height bytes (0 keep, else regenerate)
 * and @out is @in (in place): masked pixels take the pipeline's output,
 * pixels within @feather of the mask a smooth blend, all others stay bit
 * for bit; tiles without a masked pixel are not run, and a frame whose
 * pixels, mask and settings are the last frame's gets the last output back
 * without running the pipeline. */
gboolean gst_generative_core_sd_process (GstGenerativeCore * core,
    const GeImageU8 * in, const guint8 * mask, gint feather, GeImageU8 * out);
/* Of the last frame: pixels diffused, and whether the output was reused. */
void gst_generative_core_sd_last (GstGenerativeCore * core, guint64 * area,
    gboolean * reused);
/* Called before a frame: syncs controlled properties (prompt,
 * guidance-scale ...) to the frame's stream time. */
void gst_generative_core_sync_values (GstGenerativeCore * core,
    const GstSegment * segment, GstClockTime pts);

G_END_DECLS

#endif /* __GST_GENERATIVE_CORE_H__ */
