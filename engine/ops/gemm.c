/* gemm.c: see gemm.h. */
#include "gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* K slice: the B rows of one panel (KC x NR floats = 32 KiB) stay in L1
 * while every block of A runs over them. */
#define KC 256

gsize
ge_gemm_packed_a_size (int m, int k)
{
  return (gsize) ((m + GE_MR - 1) / GE_MR) * GE_MR * k;
}

void
ge_gemm_pack_a (const float *a, int m, int k, int lda, float *ap)
{
  for (int i0 = 0; i0 < m; i0 += GE_MR)
    for (int kk = 0; kk < k; kk++)
      for (int r = 0; r < GE_MR; r++)
        *ap++ = i0 + r < m ? a[(gsize) (i0 + r) * lda + kk] : 0.0f;
}

void
ge_gemm_pack_a_t (const float *a, int m, int k, int lda, float scale, float *ap)
{
  for (int i0 = 0; i0 < m; i0 += GE_MR)
    for (int kk = 0; kk < k; kk++) {
      const float *src = a + (gsize) kk * lda + i0;
      for (int r = 0; r < GE_MR; r++)
        *ap++ = i0 + r < m ? src[r] * scale : 0.0f;
    }
}

#ifdef HAVE_X86

#define FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

/* One MR x NR tile over a K slice. */
__attribute__((target ("avx512f")))
static void
tile_8x32 (int kc, const float *ap, const float *b, const int *boff, float *c,
    int ldc, int rows, __mmask16 m0, __mmask16 m1, const float *bias, gboolean accumulate,
    gboolean prefetch)
{
  __m512 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
#define INIT(r) \
  c##r##0 = _mm512_set1_ps (bias && r < rows ? bias[r] : 0.0f); \
  c##r##1 = c##r##0; \
  if (accumulate && r < rows) { \
    c##r##0 = _mm512_add_ps (c##r##0, _mm512_maskz_loadu_ps (m0, c + (gsize) r * ldc)); \
    c##r##1 = _mm512_add_ps (c##r##1, _mm512_maskz_loadu_ps (m1, c + (gsize) r * ldc + 16)); }
  FOR_ROWS (INIT)
#undef INIT
  if (m0 == 0xffff && m1 == 0xffff) {
    for (int kk = 0; kk < kc; kk++) {
      const float *bk = b + boff[kk];
      const __m512 b0 = _mm512_loadu_ps (bk), b1 = _mm512_loadu_ps (bk + 16);
      /* The B rows of an implicit conv are taps scattered over the input,
       * which the hardware prefetchers do not follow: the first row block
       * fetches the next panel's part of each row (prefetches never fault,
       * so running past the last panel is harmless). */
      if (prefetch) {
        _mm_prefetch ((const char *) (bk + 32), _MM_HINT_T0);
        _mm_prefetch ((const char *) (bk + 47), _MM_HINT_T0);
      }
#define ROW(r) { const __m512 a_ = _mm512_set1_ps (ap[r]); \
        c##r##0 = _mm512_fmadd_ps (a_, b0, c##r##0); \
        c##r##1 = _mm512_fmadd_ps (a_, b1, c##r##1); }
      FOR_ROWS (ROW)
      ap += GE_MR;
    }
  } else {
    for (int kk = 0; kk < kc; kk++) {
      const float *bk = b + boff[kk];
      const __m512 b0 = _mm512_maskz_loadu_ps (m0, bk), b1 = _mm512_maskz_loadu_ps (m1, bk + 16);
      FOR_ROWS (ROW)
#undef ROW
      ap += GE_MR;
    }
  }
#define STORE(r) \
  if (r < rows) { \
    _mm512_mask_storeu_ps (c + (gsize) r * ldc, m0, c##r##0); \
    _mm512_mask_storeu_ps (c + (gsize) r * ldc + 16, m1, c##r##1); }
  FOR_ROWS (STORE)
#undef STORE
}

#undef FOR_ROWS

gboolean
ge_gemm_packed_available (void)
{
  static int state = -1;
  if (state < 0) {
    __builtin_cpu_init ();
    state = __builtin_cpu_supports ("avx512f") && !g_getenv ("GE_NO_AVX512");
  }
  return state;
}

void
ge_gemm_packed (int m, int n, int k, const float *ap, const float *b, const int *boff,
    float *c, int ldc, const float *bias, gboolean accumulate)
{
  /* Equal slices: a short last slice would pay a full load/store of the C
   * tile for a few k. */
  const int n_slices = (k + KC - 1) / KC, slice = (k + n_slices - 1) / n_slices;
  for (int k0 = 0; k0 < k; k0 += slice) {
    const int kc = MIN (slice, k - k0);
    const gboolean acc = accumulate || k0 > 0;
    for (int j = 0; j < n; j += GE_NR) {
      const int cols = MIN (GE_NR, n - j);
      const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16) ((1u << cols) - 1);
      const __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16) ((1u << (cols - 16)) - 1);
      for (int i0 = 0; i0 < m; i0 += GE_MR)
        tile_8x32 (kc, ap + ((gsize) (i0 / GE_MR) * k + k0) * GE_MR, b + j, boff + k0,
            c + (gsize) i0 * ldc + j, ldc, MIN (GE_MR, m - i0), m0, m1,
            bias && k0 == 0 ? bias + i0 : NULL, acc, i0 == 0);
    }
  }
}

#else

gboolean
ge_gemm_packed_available (void)
{
  return FALSE;
}

void
ge_gemm_packed (int m, int n, int k, const float *ap, const float *b, const int *boff,
    float *c, int ldc, const float *bias, gboolean accumulate)
{
  g_assert_not_reached ();
}

#endif
