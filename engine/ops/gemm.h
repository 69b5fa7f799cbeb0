/* gemm.h: the engine's own packed SGEMM for convolutions on AVX-512.
 *
 * OpenBLAS 0.3.21 (Debian bookworm) runs its AVX2 kernels on CPUs it does
 * not know, such as AMD Zen 5, whose AVX-512 units do twice the work per
 * cycle; ONNX Runtime's MLAS uses them.  This is a GotoBLAS-style kernel:
 * weights packed once into blocks of GE_MR rows ([K][GE_MR]), im2col
 * written straight into panels of GE_NR pixels ([K][GE_NR]), an 8x48
 * register tile of 24 zmm accumulators, K in L1-sized slices.
 * Where AVX-512 is missing the engine keeps using OpenBLAS.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define GE_MR 8
#define GE_NR 48

/* TRUE when the CPU runs the AVX-512 kernel (GE_NO_AVX512 in the
 * environment turns it off, for comparisons). */
gboolean ge_gemm_packed_available (void);

/* Floats needed for the packed copy of an M x K matrix. */
gsize ge_gemm_packed_a_size (int m, int k);
/* Packs rows of A (row-major, leading dimension lda) into [m/MR][k][MR],
 * zero-filling the last block. */
void ge_gemm_pack_a (const float *a, int m, int k, int lda, float *ap);

/* C[m, n] = bias + A * B, where ap is packed A and bp holds ceil(n/NR)
 * panels [k][NR] (columns past n zero); C row-major with leading dimension
 * ldc; bias (m) may be NULL. */
void ge_gemm_packed (int m, int n, int k, const float *ap, const float *bp,
    float *c, int ldc, const float *bias);

G_END_DECLS
