/* gemm.c: see gemm.h. */
#include "gemm.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* K slice: one B panel slice (KC x NR floats = 24 KiB) stays in L1 while
 * every block of A runs over it. */
#define KC 128

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

#ifdef HAVE_X86

/* One MR x NR tile over a K slice: acc (in registers) += A * B. */
#define ROW(r) \
  { __m512 a_ = _mm512_set1_ps (ap[r]); \
    c##r##0 = _mm512_fmadd_ps (a_, b0, c##r##0); \
    c##r##1 = _mm512_fmadd_ps (a_, b1, c##r##1); \
    c##r##2 = _mm512_fmadd_ps (a_, b2, c##r##2); }

#define FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

__attribute__((target ("avx512f")))
static void
tile_8x48 (int kc, const float *ap, const float *bp, float *c, int ldc, int rows,
    int cols, const float *bias, gboolean accumulate)
{
  __m512 c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32;
  __m512 c40, c41, c42, c50, c51, c52, c60, c61, c62, c70, c71, c72;
  const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16) ((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16) ((1u << (cols - 16)) - 1);
  const __mmask16 m2 = cols >= 48 ? 0xffff : cols <= 32 ? 0 : (__mmask16) ((1u << (cols - 32)) - 1);
#define INIT(r) \
  if (accumulate && r < rows) { \
    c##r##0 = _mm512_maskz_loadu_ps (m0, c + (gsize) r * ldc); \
    c##r##1 = _mm512_maskz_loadu_ps (m1, c + (gsize) r * ldc + 16); \
    c##r##2 = _mm512_maskz_loadu_ps (m2, c + (gsize) r * ldc + 32); \
  } else { \
    c##r##0 = _mm512_set1_ps (bias && r < rows ? bias[r] : 0.0f); \
    c##r##1 = c##r##0; c##r##2 = c##r##0; }
  FOR_ROWS (INIT)
#undef INIT
  for (int kk = 0; kk < kc; kk++) {
    const __m512 b0 = _mm512_loadu_ps (bp);
    const __m512 b1 = _mm512_loadu_ps (bp + 16);
    const __m512 b2 = _mm512_loadu_ps (bp + 32);
    FOR_ROWS (ROW)
    ap += GE_MR;
    bp += GE_NR;
  }
#define STORE(r) \
  if (r < rows) { \
    _mm512_mask_storeu_ps (c + (gsize) r * ldc, m0, c##r##0); \
    _mm512_mask_storeu_ps (c + (gsize) r * ldc + 16, m1, c##r##1); \
    _mm512_mask_storeu_ps (c + (gsize) r * ldc + 32, m2, c##r##2); }
  FOR_ROWS (STORE)
#undef STORE
}

#undef ROW
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
ge_gemm_packed (int m, int n, int k, const float *ap, const float *bp, float *c,
    int ldc, const float *bias)
{
  const int n_panels = (n + GE_NR - 1) / GE_NR;
  for (int k0 = 0; k0 < k; k0 += KC) {
    const int kc = MIN (KC, k - k0);
    for (int j = 0; j < n_panels; j++) {
      const float *b = bp + ((gsize) j * k + k0) * GE_NR;
      const int cols = MIN (GE_NR, n - j * GE_NR);
      for (int i0 = 0; i0 < m; i0 += GE_MR)
        tile_8x48 (kc, ap + ((gsize) (i0 / GE_MR) * k + k0) * GE_MR, b,
            c + (gsize) i0 * ldc + (gsize) j * GE_NR, ldc, MIN (GE_MR, m - i0), cols,
            bias ? bias + i0 : NULL, k0 > 0);
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
ge_gemm_packed (int m, int n, int k, const float *ap, const float *bp, float *c,
    int ldc, const float *bias)
{
  g_assert_not_reached ();
}

#endif
