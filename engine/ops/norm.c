/* norm.c: group norm and layer norm.  Statistics accumulate in double: a
 * 256x256x(C/G) group sums a million floats, where a float accumulator
 * loses the 1e-4 budget on its own. */
#include "act.h"
#include "ge-pool.h"

typedef struct {
  const GeTensor *x;
  GeTensor *y;
  int groups;
  float eps;
  const float *gamma, *beta;
  GeAct act;
} GnJob;

static void
gn_task (void *data, int t, int thread)
{
  const GnJob *j = data;
  const int cg = j->x->c / j->groups, n = t / j->groups, g = t % j->groups;
  const gsize plane = (gsize) j->x->h * j->x->w, count = plane * cg;
  const gsize off = ((gsize) n * j->x->c + (gsize) g * cg) * plane;
  const float *x = j->x->data + off;
  float *y = j->y->data + off;
  double sum = 0, sq = 0;
  for (gsize i = 0; i < count; i++)
    sum += x[i];
  const double mean = sum / count;
  for (gsize i = 0; i < count; i++) {
    double d = x[i] - mean;
    sq += d * d;
  }
  const float rstd = (float) (1.0 / sqrt (sq / count + j->eps));
  const float m = (float) mean;
  for (int c = 0; c < cg; c++) {
    const int ch = g * cg + c;
    const float s = rstd * (j->gamma ? j->gamma[ch] : 1.0f);
    const float b = j->beta ? j->beta[ch] : 0.0f;
    const float *xc = x + (gsize) c * plane;
    float *yc = y + (gsize) c * plane;
    for (gsize i = 0; i < plane; i++)
      yc[i] = ge_act1 ((xc[i] - m) * s + b, j->act, 0.0f);
  }
}

void
ge_group_norm (GeCtx * ctx, const GeTensor * x, GeTensor * y, int groups,
    float eps, const float *gamma, const float *beta, GeAct act)
{
  g_return_if_fail (groups > 0 && x->c % groups == 0);
  g_return_if_fail (ge_tensor_numel (x) == ge_tensor_numel (y));
  GnJob j = { x, y, groups, eps, gamma, beta, act };
  ge_pool_run (ctx->pool, x->n * groups, gn_task, &j);
}

void
ge_layer_norm (GeCtx * ctx, const float *x, float *y, int rows, int dim,
    float eps, const float *gamma, const float *beta)
{
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (gsize) r * dim;
    float *yr = y + (gsize) r * dim;
    double sum = 0, sq = 0;
    for (int i = 0; i < dim; i++)
      sum += xr[i];
    const double mean = sum / dim;
    for (int i = 0; i < dim; i++)
      sq += (xr[i] - mean) * (xr[i] - mean);
    const float rstd = (float) (1.0 / sqrt (sq / dim + eps)), m = (float) mean;
    for (int i = 0; i < dim; i++)
      yr[i] = (xr[i] - m) * rstd * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
  }
}
