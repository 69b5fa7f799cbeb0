/* sampler_lms.c: LMSDiscreteScheduler, k-diffusion's linear multistep
 * sampler: up to 4 past derivatives, weighted by the integrals over
 * [sigma_i, sigma_i+1] of their Lagrange basis polynomials.
 *
 * diffusers integrates each basis polynomial with scipy.integrate.quad
 * (adaptive Gauss-Kronrod, epsrel 1e-4) on a float32 integrand; the
 * polynomials have degree <= 3, so an 8-point Gauss-Legendre rule in double
 * integrates them exactly (up to rounding): the coefficients agree with
 * diffusers' to about float32 precision, not bit for bit. */
#include "ge-sampler-private.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize ("fp-contract=off")
#endif

#define LMS_ORDER 4

static const char *const lms_keys[] = {
  "num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
  "trained_betas", "use_karras_sigmas", "use_exponential_sigmas",
  "use_beta_sigmas", "prediction_type", "timestep_spacing", "steps_offset",
  NULL
};

/* Gauss-Legendre, 8 points on [-1, 1]: exact for degree <= 15 */
static const double gl_x[4] = {
  0.18343464249564980494, 0.52553240991632898582,
  0.79666647741362673959, 0.96028985649753623168
};
static const double gl_w[4] = {
  0.36268378337836198296, 0.31370664587788728734,
  0.22238103445337447054, 0.10122853629037625915
};

/* get_lms_coefficient (order, t, current_order) */
static double
lms_coefficient (const float *sigmas, int order, int t, int cur)
{
  const double a = sigmas[t], b = sigmas[t + 1];
  const double half = (b - a) / 2, mid = (a + b) / 2;
  double sum = 0;
  for (int q = 0; q < 8; q++) {
    const double tau = mid + (q < 4 ? -gl_x[q] : gl_x[q - 4]) * half;
    double prod = 1.0;
    for (int k = 0; k < order; k++)
      if (k != cur)
        prod *= (tau - sigmas[t - k]) / ((double) sigmas[t - cur]
            - sigmas[t - k]);
    sum += gl_w[q & 3] * prod;
  }
  return sum * half;
}

static gboolean
lms_set_timesteps (GeSampler * s, int N, GError ** error)
{
  const GeSamplerConfig *c = &s->cfg;
  const int T = c->base.num_train_timesteps;
  float *ts = g_new (float, N);
  if (!ge_sampler_sigma_spacing (s, N, ts, error)) {
    g_free (ts);
    return FALSE;
  }
  float *train = g_new (float, T);
  ge_sampler_train_sigmas (s, train);
  double *sg = g_new (double, N);
  for (int k = 0; k < N; k++)
    sg[k] = ge_sampler_interp (ts[k], train, T);
  if (c->use_karras_sigmas) {
    ge_sampler_karras (sg[N - 1], sg[0], N, sg);
    ge_sampler_sigmas_to_t (sg, N, train, T, ts);
  }
  s->n_sigmas = N + 1;
  s->sigmas = g_new (float, N + 1);
  for (int k = 0; k < N; k++)
    s->sigmas[k] = (float) sg[k];
  s->sigmas[N] = 0.0f;
  s->n_calls = N;
  s->timesteps = ts;
  ge_sampler_set_init_sigma (s);

  s->lms_coefs = g_new0 (double, (gsize) N * LMS_ORDER);
  for (int i = 0; i < N; i++) {
    const int order = MIN (i + 1, LMS_ORDER);
    for (int cur = 0; cur < order; cur++)
      s->lms_coefs[i * LMS_ORDER + cur] =
          lms_coefficient (s->sigmas, order, i, cur);
  }
  g_free (sg);
  g_free (train);
  return TRUE;
}

static gboolean
lms_step (GeSamplerRun * r, int i, const float *mo, const float *x,
    const float *noise, float *prev, float *x0)
{
  (void) noise;
  const GeSampler *s = r->s;
  const GePrediction pred = s->cfg.base.prediction_type;
  const float sigma = s->sigmas[i];
  const float d2 = sigma * sigma + 1.0f;
  const float c_out = -sigma / sqrtf (d2);

  /* derivatives.append; pop(0) past 4: newest in buf[0] */
  float *oldest = r->buf[LMS_ORDER - 1];
  memmove (&r->buf[1], &r->buf[0], (LMS_ORDER - 1) * sizeof r->buf[0]);
  r->buf[0] = oldest;
  r->n_hist = MIN (r->n_hist + 1, LMS_ORDER);

  /* sum (coeff * derivative for coeff, derivative in zip (lms_coeffs,
   * reversed (derivatives))), each python float coefficient a float32 */
  const int order = MIN (i + 1, LMS_ORDER);
  const int use = MIN (order, r->n_hist);
  float coef[LMS_ORDER];
  for (int k = 0; k < use; k++)
    coef[k] = (float) s->lms_coefs[i * LMS_ORDER + k];

  for (gsize k = 0; k < r->n; k++) {
    const float xk = x[k], m = mo[k];
    float p0;
    if (pred == GE_PREDICT_EPSILON)
      p0 = xk - sigma * m;
    else if (pred == GE_PREDICT_V)
      p0 = m * c_out + xk / d2;
    else
      p0 = m;
    r->buf[0][k] = (xk - p0) / sigma;
    float acc = 0.0f;
    for (int q = 0; q < use; q++)
      acc = acc + coef[q] * r->buf[q][k];
    if (x0)
      x0[k] = p0;
    prev[k] = xk + acc;
  }
  return x0 != NULL;
}

const GeSamplerClass ge_sampler_lms_class = {
  .class_name = "LMSDiscreteScheduler",
  .short_name = "lms",
  .base_kind = GE_SCHEDULER_DDIM,
  .keys = lms_keys,
  .set_timesteps = lms_set_timesteps,
  .n_bufs = LMS_ORDER,
  .step = lms_step,
};
