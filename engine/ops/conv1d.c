/* conv1d.c: 1-D (transposed) convolutions are 2-D ones with a 1-pixel-high
 * kernel, so they share conv2d's banding and sgemm path. */
#include "ge-ops.h"

int
ge_conv1d_out_len (const GeConv1d * p, int len)
{
  return (len + p->pad_left + p->pad_right - p->dil * (p->k - 1) - 1) / p->stride + 1;
}

void
ge_conv1d (GeCtx * ctx, const GeConv1d * p, const GeTensor * x, GeTensor * y)
{
  g_return_if_fail (x->h == 1 && y->h == 1);
  GeConv2d c = {
    .in_channels = p->in_channels, .out_channels = p->out_channels,
    .kh = 1, .kw = p->k, .stride_h = 1, .stride_w = p->stride,
    .pad_left = p->pad_left, .pad_right = p->pad_right,
    .dil_h = 1, .dil_w = p->dil, .groups = p->groups,
    .weight = p->weight, .bias = p->bias,
  };
  ge_conv2d (ctx, &c, x, y);
}
