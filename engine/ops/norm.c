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
  float *lo, *hi;               /* [n, c] or NULL: each channel's range */
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

/* Each channel's minimum and maximum (NaN for both where it holds a NaN)
 * as the moments of its group are summed: the int8 convs' input range
 * without a pass of its own.  Channels are @plane floats; a vector may
 * straddle two of them (plane % 16 != 0), the rare case fold_range splits. */
typedef struct {
  gsize plane, end;             /* the current channel ends at end */
  int c;
  __m512 lo, hi;
  __mmask16 nan;
  float *out_lo, *out_hi;
} RangeAcc;

__attribute__((target ("avx512f")))
static void
range_flush (RangeAcc * r)
{
  r->out_lo[r->c] = r->nan ? NAN : _mm512_reduce_min_ps (r->lo);
  r->out_hi[r->c] = r->nan ? NAN : _mm512_reduce_max_ps (r->hi);
  r->c++;
  r->end += r->plane;
  r->lo = _mm512_set1_ps (INFINITY);
  r->hi = _mm512_set1_ps (-INFINITY);
  r->nan = 0;
}

/* Folds the @cnt floats of @a at group offset @i into the channels they
 * belong to. */
__attribute__((target ("avx512f")))
static inline void
range_fold (RangeAcc * r, __m512 a, gsize i, int cnt)
{
  __mmask16 todo = cnt >= 16 ? 0xffff : (__mmask16) ((1u << cnt) - 1);
  while (todo) {
    __mmask16 m = todo;
    if (i + 16 > r->end)
      m &= (__mmask16) ((1u << (r->end > i ? r->end - i : 0)) - 1);
    r->nan |= _mm512_mask_cmp_ps_mask (m, a, a, _CMP_UNORD_Q);
    r->lo = _mm512_mask_min_ps (r->lo, m, r->lo, a);
    r->hi = _mm512_mask_max_ps (r->hi, m, r->hi, a);
    todo &= (__mmask16) ~m;
    if (todo)
      range_flush (r);
  }
}

/* moments_generic's blocks with one zmm of lanes each for the sum and the
 * sum of squares, and the ranges where @r (NULL: none).  Spelt out because GCC
 * vectorises the generic loop across the blocks instead (gathers): 8 % of
 * an inpainting frame went there. */
__attribute__((target ("avx512f")))
static gsize
moments_avx512 (const float *x, gsize n, float shift, double *sum, double *sq, RangeAcc * r)
{
  const __m512 sh = _mm512_set1_ps (shift);
  double s = 0, q = 0;
  gsize i = 0;
  /* r's state in registers: through the pointer it would make every
   * min and max a store and a load */
  __m512 lo = r ? r->lo : sh, hi = r ? r->hi : sh;
  __mmask16 nan = r ? r->nan : 0;
  gsize end_c = r ? r->end : G_MAXSIZE;
  while (i + 16 <= n) {
    const gsize end = MIN (n, i + 1024) / 16 * 16;
    __m512 fs = _mm512_setzero_ps (), fq = _mm512_setzero_ps ();
    for (; i < end; i += 16) {
      const __m512 a = _mm512_loadu_ps (x + i), d = _mm512_sub_ps (a, sh);
      fs = _mm512_add_ps (fs, d);
      fq = _mm512_fmadd_ps (d, d, fq);
      if (!r)
        continue;
      if (i + 16 <= end_c) {
        nan |= _mm512_cmp_ps_mask (a, a, _CMP_UNORD_Q);
        lo = _mm512_min_ps (lo, a);
        hi = _mm512_max_ps (hi, a);
      } else {
        *r = (RangeAcc) { r->plane, end_c, r->c, lo, hi, nan, r->out_lo, r->out_hi };
        range_fold (r, a, i, 16);
        lo = r->lo;
        hi = r->hi;
        nan = r->nan;
        end_c = r->end;
      }
    }
    float ls[16], lq[16];
    _mm512_storeu_ps (ls, fs);
    _mm512_storeu_ps (lq, fq);
    for (int l = 0; l < 16; l++) {
      s += ls[l];
      q += lq[l];
    }
  }
  if (r)
    *r = (RangeAcc) { r->plane, end_c, r->c, lo, hi, nan, r->out_lo, r->out_hi };
  *sum = s;
  *sq = q;
  return i;
}

/* moments () of a group of @n floats in channels of @plane, with each
 * channel's range into @lo and @hi (the same sums, to the bit). */
__attribute__((target ("avx512f")))
static void
moments_range_avx512 (const float *x, gsize n, float shift, gsize plane, double *sum,
    double *sq, float *lo, float *hi)
{
  RangeAcc r = { plane, plane, 0, _mm512_set1_ps (INFINITY), _mm512_set1_ps (-INFINITY), 0,
    lo, hi
  };
  gsize i = moments_avx512 (x, n, shift, sum, sq, &r);
  if (i < n)
    range_fold (&r, _mm512_maskz_loadu_ps ((__mmask16) ((1u << (n - i)) - 1), x + i), i,
        (int) (n - i));
  for (gsize k = i; k < n; k++) {
    const double d = x[k] - shift;
    *sum += d;
    *sq += d * d;
  }
  range_flush (&r);
}
#endif

static void
moments (const float *x, gsize n, float shift, double *sum, double *sq)
{
  gsize i;
#if defined(__x86_64__) && defined(__GNUC__)
  if (ge_gemm_packed_available ())      /* AVX-512 */
    i = moments_avx512 (x, n, shift, sum, sq, NULL);
  else
#endif
    i = moments_generic (x, n, shift, sum, sq);
  for (; i < n; i++) {
    const double d = x[i] - shift;
    *sum += d;
    *sq += d * d;
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target ("avx512f")))
static void
min_max_avx512 (const float *v, gsize n, float *mn, float *mx)
{
  __m512 lo = _mm512_set1_ps (v[0]), hi = lo;
  __mmask16 nan = 0;
  for (gsize i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16) ((1u << (n - i)) - 1);
    const __m512 a = _mm512_mask_loadu_ps (lo, m, v + i);
    nan |= _mm512_cmp_ps_mask (a, a, _CMP_UNORD_Q);
    lo = _mm512_min_ps (lo, a);
    hi = _mm512_max_ps (hi, a);
  }
  *mn = nan ? NAN : _mm512_reduce_min_ps (lo);
  *mx = nan ? NAN : _mm512_reduce_max_ps (hi);
}
#endif

void
ge_min_max (const float *v, gsize n, float *mn, float *mx)
{
#if defined(__x86_64__) && defined(__GNUC__)
  if (ge_gemm_packed_available ()) {
    min_max_avx512 (v, n, mn, mx);
    return;
  }
#endif
  *mn = *mx = v[0];
  for (gsize i = 0; i < n; i++) {
    if (isnan (v[i])) {
      *mn = *mx = NAN;
      return;
    }
    *mn = MIN (*mn, v[i]);
    *mx = MAX (*mx, v[i]);
  }
}

/* moments () and each channel's (@plane floats') minimum and maximum, NaN
 * for both where it holds a NaN. */
static void
moments_range (const float *x, gsize n, float shift, gsize plane, double *sum, double *sq,
    float *lo, float *hi)
{
#if defined(__x86_64__) && defined(__GNUC__)
  if (ge_gemm_packed_available ()) {
    moments_range_avx512 (x, n, shift, plane, sum, sq, lo, hi);
    return;
  }
#endif
  moments (x, n, shift, sum, sq);
  for (gsize c = 0; c < n / plane; c++)
    ge_min_max (x + c * plane, plane, &lo[c], &hi[c]);
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
  if (j->lo)
    moments_range (x, count, shift, plane, &sum, &sq, j->lo + off / plane, j->hi + off / plane);
  else
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
  GnJob j = { x, y, groups, eps, gamma, beta, act, NULL, NULL, NULL, NULL };
  ge_pool_run (ctx->pool, x->n * groups, gn_task, &j);
}

void
ge_group_norm_affine (GeCtx * ctx, const GeTensor * x, int groups, float eps,
    const float *gamma, const float *beta, float *scale, float *shift, float *lo, float *hi)
{
  g_return_if_fail (groups > 0 && x->c % groups == 0);
  GnJob j = { x, NULL, groups, eps, gamma, beta, GE_ACT_NONE, scale, shift, lo, hi };
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
