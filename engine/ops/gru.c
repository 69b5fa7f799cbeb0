/* gru.c: one time step of a PyTorch nn.GRU layer, for the streaming audio
 * models that run a frame at a time: the gates, from the layer's two
 * matrix-vector products, which the caller makes (in f32 or int8). */
#include "ge-ops.h"
#include "act.h"

#include <math.h>
#include <string.h>

/* act.h's ge_sigmoidf, not libm: expf and tanhf are a call per element,
 * and tanhf's expm1f was a fifth of gansynth's hop in int8.  tanh as 2
 * sigmoid (2x) - 1: within about 1e-7 of it, absolutely, where the gates
 * and the state live (|h| <= 1). */
static inline float
tanh_via_sigmoid (float x)
{
  return 2.0f * ge_sigmoidf (2.0f * x) - 1.0f;
}

void
ge_gru_update (const float *gi, const float *gh, float *h, int hidden)
{
  const int H = hidden;
  /* PyTorch's gate order: reset, update, new. */
  for (int i = 0; i < H; i++) {
    const float r = ge_sigmoidf (gi[i] + gh[i]);
    const float z = ge_sigmoidf (gi[H + i] + gh[H + i]);
    const float n = tanh_via_sigmoid (gi[2 * H + i] + r * gh[2 * H + i]);
    h[i] = (1.0f - z) * n + z * h[i];
  }
}
