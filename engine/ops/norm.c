/* norm.c: group norm and layer norm.  Statistics accumulate in double: a
 * 256x256x(C/G) group sums a million floats, where a float accumulator
 * loses the 1e-4 budget on its own. */
#include "act.h"
#include "ge-pool.h"
#include "gemm.h"

typedef struct {
  const GeTensor *x;
  GeTensor *y;                  /* NULL: only the affine below */
  int groups;
  float eps;
  const float *gamma, *beta;
  GeAct act;
  float *scale, *shift;         /* [n, c] */
} GnJob;

/* Sum and sum of squares about @shift: float lanes over blocks of 1024
 * (vectorised), folded into doubles between blocks so a million-element
 * group keeps its digits.  Shifting by the first value keeps the variance
 * exact for offset data.  The two loops below take the whole multiples of 16
 * and return how many they took; moments() adds the rest. */
GE_VECTOR_CLONES static gsize
moments_generic (const float *x, gsize n, float shift, double *sum, double *sq)
{
  /* 16 independent lanes: without -ffast-math GCC keeps a single float
   * accumulator in order (a scalar add chain), so spell the lanes out. */
  double s = 0, q = 0;
  gsize i = 0;
  while (i + 16 <= n) {
    const gsize end = MIN (n, i + 1024) / 16 * 16;
    float fs[16] = { 0 }, fq[16] = { 0 };
    for (; i < end; i += 16)
      for (int l = 0; l < 16; l++) {
        const float d = x[i + l] - shift;
        fs[l] += d;
        fq[l] += d * d;
      }
    for (int l = 0; l < 16; l++) {
      s += fs[l];
      q += fq[l];
    }
  }
  *sum = s;
  *sq = q;
  return i;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* moments_generic's blocks with one zmm of lanes each for the sum and the
 * sum of squares.  Spelt out because GCC vectorises the generic loop across
 * the blocks instead (gathers): 8 % of an inpainting frame went there. */
__attribute__((target ("avx512f")))
static gsize
moments_avx512 (const float *x, gsize n, float shift, double *sum, double *sq)
{
  const __m512 sh = _mm512_set1_ps (shift);
  double s = 0, q = 0;
  gsize i = 0;
  while (i + 16 <= n) {
    const gsize end = MIN (n, i + 1024) / 16 * 16;
    __m512 fs = _mm512_setzero_ps (), fq = _mm512_setzero_ps ();
    for (; i < end; i += 16) {
      const __m512 d = _mm512_sub_ps (_mm512_loadu_ps (x + i), sh);
      fs = _mm512_add_ps (fs, d);
      fq = _mm512_fmadd_ps (d, d, fq);
    }
    float ls[16], lq[16];
    _mm512_storeu_ps (ls, fs);
    _mm512_storeu_ps (lq, fq);
    for (int l = 0; l < 16; l++) {
      s += ls[l];
      q += lq[l];
    }
  }
  *sum = s;
  *sq = q;
  return i;
}
#endif

static void
moments (const float *x, gsize n, float shift, double *sum, double *sq)
{
  gsize i;
#if defined(__x86_64__) && defined(__GNUC__)
  if (ge_gemm_packed_available ())      /* AVX-512 */
    i = moments_avx512 (x, n, shift, sum, sq);
  else
#endif
    i = moments_generic (x, n, shift, sum, sq);
  for (; i < n; i++) {
    const double d = x[i] - shift;
    *sum += d;
    *sq += d * d;
  }
}

GE_VECTOR_CLONES static void
normalize (const float *x, float *y, gsize n, float m, float s, float b, GeAct act)
{
  if (act == GE_ACT_SILU)
    for (gsize i = 0; i < n; i++) {
      const float v = (x[i] - m) * s + b;
      y[i] = v / (1.0f + ge_expf (-v));
    }
  else
    for (gsize i = 0; i < n; i++)
      y[i] = ge_act1 ((x[i] - m) * s + b, act, 0.0f);
}

static void
gn_task (void *data, int t, int thread)
{
  const GnJob *j = data;
  const int cg = j->x->c / j->groups, n = t / j->groups, g = t % j->groups;
  const gsize plane = (gsize) j->x->h * j->x->w, count = plane * cg;
  const gsize off = ((gsize) n * j->x->c + (gsize) g * cg) * plane;
  const float *x = j->x->data + off;
  float *y = j->y ? j->y->data + off : NULL;
  double sum, sq;
  const float shift = x[0];
  moments (x, count, shift, &sum, &sq);
  const double dmean = sum / count;
  const double var = fmax (sq / count - dmean * dmean, 0.0);
  const float rstd = (float) (1.0 / sqrt (var + j->eps));
  const float m = (float) (dmean + shift);
  for (int c = 0; c < cg; c++) {
    const int ch = g * cg + c;
    const float s = rstd * (j->gamma ? j->gamma[ch] : 1.0f);
    const float b = j->beta ? j->beta[ch] : 0.0f;
    if (j->y)
      normalize (x + (gsize) c * plane, y + (gsize) c * plane, plane, m, s, b, j->act);
    else {
      /* (x - m) * s + b == x * s + (b - m * s), up to one rounding */
      j->scale[(gsize) n * j->x->c + ch] = s;
      j->shift[(gsize) n * j->x->c + ch] = b - m * s;
    }
  }
}

void
ge_group_norm (GeCtx * ctx, const GeTensor * x, GeTensor * y, int groups,
    float eps, const float *gamma, const float *beta, GeAct act)
{
  g_return_if_fail (groups > 0 && x->c % groups == 0);
  g_return_if_fail (ge_tensor_numel (x) == ge_tensor_numel (y));
  GnJob j = { x, y, groups, eps, gamma, beta, act, NULL, NULL };
  ge_pool_run (ctx->pool, x->n * groups, gn_task, &j);
}

void
ge_group_norm_affine (GeCtx * ctx, const GeTensor * x, int groups, float eps,
    const float *gamma, const float *beta, float *scale, float *shift)
{
  g_return_if_fail (groups > 0 && x->c % groups == 0);
  GnJob j = { x, NULL, groups, eps, gamma, beta, GE_ACT_NONE, scale, shift };
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

/* ---- layer norm of channel-major tokens --------------------------------
 *
 * A token is a column of [c, h*w]: its features lie a plane apart.  Each
 * task takes LN_COLS neighbouring columns and walks the channels row by
 * row, so every read is a contiguous run and the per-column sums vectorise
 * across the columns.  Mean first, then the centred second moment: two
 * passes (plus the write), both accumulated in double. */

#define LN_COLS 64

typedef struct {
  const GeTensor *x;
  GeTensor *y;
  float eps;
  const float *gamma, *beta;
  int col_blocks;
} LnJob;

GE_VECTOR_CLONES static void
ln_columns (const float *x, float *y, int c, gsize plane, int nc, float eps,
    const float *gamma, const float *beta)
{
  double sum[LN_COLS] = { 0 }, sq[LN_COLS] = { 0 };
  float mean[LN_COLS], rstd[LN_COLS];
  for (int ch = 0; ch < c; ch++) {
    const float *row = x + ch * plane;
    for (int i = 0; i < nc; i++)
      sum[i] += row[i];
  }
  for (int i = 0; i < nc; i++)
    mean[i] = (float) (sum[i] / c);
  for (int ch = 0; ch < c; ch++) {
    const float *row = x + ch * plane;
    for (int i = 0; i < nc; i++) {
      const double d = (double) row[i] - mean[i];
      sq[i] += d * d;
    }
  }
  for (int i = 0; i < nc; i++)
    rstd[i] = (float) (1.0 / sqrt (sq[i] / c + eps));
  for (int ch = 0; ch < c; ch++) {
    const float *row = x + ch * plane;
    float *out = y + ch * plane;
    const float g = gamma ? gamma[ch] : 1.0f, b = beta ? beta[ch] : 0.0f;
    for (int i = 0; i < nc; i++)
      out[i] = (row[i] - mean[i]) * rstd[i] * g + b;
  }
}

static void
ln_task (void *data, int t, int thread)
{
  const LnJob *j = data;
  const int n = t / j->col_blocks, col0 = (t % j->col_blocks) * LN_COLS;
  const gsize plane = (gsize) j->x->h * j->x->w;
  const gsize off = (gsize) n * j->x->c * plane + col0;
  ln_columns (j->x->data + off, j->y->data + off, j->x->c, plane,
      (int) MIN ((gsize) LN_COLS, plane - col0), j->eps, j->gamma, j->beta);
}

void
ge_layer_norm_channels (GeCtx * ctx, const GeTensor * x, GeTensor * y, float eps,
    const float *gamma, const float *beta)
{
  g_return_if_fail (ge_tensor_numel (x) == ge_tensor_numel (y));
  const gsize plane = (gsize) x->h * x->w;
  LnJob j = { x, y, eps, gamma, beta, (int) ((plane + LN_COLS - 1) / LN_COLS) };
  ge_pool_run (ctx->pool, x->n * j.col_blocks, ln_task, &j);
}
