/* gemv.c: 8-bit-weight matrix-vector products (see gemv.h).
 *
 * Layout: rows in blocks of 16 (one zmm of int32 sums), columns in pairs
 * (vpdpwssd multiplies two adjacent 16-bit pairs per lane); a block's
 * pair p is 32 bytes: rows 0..15, two columns each ([16][2] int8).  Rows
 * past the last and the odd last column are zero. */
#include "gemv.h"
#include "gemm.h"
#include "vnni.h"

#include <math.h>
#include <string.h>

struct _GeGemvI8 {
  int rows, cols;
  int pairs;                    /* ceil (cols / 2) */
  int row_blocks;               /* ceil (rows / 16) */
  gint8 *w;                     /* [row_blocks][pairs][16][2] */
  float *scale;                 /* [row_blocks * 16] */
};

gboolean
ge_gemv_i8_available (void)
{
  return ge_gemm_int8_available ();
}

GeGemvI8 *
ge_gemv_i8_new (const float *w, int rows, int cols, int ld)
{
  if (!ge_gemv_i8_available () || rows < 1 || cols < 1)
    return NULL;
  GeGemvI8 *a = g_new0 (GeGemvI8, 1);
  a->rows = rows, a->cols = cols;
  a->pairs = (cols + 1) / 2;
  a->row_blocks = (rows + 15) / 16;
  a->w = g_malloc0 ((gsize) a->row_blocks * a->pairs * 32);
  a->scale = g_new0 (float, (gsize) a->row_blocks * 16);
  for (int r = 0; r < rows; r++) {
    const float *row = w + (gsize) r * ld;
    float mx = 0.0f;
    for (int c = 0; c < cols; c++) {
      if (!isfinite (row[c])) {
        ge_gemv_i8_free (a);
        return NULL;
      }
      mx = MAX (mx, fabsf (row[c]));
    }
    if (mx == 0.0f)
      continue;
    a->scale[r] = mx / 127.0f;
    const float inv = 127.0f / mx;
    gint8 *dst = a->w + (gsize) (r / 16) * a->pairs * 32 + (r % 16) * 2;
    for (int c = 0; c < cols; c++) {
      const long q = lrintf (row[c] * inv);
      dst[(gsize) (c / 2) * 32 + c % 2] = (gint8) CLAMP (q, -127, 127);
    }
  }
  return a;
}

void
ge_gemv_i8_free (GeGemvI8 * a)
{
  if (!a)
    return;
  g_free (a->w);
  g_free (a->scale);
  g_free (a);
}

float
ge_gemv_i8_row_scale (const GeGemvI8 * a, int r)
{
  return a->scale[r];
}

gsize
ge_gemv_i8_scratch_size (const GeGemvI8 * a)
{
  return (gsize) a->pairs * 4;       /* the vector in 16 bits, even length */
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define VNNI_TARGET __attribute__((target ("avx512f,avx512bw,avx512vl,avx512vnni")))

VNNI_TARGET void
ge_gemv_i8 (const GeGemvI8 * a, const float *x, float *y, void *scratch)
{
  const int cols = a->cols, pairs = a->pairs;
  gint16 *xq = scratch;
  /* the vector's scale: its largest magnitude to 32767 */
  __m512 vmax = _mm512_setzero_ps ();
  int c = 0;
  for (; c + 16 <= cols; c += 16)
    vmax = _mm512_max_ps (vmax, _mm512_abs_ps (_mm512_loadu_ps (x + c)));
  float mx = _mm512_reduce_max_ps (vmax);
  for (; c < cols; c++)
    mx = MAX (mx, fabsf (x[c]));
  if (mx == 0.0f)
    return;                     /* y += 0 */
  const float sx = mx / 32767.0f;
  const __m512 inv = _mm512_set1_ps (32767.0f / mx);
  for (c = 0; c + 16 <= cols; c += 16) {
    const __m512i q = _mm512_cvtps_epi32 (_mm512_mul_ps (_mm512_loadu_ps (x + c), inv));
    _mm256_storeu_si256 ((__m256i *) (xq + c), _mm512_cvtsepi32_epi16 (q));
  }
  for (; c < 2 * pairs; c++)
    xq[c] = c < cols ? (gint16) CLAMP (lrintf (x[c] * (32767.0f / mx)), -32767, 32767) : 0;
  const gint32 *xp = (const gint32 *) xq;

  for (int rb = 0; rb < a->row_blocks; rb++) {
    const gint8 *w = a->w + (gsize) rb * pairs * 32;
    __m512 sum = _mm512_setzero_ps ();
    for (int p0 = 0; p0 < pairs; p0 += GE_GEMV_I8_BLOCK / 2) {
      const int p1 = MIN (pairs, p0 + GE_GEMV_I8_BLOCK / 2);
      /* four chains: vpdpwssd's latency, not its throughput, would bound one */
      __m512i s0 = _mm512_setzero_si512 (), s1 = s0, s2 = s0, s3 = s0;
      int p = p0;
      for (; p + 4 <= p1; p += 4) {
        const gint8 *wp = w + (gsize) p * 32;
        GE_DPWSSD (s0, _mm512_cvtepi8_epi16 (_mm256_loadu_si256 ((const __m256i *) wp)),
            _mm512_set1_epi32 (xp[p]));
        GE_DPWSSD (s1, _mm512_cvtepi8_epi16 (_mm256_loadu_si256 ((const __m256i *) (wp + 32))),
            _mm512_set1_epi32 (xp[p + 1]));
        GE_DPWSSD (s2, _mm512_cvtepi8_epi16 (_mm256_loadu_si256 ((const __m256i *) (wp + 64))),
            _mm512_set1_epi32 (xp[p + 2]));
        GE_DPWSSD (s3, _mm512_cvtepi8_epi16 (_mm256_loadu_si256 ((const __m256i *) (wp + 96))),
            _mm512_set1_epi32 (xp[p + 3]));
      }
      for (; p < p1; p++)
        GE_DPWSSD (s0, _mm512_cvtepi8_epi16 (_mm256_loadu_si256 ((const __m256i *)
                    (w + (gsize) p * 32))), _mm512_set1_epi32 (xp[p]));
      const __m512i s = _mm512_add_epi32 (_mm512_add_epi32 (s0, s1), _mm512_add_epi32 (s2, s3));
      sum = _mm512_add_ps (sum, _mm512_cvtepi32_ps (s));
    }
    const int r0 = rb * 16, n = MIN (16, a->rows - r0);
    const __mmask16 m = (__mmask16) ((1u << n) - 1);
    const __m512 scale = _mm512_mul_ps (_mm512_loadu_ps (a->scale + r0), _mm512_set1_ps (sx));
    const __m512 yv = _mm512_maskz_loadu_ps (m, y + r0);
    _mm512_mask_storeu_ps (y + r0, m, _mm512_fmadd_ps (sum, scale, yv));
  }
}

#else

void
ge_gemv_i8 (const GeGemvI8 * a, const float *x, float *y, void *scratch)
{
  (void) a, (void) x, (void) y, (void) scratch;
  g_assert_not_reached ();      /* ge_gemv_i8_new returns NULL here */
}

#endif
