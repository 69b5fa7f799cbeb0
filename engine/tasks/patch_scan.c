/* patch_scan.c: exhaustive patch matching (see patch_scan.h). */
#include "patch_scan.h"
#include "../ops/gemm.h"
#include "../ops/vnni.h"

#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define X86 1
#endif

#define R GE_PATCHMATCH_RADIUS
#define P (2 * R + 1)
#define N GE_PATCH_SCAN_N
#define TAPS GE_PATCH_SCAN_TAPS
/* Positions of a band (its scores: N x 4 bytes each, 512 KiB): the rows of
 * a pyramid's coarsest level usually fit in one band. */
#define BAND_POSITIONS 16384

GePatchScanKind
ge_patch_scan_kind (GePrecision precision)
{
  if (precision == GE_PRECISION_INT8 && ge_gemm_int8_available ())
    return GE_PATCH_SCAN_INT8;
  return ge_gemm_packed_available ()? GE_PATCH_SCAN_F32 : GE_PATCH_SCAN_SCALAR;
}

void
ge_patch_scan_group_init (GePatchScanGroup * g)
{
  g->n = 0;
  g->n_taps = 0;
}

void
ge_patch_scan_group_add (GePatchScanGroup * g, const guint8 * rgb, const guint8 * known,
    int w, int h, int px, int py)
{
  g_assert (g->n < N);
  const int j = g->n++;
  gboolean used[TAPS] = { FALSE };
  for (int k = 0; k < g->n_taps; k++)
    used[g->tap[k]] = TRUE;
  gint64 c = 0;
  for (int dy = -R, k = 0; dy <= R; dy++)
    for (int dx = -R; dx <= R; dx++)
      for (int ch = 0; ch < 3; ch++, k++) {
        const int x = px + dx, y = py + dy;
        const gboolean in = x >= 0 && y >= 0 && x < w && y < h && known[(gsize) y * w + x];
        g->m[j][k] = in;
        g->t[j][k] = in ? rgb[((gsize) y * w + x) * 3 + ch] : 0;
        c += (gint64) g->t[j][k] * g->t[j][k];
        if (in && !used[k]) {
          used[k] = TRUE;
          g->tap[g->n_taps++] = (guint8) k;
        }
      }
  g->c[j] = c;
}

/* Positions of a score row: x in [R, w - R), padded to a multiple of 16.
 * Template j's score at (x, y) of a band from row y0 is
 * scores[(j * band_rows + y - y0) * row + x - R]. */
static int
score_row (int w)
{
  return MAX ((w - 2 * R + 15) / 16 * 16, 16);
}

int
ge_patch_scan_band_rows (int w)
{
  return MAX (BAND_POSITIONS / score_row (w), 1);
}

static gsize
align64 (gsize n)
{
  return (n + 63) & ~(gsize) 63;
}

/* The planes' row stride and one plane's size, in elements. */
static int
plane_stride (int w)
{
  return score_row (w) + 2 * R;
}

static gsize
plane_size (int w)
{
  return (gsize) plane_stride (w) * (ge_patch_scan_band_rows (w) + 2 * R);
}

/* The work space: this header, the scores, the planes (f32: s and s^2 of
 * each channel; int8: one plane of pairs a channel). */
typedef struct {
  int y0, y1, w, kind;          /* the band the planes hold; y1 = 0: none */
} Header;
#define HEADER_BYTES 64

static gsize
scores_bytes (int w)
{
  return align64 (sizeof (gint32) * N * ge_patch_scan_band_rows (w) * score_row (w));
}

gsize
ge_patch_scan_bytes (int w)
{
  return HEADER_BYTES + scores_bytes (w) + 6 * sizeof (float) * plane_size (w);
}

void
ge_patch_scan_forget (void *scratch)
{
  ((Header *) scratch)->y1 = 0;
}

static const gint32 *
scores_of (const void *scratch)
{
  return (const gint32 *) ((const guint8 *) scratch + HEADER_BYTES);
}

/* The group's used taps as offsets into the planes from a position's, and
 * their weights for each template (0 for templates that do not use them:
 * padding templates too). */
typedef struct {
  gint32 off[TAPS];
  float wf[TAPS][N][2];         /* (-2 m t, m) */
  guint32 wi[TAPS][N];          /* the same, int16 pairs */
  gint32 cf[N], ci[N];          /* the constants: sum m t^2 (+ 32768 sum m) */
} Weights;

static void
weights_init (const GePatchScanGroup * g, int w, Weights * wt)
{
  const int ps = plane_stride (w);
  const gsize psz = plane_size (w);
  memset (wt->cf, 0, sizeof (wt->cf));
  memset (wt->ci, 0, sizeof (wt->ci));
  for (int i = 0; i < g->n_taps; i++) {
    const int k = g->tap[i], c = k % 3, dx = k / 3 % P, dy = k / 3 / P;
    wt->off[i] = (gint32) (c * psz) + dy * ps + dx;
    for (int j = 0; j < N; j++) {
      const int m = j < g->n ? g->m[j][k] : 0, t = j < g->n ? g->t[j][k] : 0;
      wt->wf[i][j][0] = (float) (-2 * m * t);
      wt->wf[i][j][1] = (float) m;
      wt->wi[i][j] = (guint32) (guint16) (gint16) (-2 * m * t) | (guint32) m << 16;
      wt->ci[j] += 32768 * m;
    }
  }
  for (int j = 0; j < g->n; j++) {
    wt->cf[j] = (gint32) g->c[j];
    wt->ci[j] += (gint32) g->c[j];
  }
}

#ifdef X86
#define AVX512_TARGET __attribute__((target ("avx512f")))
#define VNNI_TARGET __attribute__((target ("avx512f,avx512bw,avx512vnni")))

/* The positions of row y (x in [R, w - R)) that are sources, 16 at a time
 * from x, a bit each, from one load: its 16 bytes stay inside the image
 * (x + 15 < w - R + 15, and R rows follow). */
AVX512_TARGET static inline __mmask16
ok_bits_avx512 (const guint8 * ok, int w, int y, int x)
{
  const int n = MIN (16, w - R - x);
  if (n <= 0)
    return 0;
  const __m128i bytes = _mm_loadu_si128 ((const __m128i *) (ok + (gsize) y * w + x));
  const __m512i v = _mm512_cvtepu8_epi32 (bytes);
  return _mm512_test_epi32_mask (v, v) & (__mmask16) ((1u << n) - 1);
}

/* @V vectors of 16 positions of a row against the N templates: for each
 * used tap, the planes' vectors at the tap's offset and one broadcast
 * weight per template.  @b: the planes at the first position; @q: the s^2
 * planes' offset; @o: template 0's first score, @os: the next template's
 * offset. */
static inline __attribute__((always_inline)) AVX512_TARGET void
block_f32 (const Weights * wt, int n_taps, const float *b, gsize q, gint32 * o, gsize os,
    const int V)
{
  __m512 a[N][2];
#pragma GCC unroll 8
  for (int j = 0; j < N; j++)
    a[j][0] = a[j][1] = _mm512_setzero_ps ();
  for (int i = 0; i < n_taps; i++) {
    const float *s = b + wt->off[i];
    const __m512 s0 = _mm512_loadu_ps (s), s1 = V > 1 ? _mm512_loadu_ps (s + 16) : s0;
    const __m512 q0 = _mm512_loadu_ps (s + q), q1 = V > 1 ? _mm512_loadu_ps (s + q + 16) : q0;
    const float *wv = wt->wf[i][0];
#pragma GCC unroll 8
    for (int j = 0; j < N; j++) {
      const __m512 u = _mm512_set1_ps (wv[2 * j]), v = _mm512_set1_ps (wv[2 * j + 1]);
      a[j][0] = _mm512_fmadd_ps (v, q0, _mm512_fmadd_ps (u, s0, a[j][0]));
      if (V > 1)
        a[j][1] = _mm512_fmadd_ps (v, q1, _mm512_fmadd_ps (u, s1, a[j][1]));
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < N; j++) {
    const __m512i c = _mm512_set1_epi32 (wt->cf[j]);
    _mm512_storeu_si512 (o + j * os, _mm512_add_epi32 (c, _mm512_cvtps_epi32 (a[j][0])));
    if (V > 1)
      _mm512_storeu_si512 (o + j * os + 16, _mm512_add_epi32 (c, _mm512_cvtps_epi32 (a[j][1])));
  }
}

/* The same with vpdpwssd on the pairs (vnni.h). */
static inline __attribute__((always_inline)) VNNI_TARGET void
block_int8 (const Weights * wt, int n_taps, const gint32 * b, gint32 * o, gsize os, const int V)
{
  __m512i a[N][2];
#pragma GCC unroll 8
  for (int j = 0; j < N; j++)
    a[j][0] = a[j][1] = _mm512_setzero_si512 ();
  for (int i = 0; i < n_taps; i++) {
    const gint32 *s = b + wt->off[i];
    const __m512i s0 = _mm512_loadu_si512 (s), s1 = V > 1 ? _mm512_loadu_si512 (s + 16) : s0;
    const guint32 *wv = wt->wi[i];
#pragma GCC unroll 8
    for (int j = 0; j < N; j++) {
      const __m512i u = _mm512_set1_epi32 ((int) wv[j]);
      GE_DPWSSD (a[j][0], u, s0);
      if (V > 1)
        GE_DPWSSD (a[j][1], u, s1);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < N; j++) {
    const __m512i c = _mm512_set1_epi32 (wt->ci[j]);
    _mm512_storeu_si512 (o + j * os, _mm512_add_epi32 (c, a[j][0]));
    if (V > 1)
      _mm512_storeu_si512 (o + j * os + 16, _mm512_add_epi32 (c, a[j][1]));
  }
}

/* The vectors of 16 positions of the block at x of a band's row y (two,
 * or one at the row's end: the rows are padded to 16); 0 where none of
 * them is a source, which leaves the block out. */
AVX512_TARGET static inline int
block_vectors (const guint8 * ok, int w, int y, int x, int row)
{
  const int v = row - x >= 32 ? 2 : 1;
  const __mmask16 k = ok_bits_avx512 (ok, w, y, R + x)
      | (v == 2 ? ok_bits_avx512 (ok, w, y, R + x + 16) : 0);
  return k ? v : 0;
}

/* A band's rows, 32 positions at a time, leaving out blocks without a
 * source. */
AVX512_TARGET static void
scan_f32 (const Weights * wt, int n_taps, const float *pl, gsize q, const guint8 * ok, int w,
    int y0, int rows, int row, int ps, int srows, gint32 * scores)
{
  const gsize os = (gsize) srows * row;
  for (int y = 0; y < rows; y++)
    for (int x = 0; x < row; x += 32) {
      const int v = block_vectors (ok, w, y0 + y, x, row);
      const float *b = pl + (gsize) y * ps + x;
      gint32 *o = scores + (gsize) y * row + x;
      if (v == 2)
        block_f32 (wt, n_taps, b, q, o, os, 2);
      else if (v == 1)
        block_f32 (wt, n_taps, b, q, o, os, 1);
    }
}

VNNI_TARGET static void
scan_int8 (const Weights * wt, int n_taps, const gint32 * pl, const guint8 * ok, int w, int y0,
    int rows, int row, int ps, int srows, gint32 * scores)
{
  const gsize os = (gsize) srows * row;
  for (int y = 0; y < rows; y++)
    for (int x = 0; x < row; x += 32) {
      const int v = block_vectors (ok, w, y0 + y, x, row);
      const gint32 *b = pl + (gsize) y * ps + x;
      gint32 *o = scores + (gsize) y * row + x;
      if (v == 2)
        block_int8 (wt, n_taps, b, o, os, 2);
      else if (v == 1)
        block_int8 (wt, n_taps, b, o, os, 1);
    }
}
#endif

/* Without AVX-512: each position's sums straight from the image. */
static void
scan_scalar (const GePatchScanGroup * g, const guint8 * rgb, const guint8 * hole, int w,
    int y0, int y1, int srows, gint32 * scores)
{
  const int row = score_row (w);
  for (int y = y0; y < y1; y++)
    for (int x = R; x < w - R; x++)
      for (int j = 0; j < g->n; j++) {
        gint64 sum = 0;
        for (int i = 0; i < g->n_taps; i++) {
          const int k = g->tap[i], c = k % 3, dx = k / 3 % P - R, dy = k / 3 / P - R;
          const gsize p = (gsize) (y + dy) * w + x + dx;
          const int d = (int) g->t[j][k] - (hole[p] ? 0 : rgb[p * 3 + c]);
          sum += g->m[j][k] * d * d;
        }
        scores[((gsize) j * srows + y - y0) * row + x - R] = (gint32) sum;
      }
}

void
ge_patch_scan_band (GePatchScanKind kind, const GePatchScanGroup * g, const guint8 * rgb,
    const guint8 * hole, const guint8 * ok, int w, int h, int y0, int y1, void *scratch)
{
  const int srows = ge_patch_scan_band_rows (w), row = score_row (w);
  g_assert (y0 >= R && y1 <= h - R && y1 - y0 <= srows);
  gint32 *scores = (gint32 *) scores_of (scratch);
  if (kind == GE_PATCH_SCAN_SCALAR) {
    scan_scalar (g, rgb, hole, w, y0, y1, srows, scores);
    return;
  }
#ifdef X86
  /* the planes of rows [y0 - R, y1 + R), columns past the image 0 */
  const int ps = plane_stride (w);
  const gsize psz = plane_size (w);
  void *planes = (guint8 *) scores + scores_bytes (w);
  Header *hd = scratch;
  if (hd->y0 != y0 || hd->y1 != y1 || hd->w != w || hd->kind != (int) kind) {
    for (int c = 0; c < 3; c++)
      for (int i = 0; i < y1 - y0 + 2 * R; i++) {
        const gsize p = (gsize) (y0 - R + i) * w;
        const gsize o = c * psz + (gsize) i * ps;
        for (int x = 0; x < ps; x++) {
          const gint32 v = x < w && !hole[p + x] ? rgb[(p + x) * 3 + c] : 0;
          if (kind == GE_PATCH_SCAN_F32) {
            ((float *) planes)[o + x] = (float) v;
            ((float *) planes)[o + 3 * psz + x] = (float) (v * v);
          } else
            ((guint32 *) planes)[o + x] = (guint32) v
                | (guint32) (guint16) (gint16) (v * v - 32768) << 16;
        }
      }
    *hd = (Header) { y0, y1, w, kind };
  }
  Weights wt;
  weights_init (g, w, &wt);
  if (kind == GE_PATCH_SCAN_F32)
    scan_f32 (&wt, g->n_taps, planes, 3 * psz, ok, w, y0, y1 - y0, row, ps, srows, scores);
  else
    scan_int8 (&wt, g->n_taps, planes, ok, w, y0, y1 - y0, row, ps, srows, scores);
#else
  g_assert_not_reached ();
#endif
}

/* The positions of row y (x in [R, w - R)) that are sources, 16 at a time
 * from x: a bit each. */
static inline guint32
ok_bits (const guint8 * ok, int w, int y, int x)
{
  guint32 k = 0;
  const int n = MIN (16, w - R - x);
  for (int i = 0; i < n; i++)
    k |= (guint32) (ok[(gsize) y * w + x + i] != 0) << i;
  return k;
}

#ifdef X86
AVX512_TARGET static void
least_avx512 (const gint32 * scores, const guint8 * ok, int w, int y0, int y1, int n,
    gint32 * best)
{
  const int srows = ge_patch_scan_band_rows (w), row = score_row (w);
  for (int j = 0; j < n; j++) {
    __m512i m = _mm512_set1_epi32 (best[j]);
    for (int y = y0; y < y1; y++) {
      const gint32 *sc = scores + ((gsize) j * srows + y - y0) * row - R;
      for (int x = R; x < w - R; x += 16)
        m = _mm512_mask_min_epi32 (m, ok_bits_avx512 (ok, w, y, x), m, _mm512_loadu_si512 (sc + x));
    }
    best[j] = _mm512_reduce_min_epi32 (m);
  }
}

AVX512_TARGET static void
within_avx512 (const gint32 * scores, const guint8 * ok, int w, int y0, int y1, int n,
    const gint32 * thr, const gint32 * first, int cap, gint32 * count, gint32 * out)
{
  const int srows = ge_patch_scan_band_rows (w), row = score_row (w);
  for (int j = 0; j < n; j++) {
    const __m512i t = _mm512_set1_epi32 (thr[j]);
    for (int y = y0; y < y1; y++) {
      const gint32 *sc = scores + ((gsize) j * srows + y - y0) * row - R;
      for (int x = R; x < w - R; x += 16) {
        guint32 b = _mm512_mask_cmple_epi32_mask (ok_bits_avx512 (ok, w, y, x),
            _mm512_loadu_si512 (sc + x), t);
        const int c = __builtin_popcount (b);
        /* ranks [count, count + c): any of them in [first, first + cap)? */
        if (count[j] + c > first[j] && count[j] - first[j] < cap)
          for (gint32 r = count[j] - first[j]; b; b &= b - 1, r++)
            if (r >= 0 && r < cap)
              out[j * cap + r] = y * w + x + __builtin_ctz (b);
        count[j] += c;
      }
    }
  }
}
#endif

void
ge_patch_scan_least (GePatchScanKind kind, const void *scratch, const guint8 * ok, int w,
    int y0, int y1, int n, gint32 * best)
{
  const gint32 *scores = scores_of (scratch);
#ifdef X86
  if (kind != GE_PATCH_SCAN_SCALAR) {
    least_avx512 (scores, ok, w, y0, y1, n, best);
    return;
  }
#endif
  const int srows = ge_patch_scan_band_rows (w), row = score_row (w);
  for (int y = y0; y < y1; y++)
    for (int x = R; x < w - R; x += 16) {
      const guint32 k = ok_bits (ok, w, y, x);
      for (int j = 0; j < n; j++) {
        const gint32 *sc = scores + ((gsize) j * srows + y - y0) * row + x - R;
        for (guint32 b = k; b; b &= b - 1)
          best[j] = MIN (best[j], sc[__builtin_ctz (b)]);
      }
    }
}

void
ge_patch_scan_within (GePatchScanKind kind, const void *scratch, const guint8 * ok, int w,
    int y0, int y1, int n, const gint32 * thr, const gint32 * first, int cap, gint32 * count,
    gint32 * out)
{
  const gint32 *scores = scores_of (scratch);
#ifdef X86
  if (kind != GE_PATCH_SCAN_SCALAR) {
    within_avx512 (scores, ok, w, y0, y1, n, thr, first, cap, count, out);
    return;
  }
#endif
  const int srows = ge_patch_scan_band_rows (w), row = score_row (w);
  for (int y = y0; y < y1; y++)
    for (int x = R; x < w - R; x += 16) {
      const guint32 k = ok_bits (ok, w, y, x);
      for (int j = 0; j < n; j++) {
        const gint32 *sc = scores + ((gsize) j * srows + y - y0) * row + x - R;
        for (guint32 b = k; b; b &= b - 1) {
          const int i = __builtin_ctz (b);
          if (sc[i] > thr[j])
            continue;
          const gint32 r = count[j]++ - first[j];
          if (r >= 0 && r < cap)
            out[j * cap + r] = y * w + x + i;
        }
      }
    }
}
