/* gemm.h: the engine's own packed SGEMM for convolutions on AVX-512.
 *
 * OpenBLAS 0.3.21 (Debian bookworm) runs its AVX2 kernels on CPUs it does
 * not know, such as AMD Zen 5, whose AVX-512 units do twice the work per
 * cycle; ONNX Runtime's MLAS uses them.  This is a GotoBLAS-style kernel
 * with weights packed once into blocks of GE_MR rows ([K][GE_MR]) and an
 * 8x32 register tile (16 zmm accumulators), K in L1-sized slices.
 *
 * B is addressed through a table of row offsets: row k of B starts at
 * b + boff[k].  With boff[k] = k * ld that is a plain matrix (im2col); with
 * boff[k] = offset of tap k in a padded input it is the input itself, and a
 * stride-1 convolution needs no im2col at all ("implicit GEMM").
 * Where AVX-512 is missing the engine keeps using OpenBLAS.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define GE_MR 8
#define GE_NR 32

/* TRUE when the CPU runs the AVX-512 kernel (GE_NO_AVX512 set in the
 * environment turns it off, for comparisons). */
gboolean ge_gemm_packed_available (void);

/* Floats needed for the packed copy of an M x K matrix. */
gsize ge_gemm_packed_a_size (int m, int k);
/* Packs rows of A (row-major, leading dimension lda) into [m/MR][k][MR],
 * zero-filling the last block. */
void ge_gemm_pack_a (const float *a, int m, int k, int lda, float *ap);

/* The same for a transposed source: A(i, kk) = a[kk * lda + i] * scale. */
void ge_gemm_pack_a_t (const float *a, int m, int k, int lda, float scale, float *ap);

/* C[m, n] = (accumulate ? C : 0) + bias + A * B with ap packed A, B(k, j) =
 * b[boff[k] + j] (columns contiguous, read with masks: nothing past column
 * n is touched); C row-major with leading dimension ldc; bias may be NULL. */
void ge_gemm_packed (int m, int n, int k, const float *ap, const float *b,
    const int *boff, float *c, int ldc, const float *bias, gboolean accumulate);

G_END_DECLS
