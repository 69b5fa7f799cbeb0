/* sampler_ddim.c: DDPMScheduler and DDIMScheduler behind the GeSampler
 * interface: the GeScheduler of ge-scheduler.c does the work. */
#include "ge-sampler-private.h"

static gboolean
alpha_set_timesteps (GeSampler * s, int N, GError ** error)
{
  if (!ge_scheduler_set_timesteps (s->base, N, error))
    return FALSE;
  const int n = ge_scheduler_n_timesteps (s->base);
  const gint64 *ts = ge_scheduler_timesteps (s->base);
  s->n_calls = n;
  s->timesteps = g_new (float, n);
  s->itimesteps = g_new (gint64, n);
  for (int i = 0; i < n; i++) {
    s->itimesteps[i] = ts[i];
    s->timesteps[i] = (float) ts[i];
  }
  return TRUE;
}

static gboolean
alpha_needs_noise (const GeSampler * s, int i)
{
  return ge_scheduler_step_noise_std (s->base, i, s->eta) > 0;
}

static gboolean
alpha_step (GeSamplerRun * r, int i, const float *mo, const float *x,
    const float *noise, float *prev, float *x0)
{
  ge_scheduler_step (r->s->base, i, mo, x, r->n, r->s->eta, FALSE, noise,
      prev, x0);
  return x0 != NULL;
}

const GeSamplerClass ge_sampler_ddpm_class = {
  .class_name = "DDPMScheduler",
  .short_name = "ddpm",
  .base_kind = GE_SCHEDULER_DDPM,
  .set_timesteps = alpha_set_timesteps,
  .needs_noise = alpha_needs_noise,
  .step = alpha_step,
};

const GeSamplerClass ge_sampler_ddim_class = {
  .class_name = "DDIMScheduler",
  .short_name = "ddim",
  .base_kind = GE_SCHEDULER_DDIM,
  .set_timesteps = alpha_set_timesteps,
  .needs_noise = alpha_needs_noise,
  .step = alpha_step,
};
