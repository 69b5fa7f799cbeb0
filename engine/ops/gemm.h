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
 *
 * 16-bit weights (F16, BF16) stay as they are in the model's mapping: the
 * *16 functions convert them while packing, K slice by K slice, into f32
 * scratch and run the same f32 kernel.  The conversion is exact, so the
 * result is bitwise the one of the f32 path on the converted weights.
 */
#pragma once

#include <glib.h>
#include "ge-safetensors.h"

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

/* 16-bit A: @a holds rows of @lda elements of @dtype (GE_DTYPE_F16 or
 * GE_DTYPE_BF16, any alignment); columns [k0, k0 + k) of rows [0, m) are
 * converted and packed as ge_gemm_pack_a packs f32 ones. */
void ge_gemm_pack_a16 (const void *a, GeDType dtype, int m, int k0, int k, gsize lda, float *ap);

/* @n elements of @dtype (F32, F16 or BF16; any alignment) to f32. */
void ge_half_to_f32 (const void *src, GeDType dtype, gsize n, float *dst);

/* C[m, n] = (accumulate ? C : 0) + bias + A * B with ap packed A, B(k, j) =
 * b[boff[k] + j] (columns contiguous, read with masks: nothing past column
 * n is touched); C row-major with leading dimension ldc; bias may be NULL. */
void ge_gemm_packed (int m, int n, int k, const float *ap, const float *b,
    const int *boff, float *c, int ldc, const float *bias, gboolean accumulate);

/* Floats of per-thread scratch ge_gemm_packed16 needs for @m rows of A and
 * a depth of @k. */
gsize ge_gemm_packed16_scratch (int m, int k);

/* ge_gemm_packed with A given as 16-bit rows (see ge_gemm_pack_a16), each
 * K slice converted into @scratch just before the kernel runs over it.
 * Worth it where n is large: the conversion is paid per call. */
void ge_gemm_packed16 (int m, int n, int k, const void *a, GeDType dtype, gsize lda,
    const float *b, const int *boff, float *c, int ldc, const float *bias, gboolean accumulate,
    float *scratch);

/* C[m, n] = (accumulate ? C : 0) + A * W^T with ap packed A [m, k] and W
 * [n, k] rows of @ldw elements of @dtype (F16, BF16 or F32; a linear
 * layer's weights: B = W^T), converted NR columns of B at a time into @bp
 * (GE_NR * 256 floats). */
#define GE_GEMM_BT16_SCRATCH (GE_NR * 256)
void ge_gemm_packed_bt16 (int m, int n, int k, const float *ap, const void *w, GeDType dtype,
    gsize ldw, float *c, int ldc, gboolean accumulate, float *bp);

G_END_DECLS
