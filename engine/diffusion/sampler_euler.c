/* sampler_euler.c: EulerDiscreteScheduler and
 * EulerAncestralDiscreteScheduler (k-diffusion's Euler and Euler ancestral
 * samplers over the sigmas of the discrete schedule). */
#include "ge-sampler-private.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize ("fp-contract=off")
#endif

static const char *const euler_keys[] = {
  "num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
  "trained_betas", "prediction_type", "interpolation_type",
  "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
  "sigma_min", "sigma_max", "timestep_spacing", "timestep_type",
  "steps_offset", "rescale_betas_zero_snr", "final_sigmas_type", NULL
};

static const char *const euler_ancestral_keys[] = {
  "num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
  "trained_betas", "prediction_type", "timestep_spacing", "steps_offset",
  "rescale_betas_zero_snr", NULL
};

static gboolean
euler_ancestral_check (const GeSamplerConfig * c, const char *source,
    GError ** error)
{
  if (c->base.prediction_type == GE_PREDICT_SAMPLE)
    GE_SAMPLER_FAIL (error, GE_ERROR_UNSUPPORTED, source,
        "prediction_type \"sample\" is not supported by "
        "EulerAncestralDiscreteScheduler (diffusers raises there too)");
  return TRUE;
}

void
ge_sampler_set_init_sigma (GeSampler * s)
{
  float mx = s->sigmas[0];
  for (int k = 1; k < s->n_sigmas; k++)
    mx = MAX (mx, s->sigmas[k]);
  s->init_noise_sigma = s->cfg.base.timestep_spacing == GE_SPACING_LEADING
      ? sqrtf (mx * mx + 1.0f) : mx;
}

static gboolean
euler_set_timesteps (GeSampler * s, int N, GError ** error)
{
  const GeSamplerConfig *c = &s->cfg;
  const int T = c->base.num_train_timesteps;
  const gboolean ancestral = s->klass == &ge_sampler_euler_ancestral_class;
  float *ts = g_new (float, N);
  if (!ge_sampler_sigma_spacing (s, N, ts, error)) {
    g_free (ts);
    return FALSE;
  }
  float *train = g_new (float, T);
  ge_sampler_train_sigmas (s, train);
  double *sg = g_new (double, N + 1);
  int ns = N;
  if (!ancestral && c->log_linear) {
    /* torch.linspace (log sigmas[-1], log sigmas[0], N + 1).exp () */
    float *lin = g_new (float, N + 1);
    ge_sched_torch_linspace_f32 (logf (train[T - 1]), logf (train[0]), N + 1,
        lin);
    for (int k = 0; k <= N; k++)
      sg[k] = expf (lin[k]);
    ns = N + 1;
    g_free (lin);
  } else
    for (int k = 0; k < N; k++)
      sg[k] = ge_sampler_interp (ts[k], train, T);

  if (!ancestral && c->use_karras_sigmas) {
    const double smin = c->has_sigma_min ? c->sigma_min : sg[ns - 1];
    const double smax = c->has_sigma_max ? c->sigma_max : sg[0];
    ge_sampler_karras (smin, smax, N, sg);
    ns = N;
    ge_sampler_sigmas_to_t (sg, N, train, T, ts);
  }

  s->n_sigmas = ns + 1;
  s->sigmas = g_new (float, s->n_sigmas);
  for (int k = 0; k < ns; k++)
    s->sigmas[k] = (float) sg[k];
  s->sigmas[ns] = (!ancestral && c->final_sigma_min) ? train[0] : 0.0f;

  if (!ancestral && c->continuous
      && c->base.prediction_type == GE_PREDICT_V) {
    /* EDM-style timesteps: 0.25 * log (sigma) of sigmas[:-1] */
    s->n_calls = s->n_sigmas - 1;
    s->timesteps = g_new (float, s->n_calls);
    for (int k = 0; k < s->n_calls; k++)
      s->timesteps[k] = 0.25f * logf (s->sigmas[k]);
    g_free (ts);
  } else {
    s->n_calls = N;
    s->timesteps = ts;
  }
  ge_sampler_set_init_sigma (s);
  g_free (sg);
  g_free (train);
  return TRUE;
}

/* diffusers' pred_original_sample of the sigma-parameterised samplers */
static inline float
predict_x0 (GePrediction pred, float m, float x, float sigma, float c_out,
    float d2)
{
  switch (pred) {
    case GE_PREDICT_EPSILON:
      return x - sigma * m;
    case GE_PREDICT_V:
      /* model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1) */
      return m * c_out + x / d2;
    case GE_PREDICT_SAMPLE:
    default:
      return m;
  }
}

static gboolean
euler_step (GeSamplerRun * r, int i, const float *mo, const float *x,
    const float *noise, float *prev, float *x0)
{
  const GeSampler *s = r->s;
  const GePrediction pred = s->cfg.base.prediction_type;
  const float sigma = s->sigmas[i], next = s->sigmas[i + 1];
  const float d2 = sigma * sigma + 1.0f;
  const float c_out = -sigma / sqrtf (d2);
  const gboolean ancestral = s->klass == &ge_sampler_euler_ancestral_class;
  float su = 0.0f, dt;
  if (ancestral) {
    const float f2 = sigma * sigma, t2 = next * next;
    su = sqrtf (t2 * (f2 - t2) / f2);
    const float sd = sqrtf (t2 - su * su);
    dt = sd - sigma;
  } else
    /* sigma_hat = sigma * (gamma + 1) with gamma = 0 (no churn) */
    dt = next - sigma;
  (void) noise;

  for (gsize k = 0; k < r->n; k++) {
    const float xk = x[k];
    const float p0 = predict_x0 (pred, mo[k], xk, sigma, c_out, d2);
    const float derivative = (xk - p0) / sigma;
    float p = xk + derivative * dt;
    if (noise)
      p = p + noise[k] * su;
    if (x0)
      x0[k] = p0;
    prev[k] = p;
  }
  return x0 != NULL;
}

static gboolean
euler_ancestral_needs_noise (const GeSampler * s, int i)
{
  const float f = s->sigmas[i], t = s->sigmas[i + 1];
  const float f2 = f * f, t2 = t * t;
  return sqrtf (t2 * (f2 - t2) / f2) > 0;
}

const GeSamplerClass ge_sampler_euler_class = {
  .class_name = "EulerDiscreteScheduler",
  .short_name = "euler",
  .base_kind = GE_SCHEDULER_DDIM,
  .keys = euler_keys,
  .set_timesteps = euler_set_timesteps,
  .step = euler_step,
};

const GeSamplerClass ge_sampler_euler_ancestral_class = {
  .class_name = "EulerAncestralDiscreteScheduler",
  .short_name = "euler-ancestral",
  .base_kind = GE_SCHEDULER_DDIM,
  .keys = euler_ancestral_keys,
  .check = euler_ancestral_check,
  .set_timesteps = euler_set_timesteps,
  .needs_noise = euler_ancestral_needs_noise,
  .step = euler_step,
};
