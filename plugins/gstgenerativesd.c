/* GStreamer generative plugin
 * Copyright (C) 2025 gst-generative contributors
 *
 * This library is free software; you can redistribute it and/or
 * modify it under the terms of the GNU Library General Public
 * License as published by the Free Software Foundation; either
 * version 2.1 of the License, or (at your option) any later version.
 */

/* gstgenerativesd.c: diffusers pipeline folders in the elements (see
 * gstgenerativecore.h): GeSd with the core's properties, 8-bit frames of
 * any size.
 *
 * Frames: 8-bit RGB -> float RGB in [0, 1] as diffusers' image processor
 * takes PIL images (v / 255), replicate-padded on the right and bottom to
 * multiples of ge_sd_size_multiple (), and back with diffusers'
 * numpy_to_pil rounding, round (clamp (v, 0, 1) * 255) with ties to even,
 * after cropping the padding off.
 *
 * Tiles: frames larger than the tile size run in square tiles (multiples
 * of the size multiple) overlapping by tile-overlap, blended with the
 * smootherstep weights of engine/tasks/tiles.h.  Every draw of noise is
 * made by position in the whole frame, not in the tile (a tile's draw is
 * the window of the frame's), so neighbouring tiles denoise the same
 * noise in their overlap and blend without seams.  A frame that fits one
 * tile runs exactly as ge_sd_process () with ge_sd_noise_seeded () and the
 * seed: the same bytes.
 *
 * Pixel-space pipelines: diffusioninpaint runs RePaintPipeline folders
 * (and DDPMPipeline / DDIMPipeline ones as RePaint, as the engine does)
 * and diffusionimg2img runs DDIMPipeline / DDPMPipeline folders as SDEdit
 * priors, through GePixelDiffusion (engine/ge-pixel-diffusion.h) on the
 * same path: padding, tiles, noise by position, composite and stats.  The
 * engine is reached through the small eng_* wrappers below, which call
 * GeSd or GePixelDiffusion.  Those pipelines have no text encoder and no
 * guidance: prompt, negative-prompt and guidance-scale are ignored for
 * them; eta stays the pipeline's default (0).
 *
 * Memory: the work buffers here are sized by the first frame of a size and
 * kept; ge_sd_process () itself allocates its own per call (its latents,
 * U-Net input and the VAE's work) as the engine stands.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <string.h>

#include "gstgenerativecore.h"
#include "ge-pipeline.h"
#include "ge-pixel-diffusion.h"
#include "tiles.h"

GST_DEBUG_CATEGORY_STATIC (gst_generative_sd_debug);
#define GST_CAT_DEFAULT gst_generative_sd_debug

#define MAX_TILES 256

/* What a frame's output depends on besides its pixels and mask: the
 * settings the inpainting reuse compares (plain values, no allocation). */
typedef struct
{
  guint64 seed;
  gint steps, scheduler, noise_level, feather;
  gdouble guidance, image_guidance, strength;
  gint jump_length, jump_n_sample;
  guint prompt_changes;
  GePrecision precision;        /* what runs */
} RunSettings;

struct _GstGenerativeSd
{
  GePipeline *pipeline;
  /* One of the two: a latent pipeline (GeSd), or a pixel-space one. */
  GeSd *sd;
  GePixelDiffusion *pd;
  GeSdTask task;
  gint multiple;                /* inputs are multiples of it */
  gint factor;                  /* output / input size */
  gint default_steps;

  /* What was last handed to the engine. */
  gint applied_steps, applied_n_threads;
  GstGenerativeScheduler applied_scheduler;
  gchar *applied_prompt, *applied_negative;
  guint prompt_changes;         /* counts the prompt pairs applied */
  gchar *warned_prompt;         /* the last prompt warned about as cut */
  gint applied_jump_length, applied_jump_n_sample;

  /* Set by the elements between frames (object lock of the element). */
  gdouble strength;
  gint jump_length, jump_n_sample;

  /* The noise of a tile: the frame's, seen through the tile's window. */
  guint64 seed;
  gint tile_x0, tile_y0, tile_w, tile_h;

  /* Work buffers of the padded frame (pw x ph in, F times that out). */
  gint pw, ph;
  gfloat *img, *mask, *acc, *wsum;
  gfloat *tile_img, *tile_mask, *tile_out;
  gint tile_cap_in, tile_cap_out;
  gint32 *dist;
  gsize dist_len;

  /* Inpainting: the last frame (RGB and mask bytes), its output, and the
   * settings it ran with: an identical next frame gets it back. */
  guint8 *last_in, *last_mask, *last_out;
  gsize last_len;
  gboolean last_valid;
  RunSettings last_settings;
  guint64 last_area;
  gboolean last_reused;
};

static void
sd_free (GstGenerativeSd * s)
{
  if (!s)
    return;
  g_clear_pointer (&s->sd, ge_sd_free);
  g_clear_pointer (&s->pd, ge_pixel_diffusion_free);
  g_clear_pointer (&s->pipeline, ge_pipeline_free);
  g_free (s->applied_prompt);
  g_free (s->applied_negative);
  g_free (s->warned_prompt);
  g_free (s->img);
  g_free (s->mask);
  g_free (s->acc);
  g_free (s->wsum);
  g_free (s->tile_img);
  g_free (s->tile_mask);
  g_free (s->tile_out);
  g_free (s->dist);
  g_free (s->last_in);
  g_free (s->last_mask);
  g_free (s->last_out);
  g_free (s);
}

void
gst_generative_core_stop (GstGenerativeCore * core)
{
  g_clear_pointer (&core->sd, sd_free);
  g_clear_pointer (&core->loaded_path, g_free);
  if (core->element) {
    GST_OBJECT_LOCK (core->element);
    core->pipeline_class = NULL;
    GST_OBJECT_UNLOCK (core->element);
  }
}

gboolean
gst_generative_is_pipeline_folder (const gchar * path)
{
  return path && ge_pipeline_is_folder (path);
}

GeSd *
gst_generative_core_sd (GstGenerativeCore * core)
{
  return core->sd ? core->sd->sd : NULL;
}

gboolean
gst_generative_core_has_pipeline (GstGenerativeCore * core)
{
  return core->sd != NULL;
}

void
gst_generative_core_sd_set_strength (GstGenerativeCore * core,
    gdouble strength)
{
  if (core->sd)
    core->sd->strength = strength;
}

void
gst_generative_core_sd_set_jumps (GstGenerativeCore * core, gint jump_length,
    gint jump_n_sample)
{
  if (core->sd) {
    core->sd->jump_length = jump_length;
    core->sd->jump_n_sample = jump_n_sample;
  }
}

/* ------------------------------------------------------------------------ */
/* the engine: GeSd or GePixelDiffusion */

static void
eng_set_n_threads (GstGenerativeSd * s, gint n_threads)
{
  if (s->pd)
    ge_pixel_diffusion_set_n_threads (s->pd, n_threads);
  else
    ge_sd_set_n_threads (s->sd, n_threads);
}

static GePrecision
eng_set_precision (GstGenerativeSd * s, GePrecision precision)
{
  return s->pd ? ge_pixel_diffusion_set_precision (s->pd, precision)
      : ge_sd_set_precision (s->sd, precision);
}

static gboolean
eng_set_scheduler (GstGenerativeSd * s, const gchar * name, GError ** error)
{
  return s->pd ? ge_pixel_diffusion_set_scheduler (s->pd, name, error)
      : ge_sd_set_scheduler (s->sd, name, error);
}

static gboolean
eng_set_num_steps (GstGenerativeSd * s, gint steps, GError ** error)
{
  return s->pd ? ge_pixel_diffusion_set_num_steps (s->pd, steps, error)
      : ge_sd_set_num_steps (s->sd, steps, error);
}

static gint
eng_num_steps (GstGenerativeSd * s)
{
  return s->pd ? ge_pixel_diffusion_num_steps (s->pd) : ge_sd_num_steps (s->sd);
}

static void
eng_set_strength (GstGenerativeSd * s, gdouble strength)
{
  if (s->pd)
    ge_pixel_diffusion_set_strength (s->pd, (float) strength);
  else
    ge_sd_set_strength (s->sd, strength);
}

static gint
eng_size_multiple (GstGenerativeSd * s)
{
  return s->pd ? ge_pixel_diffusion_size_multiple (s->pd)
      : ge_sd_size_multiple (s->sd);
}

/* Output / input size. */
static gint
eng_factor (GstGenerativeSd * s)
{
  gint f = 1;

  if (!s->pd)
    ge_sd_output_size (s->sd, 1, 1, &f, &f);
  return f;
}

static const gchar *
eng_class (GstGenerativeSd * s)
{
  return s->pd ? ge_pixel_diffusion_pipeline_class (s->pd)
      : ge_sd_pipeline_class (s->sd);
}

static gboolean
eng_process (GstGenerativeSd * s, const gfloat * image, const gfloat * mask,
    gint h, gint w, GeSdNoiseFunc noise, gpointer data, gfloat * out,
    GError ** error)
{
  return s->pd ? ge_pixel_diffusion_process (s->pd, image, mask, h, w, noise,
      data, out, error) : ge_sd_process (s->sd, image, mask, h, w, noise, data,
      out, error);
}

/* The pixel-space task an element's task runs pipeline folders as. */
static gboolean
pixel_task_for (GeSdTask task, GePixelDiffusionTask * pixel_task)
{
  if (task == GE_SD_INPAINT)
    *pixel_task = GE_PIXEL_DIFFUSION_REPAINT;
  else if (task == GE_SD_IMG2IMG)
    *pixel_task = GE_PIXEL_DIFFUSION_SDEDIT;
  else
    return FALSE;
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* loading */

static gboolean
class_in_list (const gchar * cls, const gchar * list)
{
  gchar **names;
  gboolean found = FALSE;

  if (!list || !cls)
    return FALSE;
  names = g_strsplit (list, ", ", -1);
  for (gchar ** n = names; *n && !found; n++)
    found = g_strcmp0 (g_strstrip (*n), cls) == 0;
  g_strfreev (names);
  return found;
}

gboolean
gst_generative_core_open_pipeline (GstGenerativeCore * core,
    const gchar * path, GeSdTask task, const gchar * ours,
    const gchar * not_yet)
{
  GstElement *e = core->element;
  const gchar *element_name = GST_OBJECT_NAME (gst_element_get_factory (e));
  GePixelDiffusionTask pixel_task = GE_PIXEL_DIFFUSION_REPAINT;
  const gboolean has_pixel = pixel_task_for (task, &pixel_task);
  const gchar *pixel_classes = has_pixel
      ? ge_pixel_diffusion_supported_classes (pixel_task) : NULL;
  gchar *supported;
  GError *err = NULL;
  GstGenerativeSd *s;
  const gchar *cls;
  gboolean pixel;

  static gsize debug_done = 0;

  if (g_once_init_enter (&debug_done)) {
    GST_DEBUG_CATEGORY_INIT (gst_generative_sd_debug, "generativesd", 0,
        "diffusers pipeline folders in the elements");
    g_once_init_leave (&debug_done, 1);
  }
  /* The latent pipelines of GeSd, then the pixel-space ones. */
  if (has_pixel)
    supported = g_strdup_printf ("%s, %s", ge_sd_supported_classes (task),
        pixel_classes);
  else
    supported = g_strdup (ge_sd_supported_classes (task));
  s = g_new0 (GstGenerativeSd, 1);
  s->task = task;
  s->pipeline = ge_pipeline_open (path, &err);
  if (!s->pipeline) {
    GST_ELEMENT_ERROR (e, STREAM, WRONG_TYPE,
        ("\"%s\" is not a usable diffusers pipeline folder.", path),
        ("%s", err->message));
    goto failed;
  }
  cls = ge_pipeline_class_name (s->pipeline);
  if (class_in_list (cls, not_yet)) {
    GST_ELEMENT_ERROR (e, STREAM, WRONG_TYPE,
        ("%s does not run %s (\"%s\") yet; it runs %s, besides %s.",
            element_name, cls, path, supported, ours),
        ("%s is on its way (not yet: %s)", cls, not_yet));
    goto failed;
  }
  if (!class_in_list (cls, supported)) {
    GST_ELEMENT_ERROR (e, STREAM, WRONG_TYPE,
        ("%s does not run pipeline class %s (\"%s\"): it runs %s, "
            "besides %s%s%s%s.", element_name, cls ? cls : "(none)", path,
            supported, ours, not_yet ? " (not yet: " : "",
            not_yet ? not_yet : "", not_yet ? ")" : ""), ("model_index.json names _class_name %s",
            cls ? cls : "(none)"));
    goto failed;
  }
  pixel = has_pixel && class_in_list (cls, pixel_classes);
  if (pixel)
    s->pd = ge_pixel_diffusion_new (s->pipeline, pixel_task, &err);
  else
    s->sd = ge_sd_new (s->pipeline, task, &err);
  if (!s->sd && !s->pd) {
    if (g_error_matches (err, GE_ERROR, GE_ERROR_NOT_FOUND))
      GST_ELEMENT_ERROR (e, RESOURCE, NOT_FOUND,
          ("Pipeline folder \"%s\" is incomplete: %s.", path, err->message),
          ("model_index.json names a part (or a file of one) that is not "
              "there"));
    else
      GST_ELEMENT_ERROR (e, STREAM, WRONG_TYPE,
          ("\"%s\" (%s) is not a pipeline %s can run.", path, cls,
              element_name), ("%s", err->message));
    goto failed;
  }
  s->multiple = eng_size_multiple (s);
  s->factor = eng_factor (s);
  s->default_steps = eng_num_steps (s);
  s->applied_steps = s->applied_n_threads = -1;
  s->applied_jump_length = s->applied_jump_n_sample = -1;
  s->jump_length = s->jump_n_sample = -1;       /* the engine's */
  s->strength = -1.0;           /* the engine's */
  s->applied_scheduler = GST_GENERATIVE_SCHEDULER_AUTO;
  core->sd = s;
  GST_OBJECT_LOCK (e);
  core->pipeline_class = eng_class (s);
  GST_OBJECT_UNLOCK (e);
  GST_INFO_OBJECT (e, "%s: %s (runs as %s%s), size multiple %d, x%d", path,
      cls, eng_class (s), s->pd ? (pixel_task == GE_PIXEL_DIFFUSION_REPAINT
          ? ", RePaint" : ", SDEdit") : "", s->multiple, s->factor);
  g_free (supported);
  return TRUE;

failed:
  g_clear_error (&err);
  g_free (supported);
  sd_free (s);
  return FALSE;
}

void
gst_generative_core_sd_output_size (GstGenerativeCore * core, gint width,
    gint height, gint * out_width, gint * out_height)
{
  const gint f = core->sd ? core->sd->factor : 1;

  *out_width = width * f;
  *out_height = height * f;
}

void
gst_generative_core_sd_last (GstGenerativeCore * core, guint64 * area,
    gboolean * reused)
{
  *area = core->sd ? core->sd->last_area : 0;
  *reused = core->sd ? core->sd->last_reused : FALSE;
}

/* ------------------------------------------------------------------------ */
/* settings */

/* Hands the properties to the engine: only what changed (a prompt is
 * encoded when it changes, never per frame); fills @settings. */
static gboolean
apply_settings (GstGenerativeCore * core, GstGenerativeSd * s,
    RunSettings * settings)
{
  GstElement *e = core->element;
  GError *err = NULL;
  gint n_threads, steps, noise_level;
  gdouble guidance, image_guidance;
  GstGenerativeScheduler scheduler;
  GePrecision precision;
  gchar *prompt = NULL, *negative = NULL;
  gboolean truncated = FALSE;

  GST_OBJECT_LOCK (e);
  n_threads = core->n_threads;
  steps = core->num_steps;
  noise_level = core->noise_level;
  guidance = core->guidance_scale;
  image_guidance = core->image_guidance_scale;
  scheduler = core->scheduler;
  s->seed = core->seed;
  if (g_strcmp0 (core->prompt, s->applied_prompt) != 0
      || g_strcmp0 (core->negative_prompt, s->applied_negative) != 0) {
    prompt = g_strdup (core->prompt);
    negative = g_strdup (core->negative_prompt);
  }
  GST_OBJECT_UNLOCK (e);

  if (n_threads != s->applied_n_threads) {
    eng_set_n_threads (s, n_threads);
    s->applied_n_threads = n_threads;
  }
  if (gst_generative_core_precision_changed (core, &precision))
    gst_generative_core_precision_applied (core, eng_set_precision (s,
            precision));
  if (scheduler != s->applied_scheduler) {
    if (!eng_set_scheduler (s, gst_generative_scheduler_name (scheduler),
            &err)) {
      GST_ELEMENT_ERROR (e, LIBRARY, SETTINGS,
          ("Scheduler \"%s\" cannot run pipeline \"%s\".",
              gst_generative_scheduler_name (scheduler), core->loaded_path),
          ("%s", err->message));
      g_clear_error (&err);
      g_free (prompt);
      g_free (negative);
      return FALSE;
    }
    s->applied_scheduler = scheduler;
    s->applied_steps = -1;      /* a new sampler: set its steps again */
  }
  if (s->pd && s->jump_length > 0 && (s->jump_length != s->applied_jump_length
          || s->jump_n_sample != s->applied_jump_n_sample)) {
    if (!ge_pixel_diffusion_set_jumps (s->pd, s->jump_length,
            s->jump_n_sample, &err)) {
      GST_ELEMENT_ERROR (e, LIBRARY, SETTINGS,
          ("RePaint jumps of %d x %d do not fit pipeline \"%s\".",
              s->jump_length, s->jump_n_sample, core->loaded_path),
          ("%s", err->message));
      g_clear_error (&err);
      g_free (prompt);
      g_free (negative);
      return FALSE;
    }
    s->applied_jump_length = s->jump_length;
    s->applied_jump_n_sample = s->jump_n_sample;
  }
  steps = gst_generative_core_qos_steps (core, steps, s->default_steps);
  if (steps <= 0)
    steps = s->default_steps;
  if (steps != s->applied_steps) {
    if (!eng_set_num_steps (s, steps, &err)) {
      GST_ELEMENT_ERROR (e, LIBRARY, SETTINGS,
          ("%d steps do not fit pipeline \"%s\".", steps, core->loaded_path),
          ("%s", err->message));
      g_clear_error (&err);
      g_free (prompt);
      g_free (negative);
      return FALSE;
    }
    s->applied_steps = steps;
  }
  if (s->strength >= 0.0)
    eng_set_strength (s, s->strength);
  if (s->pd) {
    /* No text, no guidance: the prompt properties do nothing here. */
    g_free (prompt);
    g_free (negative);
    prompt = negative = NULL;
  } else {
    ge_sd_set_guidance (s->sd, (float) guidance, (float) image_guidance);
    ge_sd_set_noise_level (s->sd, noise_level);
  }

  if (prompt) {
    if (!ge_sd_set_prompt (s->sd, prompt, negative, &truncated, &err)) {
      GST_ELEMENT_ERROR (e, LIBRARY, FAILED,
          ("Could not encode the prompt with pipeline \"%s\".",
              core->loaded_path), ("%s", err->message));
      g_clear_error (&err);
      g_free (prompt);
      g_free (negative);
      return FALSE;
    }
    g_free (s->applied_prompt);
    g_free (s->applied_negative);
    s->applied_prompt = prompt;
    s->applied_negative = negative;
    s->prompt_changes++;
    /* One warning per prompt that is cut, not one per frame or change
     * back to it. */
    if (truncated && g_strcmp0 (s->warned_prompt, prompt) != 0) {
      g_free (s->warned_prompt);
      s->warned_prompt = g_strdup (prompt);
      GST_ELEMENT_WARNING (e, RESOURCE, SETTINGS,
          ("The prompt is longer than the text encoder's 77 tokens: the "
              "rest is cut off, as diffusers does."),
          ("prompt \"%s\", negative prompt \"%s\"", prompt, negative));
    }
    GST_OBJECT_LOCK (e);
    core->text_encodes = ge_sd_n_text_encodes (s->sd);
    GST_OBJECT_UNLOCK (e);
  }
  memset (settings, 0, sizeof (*settings));
  settings->seed = s->seed;
  settings->steps = steps;
  settings->scheduler = scheduler;
  settings->noise_level = noise_level;
  settings->guidance = guidance;
  settings->image_guidance = image_guidance;
  settings->strength = s->strength;
  settings->jump_length = s->jump_length;
  settings->jump_n_sample = s->jump_n_sample;
  settings->prompt_changes = s->prompt_changes;
  GST_OBJECT_LOCK (e);
  settings->precision = core->precision.in_use;
  GST_OBJECT_UNLOCK (e);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* noise by frame position */

static void
tile_noise (void *data, const char *what, int step, float *out, int c, int h,
    int w)
{
  GstGenerativeSd *s = data;
  /* The draw's grid (latents or pixels) against the tile's pixels. */
  const gint fy = MAX (s->tile_h / h, 1), fx = MAX (s->tile_w / w, 1);

  ge_sd_noise_seeded_at (s->seed, what, step, s->tile_y0 / fy, s->tile_x0 / fx,
      out, c, h, w);
}

/* ------------------------------------------------------------------------ */
/* frames */

static void
ensure_buffers (GstGenerativeSd * s, gint pw, gint ph, gint tile_in)
{
  const gint F = s->factor;
  const gsize in_plane = (gsize) pw * ph, out_plane = in_plane * F * F;

  if (pw != s->pw || ph != s->ph) {
    g_free (s->img);
    g_free (s->mask);
    g_free (s->acc);
    g_free (s->wsum);
    s->img = g_new (gfloat, 3 * in_plane);
    s->mask = s->task == GE_SD_INPAINT ? g_new (gfloat, in_plane) : NULL;
    s->acc = g_new (gfloat, 3 * out_plane);
    s->wsum = g_new (gfloat, out_plane);
    s->pw = pw;
    s->ph = ph;
  }
  if (tile_in > s->tile_cap_in) {
    g_free (s->tile_img);
    g_free (s->tile_mask);
    g_free (s->tile_out);
    s->tile_img = g_new (gfloat, 3 * (gsize) tile_in);
    s->tile_mask = g_new (gfloat, tile_in);
    s->tile_out = g_new (gfloat, 3 * (gsize) tile_in * F * F);
    s->tile_cap_in = tile_in;
  }
}

/* The frame, replicate-padded to pw x ph, as planes in [0, 1]; the mask
 * likewise as 0 / 1. */
static void
load_frame (GstGenerativeSd * s, const GeImageU8 * in, const guint8 * mask)
{
  const gsize plane = (gsize) s->pw * s->ph;
  const gint off[3] = { in->r, in->g, in->b };

  for (gint y = 0; y < s->ph; y++) {
    const gint sy = MIN (y, in->height - 1);
    const guint8 *row = in->data + (gsize) sy * in->stride;
    for (gint x = 0; x < s->pw; x++) {
      const gint sx = MIN (x, in->width - 1);
      const guint8 *p = row + (gsize) sx * in->pixel_stride;
      const gsize i = (gsize) y * s->pw + x;
      for (gint c = 0; c < 3; c++)
        s->img[c * plane + i] = p[off[c]] / 255.0f;
      if (mask)
        s->mask[i] = mask[(gsize) sy * in->width + sx] ? 1.0f : 0.0f;
    }
  }
}

static void
crop_planes (const gfloat * src, gint sw, gint sh, gint x0, gint y0, gint w,
    gint h, gint channels, gfloat * dst)
{
  for (gint c = 0; c < channels; c++)
    for (gint y = 0; y < h; y++)
      memcpy (dst + ((gsize) c * h + y) * w,
          src + ((gsize) c * sh + y0 + y) * sw + x0, sizeof (gfloat) * w);
}

static gboolean
any_set (const gfloat * m, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (m[i] != 0.0f)
      return TRUE;
  return FALSE;
}

static gboolean
memchr_nonzero (const guint8 * m, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (m[i])
      return TRUE;
  return FALSE;
}

static inline guint8
to_u8 (gfloat v)
{
  /* diffusers' numpy_to_pil: (x * 255).round (), ties to even. */
  return (guint8) lrintf (CLAMP (v, 0.0f, 1.0f) * 255.0f);
}

/* Chamfer (3-4) distance to the mask, in thirds of a pixel, capped. */
static void
mask_distance (const guint8 * mask, gint W, gint H, gint cap, gint32 * d)
{
  for (gint y = 0; y < H; y++)
    for (gint x = 0; x < W; x++) {
      gint32 v = mask[(gsize) y * W + x] ? 0 : cap;
      if (v) {
        if (x > 0)
          v = MIN (v, d[(gsize) y * W + x - 1] + 3);
        if (y > 0) {
          v = MIN (v, d[(gsize) (y - 1) * W + x] + 3);
          if (x > 0)
            v = MIN (v, d[(gsize) (y - 1) * W + x - 1] + 4);
          if (x + 1 < W)
            v = MIN (v, d[(gsize) (y - 1) * W + x + 1] + 4);
        }
      }
      d[(gsize) y * W + x] = v;
    }
  for (gint y = H - 1; y >= 0; y--)
    for (gint x = W - 1; x >= 0; x--) {
      gint32 v = d[(gsize) y * W + x];
      if (x + 1 < W)
        v = MIN (v, d[(gsize) y * W + x + 1] + 3);
      if (y + 1 < H) {
        v = MIN (v, d[(gsize) (y + 1) * W + x] + 3);
        if (x + 1 < W)
          v = MIN (v, d[(gsize) (y + 1) * W + x + 1] + 4);
        if (x > 0)
          v = MIN (v, d[(gsize) (y + 1) * W + x - 1] + 4);
      }
      d[(gsize) y * W + x] = v;
    }
}

static gboolean
run_tiles (GstGenerativeCore * core, GstGenerativeSd * s, gint tile,
    gint overlap, guint64 * area, GError ** error)
{
  const gint m = s->multiple, F = s->factor, pw = s->pw, ph = s->ph;
  const gsize plane = (gsize) pw * ph;
  gint t, o, tw, th, nx, ny;
  gint xs[MAX_TILES], ys[MAX_TILES];
  const gboolean inpaint = s->task == GE_SD_INPAINT;

  *area = 0;
  if (tile <= 0 || (pw <= tile && ph <= tile)) {
    /* One tile: the frame exactly as ge_sd_process () runs it. */
    s->tile_x0 = s->tile_y0 = 0;
    s->tile_w = pw;
    s->tile_h = ph;
    *area = plane;
    return eng_process (s, s->img, inpaint ? s->mask : NULL, ph, pw,
        tile_noise, s, s->acc, error);
  }
  t = MAX ((tile + m - 1) / m * m, m);
  o = MIN ((overlap + m - 1) / m * m, t / 2 / m * m);
  tw = MIN (t, pw);
  th = MIN (t, ph);
  nx = ge_tile_starts (pw, tw, o, xs, MAX_TILES);
  ny = ge_tile_starts (ph, th, o, ys, MAX_TILES);
  memset (s->acc, 0, sizeof (gfloat) * 3 * plane * F * F);
  memset (s->wsum, 0, sizeof (gfloat) * plane * F * F);
  for (gint j = 0; j < ny; j++)
    for (gint i = 0; i < nx; i++) {
      const gint x0 = xs[i], y0 = ys[j];

      crop_planes (s->img, pw, ph, x0, y0, tw, th, 3, s->tile_img);
      if (inpaint) {
        crop_planes (s->mask, pw, ph, x0, y0, tw, th, 1, s->tile_mask);
        if (!any_set (s->tile_mask, (gsize) tw * th)) {
          /* Nothing to regenerate here: the tile is its input. */
          ge_tile_accumulate (s->acc, s->wsum, 3, pw, ph, s->tile_img, tw,
              (gsize) tw * th, x0, y0, tw, th, o);
          continue;
        }
      }
      s->tile_x0 = x0;
      s->tile_y0 = y0;
      s->tile_w = tw;
      s->tile_h = th;
      if (!eng_process (s, s->tile_img, inpaint ? s->tile_mask : NULL,
              th, tw, tile_noise, s, s->tile_out, error))
        return FALSE;
      *area += (gsize) tw * th;
      ge_tile_accumulate (s->acc, s->wsum, 3, pw * F, ph * F, s->tile_out,
          tw * F, (gsize) tw * th * F * F, x0 * F, y0 * F, tw * F, th * F,
          o * F);
    }
  ge_tile_normalize (s->acc, s->wsum, 3, plane * F * F);
  GST_LOG_OBJECT (core->element, "%dx%d tiles of %dx%d, overlap %d", nx, ny,
      tw, th, o);
  return TRUE;
}

/* Packs the frame's RGB (and the mask) to compare with the last frame. */
static gboolean
same_as_last (GstGenerativeSd * s, const GeImageU8 * in, const guint8 * mask,
    const RunSettings * settings)
{
  const gsize n = (gsize) in->width * in->height;
  gboolean same;

  if (s->last_len != n) {
    g_free (s->last_in);
    g_free (s->last_mask);
    g_free (s->last_out);
    s->last_in = g_new (guint8, 3 * n);
    s->last_mask = g_new (guint8, n);
    s->last_out = g_new (guint8, 3 * n);
    s->last_len = n;
    s->last_valid = FALSE;
  }
  same = s->last_valid
      && memcmp (settings, &s->last_settings, sizeof (*settings)) == 0
      && memcmp (mask, s->last_mask, n) == 0;
  for (gint y = 0; y < in->height; y++) {
    const guint8 *row = in->data + (gsize) y * in->stride;
    guint8 *dst = s->last_in + (gsize) y * in->width * 3;
    for (gint x = 0; x < in->width; x++) {
      const guint8 *p = row + (gsize) x * in->pixel_stride;
      const guint8 rgb[3] = { p[in->r], p[in->g], p[in->b] };
      if (same && memcmp (dst + 3 * x, rgb, 3) != 0)
        same = FALSE;
      memcpy (dst + 3 * x, rgb, 3);
    }
  }
  memcpy (s->last_mask, mask, n);
  memcpy (&s->last_settings, settings, sizeof (*settings));
  return same;
}

gboolean
gst_generative_core_sd_process (GstGenerativeCore * core,
    const GeImageU8 * in, const guint8 * mask, gint feather, GeImageU8 * out)
{
  GstElement *e = core->element;
  GstGenerativeSd *s = core->sd;
  const gboolean inpaint = s->task == GE_SD_INPAINT;
  const gint m = s->multiple, F = s->factor;
  const gint pw = (in->width + m - 1) / m * m, ph = (in->height + m - 1) / m * m;
  RunSettings settings;
  GError *err = NULL;
  gint tile, overlap, W, H;
  const gsize plane_out = (gsize) pw * F * ph * F;

  g_return_val_if_fail (!inpaint || mask, FALSE);
  if (inpaint && !memchr_nonzero (mask, (gsize) in->width * in->height)) {
    /* Nothing to regenerate: the frame stays as it is. */
    s->last_area = 0;
    s->last_reused = FALSE;
    return TRUE;
  }
  if (!apply_settings (core, s, &settings))
    return FALSE;
  if (inpaint) {
    settings.feather = feather;
    s->last_reused = same_as_last (s, in, mask, &settings);
    if (s->last_reused) {
      /* The same bytes the pipeline would give again, without running it. */
      for (gint y = 0; y < in->height; y++)
        for (gint x = 0; x < in->width; x++) {
          guint8 *p = out->data + (gsize) y * out->stride
              + (gsize) x * out->pixel_stride;
          const guint8 *q = s->last_out + ((gsize) y * in->width + x) * 3;
          p[out->r] = q[0];
          p[out->g] = q[1];
          p[out->b] = q[2];
        }
      return TRUE;
    }
    s->last_valid = FALSE;
  }

  GST_OBJECT_LOCK (e);
  overlap = core->tile_overlap;
  GST_OBJECT_UNLOCK (e);
  tile = gst_generative_core_tile_for (core, in->width, in->height);
  {
    const gint t = tile > 0 ? MAX ((tile + m - 1) / m * m, m) : 0;
    ensure_buffers (s, pw, ph, MIN (t, pw) * MIN (t, ph));
  }
  load_frame (s, in, mask);
  if (!run_tiles (core, s, tile, overlap, &s->last_area, &err)) {
    GST_ELEMENT_ERROR (e, STREAM, FAILED,
        ("Pipeline \"%s\" failed on a %dx%d frame.", core->loaded_path,
            in->width, in->height), ("%s", err->message));
    g_clear_error (&err);
    return FALSE;
  }

  W = pw * F;
  H = ph * F;
  (void) H;
  if (!inpaint) {
    for (gint y = 0; y < out->height; y++) {
      guint8 *row = out->data + (gsize) y * out->stride;
      const guint8 *arow = in->a >= 0 ? in->data + (gsize) (y / F) * in->stride
          : NULL;
      for (gint x = 0; x < out->width; x++) {
        guint8 *p = row + (gsize) x * out->pixel_stride;
        const gsize i = (gsize) y * W + x;
        p[out->r] = to_u8 (s->acc[i]);
        p[out->g] = to_u8 (s->acc[plane_out + i]);
        p[out->b] = to_u8 (s->acc[2 * plane_out + i]);
        if (out->a >= 0)
          p[out->a] = arow ? arow[(gsize) (x / F) * in->pixel_stride + in->a]
              : 255;
      }
    }
  } else {
    /* Composite: the pipeline's pixels on the mask, a smootherstep blend
     * out to feather + 1 pixels, the input beyond. */
    const gint Wf = in->width, Hf = in->height, reach = 3 * (feather + 1);

    if (s->dist_len != (gsize) Wf * Hf) {
      g_free (s->dist);
      s->dist_len = (gsize) Wf * Hf;
      s->dist = g_new (gint32, s->dist_len);
    }
    mask_distance (mask, Wf, Hf, reach, s->dist);
    for (gint y = 0; y < Hf; y++)
      for (gint x = 0; x < Wf; x++) {
        const gint32 d = s->dist[(gsize) y * Wf + x];
        guint8 *p = out->data + (gsize) y * out->stride
            + (gsize) x * out->pixel_stride;
        const gsize i = (gsize) y * W + x;
        guint8 v[3] = { to_u8 (s->acc[i]), to_u8 (s->acc[plane_out + i]),
          to_u8 (s->acc[2 * plane_out + i])
        };
        if (d >= reach)
          v[0] = p[out->r], v[1] = p[out->g], v[2] = p[out->b];
        else if (d > 0) {
          const gfloat w = ge_tile_ramp (reach - d, reach);
          const gint o[3] = { out->r, out->g, out->b };
          for (gint c = 0; c < 3; c++)
            v[c] = (guint8) lrintf (CLAMP (w * v[c] + (1.0f - w) * p[o[c]],
                    0.0f, 255.0f));
        }
        p[out->r] = v[0];
        p[out->g] = v[1];
        p[out->b] = v[2];
        memcpy (s->last_out + ((gsize) y * Wf + x) * 3, v, 3);
      }
    s->last_valid = TRUE;
  }
  return TRUE;
}
