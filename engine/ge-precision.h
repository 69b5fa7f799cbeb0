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
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  GE_PRECISION_F32 = 0,
  GE_PRECISION_BF16 = 1,
  GE_PRECISION_AUTO = 2,
} GePrecision;

/* TRUE when GE_PRECISION_BF16 would run bf16 kernels on this CPU. */
gboolean ge_precision_bf16_available (void);

/* "f32", "bf16", "auto"; NULL for anything else. */
const char *ge_precision_name (GePrecision p);
/* The inverse; FALSE for an unknown name. */
gboolean ge_precision_from_name (const char *name, GePrecision * p);

G_END_DECLS
