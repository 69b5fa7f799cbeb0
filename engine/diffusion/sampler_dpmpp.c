/* sampler_dpmpp.c: DPMSolverMultistepScheduler with algorithm_type
 * dpmsolver++ (DPM-Solver++ of Lu et al., "2M" at solver_order 2), the
 * midpoint and heun second-order updates, Karras sigmas. */
#include "ge-sampler-private.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize ("fp-contract=off")
#endif

static const char *const dpmpp_keys[] = {
  "num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
  "trained_betas", "solver_order", "prediction_type", "thresholding",
  "dynamic_thresholding_ratio", "sample_max_value", "algorithm_type",
  "solver_type", "lower_order_final", "euler_at_final", "use_karras_sigmas",
  "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas",
  "use_flow_sigmas", "flow_shift", "final_sigmas_type",
  "lambda_min_clipped", "variance_type", "timestep_spacing", "steps_offset",
  "rescale_betas_zero_snr", "use_dynamic_shifting", "time_shift_type", NULL
};

static gboolean
dpmpp_set_timesteps (GeSampler * s, int N, GError ** error)
{
  const GeSamplerConfig *c = &s->cfg;
  const int T = c->base.num_train_timesteps;
  const float *ac = ge_scheduler_alphas_cumprod (s->base);

  /* lambda_min_clipped: searchsorted (flip (lambda_t), clip) */
  int clipped = 0;
  if (c->lambda_min_clipped > -INFINITY) {
    const float clip = (float) c->lambda_min_clipped;
    for (int k = 0; k < T; k++) {
      const float a = ac[T - 1 - k];
      const float lambda = logf (sqrtf (a)) - logf (sqrtf (1.0f - a));
      if (lambda >= clip)
        break;
      clipped++;
    }
  }
  const int last = T - clipped;
  if (last < 1)
    GE_SAMPLER_FAIL (error, GE_ERROR_INVALID, "DPMSolverMultistepScheduler",
        "lambda_min_clipped = %g leaves no timestep", c->lambda_min_clipped);

  gint64 *its = g_new (gint64, N + 1);
  int n = N;
  switch (c->base.timestep_spacing) {
    case GE_SPACING_LINSPACE:
      /* linspace (0, last - 1, N + 1).round ()[::-1][:-1] */
      if (!ge_sched_spacing_timesteps (GE_SPACING_LINSPACE, last, N + 1, 0,
              its, error)) {
        g_free (its);
        return FALSE;
        }
      break;
    case GE_SPACING_LEADING:{
      /* (arange (N + 1) * (last // (N + 1)))[::-1][:-1] + steps_offset */
      const gint64 ratio = last / (N + 1);
      for (int j = 0; j < N; j++)
        its[j] = (gint64) (N - j) * ratio + c->base.steps_offset;
      break;
    }
    case GE_SPACING_TRAILING:
    default:{
      /* arange (last, 0, -T / N).round () - 1, numpy's float arange; its
       * bogus extra entry (see ge-scheduler.h) is dropped */
      const double step = (double) T / N, start = last;
      volatile double second = start + -step;
      const double delta = second - start;
      n = (int) ceil (start / step);
      n = CLAMP (n, 1, N);
      for (int j = 0; j < n; j++) {
        volatile double y = j * delta;
        its[j] = (gint64) rint (start + y) - 1;
      }
      break;
    }
  }
  for (int j = 0; j < n; j++)
    if (its[j] < 0 || its[j] >= T) {
      g_set_error (error, GE_ERROR, GE_ERROR_INVALID,
          "DPMSolverMultistepScheduler: timestep %" G_GINT64_FORMAT
          " (step %d of %d, steps_offset %d) is outside [0, %d)", its[j], j,
          n, c->base.steps_offset, T);
      g_free (its);
      return FALSE;
    }

  float *train = g_new (float, T);
  ge_sampler_train_sigmas (s, train);
  s->sigmas = g_new (float, n + 1);
  if (c->use_karras_sigmas) {
    double *kk = g_new (double, N);
    float *log_sigmas = g_new (float, T);
    for (int t = 0; t < T; t++)
      log_sigmas[t] = logf (train[t]);
    ge_sampler_karras (train[0], train[T - 1], N, kk);
    n = N;
    for (int k = 0; k < N; k++) {
      double t = ge_sampler_sigma_to_t (kk[k], log_sigmas, T);
      /* rounded (half to even), except for the cosine schedule where
       * torch's int64 cast truncates */
      its[k] = (gint64) (c->base.beta_schedule != GE_BETA_SQUAREDCOS_CAP_V2
          ? rint (t) : t);
      s->sigmas[k] = (float) kk[k];
    }
    g_free (kk);
    g_free (log_sigmas);
  } else
    for (int k = 0; k < n; k++)
      s->sigmas[k] = train[its[k]];
  s->sigmas[n] = c->final_sigma_min ? train[0] : 0.0f;
  s->n_sigmas = n + 1;
  g_free (train);

  s->n_calls = n;
  s->itimesteps = its;
  s->timesteps = g_new (float, n);
  for (int k = 0; k < n; k++)
    s->timesteps[k] = (float) its[k];
  s->init_noise_sigma = 1.0f;
  return TRUE;
}

/* _sigma_to_alpha_sigma_t and lambda = log (alpha_t) - log (sigma_t) */
typedef struct {
  float alpha, sigma, lambda;
} Point;

static Point
point (float sg)
{
  Point p;
  p.alpha = 1.0f / sqrtf (sg * sg + 1.0f);
  p.sigma = sg * p.alpha;
  p.lambda = logf (p.alpha) - logf (p.sigma);
  return p;
}

static gboolean
dpmpp_step (GeSamplerRun * r, int i, const float *mo, const float *x,
    const float *noise, float *prev, float *x0_out)
{
  (void) noise;
  const GeSampler *s = r->s;
  const GeSamplerConfig *c = &s->cfg;
  const int n_steps = s->n_calls;
  const gboolean lower_final = i == n_steps - 1 && (c->euler_at_final
      || (c->lower_order_final && n_steps < 15) || !c->final_sigma_min);
  const gboolean first = c->solver_order == 1 || r->n_hist < 1 || lower_final
      || i == 0;

  /* convert_model_output: the data prediction x0 */
  const Point p0 = point (s->sigmas[i]);
  const Point pt = point (s->sigmas[i + 1]);
  const GePrediction pred = c->base.prediction_type;
  float *m0 = r->buf[1];
  const float *m1 = r->buf[0];
  for (gsize k = 0; k < r->n; k++) {
    switch (pred) {
      case GE_PREDICT_EPSILON:
        m0[k] = (x[k] - p0.sigma * mo[k]) / p0.alpha;
        break;
      case GE_PREDICT_V:
        m0[k] = p0.alpha * x[k] - p0.sigma * mo[k];
        break;
      case GE_PREDICT_SAMPLE:
      default:
        m0[k] = mo[k];
        break;
    }
  }

  const float h = pt.lambda - p0.lambda;
  const float ratio = pt.sigma / p0.sigma;
  const float em1 = expf (-h) - 1.0f;
  const float c0 = pt.alpha * em1;
  if (first) {
    for (gsize k = 0; k < r->n; k++)
      prev[k] = ratio * x[k] - c0 * m0[k];
  } else {
    const Point p1 = point (s->sigmas[i - 1]);
    const float h0 = p0.lambda - p1.lambda;
    const float r0 = h0 / h;
    const float inv_r0 = 1.0f / r0;
    if (!c->heun) {
      const float c1 = 0.5f * c0;
      for (gsize k = 0; k < r->n; k++) {
        const float d1 = inv_r0 * (m0[k] - m1[k]);
        prev[k] = ratio * x[k] - c0 * m0[k] - c1 * d1;
      }
    } else {
      const float c1 = pt.alpha * (em1 / h + 1.0f);
      for (gsize k = 0; k < r->n; k++) {
        const float d1 = inv_r0 * (m0[k] - m1[k]);
        prev[k] = ratio * x[k] - c0 * m0[k] + c1 * d1;
      }
    }
  }
  (void) x0_out;
  /* model_outputs shift: this x0 becomes the previous one */
  r->buf[1] = r->buf[0];
  r->buf[0] = m0;
  r->n_hist = MIN (r->n_hist + 1, c->solver_order);
  return FALSE;
}

const GeSamplerClass ge_sampler_dpmpp_class = {
  .class_name = "DPMSolverMultistepScheduler",
  .short_name = "dpmpp-2m",
  .base_kind = GE_SCHEDULER_DDIM,
  .keys = dpmpp_keys,
  .set_timesteps = dpmpp_set_timesteps,
  .n_bufs = 2,
  .step = dpmpp_step,
};
