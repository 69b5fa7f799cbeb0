/* act.h: one activation on one value, inlined into the loops of eltwise.c
 * and norm.c (where it is fused after the normalisation). */
#pragma once

#include "ge-ops.h"
#include <math.h>

static inline float
ge_act1 (float v, GeAct act, float param)
{
  switch (act) {
    case GE_ACT_NONE: return v;
    case GE_ACT_SILU: return v / (1.0f + expf (-v));
    case GE_ACT_GELU: return 0.5f * v * (1.0f + erff (v * (float) M_SQRT1_2));
    case GE_ACT_GELU_TANH:
      return 0.5f * v * (1.0f + tanhf (0.7978845608028654f * (v + 0.044715f * v * v * v)));
    case GE_ACT_RELU: return v > 0 ? v : 0;
    case GE_ACT_LEAKY_RELU: return v > 0 ? v : v * param;
    case GE_ACT_TANH: return tanhf (v);
    case GE_ACT_SIGMOID: return 1.0f / (1.0f + expf (-v));
  }
  return v;
}
