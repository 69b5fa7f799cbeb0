/* ge-sampler.h: every sampler behind one interface, each reading a diffusers
 * scheduler_config.json as diffusers 0.35.2's scheduler class of the same
 * name does.
 *
 * Classes ("_class_name", and the short names of ge_sampler_new_from_json_as):
 *   DDPMScheduler                    "ddpm"
 *   DDIMScheduler                    "ddim"
 *   PNDMScheduler                    "pndm"    (skip_prk_steps=true only)
 *   EulerDiscreteScheduler           "euler"
 *   EulerAncestralDiscreteScheduler  "euler-ancestral"
 *   DPMSolverMultistepScheduler      "dpmpp-2m", "dpmpp-2m-karras": these two
 *                                    names set algorithm_type dpmsolver++,
 *                                    solver_order 2 and use_karras_sigmas
 *                                    off / on themselves (the config's other
 *                                    keys are read); the class name reads
 *                                    all of them from the config
 *   LMSDiscreteScheduler             "lms"
 * DDPM and DDIM are the GeScheduler of ge-scheduler.h behind this interface.
 *
 * A caller runs every sampler the same way:
 *
 *   GeSampler *s = ge_sampler_new_from_json_as (name, cfg, path, &err);
 *   ge_sampler_set_timesteps (s, steps, &err);
 *   GeSamplerRun *r = ge_sampler_run_new (s, n);
 *   x = noise * ge_sampler_init_noise_sigma (s)      (or, from strength,
 *       i0 = ge_sampler_start_index (s, strength); x = add_noise (i0, ...))
 *   for (i = i0; i < ge_sampler_n_calls (s); i++) {
 *     eps = model (x * ge_sampler_input_scale (s, i), ge_sampler_timestep (s, i));
 *     ge_sampler_step (r, i, eps, x, step_needs_noise ? normals : NULL, x);
 *   }
 *
 * Every config key the diffusers class takes is read; a value we do not
 * reproduce gives GE_ERROR_UNSUPPORTED (message "<source>: <key> ...").
 * Refused: trained_betas, rescale_betas_zero_snr=true, thresholding=true,
 * variance_type learned/learned_range, use_exponential_sigmas,
 * use_beta_sigmas, use_lu_lambdas, use_flow_sigmas, DPM-Solver
 * algorithm_type other than dpmsolver++ (deis maps to it, as in diffusers),
 * solver_order 3, PNDM's Runge-Kutta warm-up (skip_prk_steps=false), PNDM
 * and Euler-ancestral prediction_type "sample" (diffusers raises there too).
 *
 * Numerics: schedules (betas, alphas_cumprod, sigmas, timesteps) follow
 * torch / numpy operation by operation (float32 tables, numpy's float64
 * interpolation, Karras sigmas in double); steps do diffusers' float32
 * arithmetic in torch's order.  Karras / log-linear schedules go through
 * logf/expf where numpy and torch use their SIMD log/exp, so those sigmas
 * may differ by an ulp.
 *
 * Deliberate differences from diffusers:
 *  - steps are addressed by call index i, as a pipeline that called
 *    set_begin_index does; diffusers' lookup of a timestep value (which
 *    picks the second of two equal timesteps) is not reproduced;
 *  - EulerDiscreteScheduler's s_churn / s_tmin / s_tmax / s_noise step
 *    arguments are fixed at their defaults (no churn), as pipelines call it;
 *  - LMS coefficients are integrated exactly (Gauss-Legendre, double) where
 *    diffusers runs scipy's adaptive quad (epsrel 1e-4) on a float32
 *    integrand: agreement to about 1e-7 relative, not bit-exact;
 *  - the "trailing" spacing stops at N timesteps where numpy's float arange
 *    makes diffusers append a bogus one (see ge-scheduler.h).
 *
 * Threads: a GeSampler is immutable after set_timesteps; each concurrent run
 * needs its own GeSamplerRun.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include "ge-error.h"

G_BEGIN_DECLS

typedef struct _GeSampler GeSampler;        /* the schedule: immutable after set_timesteps */
typedef struct _GeSamplerRun GeSamplerRun;  /* per-run state (PNDM's past outputs, DPM++'s last x0, ...) */

/* Reads a scheduler_config.json file.  diffusers writes Python's
 * non-standard -Infinity / Infinity / NaN (DPMSolverMultistepScheduler's
 * lambda_min_clipped), which JSON parsers reject: they are read here as
 * the strings "-Infinity", "Infinity", "NaN", which the samplers accept for
 * number keys.  Returns the root object, owned by *@parser (unref it). */
JsonObject *ge_sampler_config_load (const char *path, JsonParser **parser,
    GError **error);

/* From a diffusers scheduler_config.json object: "_class_name" picks the
 * class (GE_ERROR_UNSUPPORTED for a class not listed above, GE_ERROR_CORRUPT
 * without one).  @source names the config in messages. */
GeSampler *ge_sampler_new_from_json (JsonObject *config, const char *source,
    GError **error);
/* Same config read as another class, as diffusers'
 * OtherScheduler.from_config (pipe.scheduler.config) does: keys that class
 * does not take are ignored, the others are read.  @name: "ddim", "ddpm",
 * "pndm", "euler", "euler-ancestral", "dpmpp-2m", "dpmpp-2m-karras", "lms"
 * (or a class name); NULL = the config's own class. */
GeSampler *ge_sampler_new_from_json_as (const char *name, JsonObject *config,
    const char *source, GError **error);
void ge_sampler_free (GeSampler *s);

const char *ge_sampler_class_name (const GeSampler *s);  /* "PNDMScheduler" ... */
int ge_sampler_num_train_timesteps (const GeSampler *s);
/* [num_train_timesteps] float32, owned by @s. */
const float *ge_sampler_betas (const GeSampler *s);
const float *ge_sampler_alphas_cumprod (const GeSampler *s);

/* GE_ERROR_INVALID for N outside [1, num_train_timesteps] or a schedule
 * that leaves [0, num_train_timesteps). */
gboolean ge_sampler_set_timesteps (GeSampler *s, int num_inference_steps,
    GError **error);
/* Model calls of a run: N, PNDM N + 1; 0 before set_timesteps. */
int ge_sampler_n_calls (const GeSampler *s);
/* What the model gets at call i (Euler's may be fractional). */
float ge_sampler_timestep (const GeSampler *s, int i);
/* The sigma schedule (Euler, Euler ancestral, DPM++, LMS; NULL for the
 * others) and its length (n_calls + 1; Euler log_linear n_calls + 2). */
const float *ge_sampler_sigmas (const GeSampler *s, int *n_sigmas);
float ge_sampler_init_noise_sigma (const GeSampler *s);
/* scale_model_input as a factor (1 where it is the identity). */
float ge_sampler_input_scale (const GeSampler *s, int i);
/* scale_model_input itself (Euler, LMS: x / sqrt(sigma^2 + 1), rounded as
 * torch divides); @out may alias @in. */
void ge_sampler_scale_model_input (const GeSampler *s, int i, const float *in,
    gsize n, float *out);

/* SDEdit / img2img: diffusers' get_timesteps (strength): the index of the
 * first call to run (N - int (N * strength), clamped to [0, N]). */
int ge_sampler_start_index (const GeSampler *s, double strength);
/* add_noise at call i's timestep: alphas for DDPM / DDIM / PNDM, sigmas for
 * Euler / LMS (x0 + noise * sigma) and DPM++ (alpha_t x0 + sigma_t noise).
 * @out may alias. */
void ge_sampler_add_noise (const GeSampler *s, int i, const float *x0,
    const float *noise, gsize n, float *out);
void ge_sampler_set_eta (GeSampler *s, float eta);      /* DDIM's eta (0 default) */

GeSamplerRun *ge_sampler_run_new (const GeSampler *s, gsize n);   /* n floats per sample tensor */
void ge_sampler_run_free (GeSamplerRun *r);
/* Forgets the run's history (as after set_timesteps in diffusers). */
void ge_sampler_run_reset (GeSamplerRun *r);

/* Whether call i's step adds noise (so the caller draws n normals from our
 * counter-based RNG, or injects recorded ones): DDPM at t > 0, DDIM with
 * eta > 0, Euler ancestral where sigma_up > 0. */
gboolean ge_sampler_step_needs_noise (const GeSampler *s, int i);
/* One step after model call i: @model_output and @sample in, @prev_sample
 * out (may alias @sample); @noise: n normals when step_needs_noise, else
 * ignored (NULL ok).  Calls of a run must come in order i0, i0 + 1, ... */
void ge_sampler_step (GeSamplerRun *r, int i, const float *model_output,
    const float *sample, const float *noise, float *prev_sample);
/* Same, also writing diffusers' pred_original_sample where the class
 * returns one (DDPM, DDIM, Euler, Euler ancestral, LMS; not PNDM and DPM++,
 * whose @pred_original is left untouched).  Returns whether it wrote
 * @pred_original. */
gboolean ge_sampler_step_full (GeSamplerRun *r, int i,
    const float *model_output, const float *sample, const float *noise,
    float *prev_sample, float *pred_original);

G_END_DECLS
