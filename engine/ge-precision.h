/* ge-precision.h: the arithmetic the convolutions run in.
 *
 * GE_PRECISION_F32 is the reference: bitwise what the engine has always
 * computed.  GE_PRECISION_BF16 runs the multiply-adds of the convolutions
 * and of attention (channel-major: scores and output) on bf16-rounded
 * inputs and weights with f32 sums (AVX512-BF16's vdpbf16ps), about twice
 * as fast; activations between layers, normalisations, the softmax and
 * everything else stay f32.  It only takes effect on CPUs that have
 * AVX512-BF16 (elsewhere, and with GE_NO_BF16 or GE_NO_AVX512 set in the
 * environment, the f32 path runs).  GE_PRECISION_AUTO is bf16 for models
 * whose file says their bf16 output was validated against f32 (safetensors
 * metadata "precision_auto": "bf16", written by the benches that measure
 * it; see the model cards), f32 for every other model.
 *
 * GE_PRECISION_INT8 runs the convolutions of the resnet blocks (GeConv2d
 * int8: not the first and last conv of a network, not the resamplers) in
 * 8-bit integers on AVX512-VNNI (vpdpbusd, twice vdpbf16ps's multiply-adds):
 * weights quantized per output channel (symmetric, max |w| / 127), the
 * conv's input per call over the whole tensor (unsigned bytes, zero point
 * from its range), exact integer sums scaled back to f32.  Everything else
 * runs as in bf16 where the CPU has AVX512-BF16 and as f32 where it does
 * not (VNNI without BF16: Cascade Lake, Ice Lake; GE_NO_BF16 shows it).
 * Without VNNI (or with GE_NO_INT8) it is bf16, or f32 without AVX512-BF16.
 * AUTO picks it for models whose file says "int8".
 *
 * The speech enhancer (ge-speech.h) has no convolution: its INT8 is 8-bit
 * weights for its matrix-vector products (gemv.h), its BF16 is F32.
 * Inpainting's exemplar fill (tasks/patch_scan.h) runs its exhaustive
 * search in 16-bit VNNI pair products at INT8 and in f32 otherwise: both
 * exact, the same bytes.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  GE_PRECISION_F32 = 0,
  GE_PRECISION_BF16 = 1,
  GE_PRECISION_AUTO = 2,
  GE_PRECISION_INT8 = 3,
} GePrecision;

/* TRUE for the precisions that run the bf16 kernels (bf16, and int8 for
 * everything but its int8 convs). */
static inline gboolean
ge_precision_uses_bf16 (GePrecision p)
{
  return p == GE_PRECISION_BF16 || p == GE_PRECISION_INT8;
}

/* TRUE when GE_PRECISION_BF16 would run bf16 kernels on this CPU. */
gboolean ge_precision_bf16_available (void);

/* TRUE when GE_PRECISION_INT8 would run int8 kernels on this CPU. */
gboolean ge_precision_int8_available (void);

/* "f32", "bf16", "auto", "int8"; NULL for anything else. */
const char *ge_precision_name (GePrecision p);
/* The inverse; FALSE for an unknown name. */
gboolean ge_precision_from_name (const char *name, GePrecision * p);

G_END_DECLS
