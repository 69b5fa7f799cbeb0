/* eltwise.c: activations, adds, broadcasts and concatenation.  Memory-bound,
 * so they are split into large contiguous chunks over the pool. */
#include "ge-ops.h"
#include "ge-pool.h"

#include "act.h"

#include <string.h>

#define CHUNK (16 * 1024)

typedef struct {
  float *x;
  const float *a, *b;
  gsize n;
  GeAct act;
  float param;
} EwJob;

GE_VECTOR_CLONES static void
act_loop (float *x, gsize n, GeAct act, float param)
{
  if (act == GE_ACT_SILU)       /* the one that matters: let it vectorise */
    for (gsize i = 0; i < n; i++)
      x[i] = x[i] / (1.0f + ge_expf (-x[i]));
  else
    for (gsize i = 0; i < n; i++)
      x[i] = ge_act1 (x[i], act, param);
}

static void
act_task (void *data, int t, int thread)
{
  const EwJob *j = data;
  gsize i0 = (gsize) t * CHUNK, i1 = MIN (j->n, i0 + CHUNK);
  act_loop (j->x + i0, i1 - i0, j->act, j->param);
}

void
ge_act (GeCtx * ctx, float *x, gsize n, GeAct act, float param)
{
  if (act == GE_ACT_NONE)
    return;
  EwJob j = { .x = x, .n = n, .act = act, .param = param };
  ge_pool_run (ctx->pool, (int) ((n + CHUNK - 1) / CHUNK), act_task, &j);
}

static void
add_task (void *data, int t, int thread)
{
  const EwJob *j = data;
  gsize i0 = (gsize) t * CHUNK, i1 = MIN (j->n, i0 + CHUNK);
  const float s = j->param;
  if (s == 1.0f)
    for (gsize i = i0; i < i1; i++)
      j->x[i] = j->a[i] + j->b[i];
  else
    for (gsize i = i0; i < i1; i++)
      j->x[i] = (j->a[i] + j->b[i]) / s;
}

/* A divisor, not a factor: diffusers divides by output_scale_factor, and
 * x / s is not always x * (1 / s) in float. */
void
ge_add (GeCtx * ctx, const float *a, const float *b, float *y, gsize n, float divisor)
{
  EwJob j = { .x = y, .a = a, .b = b, .n = n, .param = divisor };
  ge_pool_run (ctx->pool, (int) ((n + CHUNK - 1) / CHUNK), add_task, &j);
}

static void
copy_task (void *data, int t, int thread)
{
  const EwJob *j = data;
  const gsize i0 = (gsize) t * CHUNK, i1 = MIN (j->n, i0 + CHUNK);
  memcpy (j->x + i0, j->a + i0, sizeof (float) * (i1 - i0));
}

void
ge_copy (GeCtx * ctx, const float *src, float *dst, gsize n)
{
  EwJob j = { .x = dst, .a = src, .n = n };
  ge_pool_run (ctx->pool, (int) ((n + CHUNK - 1) / CHUNK), copy_task, &j);
}

void
ge_add_channel_bias (GeCtx * ctx, GeTensor * x, const float *v)
{
  const gsize plane = (gsize) x->h * x->w;
  for (int i = 0; i < x->n * x->c; i++) {
    float *p = x->data + (gsize) i * plane, b = v[i];
    for (gsize k = 0; k < plane; k++)
      p[k] += b;
  }
}

typedef struct {
  const GeTensor *a, *b;
  GeTensor *y;
} CatJob;

static void
cat_task (void *data, int t, int thread)
{
  const CatJob *j = data;
  const gsize plane = (gsize) j->a->h * j->a->w;
  const int n = t / j->y->c, c = t % j->y->c;
  const float *src = c < j->a->c ? j->a->data + ((gsize) n * j->a->c + c) * plane
      : j->b->data + ((gsize) n * j->b->c + c - j->a->c) * plane;
  memcpy (j->y->data + (gsize) t * plane, src, sizeof (float) * plane);
}

void
ge_concat_channels (GeCtx * ctx, const GeTensor * a, const GeTensor * b, GeTensor * y)
{
  g_return_if_fail (a->n == b->n && a->h == b->h && a->w == b->w);
  g_return_if_fail (y->c == a->c + b->c && y->h == a->h && y->w == a->w);
  CatJob j = { a, b, y };
  ge_pool_run (ctx->pool, y->n * y->c, cat_task, &j);
}

/* GELU (x) = x/2 (1 + erf (x / sqrt 2)) with erf from Abramowitz and Stegun
 * 7.1.26 (|error| < 1.5e-7) around ge_expf: no calls, so it vectorises;
 * erff per element was a scalar call.  For x < 0, 1 + erf is erfc (|z|)
 * itself, so nothing cancels. */
GE_VECTOR_CLONES static void
geglu_loop (const float *a, const float *gate, float *y, gsize n)
{
  for (gsize i = 0; i < n; i++) {
    const float x = gate[i];
    const float z = fabsf (x) * 0.70710678118654752f;
    const float t = 1.0f / (1.0f + 0.3275911f * z);
    const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f
                + t * (-1.453152027f + t * 1.061405429f))));
    const float erfc = poly * ge_expf (-z * z);
    const float one_plus_erf = x >= 0.0f ? 2.0f - erfc : erfc;
    y[i] = a[i] * (0.5f * x * one_plus_erf);
  }
}

static void
geglu_task (void *data, int t, int thread)
{
  const EwJob *j = data;
  gsize i0 = (gsize) t * CHUNK, i1 = MIN (j->n, i0 + CHUNK);
  geglu_loop (j->a + i0, j->b + i0, j->x + i0, i1 - i0);
}

void
ge_geglu (GeCtx * ctx, const float *a, const float *gate, float *y, gsize n)
{
  EwJob j = { .x = y, .a = a, .b = gate, .n = n };
  ge_pool_run (ctx->pool, (int) ((n + CHUNK - 1) / CHUNK), geglu_task, &j);
}

/* Max-subtracted softmax of one row, in place.  A row whose every entry is
 * -inf gives NaN, as torch.softmax does. */
GE_VECTOR_CLONES void
ge_softmax_row (float *row, int n)
{
  float m = row[0];
  for (int k = 1; k < n; k++)
    m = row[k] > m ? row[k] : m;
  float sum = 0;
  for (int k = 0; k < n; k++) {
    row[k] = ge_expf (row[k] - m);
    sum += row[k];
  }
  const float inv = 1.0f / sum;
  for (int k = 0; k < n; k++)
    row[k] *= inv;
}
