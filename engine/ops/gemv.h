/* gemv.h: matrix-vector products on 8-bit weights, for the streaming audio
 * models, which run one frame at a time (gansynth's GRU, its input
 * convolution and its heads: 0.72 M multiply-adds a hop).
 *
 * A frame's product reads every weight once, so in f32 it is bound by how
 * fast the weights come from memory: gansynth's 2.9 MB do not fit in a
 * core's L2 (1 MB on Zen 4) and stream from L3 each hop.  In 8 bits they
 * are 0.72 MB and stay in L2.
 *
 * Weights: int8 per row, symmetric (scale max |w| / 127, rounding to
 * nearest).  The vector: 16-bit integers per call (scale max |x| / 32767),
 * so its rounding (2^-16 of its largest element) is far below the weights'
 * (2^-8 of a row's).  Products and sums are exact 32-bit integers over
 * blocks of GE_GEMV_I8_BLOCK columns (256 * 127 * 32767 < 2^31: no
 * overflow), each block's sum converted to f32 and added, then scaled by
 * the two scales: y += s_w s_x sum_b (sum over block b).  AVX512-VNNI's
 * vpdpwssd (32 multiply-adds an instruction) on weights widened from bytes
 * as they load.
 *
 * Only where ge_gemv_i8_available (): the callers keep f32 elsewhere.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define GE_GEMV_I8_BLOCK 256

typedef struct _GeGemvI8 GeGemvI8;

/* TRUE when the CPU has AVX512-VNNI with AVX512F/BW/VL, as the int8
 * convolutions need (ge_gemm_int8_available: GE_NO_INT8 or GE_NO_AVX512 in
 * the environment turn it off). */
gboolean ge_gemv_i8_available (void);

/* Quantizes @rows x @cols row-major f32 weights (leading dimension @ld);
 * NULL where !ge_gemv_i8_available () or a weight is not finite. */
GeGemvI8 *ge_gemv_i8_new (const float *w, int rows, int cols, int ld);
void ge_gemv_i8_free (GeGemvI8 * a);
/* Row @r's scale (max |w| / 127; 0 for a zero row), for tests. */
float ge_gemv_i8_row_scale (const GeGemvI8 * a, int r);
/* Bytes of scratch ge_gemv_i8 needs (the quantized vector). */
gsize ge_gemv_i8_scratch_size (const GeGemvI8 * a);

/* y[r] += sum_c W[r][c] x[c] for every row, as above; @x finite.
 * @scratch: ge_gemv_i8_scratch_size () bytes, 4-byte aligned (read as
 * 32-bit pairs). */
void ge_gemv_i8 (const GeGemvI8 * a, const float *x, float *y, void *scratch);

G_END_DECLS
