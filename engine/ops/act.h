/* act.h: one activation on one value, inlined into the loops of eltwise.c
 * and norm.c (where it is fused after the normalisation).
 *
 * ge_expf is Cephes' expf (range reduction by ln 2, degree-6 polynomial,
 * within 2 ulp of the correctly rounded result on [-87, 88]) written
 * without calls or branches, so GCC vectorises the loops that use it; libm's
 * expf is a call per element and was 4 % of a U-Net forward on its own.
 */
#pragma once

#include "ge-ops.h"
#include <math.h>
#include <string.h>

static inline float
ge_expf (float x)
{
  /* Ternaries, not fminf/fmaxf (calls unless NaNs are ruled out); with
   * -fno-trapping-math they become blends. */
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  /* Round to nearest by the 1.5 * 2^23 trick: no branch, no call. */
  const float t = x * 1.44269504088896341f;
  float fn = (t + 12582912.0f) - 12582912.0f;
  /* NaN in, NaN out (through r below), but never a NaN cast to int, which
   * is undefined (a division by a zero scale factor in a config gets here). */
  fn = fn == fn ? fn : 0.0f;
  const int n = (int) fn;
  float r = x - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const gint32 bits = (gint32) ((guint32) (n + 127) << 23);
  float scale;
  memcpy (&scale, &bits, 4);
  return p * scale;
}

static inline float
ge_sigmoidf (float v)
{
  return 1.0f / (1.0f + ge_expf (-v));
}

static inline float
ge_act1 (float v, GeAct act, float param)
{
  switch (act) {
    case GE_ACT_NONE: return v;
    case GE_ACT_SILU: return v / (1.0f + ge_expf (-v));
    case GE_ACT_GELU: return 0.5f * v * (1.0f + erff (v * (float) M_SQRT1_2));
    case GE_ACT_GELU_TANH:
      return 0.5f * v * (1.0f + tanhf (0.7978845608028654f * (v + 0.044715f * v * v * v)));
    case GE_ACT_RELU: return v > 0 ? v : 0;
    case GE_ACT_LEAKY_RELU: return v > 0 ? v : v * param;
    case GE_ACT_TANH: return tanhf (v);
    case GE_ACT_SIGMOID: return ge_sigmoidf (v);
  }
  return v;
}

/* Hot loops are compiled three times, for AVX-512, AVX2 and the x86-64 baseline, and
 * the loader picks one (GCC function multi-versioning); elsewhere once. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GE_VECTOR_CLONES __attribute__((target_clones ("avx512f", "avx2", "default")))
#else
#define GE_VECTOR_CLONES
#endif
