/* ge-repaint-scheduler.h: diffusers 0.35.2's RePaintScheduler (Lugmayr et
 * al. 2022, "RePaint: Inpainting using Denoising Diffusion Probabilistic
 * Models"), number for number.
 *
 * Why not a GeSampler class: RePaint is not a sampler a task can run
 * without knowing it.  Its step takes the original image and the mask and
 * blends the noised original into the known region; its schedule goes back
 * UP in time (entries where the pipeline runs undo_step, a re-noising by
 * beta that draws T / N noises and calls no model); and its step draws
 * noise even at eta 0 (for the known region).  Behind ge-sampler.h every
 * caller would have to branch on it anyway, so it has this small API of
 * its own; the betas and alphas_cumprod tables are the GeScheduler's
 * (bit-identical to torch's).
 *
 * Config: the keys of RePaintScheduler.__init__ (num_train_timesteps,
 * beta_start, beta_end, beta_schedule, eta, trained_betas, clip_sample);
 * every other key is ignored, as RePaintScheduler.from_config does with a
 * DDPMScheduler config (diffusers' own example runs google/ddpm-ema-*
 * folders so), whatever "_class_name" says.  Refused (GE_ERROR_UNSUPPORTED,
 * naming the key): beta_schedule "sigmoid", non-null trained_betas (which
 * diffusers cannot take from JSON either).  Like diffusers, the model is
 * taken to predict epsilon whatever a foreign config's prediction_type
 * says, and x0 is clamped to [-1, 1] when clip_sample is set
 * (clip_sample_range is not a RePaint key).
 *
 * Masks follow DIFFUSERS' RePaint convention here: 1 = known (keep the
 * original), 0 = inpaint.  (ge-pixel-diffusion.h takes the engine's
 * 1 = regenerate and converts.)
 *
 * The pipeline's walk (RePaintPipeline.__call__), entry by entry:
 *
 *   ge_repaint_scheduler_set_timesteps (s, N, jump_length, jump_n_sample, &err);
 *   x = draw ("initial noise");
 *   for (i = 0; i < ge_repaint_scheduler_n_timesteps (s); i++) {
 *     t = ge_repaint_scheduler_timesteps (s)[i];
 *     if (!ge_repaint_scheduler_is_undo (s, i)) {
 *       eps = unet (x, t);
 *       ge_repaint_scheduler_step (s, t, eps, x, orig, keep, mask_n, draw (n), n, x, NULL);
 *     } else
 *       ge_repaint_scheduler_undo_step (s, timesteps[i - 1], x,
 *           draw (undo_n_draws * n), n, x);
 *   }
 *
 * Numerics: every scalar and element-wise operation in float32 in torch's
 * order, so a step from the same inputs and noise gives torch's bits.
 *
 * Threads: immutable after set_timesteps; steps may run concurrently.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include "ge-error.h"

G_BEGIN_DECLS

typedef struct _GeRePaintScheduler GeRePaintScheduler;

/* From a scheduler_config.json object (see above); @source names it in
 * messages. */
GeRePaintScheduler *ge_repaint_scheduler_new_from_json (JsonObject * config,
    const char *source, GError ** error);
void ge_repaint_scheduler_free (GeRePaintScheduler * s);

int ge_repaint_scheduler_num_train_timesteps (const GeRePaintScheduler * s);
/* [num_train_timesteps] float32, owned by @s. */
const float *ge_repaint_scheduler_betas (const GeRePaintScheduler * s);
const float *ge_repaint_scheduler_alphas_cumprod (const GeRePaintScheduler * s);
gboolean ge_repaint_scheduler_clip_sample (const GeRePaintScheduler * s);
/* The config's eta.  RePaintPipeline overwrites it with its own eta
 * argument (default 0) before the loop: so does ge-pixel-diffusion.h. */
float ge_repaint_scheduler_eta (const GeRePaintScheduler * s);
void ge_repaint_scheduler_set_eta (GeRePaintScheduler * s, float eta);

/* set_timesteps (N, jump_length, jump_n_sample): N is clamped to
 * num_train_timesteps as diffusers does; the walk goes down one inference
 * step at a time and, at every jump_length-th step j < N - jump_length,
 * back up jump_length steps, jump_n_sample - 1 times; entries are
 * multiples of T / N.  GE_ERROR_INVALID for N, jump_length or
 * jump_n_sample < 1 (diffusers fails or loops on those) or a walk of more
 * than 2^24 entries (messages name the config's file). */
gboolean ge_repaint_scheduler_set_timesteps (GeRePaintScheduler * s, int num_inference_steps,
    int jump_length, int jump_n_sample, GError ** error);
/* N after clamping (0 before set_timesteps). */
int ge_repaint_scheduler_num_inference_steps (const GeRePaintScheduler * s);
int ge_repaint_scheduler_n_timesteps (const GeRePaintScheduler * s);
/* [n_timesteps], owned by @s. */
const gint64 *ge_repaint_scheduler_timesteps (const GeRePaintScheduler * s);
/* The pipeline's test "t >= t_last" (t_last = the entry before, or
 * timesteps[0] + 1 for the first): the entry re-noises from the entry
 * before (undo_step) instead of calling the model and stepping. */
gboolean ge_repaint_scheduler_is_undo (const GeRePaintScheduler * s, int i);
/* Model calls (steps) of the walk. */
int ge_repaint_scheduler_n_steps (const GeRePaintScheduler * s);
/* Noises one undo_step draws: T / N, each of the sample's size. */
int ge_repaint_scheduler_undo_n_draws (const GeRePaintScheduler * s);

/* step (model_output, t, sample, original_image, mask) over @n floats:
 * @t a timestep of the walk; @mask (1 = keep) has @mask_n floats, element
 * k of the sample taking mask[k % mask_n] (so [h, w] broadcasts over the
 * channels, as diffusers broadcasts [1, 1, h, w]); @noise: @n standard
 * normals, always (diffusers draws them at eta 0 too: the known region is
 * the original noised with them).  @prev may alias @sample; @pred_original
 * (x0 after clipping) may be NULL. */
void ge_repaint_scheduler_step (const GeRePaintScheduler * s, gint64 t,
    const float *model_output, const float *sample, const float *original_image,
    const float *mask, gsize mask_n, const float *noise, gsize n, float *prev,
    float *pred_original);
/* undo_step (sample, t): @undo_n_draws times sample = sqrt (1 - beta) *
 * sample + sqrt (beta) * noise with beta = betas[t + j], @noise holding the
 * draws one after the other ([undo_n_draws][n]).  @t is the entry BEFORE
 * the undo entry (the pipeline's t_last).  @out may alias @sample. */
void ge_repaint_scheduler_undo_step (const GeRePaintScheduler * s, gint64 t,
    const float *sample, const float *noise, gsize n, float *out);

G_END_DECLS
