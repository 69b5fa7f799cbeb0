/* ge-scheduler.h: DDPM and DDIM noise schedules and reverse steps, following
 * diffusers 0.35.2 (DDPMScheduler, DDIMScheduler) number for number.
 *
 * What "following" means here:
 *  - betas are bit-identical to diffusers' float32 tensors: "linear" and
 *    "scaled_linear" emulate torch's CPU float32 linspace (an AVX2 kernel that
 *    is not the naive start + i*step), "squaredcos_cap_v2" is computed in
 *    double and rounded;
 *  - alphas_cumprod is torch's CPU cumprod: the product accumulates in double
 *    and each prefix is rounded to float32;
 *  - timesteps follow the "leading" / "trailing" / "linspace" spacings with
 *    numpy's round-half-to-even;
 *  - a step does its scalar and element-wise arithmetic in float32, in the
 *    order torch evaluates diffusers' expressions on 0-d tensors.
 *
 * Supported: prediction types epsilon / v_prediction / sample, clip_sample
 * (on x0 only), DDIM eta >= 0 and use_clipped_model_output, DDPM variance
 * fixed_small / fixed_large.  Not supported (config parsing reports
 * GE_ERROR_UNSUPPORTED): thresholding, trained_betas, rescale_betas_zero_snr,
 * the sigmoid beta schedule, learned / log variances.
 *
 * Usage: fill a GeSchedulerConfig (ge_scheduler_config_init_defaults, then
 * ge_scheduler_config_from_json or by hand), ge_scheduler_new, then
 * ge_scheduler_set_timesteps (N) and for step_index 0..n_timesteps-1 run the
 * model at ge_scheduler_timesteps ()[step_index] and call ge_scheduler_step.
 * A GeScheduler is not changed by ge_scheduler_step, so several threads may
 * step with it concurrently; set_timesteps must not race with them.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include "ge-error.h"

G_BEGIN_DECLS

typedef enum {
  GE_SCHEDULER_DDPM,
  GE_SCHEDULER_DDIM,
} GeSchedulerKind;

typedef enum {
  GE_BETA_LINEAR,
  GE_BETA_SCALED_LINEAR,
  GE_BETA_SQUAREDCOS_CAP_V2,
} GeBetaSchedule;

typedef enum {
  GE_PREDICT_EPSILON,
  GE_PREDICT_V,
  GE_PREDICT_SAMPLE,
} GePrediction;

typedef enum {
  GE_SPACING_LEADING,
  GE_SPACING_TRAILING,
  GE_SPACING_LINSPACE,
} GeTimestepSpacing;

typedef enum {
  GE_VARIANCE_FIXED_SMALL,
  GE_VARIANCE_FIXED_LARGE,
} GeVarianceType;

typedef struct {
  GeSchedulerKind kind;
  int num_train_timesteps;
  double beta_start, beta_end;
  GeBetaSchedule beta_schedule;
  GePrediction prediction_type;
  gboolean clip_sample;
  double clip_sample_range;
  gboolean set_alpha_to_one;    /* DDIM only */
  int steps_offset;             /* "leading" spacing only, as in diffusers */
  GeTimestepSpacing timestep_spacing;
  GeVarianceType variance_type; /* DDPM only */
} GeSchedulerConfig;

typedef struct _GeScheduler GeScheduler;

/* Fills @cfg with the constructor defaults of diffusers' @kind scheduler
 * (1000 steps, linear 1e-4..0.02, epsilon, clip_sample on, range 1,
 * set_alpha_to_one, offset 0, leading, fixed_small). */
void ge_scheduler_config_init_defaults (GeSchedulerConfig *cfg,
    GeSchedulerKind kind);

/* Reads a diffusers scheduler_config.json object into @cfg.  "_class_name"
 * ("DDIMScheduler" / "DDPMScheduler") picks the kind; without it the kind
 * already in @cfg is kept.  @cfg is reset to that kind's defaults and then
 * every key present overrides them.  Keys diffusers would ignore for this
 * class (e.g. PNDM's skip_prk_steps) are ignored.  Another class name, or a
 * value we cannot reproduce (thresholding=true, non-null trained_betas,
 * rescale_betas_zero_snr=true, an unknown beta_schedule / prediction_type /
 * timestep_spacing / variance_type) gives GE_ERROR_UNSUPPORTED; a value of
 * the wrong JSON type gives GE_ERROR_CORRUPT.  Messages start with @source
 * and name the key.  On error @cfg is left unspecified. */
gboolean ge_scheduler_config_from_json (GeSchedulerConfig *cfg, JsonObject *obj,
    const char *source, GError **error);
/* Same, but always as @kind, ignoring "_class_name": what diffusers'
 * DDIMScheduler.from_config (other_scheduler.config) does, e.g. to run a
 * PNDMScheduler config of a Stable Diffusion checkpoint with DDIM. */
gboolean ge_scheduler_config_from_json_as (GeSchedulerConfig *cfg,
    GeSchedulerKind kind, JsonObject *obj, const char *source, GError **error);

/* Builds the schedule.  GE_ERROR_INVALID for a config outside what the
 * formulas allow (num_train_timesteps < 1, betas outside (0, 1), ...). */
GeScheduler *ge_scheduler_new (const GeSchedulerConfig *cfg, GError **error);
void ge_scheduler_free (GeScheduler *s);

const GeSchedulerConfig *ge_scheduler_config (const GeScheduler *s);
/* [num_train_timesteps] float32 tables, owned by @s. */
const float *ge_scheduler_betas (const GeScheduler *s);
const float *ge_scheduler_alphas_cumprod (const GeScheduler *s);
/* DDIM's alpha_prev past the last step: 1 with set_alpha_to_one, else
 * alphas_cumprod[0].  (DDPM always uses 1 there.) */
float ge_scheduler_final_alpha_cumprod (const GeScheduler *s);

/* Chooses @num_inference_steps timesteps (1 <= N <= num_train_timesteps,
 * else GE_ERROR_INVALID; also GE_ERROR_INVALID when steps_offset pushes a
 * timestep out of range).  One deliberate deviation: with "trailing" and
 * 62 values of N (61, 103, 121, ...) numpy's float arange makes diffusers
 * append a bogus (N+1)-th timestep -1; we stop at N. */
gboolean ge_scheduler_set_timesteps (GeScheduler *s, int num_inference_steps,
    GError **error);
/* 0 before set_timesteps. */
int ge_scheduler_n_timesteps (const GeScheduler *s);
/* [n_timesteps], descending; owned by @s, valid until the next
 * set_timesteps. */
const gint64 *ge_scheduler_timesteps (const GeScheduler *s);
/* The timestep whose alpha the step at @step_index moves to: DDIM
 * t - T / N (always, whatever the spacing), DDPM the next entry of the
 * timesteps (-1 after the last one).  Negative means "past the end". */
gint64 ge_scheduler_prev_timestep (const GeScheduler *s, int step_index);

/* Standard deviation the step at @step_index multiplies its noise by: DDPM
 * sqrt of the fixed_small / fixed_large variance, 0 at t == 0; DDIM
 * eta * sqrt(variance), 0 when eta <= 0. */
float ge_scheduler_noise_std (const GeScheduler *s, int step_index, float eta);

/* One reverse step at @step_index (after set_timesteps) over @n floats:
 * @model_output and @sample in, @prev_sample out; @pred_original (x0 after
 * clipping) out when not NULL.  Output buffers may alias @sample or
 * @model_output.  @eta and @use_clipped_model_output only affect DDIM.
 * @noise: @n standard normals for the ancestral term (DDPM at t > 0, DDIM
 * with eta > 0), or NULL for the deterministic part (the mean) only. */
void ge_scheduler_step (const GeScheduler *s, int step_index,
    const float *model_output, const float *sample, gsize n, float eta,
    gboolean use_clipped_model_output, const float *noise, float *prev_sample,
    float *pred_original);

/* The standard deviation of the noise ge_scheduler_step adds at @step_index
 * with @eta (0 where it adds none, as at DDIM's last step with
 * set_alpha_to_one): callers skip drawing noise that would be multiplied by
 * 0. */
float ge_scheduler_step_noise_std (const GeScheduler *s, int step_index, float eta);

/* Forward process at timestep @t (0 <= t < num_train_timesteps):
 * out = sqrt(a_t) * x0 + sqrt(1 - a_t) * noise.  @out may alias. */
void ge_scheduler_add_noise (const GeScheduler *s, const float *x0,
    const float *noise, gint64 t, gsize n, float *out);

G_END_DECLS
