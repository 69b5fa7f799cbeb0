/* embed.c: diffusers' get_timestep_embedding, with its float32 rounding
 * steps reproduced: exponent = f32(-ln(max_period) * i) / (half - shift),
 * freqs = exp(exponent) rounded to f32, arg = f32(t) * freq in f32. */
#include "ge-ops.h"

#include <math.h>

static inline float
frequency (int i, int half, float freq_shift, float neg_log)
{
  const float exponent = (neg_log * (float) i) / ((float) half - freq_shift);
  return (float) exp ((double) exponent);
}

void
ge_timestep_frequencies (int half, float freq_shift, float max_period, float *freqs)
{
  const float neg_log = (float) -log ((double) max_period);
  for (int i = 0; i < half; i++)
    freqs[i] = frequency (i, half, freq_shift, neg_log);
}

void
ge_timestep_embedding (const float *t, int n, int dim, gboolean flip_sin_to_cos,
    float freq_shift, float max_period, float *out)
{
  const int half = dim / 2;
  const float neg_log = (float) -log ((double) max_period);
  for (int b = 0; b < n; b++) {
    float *o = out + (gsize) b * dim;
    for (int i = 0; i < half; i++) {
      const float freq = frequency (i, half, freq_shift, neg_log);
      const float arg = t[b] * freq;
      const float s = (float) sin ((double) arg), c = (float) cos ((double) arg);
      o[flip_sin_to_cos ? half + i : i] = s;
      o[flip_sin_to_cos ? i : half + i] = c;
    }
    if (dim % 2)
      o[dim - 1] = 0.0f;
  }
}
