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

/* ---- bf16 (AVX512-BF16) ----------------------------------------------
 *
 * The same 8x32 tile with vdpbf16ps: each instruction multiplies pairs of
 * bf16 numbers and adds both products into f32 accumulators, twice the
 * multiply-adds of an f32 FMA.  Operands are pairs along K: a guint32 holds
 * element 2p (low half) and 2p + 1 (high half) of a row of A or of a
 * column of B, so B row p (a "pair row") is 2 x n bf16 numbers, columns
 * interleaved.  Which two K indices form a pair is the caller's choice (the
 * convolutions pair two input channels at the same tap, so that a pair row
 * is a row of a channel-pair-interleaved input).  Products are exact in f32
 * and sums are f32: the error is the rounding of the inputs to bf16 (8
 * significant bits, relative 2^-8 each at most) plus f32 accumulation.
 *
 * Not bitwise anything: the f32 kernel above stays the reference. */

/* TRUE when the CPU has AVX512-BF16 (with AVX512F/BW/VL) and neither
 * GE_NO_AVX512 nor GE_NO_BF16 is set in the environment (the tests run the
 * fallback that way). */
gboolean ge_gemm_bf16_available (void);

/* f32 -> bf16, rounding to nearest even, as vcvtne2ps2bf16 does:
 * denormals flush to a signed zero, NaNs stay (quiet) NaNs. */
static inline guint16
ge_f32_to_bf16 (float f)
{
  guint32 u;
  __builtin_memcpy (&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu))
    return (guint16) ((u >> 16) | 0x40);
  if ((u & 0x7f800000u) == 0)
    return (guint16) ((u >> 16) & 0x8000);
  return (guint16) ((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

static inline float
ge_bf16_to_f32 (guint16 h)
{
  const guint32 u = (guint32) h << 16;
  float f;
  __builtin_memcpy (&f, &u, 4);
  return f;
}

/* A pair: @lo is element 2p, @hi element 2p + 1. */
static inline guint32
ge_bf16_pair (float lo, float hi)
{
  return ge_f32_to_bf16 (lo) | (guint32) ge_f32_to_bf16 (hi) << 16;
}

/* dst[i] = ge_bf16_pair (lo[i], hi ? hi[i] : 0) for i < n (vectorised where
 * ge_gemm_bf16_available ()). */
void ge_bf16_pairs (const float *lo, const float *hi, int n, guint32 * dst);

/* guint32s for the packed A of m rows and @kp pairs: [m/MR][kp][MR]. */
gsize ge_gemm_bf16_a_size (int m, int kp);

/* C[m, n] = (accumulate ? C : 0) + bias + A * B over @kp pairs: ap packed
 * as above (rows past m zero), pair row p of B at b + boff[p] (n pairs,
 * read with masks), C f32 row-major (leading dimension ldc).  @stream: C
 * is written past the caches (non-temporal stores, which neither read its
 * lines first nor evict what is cached), for an output too large to be
 * read back from cache anyway; it applies where C is 64-byte aligned, ldc a
 * multiple of 16 and @accumulate FALSE, and to whole 32-column panels.
 * Only where ge_gemm_bf16_available (). */
void ge_gemm_bf16 (int m, int n, int kp, const guint32 * ap, const guint32 * b,
    const int *boff, float *c, int ldc, const float *bias, gboolean accumulate,
    gboolean stream);

/* ---- int8 (AVX512-VNNI) -----------------------------------------------
 *
 * The same tile with vpdpbusd: each instruction multiplies four unsigned
 * bytes of B by four signed bytes of A and adds the four products to an
 * int32, twice the multiply-adds of vdpbf16ps.  Operands are quads along K
 * (a guint32 holds elements 4q .. 4q + 3, the lowest byte first: the
 * convolutions put four input channels at one tap there).  The sums are
 * exact integers; each row of C gets them as f32 times its @scale, plus its
 * @offset (NULL: 0), plus C where @accumulate.  How the bytes stand for
 * numbers (scales, zero points) is the caller's. */

/* TRUE where ge_gemm_bf16_available () and the CPU has AVX512-VNNI, unless
 * GE_NO_INT8 is set in the environment. */
gboolean ge_gemm_int8_available (void);

/* C[m, n] = (accumulate ? C : 0) + offset + scale * (A * B) over @kq quads,
 * then + R where @res (R in C's layout, e.g. a residual; NULL: none):
 * ap packed as ge_gemm_bf16's A ([m/MR][kq][MR] guint32s of four signed
 * bytes, ge_gemm_bf16_a_size () of them), quad row q of B at b + boff[q] (n
 * guint32s of four unsigned bytes, read with masks), @scale and @offset per
 * row of C; @stream as ge_gemm_bf16's.  Only where ge_gemm_int8_available (). */
void ge_gemm_int8 (int m, int n, int kq, const guint32 * ap, const guint32 * b,
    const int *boff, float *c, int ldc, const float *scale, const float *offset,
    gboolean accumulate, const float *res, gboolean stream);

G_END_DECLS
