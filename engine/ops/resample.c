/* resample.c: nearest/bilinear upsampling, average pooling, pixel
 * (un)shuffle.  Index maths follows PyTorch exactly (nearest: floor(dst/f);
 * bilinear: align_corners=False with clamping at 0). */
#include "ge-ops.h"
#include "ge-pool.h"
#include "gemm.h"

#include <math.h>

typedef struct {
  const GeTensor *x;
  GeTensor *y;
  int k;
} RsJob;

static void
nearest_task (void *data, int t, int thread)
{
  const RsJob *j = data;
  const int fy = j->y->h / j->x->h, fx = j->y->w / j->x->w;
  const float *src = j->x->data + (gsize) t * j->x->h * j->x->w;
  float *dst = j->y->data + (gsize) t * j->y->h * j->y->w;
  for (int oy = 0; oy < j->y->h; oy++) {
    const float *s = src + (gsize) (oy / fy) * j->x->w;
    float *d = dst + (gsize) oy * j->y->w;
    for (int ox = 0; ox < j->y->w; ox++)
      d[ox] = s[ox / fx];
  }
}

void
ge_upsample_nearest (GeCtx * ctx, const GeTensor * x, GeTensor * y)
{
  g_return_if_fail (y->n == x->n && y->c == x->c);
  g_return_if_fail (y->h % x->h == 0 && y->w % x->w == 0);
  RsJob j = { x, y, 0 };
  ge_pool_run (ctx->pool, x->n * x->c, nearest_task, &j);
}

static inline void
bilinear_coord (int dst, int in, int out, int *i0, int *i1, float *frac)
{
  float scale = (float) in / (float) out;
  float src = ((float) dst + 0.5f) * scale - 0.5f;
  if (src < 0)
    src = 0;
  int a = (int) src;
  if (a > in - 1)
    a = in - 1;
  *i0 = a;
  *i1 = a < in - 1 ? a + 1 : a;
  *frac = src - (float) a;
}

static void
bilinear_task (void *data, int t, int thread)
{
  const RsJob *j = data;
  const int H = j->x->h, W = j->x->w, OH = j->y->h, OW = j->y->w;
  const float *src = j->x->data + (gsize) t * H * W;
  float *dst = j->y->data + (gsize) t * OH * OW;
  for (int oy = 0; oy < OH; oy++) {
    int y0, y1;
    float fy;
    bilinear_coord (oy, H, OH, &y0, &y1, &fy);
    for (int ox = 0; ox < OW; ox++) {
      int x0, x1;
      float fx;
      bilinear_coord (ox, W, OW, &x0, &x1, &fx);
      const float *r0 = src + (gsize) y0 * W, *r1 = src + (gsize) y1 * W;
      dst[(gsize) oy * OW + ox] = (1 - fy) * ((1 - fx) * r0[x0] + fx * r0[x1])
          + fy * ((1 - fx) * r1[x0] + fx * r1[x1]);
    }
  }
}

void
ge_upsample_bilinear (GeCtx * ctx, const GeTensor * x, GeTensor * y)
{
  g_return_if_fail (y->n == x->n && y->c == x->c);
  RsJob j = { x, y, 0 };
  ge_pool_run (ctx->pool, x->n * x->c, bilinear_task, &j);
}

/* The four tap weights of Keys' cubic (A = -0.75) at fraction t, as
 * PyTorch's upsample_bicubic2d computes them in float. */
static inline void
cubic_weights (float t, float w[4])
{
  const float A = -0.75f;
  float x = t + 1.0f;
  w[0] = ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A;
  x = t;
  w[1] = ((A + 2.0f) * x - (A + 3.0f)) * x * x + 1.0f;
  x = 1.0f - t;
  w[2] = ((A + 2.0f) * x - (A + 3.0f)) * x * x + 1.0f;
  x = 2.0f - t;
  w[3] = ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A;
}

typedef struct {
  const GeTensor *x;
  GeTensor *y;
  const int *xi;                /* [ow][4] source columns */
  const float *xw;              /* [ow][4] their weights */
  float *rows;                  /* per thread: one source-width row */
  int band;                     /* output rows per task */
  /* The vector path (or NULL): per block of 16 output columns, the first
   * source column its taps read (base), and per tap the offsets from it
   * ([block][4][16], all < 16) and the weights ([block][4][16]). */
  const int *base, *vidx;
  const float *vw;
} BicubicJob;

static inline void
bicubic_row_scalar (const BicubicJob * j, const float *tmp, float *d)
{
  for (int ox = 0; ox < j->y->w; ox++) {
    const int *xi = j->xi + 4 * ox;
    const float *xw = j->xw + 4 * ox;
    d[ox] = xw[0] * tmp[xi[0]] + xw[1] * tmp[xi[1]] + xw[2] * tmp[xi[2]] + xw[3] * tmp[xi[3]];
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* The scalar loops' operations in their order (no fused multiply-adds):
 * the same floats.  The vertical blend 16 columns at a time; the
 * horizontal one a block of 16 outputs at a time from one load of the 16
 * source columns its taps read, each tap a permutation of them. */
/* no fused multiply-adds: GCC contracts the intrinsics otherwise */
__attribute__((target ("avx512f"), optimize ("fp-contract=off")))
static void
bicubic_row_avx512 (const BicubicJob * j, const float *const r[4], const float wy[4],
    float *tmp, float *d)
{
  const int W = j->x->w, OW = j->y->w;
  __m512 w[4];
  for (int k = 0; k < 4; k++)
    w[k] = _mm512_set1_ps (wy[k]);
  for (int x = 0; x < W; x += 16) {
    const __mmask16 m = W - x >= 16 ? 0xffff : (__mmask16) ((1u << (W - x)) - 1);
    __m512 v = _mm512_add_ps (_mm512_mul_ps (w[0], _mm512_maskz_loadu_ps (m, r[0] + x)),
        _mm512_mul_ps (w[1], _mm512_maskz_loadu_ps (m, r[1] + x)));
    v = _mm512_add_ps (v, _mm512_mul_ps (w[2], _mm512_maskz_loadu_ps (m, r[2] + x)));
    v = _mm512_add_ps (v, _mm512_mul_ps (w[3], _mm512_maskz_loadu_ps (m, r[3] + x)));
    _mm512_mask_storeu_ps (tmp + x, m, v);
  }
  for (int b = 0, ox = 0; ox < OW; b++, ox += 16) {
    const __mmask16 m = OW - ox >= 16 ? 0xffff : (__mmask16) ((1u << (OW - ox)) - 1);
    const int base = j->base[b];
    const __mmask16 in = W - base >= 16 ? 0xffff : (__mmask16) ((1u << (W - base)) - 1);
    const __m512 win = _mm512_maskz_loadu_ps (in, tmp + base);
    const int *idx = j->vidx + (gsize) b * 64;
    const float *vw = j->vw + (gsize) b * 64;
    __m512 o = _mm512_add_ps (
        _mm512_mul_ps (_mm512_loadu_ps (vw),
            _mm512_permutexvar_ps (_mm512_loadu_si512 (idx), win)),
        _mm512_mul_ps (_mm512_loadu_ps (vw + 16),
            _mm512_permutexvar_ps (_mm512_loadu_si512 (idx + 16), win)));
    for (int k = 2; k < 4; k++)
      o = _mm512_add_ps (o, _mm512_mul_ps (_mm512_loadu_ps (vw + 16 * k),
              _mm512_permutexvar_ps (_mm512_loadu_si512 (idx + 16 * k), win)));
    _mm512_mask_storeu_ps (d + ox, m, o);
  }
}
#endif

/* Separable: the 4 source rows are blended vertically into one row, then
 * each output pixel blends 4 of its columns with tabulated weights.  A
 * task is a band of rows of a plane: an RGB frame's three planes would
 * keep one of two threads idle a third of the time. */
static void
bicubic_task (void *data, int t, int thread)
{
  const BicubicJob *j = data;
  const int H = j->x->h, W = j->x->w, OH = j->y->h, OW = j->y->w;
  const int bands = (OH + j->band - 1) / j->band, plane = t / bands;
  const int oy0 = t % bands * j->band, oy1 = MIN (OH, oy0 + j->band);
  const float *src = j->x->data + (gsize) plane * H * W;
  float *dst = j->y->data + (gsize) plane * OH * OW;
  float *tmp = j->rows + (gsize) thread * W;
  const float sy = (float) H / OH;
  for (int oy = oy0; oy < oy1; oy++) {
    const float fy = (oy + 0.5f) * sy - 0.5f;
    const int iy = (int) floorf (fy);
    float wy[4];
    cubic_weights (fy - iy, wy);
    const float *r[4];
    for (int k = 0; k < 4; k++)
      r[k] = src + (gsize) CLAMP (iy - 1 + k, 0, H - 1) * W;
    float *d = dst + (gsize) oy * OW;
#if defined(__x86_64__) && defined(__GNUC__)
    if (j->base) {
      bicubic_row_avx512 (j, r, wy, tmp, d);
      continue;
    }
#endif
    for (int x = 0; x < W; x++)
      tmp[x] = wy[0] * r[0][x] + wy[1] * r[1][x] + wy[2] * r[2][x] + wy[3] * r[3][x];
    bicubic_row_scalar (j, tmp, d);
  }
}

/* The vector path's tables (bicubic_row_avx512), or FALSE where a block's
 * taps span 16 source columns or more (a scale under about 1.3). */
static gboolean
bicubic_vector_tables (GeCtx * ctx, BicubicJob * j)
{
#if defined(__x86_64__) && defined(__GNUC__)
  if (!ge_gemm_packed_available ())
    return FALSE;
  const int OW = j->y->w, nb = (OW + 15) / 16;
  int *base = (int *) ge_arena_alloc (ctx->arena, nb);
  int *idx = (int *) ge_arena_alloc (ctx->arena, (gsize) nb * 64);
  float *vw = ge_arena_alloc (ctx->arena, (gsize) nb * 64);
  for (int b = 0; b < nb; b++) {
    int lo = G_MAXINT, hi = 0;
    for (int o = 16 * b; o < MIN (OW, 16 * b + 16); o++)
      for (int k = 0; k < 4; k++) {
        lo = MIN (lo, j->xi[4 * o + k]);
        hi = MAX (hi, j->xi[4 * o + k]);
      }
    if (hi - lo >= 16)
      return FALSE;
    base[b] = lo;
    for (int k = 0; k < 4; k++)
      for (int i = 0; i < 16; i++) {
        const int o = MIN (16 * b + i, OW - 1);
        idx[b * 64 + 16 * k + i] = j->xi[4 * o + k] - lo;
        vw[b * 64 + 16 * k + i] = j->xw[4 * o + k];
      }
  }
  j->base = base;
  j->vidx = idx;
  j->vw = vw;
  return TRUE;
#else
  return FALSE;
#endif
}

void
ge_upsample_bicubic (GeCtx * ctx, const GeTensor * x, GeTensor * y)
{
  g_return_if_fail (y->n == x->n && y->c == x->c);
  const gsize mark = ge_arena_mark (ctx->arena);
  int *xi = (int *) ge_arena_alloc (ctx->arena, (gsize) 4 * y->w);
  float *xw = ge_arena_alloc (ctx->arena, (gsize) 4 * y->w);
  const float sx = (float) x->w / y->w;
  for (int ox = 0; ox < y->w; ox++) {
    const float fx = (ox + 0.5f) * sx - 0.5f;
    const int ix = (int) floorf (fx);
    cubic_weights (fx - ix, xw + 4 * ox);
    for (int k = 0; k < 4; k++)
      xi[4 * ox + k] = CLAMP (ix - 1 + k, 0, x->w - 1);
  }
  const int n_threads = ge_pool_n_threads (ctx->pool);
  BicubicJob j = { x, y, xi, xw, ge_arena_alloc (ctx->arena, (gsize) x->w * n_threads),
    MAX (1, (y->h + 4 * n_threads - 1) / (4 * n_threads)), NULL, NULL, NULL
  };
  bicubic_vector_tables (ctx, &j);
  ge_pool_run (ctx->pool, x->n * x->c * ((y->h + j.band - 1) / j.band), bicubic_task, &j);
  ge_arena_release (ctx->arena, mark);
}

static void
avg_task (void *data, int t, int thread)
{
  const RsJob *j = data;
  const int k = j->k, W = j->x->w;
  const float *src = j->x->data + (gsize) t * j->x->h * W;
  float *dst = j->y->data + (gsize) t * j->y->h * j->y->w;
  const float inv = 1.0f / (float) (k * k);
  for (int oy = 0; oy < j->y->h; oy++)
    for (int ox = 0; ox < j->y->w; ox++) {
      float s = 0;
      for (int dy = 0; dy < k; dy++)
        for (int dx = 0; dx < k; dx++)
          s += src[(gsize) (oy * k + dy) * W + ox * k + dx];
      dst[(gsize) oy * j->y->w + ox] = s * inv;
    }
}

void
ge_avg_pool (GeCtx * ctx, const GeTensor * x, GeTensor * y, int k)
{
  g_return_if_fail (y->n == x->n && y->c == x->c && y->h == x->h / k && y->w == x->w / k);
  RsJob j = { x, y, k };
  ge_pool_run (ctx->pool, x->n * x->c, avg_task, &j);
}

/* y[n, c, h*r + i, w*r + j] = x[n, c*r*r + i*r + j, h, w] (or the reverse),
 * one low-resolution plane per task. */
typedef struct {
  const GeTensor *lo, *hi;
  int r;
  gboolean to_hi;
} ShuffleJob;

static void
shuffle_task (void *data, int t, int thread)
{
  const ShuffleJob *j = data;
  const GeTensor *lo = j->lo, *hi = j->hi;
  const int r = j->r, n = t / lo->c, cl = t % lo->c;
  const int c = cl / (r * r), i = cl / r % r, jj = cl % r;
  float *lp = lo->data + ((gsize) n * lo->c + cl) * lo->h * lo->w;
  float *hp = hi->data + ((gsize) n * hi->c + c) * hi->h * hi->w;
  for (int y = 0; y < lo->h; y++)
    for (int x = 0; x < lo->w; x++) {
      float *h = hp + (gsize) (y * r + i) * hi->w + x * r + jj;
      float *l = lp + (gsize) y * lo->w + x;
      if (j->to_hi)
        *h = *l;
      else
        *l = *h;
    }
}

static void
shuffle (GeCtx * ctx, const GeTensor * lo, const GeTensor * hi, int r, gboolean to_hi)
{
  ShuffleJob j = { lo, hi, r, to_hi };
  ge_pool_run (ctx->pool, lo->n * lo->c, shuffle_task, &j);
}

void
ge_pixel_shuffle (GeCtx * ctx, const GeTensor * x, GeTensor * y, int r)
{
  g_return_if_fail (x->c == y->c * r * r && y->h == x->h * r && y->w == x->w * r);
  shuffle (ctx, x, y, r, TRUE);
}

void
ge_pixel_unshuffle (GeCtx * ctx, const GeTensor * x, GeTensor * y, int r)
{
  g_return_if_fail (y->c == x->c * r * r && x->h == y->h * r && x->w == y->w * r);
  shuffle (ctx, y, x, r, FALSE);
}
