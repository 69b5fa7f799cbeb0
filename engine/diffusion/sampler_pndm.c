/* sampler_pndm.c: PNDMScheduler with skip_prk_steps (Stable Diffusion's
 * PLMS): the pseudo linear multistep method of Liu et al., warm-up as in
 * crowsonkb's PLMS sampler.  The Runge-Kutta warm-up (skip_prk_steps false)
 * is refused. */
#include "ge-sampler-private.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize ("fp-contract=off")
#endif

static const char *const pndm_keys[] = {
  "num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
  "trained_betas", "skip_prk_steps", "set_alpha_to_one", "prediction_type",
  "timestep_spacing", "steps_offset", NULL
};

static void
pndm_defaults (GeSamplerConfig * c)
{
  c->base.timestep_spacing = GE_SPACING_LEADING;
  c->base.set_alpha_to_one = FALSE;
  c->skip_prk_steps = FALSE;
}

static gboolean
pndm_check (const GeSamplerConfig * c, const char *source, GError ** error)
{
  if (!c->skip_prk_steps)
    GE_SAMPLER_FAIL (error, GE_ERROR_UNSUPPORTED, source,
        "skip_prk_steps = false (PNDMScheduler's Runge-Kutta warm-up) is not "
        "supported; only skip_prk_steps = true (PLMS) is");
  if (c->base.prediction_type == GE_PREDICT_SAMPLE)
    GE_SAMPLER_FAIL (error, GE_ERROR_UNSUPPORTED, source,
        "prediction_type \"sample\" is not supported by PNDMScheduler");
  return TRUE;
}

static gboolean
pndm_set_timesteps (GeSampler * s, int N, GError ** error)
{
  const int T = s->cfg.base.num_train_timesteps;
  gint64 *d = g_new (gint64, N);        /* descending: _timesteps[::-1] */
  if (!ge_sched_spacing_timesteps (s->cfg.base.timestep_spacing, T, N,
          s->cfg.base.steps_offset, d, error)) {
    g_free (d);
    return FALSE;
  }
  /* concatenate([_t[:-1], _t[-2:-1], _t[-1:]])[::-1]: the second entry
   * repeats the first */
  const int n = N >= 2 ? N + 1 : 1;
  s->itimesteps = g_new (gint64, n);
  s->timesteps = g_new (float, n);
  int k = 0;
  s->itimesteps[k++] = d[0];
  if (N >= 2)
    s->itimesteps[k++] = d[1];
  for (int j = 1; j < N; j++)
    s->itimesteps[k++] = d[j];
  for (int i = 0; i < n; i++)
    s->timesteps[i] = (float) s->itimesteps[i];
  g_free (d);
  s->n_calls = n;
  return TRUE;
}

/* newest first: buf[0] = ets[-1] ... buf[3] = ets[-4]; buf[4] the warm-up
 * sample */
static void
push_output (GeSamplerRun * r, const float *mo)
{
  float *oldest = r->buf[3];
  r->buf[3] = r->buf[2];
  r->buf[2] = r->buf[1];
  r->buf[1] = r->buf[0];
  r->buf[0] = oldest;
  memcpy (r->buf[0], mo, r->n * sizeof *mo);
  r->n_hist = MIN (r->n_hist + 1, 4);
}

static gboolean
pndm_step (GeSamplerRun * r, int i, const float *mo, const float *x,
    const float *noise, float *prev, float *x0)
{
  (void) noise;
  (void) x0;
  const GeSampler *s = r->s;
  const int T = s->cfg.base.num_train_timesteps;
  const gint64 ratio = T / s->num_inference_steps;
  gint64 t = s->itimesteps[i];
  gint64 prev_t = t - ratio;
  const int counter = r->counter;

  if (counter != 1)
    push_output (r, mo);
  else {
    prev_t = t;
    t = t + ratio;
  }
  t = CLAMP (t, 0, T - 1);
  prev_t = MIN (prev_t, T - 1);

  const float *const ac = ge_scheduler_alphas_cumprod (s->base);
  const float a_t = ac[t];
  const float a_prev = prev_t >= 0 ? ac[prev_t]
      : ge_scheduler_final_alpha_cumprod (s->base);
  const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
  const float sqrt_a = sqrtf (a_t), sqrt_b = sqrtf (b_t);
  const float sample_coeff = sqrtf (a_prev / a_t);
  const float denom = a_t * sqrtf (b_prev) + sqrtf (a_t * b_t * a_prev);
  const float dalpha = a_prev - a_t;
  const gboolean v = s->cfg.base.prediction_type == GE_PREDICT_V;
  const float c24 = (float) (1.0 / 24);
  const int len = r->n_hist;
  const float *e1 = r->buf[0], *e2 = r->buf[1], *e3 = r->buf[2],
      *e4 = r->buf[3];
  float *cur = r->buf[4];
  /* the sample this step starts from: the stored one at the restart */
  const float *from = (len == 1 && counter == 1) ? cur : x;

  for (gsize k = 0; k < r->n; k++) {
    float m;
    if (len == 1 && counter == 0) {
      m = mo[k];
      cur[k] = x[k];
    } else if (len == 1 && counter == 1)
      m = (mo[k] + e1[k]) / 2.0f;
    else if (len == 2)
      m = (3.0f * e1[k] - e2[k]) / 2.0f;
    else if (len == 3)
      m = (23.0f * e1[k] - 16.0f * e2[k] + 5.0f * e3[k]) / 12.0f;
    else
      m = c24 * (55.0f * e1[k] - 59.0f * e2[k] + 37.0f * e3[k]
          - 9.0f * e4[k]);
    const float xs = from[k];
    if (v)
      m = sqrt_a * m + sqrt_b * xs;
    prev[k] = sample_coeff * xs - dalpha * m / denom;
  }
  return FALSE;
}

const GeSamplerClass ge_sampler_pndm_class = {
  .class_name = "PNDMScheduler",
  .short_name = "pndm",
  .base_kind = GE_SCHEDULER_DDIM,
  .keys = pndm_keys,
  .defaults = pndm_defaults,
  .check = pndm_check,
  .set_timesteps = pndm_set_timesteps,
  .n_bufs = 5,
  .step = pndm_step,
};
